"""The ``binglide`` command, driven as a user drives it: in a subprocess.

Outputs are compared with what the library computes in the test itself;
errors must be one line and an exit status; Ctrl-C must cancel the job.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import binglide
from binglide.cli.text import parse_offset
from binglide.cli.usage import UsageError
from tests.cli.picture_helpers import read_png

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "binglide.cli.main"]
#: Fourmilab's ent, the reference for `stats` (None where it is not installed).
ENT = shutil.which("ent")


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # The stand-in services live in tests/, importable from the repository root.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


async def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``binglide ARGS...`` to its end."""
    return await anyio.run_process([*COMMAND, *args], check=False, env=child_env())


def png_shape(path: Path) -> tuple[int, int]:
    """Return the (height, width) of a PNG file the command wrote."""
    width, height = read_png(path.read_bytes()).size
    return height, width


def one_error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """Return the single line of stderr, checking it is an error and not a traceback."""
    err = result.stderr.decode()
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("binglide: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A file with text, zeros, code-like and random parts; and a shorter, patched copy."""
    rng = np.random.default_rng(1234)
    text = b"The quick brown fox jumps over the lazy dog. " * 2000
    code = np.tile(np.frombuffer(b"\x48\x89\xe5\x48\x83\xec\x10\xc3", dtype=np.uint8), 9000)
    parts = [
        b"\x7fELF" + bytes(60),
        text,
        bytes(50_000),
        code.tobytes(),
        rng.integers(0, 256, 120_000, dtype=np.uint8).tobytes(),
    ]
    data = b"".join(parts)
    directory = tmp_path_factory.mktemp("files")
    a = directory / "sample.bin"
    a.write_bytes(data)
    patched = bytearray(data[:-1000])
    for offset in (100, 101, 5000, 200_000):
        patched[offset] ^= 0xFF
    b = directory / "patched.bin"
    b.write_bytes(bytes(patched))
    return a, b


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def local(cache: Path) -> list[str]:
    """The options that run the embedded default small and isolated."""
    return ["--workers", "2", "--cache-dir", str(cache)]


async def library(cache: Path, method: str, *args: Any, **kwargs: Any) -> binglide.Report:
    async with binglide.connect(workers=2, cache_dir=cache) as client:
        report: binglide.Report = await getattr(client, method)(*args, **kwargs)
    return report


# -- outputs and exports ------------------------------------------------------------------


async def test_stats_reads_like_ent(files, cache):
    with anyio.fail_after(30):
        result = await run("stats", str(files[0]), *local(cache))
        expected = await library(cache, "stats", files[0])
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode().splitlines()
    assert out[0] == f"Entropy = {expected.meta['entropy']:f} bits per byte."
    assert out[1].startswith("Optimum compression would reduce the size of this ")
    assert f"{files[0].stat().st_size} byte file" in out[1]
    assert out[-1].startswith("Serial correlation coefficient is ")
    assert result.stderr == b""  # no bar: stderr is not a terminal


async def test_histogram_exports_match_the_library(files, cache, tmp_path):
    out = str(tmp_path / "out")
    with anyio.fail_after(30):
        result = await run(
            "histogram",
            str(files[0]),
            "--range",
            "0x40:64K",
            "--json",
            f"{out}.json",
            "--npz",
            f"{out}.npz",
            "--csv",
            f"{out}.csv",
            "--png",
            f"{out}.png",
            *local(cache),
        )
        expected = await library(cache, "histogram", files[0], (0x40, 65536))
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert text.startswith(f"{65536 - 0x40:,} bytes, ")
    top = int(np.argmax(expected.array))
    assert text.splitlines()[2].startswith(f"0x{top:02x}")

    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["service"] == "histogram"
    assert doc["sources"] == [str(files[0])]
    assert doc["meta"] == {"start": 0x40, "stop": 65536}
    assert doc["data"] == expected.array.tolist()
    with np.load(f"{out}.npz") as npz:
        assert np.array_equal(npz["data"], expected.array)
        assert npz["data"].dtype == expected.array.dtype
        assert json.loads(str(npz["meta"]))["meta"] == doc["meta"]
    rows = list(csv.reader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert rows[0] == ["byte", "count"]
    assert [int(c) for _, c in rows[1:]] == expected.array.tolist()
    height, width = png_shape(tmp_path / "out.png")
    assert height > 200
    assert width > 256


async def test_ngrams_bigrams_and_trigrams(files, cache, tmp_path):
    with anyio.fail_after(40):
        two = await run(
            "ngrams", str(files[0]), "--json", str(tmp_path / "2.json"), "--top", "3",
            "--png", str(tmp_path / "2.png"), *local(cache),
        )  # fmt: skip
        three = await run(
            "ngrams", "-n", "3", "--bits", "4", str(files[0]), "--csv", str(tmp_path / "3.csv"),
            "--npz", str(tmp_path / "3.npz"), "--png", str(tmp_path / "3.png"), *local(cache),
        )  # fmt: skip
        bigrams = await library(cache, "ngrams", files[0], n=2)
        trigrams = await library(cache, "ngrams", files[0], n=3, bits=4)
    assert two.returncode == 0, two.stderr
    assert three.returncode == 0, three.stderr
    lines = two.stdout.decode().splitlines()
    assert len(lines) == 4
    first, second = np.unravel_index(int(np.argmax(bigrams.array)), (256, 256))
    assert lines[1].startswith(f"{first:02x} {second:02x}")
    doc = json.loads((tmp_path / "2.json").read_text())
    assert np.array_equal(np.array(doc["data"], dtype=np.uint64), bigrams.array)
    assert png_shape(tmp_path / "2.png")[0] >= 512

    with np.load(tmp_path / "3.npz") as npz:
        assert np.array_equal(npz["data"], trigrams.array)
    rows = list(csv.reader(io.StringIO((tmp_path / "3.csv").read_text())))
    assert rows[0] == ["first", "second", "third", "count"]
    table = np.zeros((16, 16, 16), dtype=np.uint64)
    for a, b, c, n in rows[1:]:
        table[int(a), int(b), int(c)] = int(n)
    assert np.array_equal(table, trigrams.array)
    assert png_shape(tmp_path / "3.png")[0] >= 512


async def test_entropy_profile_csv_and_pictures(files, cache, tmp_path):
    with anyio.fail_after(40):
        result = await run(
            "entropy", str(files[0]), "--resolution", "100", "--csv", str(tmp_path / "e.csv"),
            "--json", str(tmp_path / "e.json"), "--png", str(tmp_path / "e.png"), *local(cache),
        )  # fmt: skip
        hilbert = await run(
            "entropy", str(files[0]), "--png", str(tmp_path / "h.png"), "--hilbert",
            "--side", "32", "--json", str(tmp_path / "h.json"), "-q", *local(cache),
        )  # fmt: skip
        expected = await library(cache, "entropy", files[0], resolution=100)
    assert result.returncode == 0, result.stderr
    assert hilbert.returncode == 0, hilbert.stderr
    text = result.stdout.decode().splitlines()
    assert text[0].startswith("entropy, bits per byte")
    assert text[1].startswith("0x0000")
    rows = list(csv.reader(io.StringIO((tmp_path / "e.csv").read_text())))
    assert rows[0] == ["index", "start", "stop", "entropy"]
    assert len(rows) == 101
    size = files[0].stat().st_size
    assert int(rows[1][1]) == 0
    assert int(rows[-1][2]) == size
    assert all(int(rows[i][2]) == int(rows[i + 1][1]) for i in range(1, 100))
    assert np.array_equal(np.array([float(r[3]) for r in rows[1:]]), expected.array)
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["data"] == expected.array.tolist()
    assert doc["start"][0] == 0
    assert doc["stop"][-1] == size
    assert png_shape(tmp_path / "e.png")[1] == 1024
    # --hilbert asks for side*side points.
    assert len(json.loads((tmp_path / "h.json").read_text())["data"]) == 32 * 32
    assert hilbert.stdout == b""
    assert png_shape(tmp_path / "h.png")[0] >= 512


async def test_diff_summary_and_exports(files, cache, tmp_path):
    a, b = files
    with anyio.fail_after(30):
        result = await run(
            "diff", str(a), str(b), "--resolution", "64", "--json", str(tmp_path / "d.json"),
            "--csv", str(tmp_path / "d.csv"), "--png", str(tmp_path / "d.png"), *local(cache),
        )  # fmt: skip
        expected = await library(cache, "diff", a, b, resolution=64)
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert "files differ in length by 1,000 bytes" in text
    assert f"{expected.meta['total']:,} differing bytes" in text
    assert "first differing offsets: 0x64, 0x65, 0x1388, 0x30d40" in text
    doc = json.loads((tmp_path / "d.json").read_text())
    assert doc["meta"]["total"] == expected.meta["total"] == 4 + 1000
    assert doc["data"] == expected.array.tolist()
    rows = list(csv.reader(io.StringIO((tmp_path / "d.csv").read_text())))
    assert rows[0] == ["index", "start", "stop", "differing"]
    assert sum(int(r[3]) for r in rows[1:]) == expected.meta["total"]
    assert png_shape(tmp_path / "d.png")[1] == 1024


async def test_data_hexdump_and_exports(files, cache, tmp_path):
    with anyio.fail_after(30):
        exact = await run("data", str(files[0]), "--range", "0:40", *local(cache))
        sampled = await run(
            "data", str(files[0]), "--size", "256", "--csv", str(tmp_path / "v.csv"),
            "--json", str(tmp_path / "v.json"), *local(cache),
        )  # fmt: skip
        picture = await run(
            "data", str(files[0]), "--png", str(tmp_path / "v.png"), "--side", "64", "-q",
            *local(cache),
        )  # fmt: skip
        expected = await library(cache, "data", files[0], size=256)
    assert exact.returncode == 0, exact.stderr
    lines = exact.stdout.decode().splitlines()
    assert lines[0] == "40 bytes at 0x0..0x28 (40 B)"
    assert lines[1].startswith("00000000  7f 45 4c 46 00 00")
    assert lines[1].endswith("|.ELF............|")
    assert lines[3].startswith("00000020  00 00 00 00 00 00 00 00  ")

    assert sampled.returncode == 0, sampled.stderr
    assert "in " in sampled.stdout.decode().splitlines()[0]
    assert "\n--\n" in sampled.stdout.decode()
    data = files[0].read_bytes()
    rows = list(csv.reader(io.StringIO((tmp_path / "v.csv").read_text())))[1:]
    assert len(rows) == 256
    assert all(data[int(o)] == int(v) for o, v in rows)
    doc = json.loads((tmp_path / "v.json").read_text())
    assert doc["data"] == expected.array.tolist()
    assert doc["meta"]["runs"] == expected.meta["runs"]

    assert picture.returncode == 0, picture.stderr
    assert png_shape(tmp_path / "v.png")[0] >= 512


async def test_json_to_stdout_replaces_the_summary(files, cache):
    with anyio.fail_after(30):
        result = await run("histogram", str(files[0]), "--json", "-", *local(cache))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert sum(doc["data"]) == files[0].stat().st_size


async def test_no_cache_leaves_the_cache_empty_and_cache_commands(cache, tmp_path):
    # Large enough that chunks are committed (levels are about 10% of a
    # request, and 1 MiB at least); sparse, so it costs no disk.
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(16 << 20)
    with anyio.fail_after(40):
        skipped = await run("histogram", str(big), "--no-cache", *local(cache))
        empty = await run("cache", "info", "--cache-dir", str(cache))
        filled = await run("histogram", str(big), *local(cache))
        info = await run("cache", "info", "--cache-dir", str(cache))
        cleared = await run("cache", "clear", "--cache-dir", str(cache))
        after = await run("cache", "info", "--cache-dir", str(cache))
    for result in (skipped, empty, filled, info, cleared, after):
        assert result.returncode == 0, result.stderr
    assert "entries:   0\n" in empty.stdout.decode()
    entries = int(info.stdout.decode().split("entries:")[1].split()[0])
    assert entries > 0
    assert cleared.stdout.decode().startswith(f"removed {entries} entries from ")
    assert "entries:   0\n" in after.stdout.decode()


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stats", "{missing}"], "no such file"),
        (["stats", "{file}", "--range", "10:5"], "stop 5 is before start 10"),
        (["stats", "{file}", "--range", "ten:20"], "invalid offset 'ten'"),
        (["stats", "{file}", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["entropy", "{file}", "--mode", "block"], "--mode block needs --block"),
        (["ngrams", "-n", "4", "{file}"], "invalid choice: 4"),
        (["histogram", "{file}", "--png", "{missing}/x.png"], "cannot write"),
        (["stats", "{dir}"], "is a directory"),
        (["stats", "{file}", "--root", "{missing}"], "outside the allowed roots"),
        (["stats", "{file}", "--connect", "tcp://127.0.0.1:9", "--workers", "2"], "--workers"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["histogram", "{file}", "--top", "0"], "argument --top: must be at least 1, not 0"),
        (["histogram", "{file}", "--top", "-3"], "argument --top: must be at least 1, not -3"),
        (["ngrams", "{file}", "--top", "0"], "argument --top: must be at least 1, not 0"),
        (["data", "{file}", "--lines", "-1"], "argument --lines: must be at least 0, not -1"),
        (
            ["stats", "{file}", "--range", "1M:"],
            "--range starts at 0x100000 (1.00 MiB), past the end",
        ),
        (["diff", "{file}", "{file}", "--range", "1M:2M"], "range (1048576, 2097152) is invalid"),
        (["stats", "{file}", "--curve-dir", "{dir}"], "--curve-dir is for --connect"),
        (
            ["stats", "{file}", "--connect", "tcp://127.0.0.1:9", "--curve-dir", "{dir}"],
            "no CURVE key pair 'client'",
        ),
        (["stats", "{file}", "--cache-max-size", "lots"], "invalid offset 'lots'"),
        (["stats", "{file}", "--connect-timeout", "0"], "must be more than 0 seconds"),
    ],
)
async def test_bad_input_is_one_line_and_status_2(files, cache, tmp_path, args, message):
    fields = {"file": str(files[0]), "missing": str(tmp_path / "nope"), "dir": str(tmp_path)}
    argv = [a.format(**fields) for a in args]
    if argv[0] != "frobnicate" and "--connect" not in argv:
        argv += ["--cache-dir", str(cache)]
    with anyio.fail_after(30):
        result = await run(*argv)
    assert result.returncode == 2
    assert message in one_error_line(result)
    assert result.stdout == b""


# -- Ctrl-C ---------------------------------------------------------------------------------


async def read_until(stream: Any, marker: bytes, seen: bytearray) -> None:
    """Read `stream` into `seen` until `marker` is in it (the caller bounds the wait)."""
    while marker not in seen:
        chunk = await stream.receive()
        seen.extend(chunk)


async def interrupt(process: Any, seen: bytearray) -> int:
    """Send SIGINT to `process`; return its exit status, reading the rest of stderr."""
    process.send_signal(signal.SIGINT)
    async with anyio.create_task_group() as tg:

        async def drain() -> None:
            async for chunk in process.stderr:
                seen.extend(chunk)

        tg.start_soon(drain)
        code: int = await process.wait()
    return code


async def test_ctrl_c_cancels_an_embedded_job_and_exits_130(tmp_path, cache):
    # A sparse 64 GiB file: far more work than the test waits for (the
    # kernels run at several GB/s), and no disk space.
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as f:
        f.write(np.random.default_rng(3).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
        f.truncate(64 << 30)
    argv = [*COMMAND, "histogram", str(huge), "--progress", "--no-cache", *local(cache)]
    seen = bytearray()
    with anyio.fail_after(30):
        async with await anyio.open_process(argv, env=child_env()) as process:
            # A redrawn bar: completion, throughput and time left.
            await read_until(process.stderr, b"B/s ETA ", seen)
            with anyio.fail_after(10):
                code = await interrupt(process, seen)
    assert code == 130, seen.decode(errors="replace")
    err = seen.decode(errors="replace")
    assert "Traceback" not in err
    assert err.endswith("binglide: interrupted; the job was cancelled\n")


def spawn_remote(args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*COMMAND, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )


@pytest.fixture
def remote(tmp_path: Path):
    """A broker and a worker of the stand-in services, as processes; yields (address, markers)."""
    from tests.zmq_helpers import free_tcp_address, stop

    address = free_tcp_address()
    markers = tmp_path / "markers"
    markers.mkdir()
    env = child_env(BINGLIDE_TEST_MARKERS=str(markers))
    # A long liveness: a vanished client would only be noticed after 30 s, so
    # a prompt cancellation can only come from the command's CANCEL.
    broker = spawn_remote(["broker", address, "--liveness", "30", "--service-timeout", "2"], env)
    procs = [broker]
    try:
        assert broker.stdout is not None
        line = broker.stdout.readline()
        assert line.startswith(b"listening on "), line
        services = [
            "tests.cli.cli_services:BlockingHistogram",
            "tests.cli.cli_services:FailingStats",
        ]
        procs.append(spawn_remote(["worker", address, *services, "--no-cache"], env))
        yield address, markers
    finally:
        for proc in procs:
            stop(proc)


async def wait_marker(directory: Path, what: str) -> None:
    from tests.zmq_helpers import wait_markers

    await wait_markers(directory, what)


@pytest.mark.zmq
async def test_ctrl_c_with_connect_cancels_the_remote_task(remote, files):
    address, markers = remote
    argv = [*COMMAND, "histogram", str(files[0]), "--connect", address, "--progress"]
    seen = bytearray()
    with anyio.fail_after(30):
        async with await anyio.open_process(argv, env=child_env()) as process:
            await read_until(process.stderr, b"%", seen)
            await wait_marker(markers, "started")
            with anyio.fail_after(10):
                code = await interrupt(process, seen)
        assert code == 130, seen.decode(errors="replace")
        assert seen.decode().endswith("binglide: interrupted; the job was cancelled\n")
        # The worker's task was cancelled: the broker got the command's CANCEL.
        with anyio.fail_after(10):
            await wait_marker(markers, "cancelled")


@pytest.mark.zmq
async def test_remote_failures_exit_1(remote, files):
    address, _ = remote
    with anyio.fail_after(30):
        failed = await run("stats", str(files[0]), "--connect", address)
        unavailable = await run("entropy", str(files[0]), "--connect", address)
    assert failed.returncode == 1
    assert "ZeroDivisionError" in one_error_line(failed)
    assert unavailable.returncode == 1
    assert "'entropy'" in one_error_line(unavailable)


# -- the deployment commands -------------------------------------------------------------


async def test_keys_writes_curve_keys(tmp_path):
    with anyio.fail_after(30):
        result = await run("keys", str(tmp_path / "keys"), "--client", "alice")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("keys written to ")
    assert any("alice" in p.name for p in (tmp_path / "keys").rglob("*"))


async def test_help_lists_every_command():
    with anyio.fail_after(30):
        result = await run("--help")
    assert result.returncode == 0
    out = result.stdout.decode()
    for name in ("stats", "entropy", "histogram", "ngrams", "diff", "data", "broker", "worker"):
        assert name in out
    assert "keys" in out
    assert "cache" in out


def test_parse_offset_is_what_range_uses():
    # --range takes the same offsets as text.parse_offset (a guard for the docs' examples).
    assert parse_offset("64K") == 65536
    assert parse_offset("0x40") == 64


# -- what a newcomer meets ------------------------------------------------------------------


def test_a_reader_that_goes_away_ends_the_command_quietly_by_sigpipe(files, cache):
    # More than a pipe holds (332,064 CSV rows), so writing must meet the
    # closed pipe, as `binglide data FILE --csv - | head -1` does.
    argv = [*COMMAND, "data", str(files[0]), "--size", "1M", "--csv", "-", *local(cache)]
    with subprocess.Popen(
        argv, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # `head` has what it wanted
        err = process.stderr.read()
        code = process.wait(timeout=60)
    assert first == b"offset,byte\n"
    assert err == b""
    assert code == -signal.SIGPIPE  # as `yes | head` ends: a shell says 141


@pytest.mark.skipif(
    not os.path.isdir("/proc/self"), reason="needs Linux /proc: a directory nobody can write in"
)
async def test_outputs_are_checked_by_trying_before_the_work_starts(tmp_path, cache):
    # Root passes every permission check on /proc, yet nothing can be created
    # there; and the job would take minutes (a sparse 64 GiB file).
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as f:
        f.truncate(64 << 30)
    with anyio.fail_after(30):
        result = await run("histogram", str(huge), "--json", "/proc/out.json", *local(cache))
    assert result.returncode == 2
    assert "cannot write /proc/out.json" in one_error_line(result)


async def test_an_unusable_cache_dir_is_one_warning_line(files, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with anyio.fail_after(30):
        result = await run("stats", str(files[0]), "--cache-dir", str(blocker / "cache"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("binglide: warning: binglide cache disabled: cache directory ")
    assert result.stdout.decode().startswith("Entropy = ")


async def test_stats_of_a_constant_region_reads_as_ent_does(tmp_path, cache):
    zeros = tmp_path / "zeros.bin"
    zeros.write_bytes(bytes(1000))
    with anyio.fail_after(30):
        text = await run("stats", str(zeros), *local(cache))
        exported = await run("stats", str(zeros), "--json", "-", *local(cache))
    assert text.returncode == 0, text.stderr
    last = text.stdout.decode().splitlines()[-1]
    assert last == "Serial correlation coefficient is undefined (all values equal!)."
    assert json.loads(exported.stdout)["meta"]["serial_correlation"] is None
    if ENT is not None:
        ent = subprocess.run([ENT, str(zeros)], capture_output=True, check=True)
        assert last in ent.stdout.decode().splitlines()


def test_cache_info_shows_the_size_bound_and_where_it_comes_from(tmp_path, capsys, monkeypatch):
    from binglide.cli.main import main

    monkeypatch.delenv("BINGLIDE_CACHE_MAX_SIZE", raising=False)
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    default = capsys.readouterr().out
    monkeypatch.setenv("BINGLIDE_CACHE_MAX_SIZE", "1.5G")
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    configured = capsys.readouterr().out
    monkeypatch.setenv("BINGLIDE_CACHE_MAX_SIZE", "lots")
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 2
    bad = capsys.readouterr().err
    assert "max size:  4.00 GiB (4,294,967,296 bytes; the default; set --cache-max-size" in default
    assert "max size:  1.50 GiB (1,610,612,736 bytes; from $BINGLIDE_CACHE_MAX_SIZE)" in configured
    assert bad.startswith("binglide: error: BINGLIDE_CACHE_MAX_SIZE='lots' is not a size")


async def test_cache_max_size_bounds_the_command_s_cache(tmp_path):
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(16 << 20)  # chunks are committed from 1 MiB on
    bounded, free = tmp_path / "bounded", tmp_path / "free"
    with anyio.fail_after(60):
        await run("histogram", str(big), "--workers", "2", "--cache-dir", str(free))
        await run(
            "histogram",
            str(big),
            "--workers",
            "2",
            "--cache-dir",
            str(bounded),
            "--cache-max-size",
            "1",
        )
        filled = await run("cache", "info", "--cache-dir", str(free))
        empty = await run("cache", "info", "--cache-dir", str(bounded))
    assert "entries:   0\n" not in filled.stdout.decode()
    assert "entries:   0\n" in empty.stdout.decode()


@pytest.mark.parametrize(
    ("raised", "status", "err"),
    [
        (ExceptionGroup("g", [UsageError("bad option")]), 2, "binglide: error: bad option\n"),
        (ExceptionGroup("g", [BrokenPipeError()]), 141, ""),
        (
            BaseExceptionGroup("g", [ExceptionGroup("h", [binglide.TransportBroken("gone")])]),
            1,
            "binglide: error: gone\n",
        ),
    ],
)
def test_errors_wrapped_by_task_groups_are_still_one_line(
    capsys, monkeypatch, raised, status, err
):
    from binglide.cli import main as command

    def raising(args: object) -> int:
        raise raised

    monkeypatch.setattr(command, "run_analysis", raising)
    assert command.main(["stats", "x"]) == status
    assert capsys.readouterr().err == err


def test_a_pipe_or_device_output_is_written_into_not_replaced(files, cache, tmp_path):
    # A named pipe stands for /dev/null or /dev/stdout (which a test must not
    # risk): renaming a file over it would leave a regular file in its place.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = tmp_path / "read.csv"
    with out.open("wb") as sink, subprocess.Popen(["cat", str(fifo)], stdout=sink) as reader:
        try:
            result = subprocess.run(
                [*COMMAND, "histogram", str(files[0]), "--csv", str(fifo), *local(cache)],
                env=child_env(),
                capture_output=True,
                timeout=60,
                check=False,
            )
            reader.wait(timeout=10)
        finally:
            reader.kill()
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["byte", "count"]
    assert sum(int(count) for _, count in rows[1:]) == files[0].stat().st_size
