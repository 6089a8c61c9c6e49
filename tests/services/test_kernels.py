"""The kernels against plain references, on both paths (numba and numpy)."""

from __future__ import annotations

import functools
import itertools
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import hypothesis
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binglide.services import kernels, sliding
from tests.services import references as ref

SAMPLES = Path(
    os.environ.get("BINGLIDE_SAMPLES", Path(__file__).parents[3] / "shared" / "samples")
)
SIZES = [0, 1, 2, 3, 5, 6, 7, 13, 255, 4099, 100_003]
KINDS = ["random", "zeros", "text", "pattern", "mixed"]

hypothesis_settings = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def make(kind: str, size: int, seed: int = 0) -> np.ndarray:
    """Generated test data of a kind: deterministic for a (kind, size, seed)."""
    rng = np.random.default_rng([seed, size, KINDS.index(kind)])
    if kind == "random":
        return rng.integers(0, 256, size, dtype=np.uint8)
    if kind == "zeros":
        return np.zeros(size, np.uint8)
    if kind == "text":
        words = b"the quick brown fox jumps over a lazy dog\nLorem ipsum 0123456789 "
        return np.frombuffer((words * (size // len(words) + 1))[:size], np.uint8).copy()
    if kind == "pattern":
        return np.resize(np.array([0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x00, 0x13], np.uint8), size)
    # mixed: random, a run of zeros, a run of 0xff, text
    out = rng.integers(0, 256, size, dtype=np.uint8)
    out[size // 4 : size // 2] = 0
    out[size // 2 : size // 2 + size // 8] = 0xFF
    out[-(size // 8) or size :] = make("text", size // 8)
    return out


@pytest.fixture(params=["numba", "numpy"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on one implementation; the numpy one with tiny blocks.

    Tiny blocks make the numpy fallback cross its block boundaries on small
    inputs, where the bugs of blocked code hide.
    """
    if request.param == "numba":
        if not kernels.NUMBA_AVAILABLE:
            pytest.skip("numba is not available (missing, or BINGLIDE_NO_NUMBA is set)")
        monkeypatch.setattr(kernels, "_use_numba", True)
    else:
        monkeypatch.setattr(kernels, "_use_numba", False)
        monkeypatch.setattr(kernels, "_BLOCK", 64)
        monkeypatch.setattr(kernels, "_MAX_SEGMENTS_PER_BLOCK", 3)
        monkeypatch.setattr(sliding, "_NP_WINDOWS", 5)
    return str(request.param)


# --------------------------------------------------------------------------
# histograms


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_byte_histogram(impl: str, kind: str, size: int) -> None:
    data = make(kind, size)
    result = kernels.byte_histogram(data)
    assert result.dtype == np.uint64
    assert result.shape == (256,)
    np.testing.assert_array_equal(result, ref.byte_histogram(data))


def test_byte_histogram_unaligned_views_and_bytes(impl: str) -> None:
    data = make("mixed", 10_007)
    for lo, hi in [(1, 10_007), (3, 9_001), (4097, 4098), (5, 5)]:
        np.testing.assert_array_equal(
            kernels.byte_histogram(data[lo:hi]), ref.byte_histogram(data[lo:hi])
        )
    # Strided views (the numba kernel reads contiguous ones as words).
    for view in [data[::3], data[1::2], data[::-1], data[5:9000:7]]:
        np.testing.assert_array_equal(kernels.byte_histogram(view), ref.byte_histogram(view))
    np.testing.assert_array_equal(
        kernels.byte_histogram(b"abca"), ref.byte_histogram(np.frombuffer(b"abca", np.uint8))
    )


def test_compiled_histogram_of_any_range_into_counts_already_there() -> None:
    # The kernel a segment or piece calls, on ranges that start at every
    # offset mod 16 and end around its 16-byte steps and its 1024-byte small
    # path, contiguous and strided, adding into counts already there.
    if not kernels.NUMBA_AVAILABLE:
        pytest.skip("numba is not available (missing, or BINGLIDE_NO_NUMBA is set)")
    data = make("mixed", 5000)
    strided = np.zeros(2 * data.shape[0], np.uint8)
    strided[::2] = data
    for buf in (data, strided[::2]):
        for lo in range(16):
            for length in (0, 1, 15, 16, 17, 1023, 1024, 1025, 1039, 1040, 1041, 4000):
                out = np.arange(256, dtype=np.int64)
                kernels._nb_hist_into(buf, lo, lo + length, out)
                expected = np.arange(256) + ref.byte_histogram(data[lo : lo + length])
                np.testing.assert_array_equal(out, expected, err_msg=f"{lo} {length}")


def test_byte_histogram_readonly_memmap(impl: str, tmp_path: Path) -> None:
    data = make("random", 5000)
    path = tmp_path / "f"
    path.write_bytes(data.tobytes())
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    np.testing.assert_array_equal(kernels.byte_histogram(mapped[7:]), ref.byte_histogram(data[7:]))
    del mapped


def test_byte_histogram_rejects_other_dtypes() -> None:
    with pytest.raises(ValueError, match="uint8"):
        kernels.byte_histogram(np.zeros(4, np.int16))
    with pytest.raises(ValueError, match="1-D"):
        kernels.byte_histogram(np.zeros((2, 2), np.uint8))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 7, 1031])
# (3, 8) tables are 128 MiB: that case has its own, smaller tests below.
@pytest.mark.parametrize(("n", "bits"), [(2, 1), (2, 3), (2, 8), (3, 1), (3, 5), (3, 6)])
def test_ngram_histogram(impl: str, kind: str, size: int, n: int, bits: int) -> None:
    data = make(kind, size)
    result = kernels.ngram_histogram(data, n, bits)
    assert result.dtype == np.uint64
    assert result.shape == (1 << bits,) * n
    np.testing.assert_array_equal(result, ref.ngram_histogram(data, n, bits))
    assert int(result.sum()) == max(0, size - n + 1)


@pytest.mark.parametrize(("n", "bits"), [(2, 8), (2, 4), (3, 2), (3, 6)])
def test_ngram_chunks_with_overlap_count_each_ngram_once(impl: str, n: int, bits: int) -> None:
    data = make("mixed", 97)
    whole = ref.ngram_histogram(data, n, bits)
    for cut in range(len(data) + 1):
        table = np.zeros((1 << bits,) * n, np.uint64)
        # The first chunk gets n-1 bytes of the second one as overlap.
        kernels.ngram_histogram(
            data[: cut + n - 1], n, bits, min(cut, max(0, len(data) - n + 1)), out=table
        )
        kernels.ngram_histogram(data[cut:], n, bits, out=table)
        np.testing.assert_array_equal(table, whole, err_msg=f"cut at {cut}")


@hypothesis_settings
@given(
    data=st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 300), max_size=6),
    n=st.sampled_from([2, 3]),
    bits=st.integers(1, 6),
)
def test_ngram_any_chunking_matches_whole(
    impl: str, data: bytes, cuts: list[int], n: int, bits: int
) -> None:
    buf = np.frombuffer(data, np.uint8)
    edges = sorted({0, len(buf), *(min(c, len(buf)) for c in cuts)})
    table = np.zeros((1 << bits,) * n, np.uint64)
    total = max(0, len(buf) - n + 1)
    for lo, hi in itertools.pairwise(edges):
        count = max(0, min(hi, total) - lo)
        kernels.ngram_histogram(buf[lo : hi + n - 1], n, bits, count, out=table)
    np.testing.assert_array_equal(table, ref.ngram_histogram(buf, n, bits))


def test_ngram_out_accumulates_and_is_returned(impl: str) -> None:
    data = make("random", 500)
    table = np.zeros((16, 16, 16), np.uint64)
    assert kernels.ngram_histogram(data, 3, 4, out=table) is table
    kernels.ngram_histogram(data, 3, 4, out=table)
    np.testing.assert_array_equal(table, 2 * ref.ngram_histogram(data, 3, 4))


@pytest.mark.parametrize("kind", ["random", "mixed"])
def test_ngram_full_trigrams(impl: str, kind: str) -> None:
    # A 2**24 table: few n-grams take the count-in-place path, and the
    # chunked accumulation goes through the same table.
    data = make(kind, 1031)
    expected = ref.ngram_histogram(data, 3, 8)
    table = kernels.ngram_histogram(data[:501], 3, 8, 499)
    kernels.ngram_histogram(data[499:], 3, 8, out=table)
    np.testing.assert_array_equal(table, expected)


def test_ngram_rejects_bad_arguments() -> None:
    data = make("random", 10)
    with pytest.raises(ValueError, match="n must be"):
        kernels.ngram_histogram(data, 4, 8)
    with pytest.raises(ValueError, match="bits"):
        kernels.ngram_histogram(data, 2, 0)
    with pytest.raises(ValueError, match="bits"):
        kernels.ngram_histogram(data, 2, 9)
    with pytest.raises(ValueError, match="count"):
        kernels.ngram_histogram(data, 2, 8, 10)
    with pytest.raises(ValueError, match="count"):
        kernels.ngram_histogram(data, 2, 8, -1)
    with pytest.raises(ValueError, match="out"):
        kernels.ngram_histogram(data, 2, 8, out=np.zeros((256, 256), np.int64))
    with pytest.raises(ValueError, match="out"):
        kernels.ngram_histogram(data, 2, 4, out=np.zeros((256, 256), np.uint64))


def test_ngram_count_default_never_negative(impl: str) -> None:
    for size in (0, 1, 2):
        table = kernels.ngram_histogram(make("random", size), 3, 2)
        assert int(table.sum()) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_segment_histograms(impl: str, kind: str) -> None:
    data = make(kind, 5003)
    rng = np.random.default_rng(7)
    for count in (1, 2, 10, 200):
        edges = np.sort(rng.integers(0, len(data) + 1, count))
        expected = ref.segment_histograms(data, edges)
        result = kernels.segment_histograms(data, edges)
        assert result.dtype == np.uint64
        assert result.shape == (count - 1, 256)
        np.testing.assert_array_equal(result, expected)


def test_segment_histograms_empty_segments_and_buffers(impl: str) -> None:
    data = make("random", 300)
    edges = [0, 0, 5, 5, 5, 6, 299, 300, 300]
    np.testing.assert_array_equal(
        kernels.segment_histograms(data, edges), ref.segment_histograms(data, edges)
    )
    np.testing.assert_array_equal(kernels.segment_histograms(data[:0], [0, 0]), np.zeros((1, 256)))
    assert kernels.segment_histograms(data, [4]).shape == (0, 256)


def test_segment_histograms_rejects_bad_edges() -> None:
    data = make("random", 10)
    for edges in ([], [3, 2], [0, 11], [-1, 3]):
        with pytest.raises(ValueError, match="edges"):
            kernels.segment_histograms(data, edges)


# --------------------------------------------------------------------------
# entropy


def test_entropy_of_counts_known_values() -> None:
    assert float(kernels.entropy_of_counts(np.ones(256, np.uint64))) == 8.0
    assert float(kernels.entropy_of_counts(np.zeros(256, np.uint64))) == 0.0
    one_value = np.zeros(256, np.uint64)
    one_value[65] = 1000
    assert float(kernels.entropy_of_counts(one_value)) == 0.0
    two = np.zeros(256)
    two[[1, 2]] = 7
    assert float(kernels.entropy_of_counts(two)) == 1.0
    assert kernels.entropy_of_counts(np.ones(256)).shape == ()


def test_entropy_of_counts_rows() -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 5, (20, 256)).astype(np.uint64)
    counts[4] = 0
    result = kernels.entropy_of_counts(counts)
    assert result.shape == (20,)
    assert result.dtype == np.float64
    np.testing.assert_allclose(result, [ref.entropy(row) for row in counts], rtol=0, atol=1e-12)
    assert result[4] == 0.0
    assert np.all((result >= 0) & (result <= 8))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("window", [1, 2, 7, 64, 1000, 100_000])
def test_sliding_entropy_dense_and_sparse(impl: str, kind: str, window: int) -> None:
    data = make(kind, 3001)
    rng = np.random.default_rng(window)
    for positions in (
        np.arange(-5, 3006),  # dense, past both ends
        np.arange(0, 3001, 97),  # sparse
        rng.integers(-50, 3050, 60),  # unsorted, repeated
        np.array([], np.int64),
    ):
        result = sliding.sliding_entropy(data, window, positions)
        assert result.shape == positions.shape
        np.testing.assert_allclose(
            result, ref.sliding_entropy(data, window, positions), rtol=0, atol=1e-9
        )


def test_sliding_entropy_counts_beyond_the_log_table(
    impl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counts past the c*log2(c) table compute the logarithms on the fly.
    monkeypatch.setattr(sliding, "_FLOG", sliding._FLOG[:16])
    monkeypatch.setattr(sliding, "_UP", sliding._UP[:15])
    data = make("mixed", 2000)
    positions = np.arange(0, 2000, 3)
    np.testing.assert_allclose(
        sliding.sliding_entropy(data, 500, positions),
        ref.sliding_entropy(data, 500, positions),
        rtol=0,
        atol=1e-9,
    )


def test_sliding_entropy_long_run_stays_exact(impl: str) -> None:
    # Many incremental steps: the periodic exact recomputation bounds drift.
    data = make("mixed", 200_000)
    positions = np.arange(0, 200_000, 1)
    result = sliding.sliding_entropy(data, 4096, positions)
    check = np.arange(0, 200_000, 9973)
    np.testing.assert_allclose(
        result[check], ref.sliding_entropy(data, 4096, check), rtol=0, atol=1e-9
    )


def _reader(data: np.ndarray, reads: list[tuple[int, int]] | None = None):
    def read(runs: np.ndarray, slot: int) -> np.ndarray:
        if reads is not None:
            reads.extend((int(a), int(b)) for a, b in runs)
        return np.concatenate([data[a:b] for a, b in runs.tolist()])

    return read


@pytest.mark.parametrize(
    ("window", "step"),
    [
        (300_000, 1000),  # windows larger than a piece, moving a little (two streams)
        (300_000, 200_000),  # larger than a piece, moving far: read piece by piece
        (50, 400_000),  # small and far apart: only their own bytes are read
        (4096, 1),  # dense
    ],
)
def test_sliding_windows_read_in_pieces_match_the_reference(
    impl: str, window: int, step: int
) -> None:
    data = make("mixed", 1_500_000)
    positions = np.arange(0, len(data), step)[:600]
    lo, hi = sliding.windows_around(positions, window, len(data))
    reads: list[tuple[int, int]] = []
    piece = 1 << 17
    got = sliding.sliding_entropies(_reader(data, reads), lo, hi, piece=piece)
    check = np.arange(0, len(positions), max(1, len(positions) // 40))
    np.testing.assert_allclose(
        got[check], ref.sliding_entropy(data, window, positions[check]), rtol=0, atol=1e-9
    )
    # Bounded reads (a piece, or a piece and the gaps read through); and no
    # byte read twice by one stream more than the windows need.
    assert max(b - a for a, b in reads) <= piece + (16 << 10)
    if step > window:
        assert sum(b - a for a, b in reads) <= len(positions) * window + len(reads) * (16 << 10)


@pytest.mark.parametrize("window", [3, 300, 5000, 200_000])
def test_sliding_runs_cut_at_fresh_multiples_give_the_same_bits(window: int) -> None:
    # One run, or runs cut at multiples of FRESH_EVERY (one per worker): the
    # same floating-point results, whatever the cut.
    data = make("mixed", 400_000)
    positions = np.sort(np.random.default_rng(window).integers(0, len(data), 3000))
    lo, hi = sliding.windows_around(positions, window, len(data))
    read = _reader(data)
    whole = sliding.sliding_entropies(read, lo, hi)
    every = sliding.FRESH_EVERY
    for cuts in ([0, every, 3000], [0, 7 * every, 20 * every, 3000], list(range(0, 3000, every))):
        bounds = sorted({*cuts, 3000})
        parts = [
            sliding.sliding_entropies(read, lo[a:b], hi[a:b], base=a)
            for a, b in itertools.pairwise(bounds)
        ]
        assert np.array_equal(np.concatenate(parts), whole)


def test_sliding_loop_stays_in_bounds() -> None:
    # The compiled loop does no bounds checks; its plain-Python form does.
    if not kernels.NUMBA_AVAILABLE:
        pytest.skip("numba is not available (missing, or BINGLIDE_NO_NUMBA is set)")
    data = make("mixed", 700)
    positions = np.sort(np.random.default_rng(5).integers(-50, 750, 120))
    for window in (1, 8, 64):
        lo, hi = sliding.windows_around(positions, window, len(data))
        w = sliding._Windows(_reader(data), lo, hi, 0, 1 << 17)
        w._plan(0, len(lo))
        lead_runs = sliding._runs(w.lead_lo, w.hi)
        keep = w.trail_hi > w.trail_lo
        trail_runs = sliding._runs(w.trail_lo[keep], w.trail_hi[keep])
        lead = np.concatenate([data[a:b] for a, b, _ in lead_runs.tolist()] or [data[:0]])
        trail = np.concatenate([data[a:b] for a, b, _ in trail_runs.tolist()] or [data[:0]])
        out = np.zeros(len(positions))
        sliding._nb_windows.py_func(  # type: ignore[attr-defined]
            lo,
            hi,
            0,
            len(lo),
            0,
            lead,
            lead_runs,
            trail,
            trail_runs,
            np.zeros(256, np.int64),
            np.zeros(3, np.int64),
            np.zeros(1),
            sliding._FLOG,
            sliding._UP,
            out,
        )
        np.testing.assert_allclose(
            out, ref.sliding_entropy(data, window, positions), rtol=0, atol=1e-9
        )


def test_sliding_entropy_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="window"):
        sliding.sliding_entropy(make("random", 10), 0, [1])
    with pytest.raises(ValueError, match="positions"):
        sliding.sliding_entropy(make("random", 10), 4, [[1]])
    read = _reader(make("random", 10))
    with pytest.raises(ValueError, match="sorted"):
        sliding.sliding_entropies(read, [3, 2], [5, 6])
    with pytest.raises(ValueError, match="piece"):
        sliding.sliding_entropies(read, [0], [5], piece=1024)


# --------------------------------------------------------------------------
# diff


@pytest.mark.parametrize("size", [0, 1, 3, 1000, 4099])
def test_diff_counts(impl: str, size: int) -> None:
    a = make("mixed", size)
    b = a.copy()
    rng = np.random.default_rng(size)
    flips = rng.integers(0, max(size, 1), size // 3)
    if size:
        b[flips] ^= rng.integers(1, 256, len(flips), dtype=np.uint8)
    for edges in (
        [0, size],
        [0, size // 3, size // 3, size],
        sorted(rng.integers(0, size + 1, 30)),
    ):
        result = kernels.diff_counts(a, b, edges)
        assert result.dtype == np.int64
        assert result.tolist() == ref.diff_counts(a, b, edges)
    assert kernels.diff_counts(a, a, [0, size]).tolist() == [0]


def test_diff_counts_every_differing_byte_value_at_every_word_position(impl: str) -> None:
    # The compiled path counts 8 bytes at a time from their XOR: every
    # nonzero XOR value, in every byte of a word and in the unaligned tail.
    a = make("random", 256 * 9 + 3)
    b = a.copy()
    b[np.arange(255) * 9 + np.arange(255) % 9] ^= np.arange(1, 256, dtype=np.uint8)
    for edges in ([0, len(a)], [1, 700, 701, len(a) - 1], list(range(0, len(a), 13))):
        assert kernels.diff_counts(a, b, edges).tolist() == ref.diff_counts(a, b, edges)


def test_diff_counts_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="same length"):
        kernels.diff_counts(make("random", 3), make("random", 4), [0, 3])
    with pytest.raises(ValueError, match="edges"):
        kernels.diff_counts(make("random", 3), make("random", 3), [0, 4])


# --------------------------------------------------------------------------
# decimate


@pytest.mark.parametrize(
    ("length", "size"),
    [
        (0, 0),
        (0, 10),
        (5, 10),
        (10, 10),
        (11, 10),
        (1, 1),
        (100, 1),
        (100, 2),
        (10**6, 4096),
        (10**12, 65536),
        (4097, 4096),
        (1000, 999),
    ],
)
def test_decimate(length: int, size: int) -> None:
    offsets = kernels.decimate(length, size)
    assert offsets.dtype == np.int64
    assert len(offsets) == min(length, size)
    assert np.all(np.diff(offsets) > 0)
    if len(offsets):
        assert offsets[0] >= 0
        assert offsets[-1] < length
    if length > size > 1:
        # Runs of about sqrt(size) consecutive offsets, first at 0, last at the end.
        runs = np.split(offsets, np.flatnonzero(np.diff(offsets) > 1) + 1)
        run = math.isqrt(size)
        assert offsets[0] == 0
        assert offsets[-1] == length - 1
        if length >= 2 * size:
            assert all(run - 1 <= len(r) <= run + 1 for r in runs)
            # evenly spread: the gaps between runs differ by at most one
            gaps = [int(b[0] - a[-1]) for a, b in itertools.pairwise(runs)]
            assert max(gaps) - min(gaps) <= 1
    np.testing.assert_array_equal(offsets, kernels.decimate(length, size))  # deterministic


@hypothesis_settings
@given(length=st.integers(0, 10**7), size=st.integers(0, 5000))
def test_decimate_properties(length: int, size: int) -> None:
    offsets = kernels.decimate(length, size)
    assert len(offsets) == min(length, size)
    assert np.all(np.diff(offsets) > 0)
    assert len(offsets) == 0 or 0 <= offsets[0] <= offsets[-1] < length


def test_decimate_rejects_negative() -> None:
    with pytest.raises(ValueError):
        kernels.decimate(-1, 3)
    with pytest.raises(ValueError):
        kernels.decimate(3, -1)


# --------------------------------------------------------------------------
# ent


def assert_stats_equal(stats: kernels.EntStats, expected: dict[str, float]) -> None:
    assert stats["size"] == expected["size"]
    for key, value in expected.items():
        got = float(stats[key])  # type: ignore[literal-required]
        if math.isnan(value):
            assert math.isnan(got), key
        else:
            assert got == pytest.approx(value, rel=1e-9, abs=1e-9), key


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_ent_matches_reference(impl: str, kind: str, size: int) -> None:
    data = make(kind, size)
    assert_stats_equal(kernels.ent_finish(kernels.ent_partial(data)), ref.ent(data.tobytes()))


@pytest.mark.parametrize("kind", ["random", "pattern", "mixed"])
def test_ent_merge_at_every_split(impl: str, kind: str) -> None:
    # Every split point of 40 bytes puts the Monte Carlo group boundary at
    # every phase, with straddling groups and chunks shorter than a group.
    data = make(kind, 40)
    whole = kernels.ent_partial(data)
    for cut in range(len(data) + 1):
        merged = kernels.ent_merge(
            kernels.ent_partial(data[:cut]), kernels.ent_partial(data[cut:])
        )
        assert merged == whole, f"cut at {cut}"


@hypothesis_settings
@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_ent_merge_any_chunking(impl: str, data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    parts = [kernels.ent_partial(data[a:b]) for a, b in itertools.pairwise(edges)]
    left_fold = functools.reduce(kernels.ent_merge, parts, kernels.ent_partial(b""))
    assert left_fold == kernels.ent_partial(data)
    # Associativity: merging from the right gives the same.
    right_fold = functools.reduce(
        lambda acc, p: kernels.ent_merge(p, acc), reversed(parts), kernels.ent_partial(b"")
    )
    assert right_fold == left_fold
    assert_stats_equal(kernels.ent_finish(left_fold), ref.ent(data))


@hypothesis_settings
@given(data=st.binary(max_size=300), piece=st.integers(1, 40), residue=st.integers(0, 5))
def test_ent_accumulator_of_one_residue(impl: str, data: bytes, piece: int, residue: int) -> None:
    # Only the Monte Carlo groups at offsets of one residue: the rest of the
    # partial as the full one's, and every entry of `inside` that residue's
    # exact count; packed as it is.
    acc = kernels.EntAccumulator(residue=residue)
    buf = np.frombuffer(data, np.uint8)
    for lo in range(0, len(buf), piece):
        hi = min(len(buf), lo + piece)
        acc.add(buf[lo : min(len(buf), hi + 5)], hi - lo)
    full = kernels.ent_partial(buf)
    assert acc.partial() == attrs.evolve(full, inside=(full.inside[residue],) * 6)
    assert np.array_equal(acc.to_array(), acc.partial().to_array())


def test_ent_accumulator_rejects_a_residue_out_of_range() -> None:
    for residue in (-1, 6):
        with pytest.raises(ValueError, match="residue"):
            kernels.EntAccumulator(residue=residue)


def _aligned_part(data: bytes, a: int, b: int) -> kernels.EntPartial:
    """The ENTA block [a, b) of a file: its groups at file offsets that are multiples of 6."""
    acc = kernels.EntAccumulator(residue=-a % 6)
    acc.add(np.frombuffer(data[a:b], np.uint8))  # a block's groups end within it
    return acc.partial()


def _assert_aligned_parts_merge_exactly(data: bytes, edges: list[int]) -> None:
    parts = [_aligned_part(data, a, b) for a, b in itertools.pairwise(edges)]
    left_fold = functools.reduce(kernels.ent_merge, parts, kernels.ent_partial(b""))
    right_fold = functools.reduce(
        lambda acc, p: kernels.ent_merge(p, acc), reversed(parts), kernels.ent_partial(b"")
    )
    stream = data[edges[0] : edges[-1]]
    whole = kernels.ent_partial(stream)
    for merged in (left_fold, right_fold):
        assert attrs.evolve(merged, inside=whole.inside) == whole, edges
        assert merged.inside[0] == whole.inside[0], edges
        assert_stats_equal(kernels.ent_finish(merged), ref.ent(stream))


@pytest.mark.parametrize("kind", ["random", "pattern", "mixed"])
@pytest.mark.parametrize("start", [0, 6, 12])
def test_ent_merges_partials_of_one_residue_at_every_split(
    impl: str, kind: str, start: int
) -> None:
    # What the ENTA cache blocks rely on: each block [a, b) of the file counts
    # only the groups at file offsets that are multiples of 6 (its residue
    # (-a) mod 6); a stream from a multiple of 6 merged from such blocks,
    # cut at any one or two points (every phase of the group boundary,
    # straddling groups, blocks shorter than a group), has ent's statistics.
    data = make(kind, 44).tobytes()
    for c1 in range(start, len(data) + 1):
        _assert_aligned_parts_merge_exactly(data, sorted({start, c1, len(data)}))
        for c2 in range(c1 + 1, min(len(data), c1 + 8) + 1):
            _assert_aligned_parts_merge_exactly(data, sorted({start, c1, c2, len(data)}))


@hypothesis_settings
@given(data=st.binary(min_size=1, max_size=300), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_ent_merges_partials_of_one_residue_any_chunking(
    impl: str, data: bytes, cuts: list[int]
) -> None:
    _assert_aligned_parts_merge_exactly(
        data, sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    )


def test_ent_partial_pack_round_trip() -> None:
    for size in (0, 3, 5, 1000):
        partial = kernels.ent_partial(make("random", size))
        packed = partial.to_array()
        assert packed.dtype == np.uint64
        assert kernels.EntPartial.from_array(packed) == partial
    with pytest.raises(ValueError, match="276"):
        kernels.EntPartial.from_array(np.zeros(5, np.uint64))


@hypothesis_settings
@given(data=st.binary(max_size=300), piece=st.integers(1, 40))
def test_ent_accumulator_over_pieces_with_look_ahead(impl: str, data: bytes, piece: int) -> None:
    # Pieces given with the 5 bytes after them (as sources read them): the
    # same partial as the whole run at once, each byte counted once.
    acc = kernels.EntAccumulator()
    buf = np.frombuffer(data, np.uint8)
    for lo in range(0, len(buf), piece):
        hi = min(len(buf), lo + piece)
        acc.add(buf[lo : min(len(buf), hi + 5)], hi - lo)
    assert acc.partial() == kernels.ent_partial(buf)
    with pytest.raises(ValueError, match="count"):
        acc.add(buf[:3], 4)


@hypothesis_settings
@given(data=st.binary(max_size=300), piece=st.integers(1, 40))
def test_ent_accumulator_packs_as_its_partial(impl: str, data: bytes, piece: int) -> None:
    # The packing a chunk's result goes out in, straight from the counters.
    acc = kernels.EntAccumulator()
    buf = np.frombuffer(data, np.uint8)
    assert np.array_equal(acc.to_array(), kernels.ent_partial(b"").to_array())
    for lo in range(0, len(buf), piece):
        hi = min(len(buf), lo + piece)
        acc.add(buf[lo : min(len(buf), hi + 5)], hi - lo)
        packed = acc.to_array()
        assert packed.dtype == np.uint64
        assert np.array_equal(packed, acc.partial().to_array())
        assert kernels.EntPartial.from_array(packed) == acc.partial()


def _ent_loops(partial: kernels.EntPartial) -> dict[str, float]:
    """ent's own loops (randtest.c's ``rt_end``), term by term, in ent's order."""
    n, counts = partial.size, partial.counts
    t1 = float(partial.pair_sum + partial.tail[-1] * partial.head[0])
    t2 = float(sum(v * c for v, c in enumerate(counts)))
    t3 = float(sum(v * v * c for v, c in enumerate(counts)))
    den = n * t3 - t2 * t2
    expected = n / 256.0
    chisq = datasum = ent = 0.0
    for v, c in enumerate(counts):
        chisq += ((c - expected) * (c - expected)) / expected
        datasum += float(v) * c
    for c in counts:
        if c:
            ent += (c / n) * (3.32192809488736234787 * math.log10(1.0 / (c / n)))
    return {
        "entropy": ent,
        "chi_square": chisq,
        "mean": datasum / n,
        "monte_carlo_pi": 4.0 * (partial.inside[0] / (n // 6)) if n >= 6 else math.nan,
        "serial_correlation": -100000.0 if den == 0.0 else (n * t1 - t2 * t2) / den,
    }


@hypothesis_settings
@given(
    counts=st.lists(st.integers(0, 2**45), min_size=256, max_size=256),
    pairs=st.integers(0, 2**62),
    inside=st.integers(0, 2**40),
)
def test_ent_finish_is_ents_loops_to_the_bit(counts: list[int], pairs: int, inside: int) -> None:
    # Not approximately: the same floating-point operations in the same
    # order, so that a result prints (and caches, and compares) as ent's does.
    n = sum(counts)
    hypothesis.assume(n > 0)
    partial = kernels.EntPartial(
        size=n,
        counts=tuple(counts),
        pair_sum=pairs,
        head=bytes([7, 1, 2, 3, 4])[: min(n, 5)],
        tail=bytes([5, 6, 7, 8, 200])[-min(n, 5) :],
        inside=(min(inside, n // 6), 0, 0, 0, 0, 0),
    )
    got = kernels.ent_finish(partial)
    for key, value in _ent_loops(partial).items():
        assert got[key] == value or (math.isnan(value) and math.isnan(got[key])), key  # type: ignore[literal-required]


def _ent_scan_reference(data: bytes, count: int, phase: int) -> tuple[int, list[int]]:
    """The scan's contract in plain Python: pairs and groups starting before `count`."""
    pairs = sum(data[i] * data[i + 1] for i in range(min(count, len(data) - 1)))
    inside = [0] * 6
    for t in range(min(count, len(data) - 5)):
        x = int.from_bytes(data[t : t + 3], "big")
        y = int.from_bytes(data[t + 3 : t + 6], "big")
        if x * x + y * y <= (2**24 - 1) ** 2:
            inside[(phase + t) % 6] += 1
    return pairs, inside


# Around the compiled scan's rows (96 bytes) and blocks, and below a group.
_B = kernels._ENT_BLOCK
_SCAN_COUNTS = [
    *range(14),
    17, 18, 19, 23, 24, 25, 29, 30, 31,
    95, 96, 97, 101, 102, 191, 192, 193, 1000,
    _B - 1, _B, _B + 1, 1 << 15, _B + 97, 2 * _B + 5, 3 * _B - 1,
]  # fmt: skip


@pytest.mark.parametrize("count", _SCAN_COUNTS)
def test_ent_scans_match_a_plain_reference(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    # Both scans directly, every phase, with 0 to 5 look-ahead bytes, adding
    # into tallies that already hold counts: any slip of an index, a residue,
    # a block or row boundary, or the look-ahead changes a number.
    if not kernels.NUMBA_AVAILABLE:
        pytest.skip("numba is not available (missing, or BINGLIDE_NO_NUMBA is set)")
    monkeypatch.setattr(kernels, "_BLOCK", 64)  # the numpy scan crosses its blocks too
    rng = np.random.default_rng(count)
    data = rng.integers(0, 256, count + 5, dtype=np.uint8)
    # Runs of high bytes (groups outside the circle) and zeros, among random ones.
    data[count // 3 : count // 2] = rng.integers(0xF0, 0x100, count // 2 - count // 3)
    data[count // 2 : count // 2 + count // 8] = 0
    for ahead in range(6):
        buf = data[: count + ahead]
        by_t = _ent_scan_reference(buf.tobytes(), count, 0)
        for phase in range(6):
            start = np.arange(6, dtype=np.int64) * 1000
            expected = start.copy()
            for r in range(6):
                expected[(phase + r) % 6] += by_t[1][r]
            for scan in (kernels._nb_ent_scan, kernels._np_ent_scan):
                inside = start.copy()
                assert scan(buf, count, phase, inside) == by_t[0], (scan, ahead, phase)
                np.testing.assert_array_equal(inside, expected, err_msg=f"{scan} {ahead} {phase}")
            # The fused call a piece makes: the same scan, and the counts of
            # the first `count` bytes (never the look-ahead) added into a table.
            inside = start.copy()
            counts = np.arange(256, dtype=np.int64)
            assert kernels._nb_ent_piece(buf, count, phase, inside, counts) == by_t[0]
            np.testing.assert_array_equal(inside, expected, err_msg=f"piece {ahead} {phase}")
            np.testing.assert_array_equal(
                counts, np.arange(256) + ref.byte_histogram(buf[:count]).astype(np.int64)
            )
        # One residue: the groups at offsets first, first + 6, ... (< count),
        # from a buffer at every alignment of its address (the kernel reads
        # words) and from a strided one (it cannot).
        padded = np.zeros(buf.shape[0] + 8, np.uint8)
        strided = np.zeros(2 * buf.shape[0], np.uint8)
        strided[::2] = buf
        views = [padded[shift : shift + buf.shape[0]] for shift in range(4)] + [strided[::2]]
        for view in views:
            view[:] = buf
            for first in range(6):
                hits = by_t[1][first]
                assert kernels._nb_ent_groups_at(view, count, first) == hits, (ahead, first)
                counts = np.arange(256, dtype=np.int64)
                piece = kernels._nb_ent_piece_at(view, count, first, counts)
                assert piece == (by_t[0], hits), (ahead, first)
                np.testing.assert_array_equal(
                    counts, np.arange(256) + ref.byte_histogram(buf[:count]).astype(np.int64)
                )


def test_byte_histogram_adds_into_out(impl: str) -> None:
    data = make("mixed", 10_000)
    out = kernels.byte_histogram(data[:4000])
    assert kernels.byte_histogram(data[4000:], out=out) is out
    np.testing.assert_array_equal(out, ref.byte_histogram(data))
    with pytest.raises(ValueError, match="out"):
        kernels.byte_histogram(data, out=np.zeros(255, np.uint64))


@pytest.mark.parametrize(("n", "bits"), [(2, 8), (3, 7)])
def test_ngrams_count_into_a_uint32_table(impl: str, n: int, bits: int) -> None:
    data = make("mixed", 20_000)
    table = np.zeros((1 << bits,) * n, np.uint32)
    kernels.ngram_histogram(data[: 10_000 + n - 1], n, bits, 10_000, out=table)
    kernels.ngram_histogram(data[10_000:], n, bits, out=table)
    np.testing.assert_array_equal(table, ref.ngram_histogram(data, n, bits))


ENT = shutil.which("ent")
needs_ent = pytest.mark.skipif(
    ENT is None, reason="the `ent` program is not installed (apt-get install ent)"
)


def ent_t(path: Path) -> list[str]:
    """Run ``ent -t`` and return its values as printed (size first)."""
    assert ENT is not None
    out = subprocess.run([ENT, "-t", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[1].split(",")[1:]


def assert_prints_like_ent(stats: kernels.EntStats, printed: list[str]) -> None:
    assert printed[0] == str(stats["size"])
    keys = ["entropy", "chi_square", "mean", "monte_carlo_pi", "serial_correlation"]
    for key, text in zip(keys, printed[1:], strict=True):
        value = float(stats[key])  # type: ignore[literal-required]
        if text.endswith("nan"):
            assert math.isnan(value), key
        else:
            assert f"{value:f}" == text, key


@needs_ent
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [0, 1, 2, 5, 6, 7, 13, 4099, 100_003])
def test_ent_matches_ent_program(impl: str, tmp_path: Path, kind: str, size: int) -> None:
    data = make(kind, size)
    path = tmp_path / "data.bin"
    path.write_bytes(data.tobytes())
    # Chunked, as the service computes it: three uneven parts.
    cuts = [0, size // 3, size // 3 + 1 if size else 0, size]
    partial = functools.reduce(
        kernels.ent_merge,
        [kernels.ent_partial(data[a:b]) for a, b in itertools.pairwise(cuts)],
    )
    assert_prints_like_ent(kernels.ent_finish(partial), ent_t(path))


SAMPLE_FILES = sorted(p for p in SAMPLES.glob("*") if p.is_file()) if SAMPLES.is_dir() else []


@needs_ent
@pytest.mark.skipif(not SAMPLE_FILES, reason=f"no sample binaries at {SAMPLES}")
@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_ent_matches_ent_program_on_samples(impl: str, path: Path) -> None:
    data = np.fromfile(path, dtype=np.uint8)
    # Chunks of 100001 bytes: groups straddle most boundaries.
    parts = [kernels.ent_partial(data[i : i + 100_001]) for i in range(0, len(data), 100_001)]
    partial = functools.reduce(kernels.ent_merge, parts, kernels.ent_partial(b""))
    assert_prints_like_ent(kernels.ent_finish(partial), ent_t(path))
    # The same chunks counting only the groups at multiples of 6 (ENTA blocks).
    aligned = []
    for i in range(0, len(data), 100_001):
        acc = kernels.EntAccumulator(residue=-i % 6)
        acc.add(data[i : i + 100_001])
        aligned.append(acc.partial())
    partial = functools.reduce(kernels.ent_merge, aligned, kernels.ent_partial(b""))
    assert_prints_like_ent(kernels.ent_finish(partial), ent_t(path))


# --------------------------------------------------------------------------
# the switch


def test_no_numba_environment_variable_forces_the_fallback() -> None:
    code = (
        "import sys; from binglide.services import kernels as k; import numpy as np;"
        "assert not k.NUMBA_AVAILABLE and not k._use_numba;"
        "assert 'numba' not in sys.modules;"
        "assert k.byte_histogram(np.arange(10, dtype=np.uint8)).sum() == 10"
    )
    env = {**os.environ, "BINGLIDE_NO_NUMBA": "1"}
    src = str(Path(kernels.__file__).parents[2])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_kernels_release_the_gil() -> None:
    # Two threads over halves give the same counts as one call: the kernels
    # are reentrant (nogil), which the worker threads rely on.
    from concurrent.futures import ThreadPoolExecutor

    data = make("random", 1 << 20)
    half = len(data) // 2
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(kernels.byte_histogram, [data[:half], data[half:]]))
    np.testing.assert_array_equal(parts[0] + parts[1], ref.byte_histogram(data))
