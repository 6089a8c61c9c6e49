"""The analyses end to end (embedded default), against independent numpy references.

The references (`tests/services/references.py`) are plain whole-array numpy,
written separately from the services; `stats` is also checked against `ent -t`.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import binglide
from binglide.services import kernels
from binglide.services.engine import MIN_CHUNK

from . import references as ref

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"


def _contents(kind: str, size: int) -> bytes:
    rng = np.random.default_rng(size)
    if kind == "random":
        return rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    if kind == "zeros":
        return bytes(size)
    if kind == "text":
        words = b"the quick brown fox jumps over the lazy dog\n"
        return (words * (size // len(words) + 1))[:size]
    if kind == "pattern":
        return (bytes(range(7, 250, 3)) * (size // 81 + 1))[:size]
    # mixed: a quarter of each, so chunks of very different entropy
    q = size // 4
    return b"".join(
        _contents(k, n)
        for k, n in [("zeros", q), ("text", q), ("random", q), ("pattern", size - 3 * q)]
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("files")
    made = {}
    for kind, size in [
        ("random", 0),
        ("random", 1),
        ("random", 2),
        ("random", 3),
        ("text", 1001),
        ("zeros", 4097),
        ("pattern", 65537),
        ("random", 3 * MIN_CHUNK + 12345),  # several chunks: n-grams straddle them
        ("mixed", 5 * MIN_CHUNK + 7),
    ]:
        path = root / f"{kind}-{size}.bin"
        path.write_bytes(_contents(kind, size))
        made[path.stem] = path
    return made


@asynccontextmanager
async def connected(tmp_path: Path) -> AsyncIterator[binglide.Client]:
    # Not a fixture: pytest-asyncio would close the task group in another task.
    async with binglide.connect(workers=2, cache_dir=tmp_path / "cache") as c:
        yield c


def _load(path: Path) -> np.ndarray[Any, Any]:
    return np.frombuffer(path.read_bytes(), dtype=np.uint8)


RANGES = [None, (0, 1), (1, None), (3, 77_777), (MIN_CHUNK - 5, 2 * MIN_CHUNK + 9), (10, 10**12)]


def _slice(
    data: np.ndarray[Any, Any], rng: tuple[int | None, int | None] | None
) -> np.ndarray[Any, Any]:
    if rng is None:
        return data
    return data[rng[0] : rng[1]]


async def test_histogram_matches_the_reference(tmp_path: Path, files: dict[str, Path]) -> None:
    async with connected(tmp_path) as client:
        with anyio.fail_after(60):
            for path in files.values():
                data = _load(path)
                for rng in RANGES:
                    report = await client.histogram(path, rng)
                    np.testing.assert_array_equal(
                        report.data, ref.byte_histogram(_slice(data, rng))
                    )
                    assert report.array.dtype == np.uint64
                    assert report.final
                    assert report.precision == 1.0


@pytest.mark.parametrize(("n", "bits"), [(2, 8), (2, 4), (3, 7), (3, 2)])
async def test_ngrams_count_every_ngram_including_straddling_ones(
    tmp_path: Path, files: dict[str, Path], n: int, bits: int
) -> None:
    async with connected(tmp_path) as client:
        with anyio.fail_after(60):
            for name in [
                "random-3",
                "text-1001",
                f"random-{3 * MIN_CHUNK + 12345}",
                f"mixed-{5 * MIN_CHUNK + 7}",
            ]:
                data = _load(files[name])
                for rng in [None, (MIN_CHUNK - 1, 2 * MIN_CHUNK + 1), (5, 6)]:
                    report = await client.ngrams(files[name], rng, n=n, bits=bits)
                    expected = ref.ngram_histogram(_slice(data, rng), n, bits)
                    assert report.array.shape == (1 << bits,) * n
                    np.testing.assert_array_equal(report.data, expected)


async def test_ngram_defaults(tmp_path: Path, files: dict[str, Path]) -> None:
    async with connected(tmp_path) as client:
        with anyio.fail_after(20):
            assert (await client.ngrams(files["text-1001"])).array.shape == (256, 256)
            assert (await client.ngrams(files["text-1001"], n=3)).array.shape == (128, 128, 128)


async def test_entropy_resolution_mode_matches_its_definition(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    async with connected(tmp_path) as client:
        with anyio.fail_after(60):
            for name in ["text-1001", "pattern-65537", f"mixed-{5 * MIN_CHUNK + 7}"]:
                data = _load(files[name])
                for rng, resolution in [(None, 1024), ((100, 50_000), 7), (None, 1)]:
                    report = await client.entropy(files[name], rng, resolution=resolution)
                    part = _slice(data, rng)
                    length = len(part)
                    expected = [
                        ref.entropy(
                            ref.byte_histogram(
                                part[i * length // resolution : (i + 1) * length // resolution]
                            )
                        )
                        for i in range(resolution)
                    ]
                    np.testing.assert_allclose(report.array, np.array(expected), atol=1e-9)


async def test_block_entropy_matches_its_definition(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    async with connected(tmp_path) as client:
        data = _load(files[f"mixed-{5 * MIN_CHUNK + 7}"])
        with anyio.fail_after(60):
            for block, rng in [(4096, None), (1000, (17, 123_457)), (1 << 20, None)]:
                report = await client.entropy(
                    files[f"mixed-{5 * MIN_CHUNK + 7}"], rng, mode="block", block=block
                )
                part = _slice(data, rng)
                expected = [
                    ref.entropy(ref.byte_histogram(part[i : i + block]))
                    for i in range(0, len(part), block)
                ]
                np.testing.assert_allclose(report.array, np.array(expected), atol=1e-9)


async def test_sliding_entropy_matches_its_definition(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    async with connected(tmp_path) as client:
        path = files["pattern-65537"]
        data = _load(path)
        with anyio.fail_after(20):
            report = await client.entropy(
                path, (10, 60_000), mode="sliding", resolution=100, window=128
            )
        part = data[10:60_000]
        length = len(part)
        centres = [(i * length // 100 + (i + 1) * length // 100) // 2 for i in range(100)]
        np.testing.assert_allclose(
            report.array, np.array(ref.sliding_entropy(part, 128, centres)), atol=1e-9
        )


def _biased_ranges(spans: np.ndarray[Any, Any]) -> list[list[int]]:
    """The [first, stop] index ranges of points of fewer than 256 bytes (plain Python)."""
    ranges: list[list[int]] = []
    for i, span in enumerate(spans.tolist()):
        if span < 256:
            if ranges and ranges[-1][1] == i:
                ranges[-1][1] = i + 1
            else:
                ranges.append([i, i + 1])
    return ranges


async def test_entropy_points_of_a_small_file_cover_256_bytes_by_default(tmp_path: Path) -> None:
    # 16 KiB of random bytes drew at 4 bits per byte: 1024 points of 16 bytes.
    path = tmp_path / "small.bin"
    data = np.random.default_rng(16).integers(0, 256, 16 << 10, dtype=np.uint8)
    path.write_bytes(data.tobytes())
    async with connected(tmp_path) as client:
        with anyio.fail_after(30):
            reports = [r async for r in client.entropy(path)]
            asked = await client.entropy(path, resolution=1024)
    for report in reports:  # every report says it, the estimate too
        assert report.meta["point_bytes"] == 256
        assert report.meta["biased_points"] == []
        assert report.meta["resolution"] == 64
    final = reports[-1].array
    assert final.shape == (64,)
    expected = [ref.entropy(ref.byte_histogram(data[i * 256 : (i + 1) * 256])) for i in range(64)]
    np.testing.assert_allclose(final, expected, atol=1e-9)
    assert final.min() > 6.8  # random bytes, 256 a point: about 7.3, not 4
    # Asked for explicitly, 1024 points are honoured, and marked.
    assert asked.array.shape == (1024,)
    assert asked.array.max() <= 4.0
    assert asked.meta["point_bytes"] == 16
    assert asked.meta["biased_points"] == [[0, 1024]]


async def test_entropy_meta_marks_the_short_points_of_every_mode(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    size = (16 << 10) + 100
    data = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8)
    path.write_bytes(data.tobytes())
    tiny = tmp_path / "tiny.bin"
    tiny.write_bytes(data[:100].tobytes())
    async with connected(tmp_path) as client:
        with anyio.fail_after(30):
            block = await client.entropy(path, mode="block", block=4096)
            sliding = await client.entropy(path, mode="sliding", resolution=300)
            small = await client.entropy(tiny)
            mixed = await client.entropy(path, (0, 64 * 255 + 10), resolution=64)
    # Blocks: 4096 bytes a point, but the last has 100.
    assert block.meta["point_bytes"] == 4096
    assert block.meta["biased_points"] == [[4, 5]]
    # Sliding: 256-byte windows by default, cut short at the range's ends.
    assert sliding.meta["window"] == 256
    assert sliding.meta["point_bytes"] == 256
    centres = np.array([(i * size // 300 + (i + 1) * size // 300) // 2 for i in range(300)])
    spans = np.minimum(centres + 128, size) - np.maximum(centres - 128, 0)
    assert sliding.meta["biased_points"] == _biased_ranges(spans)
    assert sliding.meta["biased_points"][0][0] == 0
    assert sliding.meta["biased_points"][-1][1] == 300
    np.testing.assert_allclose(sliding.array, ref.sliding_entropy(data, 256, centres), atol=1e-9)
    # Points of 255 or 256 bytes: all alike, all marked.
    assert mixed.meta["point_bytes"] == 255
    assert mixed.meta["biased_points"] == [[0, 64]]
    # A file under 256 bytes: one point, and it says so.
    assert small.array.shape == (1,)
    assert small.meta["point_bytes"] == 100
    assert small.meta["biased_points"] == [[0, 1]]


async def test_sliding_entropy_is_progressive_split_and_the_same_bits_as_one_run(
    tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from binglide.services import segments, sliding

    runs: list[int] = []
    original = segments.sliding_windows

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(segments, "sliding_windows", counted)
    path = files[f"mixed-{5 * MIN_CHUNK + 7}"]
    data = _load(path)
    async with connected(tmp_path) as client:
        with anyio.fail_after(30):
            reports = [
                r async for r in client.entropy(path, mode="sliding", resolution=5000, window=4096)
            ]
    first, last = reports[0], reports[-1]
    assert not first.final
    assert first.completion == 0.0
    assert 0 < first.precision < 1  # a sample of the windows first
    assert last.final
    assert (last.completion, last.precision) == (1.0, 1.0)
    assert [r.completion for r in reports] == sorted(r.completion for r in reports)
    assert len(runs) > 1  # fanned out in runs of windows
    assert sum(runs) == 5000
    length = len(data)
    centres = np.array([(i * length // 5000 + (i + 1) * length // 5000) // 2 for i in range(5000)])
    np.testing.assert_allclose(
        last.array[::50], ref.sliding_entropy(data, 4096, centres[::50]), atol=1e-9
    )
    # Cut into runs or not, the same floating-point results.
    assert np.array_equal(last.array, sliding.sliding_entropy(data, 4096, centres))


async def test_diff_counts_and_length_difference(tmp_path: Path) -> None:
    async with connected(tmp_path) as client:
        rng = np.random.default_rng(1)
        a = rng.integers(0, 256, 300_000, dtype=np.uint8)
        b = a.copy()
        flips = rng.choice(250_000, 1000, replace=False)
        b[flips] ^= 0xFF
        b = b[:250_000]
        pa, pb = tmp_path / "a.bin", tmp_path / "b.bin"
        pa.write_bytes(a.tobytes())
        pb.write_bytes(b.tobytes())
        with anyio.fail_after(20):
            report = await client.diff(pa, pb, resolution=30)
        common = np.zeros(300_000, dtype=bool)
        common[:250_000] = a[:250_000] != b
        common[250_000:] = True  # past the shorter file's end
        expected = [
            int(common[i * 300_000 // 30 : (i + 1) * 300_000 // 30].sum()) for i in range(30)
        ]
        assert report.array.tolist() == expected
        assert report.meta["total"] == 1000 + 50_000
        assert report.meta["sizes"] == [300_000, 250_000]
        assert report.meta["length_differs"] is True
        assert report.meta["beyond_shorter"] == 50_000
        assert report.meta["first_offsets"] == sorted(flips)[:16]


async def test_diff_of_identical_files_is_zero(tmp_path: Path, files: dict[str, Path]) -> None:
    async with connected(tmp_path) as client:
        path = files["text-1001"]
        with anyio.fail_after(20):
            report = await client.diff(path, path, resolution=4)
        assert report.array.tolist() == [0, 0, 0, 0]
        assert report.meta["total"] == 0
        assert report.meta["first_offsets"] == []


async def test_data_is_exact_when_it_fits_and_decimated_in_runs_otherwise(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    async with connected(tmp_path) as client:
        path = files[f"random-{3 * MIN_CHUNK + 12345}"]
        data = _load(path)
        with anyio.fail_after(20):
            small = await client.data(path, (1000, 1100), size=4096)
            big = await client.data(path, size=10_000)
        assert small.meta["exact"] is True
        assert small.array.tobytes() == data[1000:1100].tobytes()
        assert big.meta["exact"] is False
        assert len(big.array) == 10_000
        runs = big.meta["runs"]
        assert sum(length for _, length in runs) == 10_000
        # Runs of about sqrt(size) consecutive bytes, spread over the whole file.
        assert all(length >= math.isqrt(10_000) // 2 for _, length in runs)
        assert runs[0][0] == 0
        assert runs[-1][0] + runs[-1][1] == len(data)
        kept = np.concatenate([data[o : o + n] for o, n in runs])
        assert big.array.tobytes() == kept.tobytes()


@pytest.mark.skipif(
    shutil.which("ent") is None, reason="ent is not installed (apt-get install ent)"
)
async def test_stats_equal_ent_to_its_printed_digits(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    async with connected(tmp_path) as client:
        paths = [p for name, p in files.items() if not name.endswith("-0")]
        paths += [
            p for p in sorted(SAMPLES.glob("*")) if p.suffix != ".md" and p.suffix != ".txt"
        ][:3]
        with anyio.fail_after(60):
            for path in paths:
                report = await client.stats(path)
                out = subprocess.run(
                    ["ent", "-t", str(path)], capture_output=True, text=True, check=True
                ).stdout
                fields = out.strip().splitlines()[1].split(",")
                size, entropy, chi, mean, pi, scc = int(fields[1]), *map(float, fields[2:7])
                m = report.meta
                assert m["size"] == size
                assert f"{m['entropy']:.6f}" == f"{entropy:.6f}"
                assert f"{m['chi_square']:.6f}" == f"{chi:.6f}"
                assert f"{m['mean']:.6f}" == f"{mean:.6f}"
                if not math.isnan(pi):
                    assert f"{m['monte_carlo_pi']:.6f}" == f"{pi:.6f}"
                if scc == -100000.0:  # ent -t's "undefined": all values equal
                    assert m["serial_correlation"] is None
                else:
                    assert f"{m['serial_correlation']:.6f}" == f"{scc:.6f}"
                np.testing.assert_array_equal(report.data, ref.byte_histogram(_load(path)))


@pytest.mark.parametrize("batch", [False, True])
async def test_stats_are_finished_off_the_event_loop(
    tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, batch: bool
) -> None:
    # A batch's files each wait on the event loop between their request and
    # the next one: ent's statistics of an exact answer are worked out in the
    # kernel thread that finishes it, not on the loop (estimates still are).
    finished_on: list[tuple[int, int]] = []
    real_finish = kernels.ent_finish

    def spy(partial: kernels.EntPartial) -> kernels.EntStats:
        finished_on.append((partial.size, threading.get_ident()))
        return real_finish(partial)

    monkeypatch.setattr(kernels, "ent_finish", spy)
    options: dict[str, Any] = (
        {"reports": {"estimate": False, "progress": False}, "spread": False} if batch else {}
    )
    async with connected(tmp_path) as client:
        loop_thread = threading.get_ident()
        with anyio.fail_after(30):
            for name in ("random-0", f"mixed-{5 * MIN_CHUNK + 7}", "text-1001"):
                path = files[name]
                finished_on.clear()
                reports = [r async for r in client.stats(path, **options)]
                data = _load(path)
                exact = [t for size, t in finished_on if size == len(data)]
                assert exact, name
                if len(data):  # an empty range is answered at once, on the loop
                    assert exact[-1] != loop_thread, name
                final = reports[-1]
                assert final.final
                assert final.meta["size"] == len(data)
                assert final.meta["start"] == 0
                assert final.meta["stop"] == len(data)
                np.testing.assert_array_equal(final.data, ref.byte_histogram(data))
                if len(data):
                    assert final.meta["entropy"] == pytest.approx(
                        ref.ent(data.tobytes())["entropy"]
                    )


async def test_reports_go_from_estimate_to_exact(tmp_path: Path, files: dict[str, Path]) -> None:
    async with connected(tmp_path) as client:
        path = files[f"mixed-{5 * MIN_CHUNK + 7}"]
        with anyio.fail_after(20):
            reports = [r async for r in client.histogram(path)]
        first, last = reports[0], reports[-1]
        assert not first.final
        assert 0 < first.precision < 1  # a sample: the fraction of bytes read
        assert last.final
        assert last.precision == 1.0
        assert last.completion == 1.0
        completions = [r.completion for r in reports]
        assert completions == sorted(completions)
        # The estimate is an estimate of the whole: its total is the range's size.
        assert abs(int(first.array.sum()) - path.stat().st_size) < path.stat().st_size * 0.01


async def test_the_estimate_can_be_skipped(tmp_path: Path, files: dict[str, Path]) -> None:
    async with connected(tmp_path) as client:
        path = files[f"mixed-{5 * MIN_CHUNK + 7}"]
        with anyio.fail_after(20):
            reports = [
                r
                async for r in client.histogram(
                    path, reports={"estimate": False, "progress": False}
                )
            ]
        assert len(reports) == 1
        assert reports[0].final


# -- bad input -------------------------------------------------------------------------------


BAD_REQUESTS = [
    (
        "histogram",
        {"inputs": [{"source": "/nonexistent/file.bin"}]},
        "no such file; check the path",
    ),
    ("histogram", {"inputs": [{"source": "{tmp}"}]}, "directory"),
    ("histogram", {"inputs": [{"source": "{file}", "start": -1}]}, "negative"),
    ("histogram", {"inputs": [{"source": "{file}", "start": 10, "stop": 5}]}, "reversed"),
    ("histogram", {"inputs": [{"source": "{file}", "start": "x"}]}, "integer"),
    ("histogram", {"inputs": []}, "exactly 1 input"),
    ("histogram", [1, 2], "must be an object"),
    (
        "ngrams",
        {"inputs": [{"source": "{file}"}], "options": {"n": 4}},
        "'n' must be an integer from 2 to 3",
    ),
    ("ngrams", {"inputs": [{"source": "{file}"}], "options": {"bits": 0}}, "'bits'"),
    (
        "entropy",
        {"inputs": [{"source": "{file}"}], "options": {"mode": "fast"}},
        "'mode' must be one of",
    ),
    ("entropy", {"inputs": [{"source": "{file}"}], "options": {"resolution": 0}}, "'resolution'"),
    (
        "entropy",
        {"inputs": [{"source": "{file}"}], "options": {"mode": "block"}},
        "'block' is required",
    ),
    (
        "entropy",
        {"inputs": [{"source": "{file}"}], "options": {"mode": "block", "block": 1}},
        None,
    ),
    ("diff", {"inputs": [{"source": "{file}"}]}, "exactly 2 input"),
    ("data", {"inputs": [{"source": "{file}"}], "options": {"size": 0}}, "'size'"),
    (
        "histogram",
        {"inputs": [{"source": "{file}"}], "cache": {"lookup": "maybe"}},
        "cache.lookup",
    ),
    (
        "stats",
        {"inputs": [{"source": "{file}"}], "spread": "no"},
        "'spread' must be true or false",
    ),
]


@pytest.mark.parametrize(("service", "body", "match"), BAD_REQUESTS)
async def test_bad_input_is_a_request_error(
    tmp_path: Path, service: str, body: Any, match: str | None
) -> None:
    async with connected(tmp_path) as client:
        file = tmp_path / "f.bin"
        file.write_bytes(b"x" * 100)
        text = repr(body).replace("{tmp}", str(tmp_path)).replace("{file}", str(file))
        body = eval(text)  # the placeholders inside nested literals
        with anyio.fail_after(20):
            if match is None:  # a valid request near the limits
                await client.request(service, body)
                return
            with pytest.raises(binglide.RequestError, match=match):
                await client.request(service, body)
            # The workers go on serving everyone.
            assert (await client.histogram(file)).array.sum() == 100


async def test_files_outside_the_allowed_roots_are_refused(tmp_path: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (inside / "ok.bin").write_bytes(b"abc")
    (outside / "secret.bin").write_bytes(b"xyz")
    (inside / "link.bin").symlink_to(outside / "secret.bin")
    with anyio.fail_after(20):
        async with binglide.connect(workers=1, roots=[inside], cache_dir=tmp_path / "c") as client:
            assert (await client.histogram(inside / "ok.bin")).array.sum() == 3
            for escape in [
                outside / "secret.bin",
                inside / ".." / "out" / "secret.bin",
                inside / "link.bin",
            ]:
                with pytest.raises(
                    binglide.RequestError, match=r"outside the allowed roots|allowed"
                ):
                    await client.histogram(escape)
