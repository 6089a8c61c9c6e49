"""Files that change while they are analysed: an error that says so, never a crash.

A memory-mapped file truncated under a kernel killed the whole process with
SIGBUS. Sources are read with preadv now: a shorter file makes a read short,
and a file rewritten in place changes its modification time, so the request
ends with a `RequestError` and the cache keeps nothing of the changed file.

The change happens at a chosen read, from inside it (a hook on
`Source.read` and `Source.gather`), so every run is the same; the command is
also run in a subprocess and its file truncated once it has read a first
chunk (seen in /proc), then it must print one line and exit, not die.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import binglide
from binglide.services.sources import Source

from . import references as ref

if TYPE_CHECKING:
    from collections.abc import Callable

MiB = 1 << 20
SIZE = 3 * MiB + 4321  # a dozen chunks: some computed before the change, some after
CHANGED = "changed while it was read"


def _content(size: int, seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size, dtype=np.uint8)
    data[size // 3 : size // 2] = 0  # chunks of different entropy
    return data.tobytes()


class ChangeAt:
    """Change a file from inside its `n`-th read by the services (any thread).

    A read is a call of `Source.read` or `Source.gather` (one inside the
    other counts once). `fired` is set as the change begins: other threads
    may already see it, and fail, before it is complete.
    """

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        path: Path,
        change: Callable[[Path], None],
        n: int = 1,
    ) -> None:
        self.path = str(path)
        self.change = change
        self.n = n
        self.reads = 0
        self.fired = threading.Event()
        self._lock = threading.Lock()
        self._depth = threading.local()
        for name in ("read", "gather"):
            original = getattr(Source, name)
            monkeypatch.setattr(Source, name, self._hook(original))

    def _hook(self, original: Any) -> Any:
        def hooked(source: Source, *args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "value", 0)
            self._depth.value = depth + 1
            try:
                result = original(source, *args, **kwargs)
            finally:
                self._depth.value = depth
            if depth == 0 and source.path == os.path.realpath(self.path):
                with self._lock:
                    self.reads += 1
                    if self.reads == self.n:
                        self.fired.set()
                        self.change(Path(self.path))
            return result

        return hooked


def truncate(path: Path) -> None:
    os.truncate(path, 1000)


def rewrite(path: Path) -> None:
    # Same size, other bytes; the modification time moves on (as a write
    # does, made certain here: file systems keep it to a clock tick).
    st = path.stat()
    with open(path, "r+b") as f:
        f.write(bytes(255 - b for b in path.read_bytes()))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def grow(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"\xff" * 5000)


def restore(path: Path, content: bytes, mtime_ns: int) -> None:
    """Put the original bytes back in the same inode, with the original mtime (the same id)."""
    with open(path, "r+b") as f:
        f.write(content)
        f.truncate(len(content))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, mtime_ns))


ANALYSES: dict[str, Callable[..., binglide.Call]] = {
    "histogram": lambda c, p, **kw: c.histogram(p, **kw),
    "ngrams": lambda c, p, **kw: c.ngrams(p, n=2, **kw),
    "stats": lambda c, p, **kw: c.stats(p, **kw),
    "entropy": lambda c, p, **kw: c.entropy(p, resolution=64, **kw),
    "sliding": lambda c, p, **kw: c.entropy(p, mode="sliding", resolution=100, window=65536, **kw),
    "diff": lambda c, p, **kw: c.diff(p, str(p) + ".other", resolution=32, **kw),
    "data": lambda c, p, **kw: c.data(p, size=200_000, **kw),
}


def _check(name: str, report: binglide.Report, content: bytes, path: Path) -> None:
    """Check `report` against the references for `content`, the file's bytes."""
    data = np.frombuffer(content, np.uint8)
    n = len(data)
    if name in ("histogram", "stats"):
        np.testing.assert_array_equal(report.array, ref.byte_histogram(data))
    elif name == "ngrams":
        np.testing.assert_array_equal(report.array, ref.ngram_histogram(data, 2, 8))
    elif name == "entropy":
        edges = [i * n // 64 for i in range(65)]
        expected = [
            ref.entropy(ref.byte_histogram(data[a:b])) for a, b in itertools.pairwise(edges)
        ]
        np.testing.assert_allclose(report.array, expected, rtol=0, atol=1e-9)
    elif name == "sliding":
        centres = [(i * n // 100 + (i + 1) * n // 100) // 2 for i in range(100)]
        expected = ref.sliding_entropy(data, 65536, centres)
        np.testing.assert_allclose(report.array, expected, rtol=0, atol=1e-9)
    elif name == "diff":
        other = np.frombuffer(Path(str(path) + ".other").read_bytes(), np.uint8)
        edges = [i * n // 32 for i in range(33)]
        assert report.array.tolist() == ref.diff_counts(data, other, edges)
    else:
        kept = b"".join(content[o : o + k] for o, k in report.meta["runs"])
        assert report.array.tobytes() == kept


@pytest.fixture
def victim(tmp_path: Path) -> tuple[Path, bytes, int]:
    path = tmp_path / "victim.bin"
    content = _content(SIZE)
    path.write_bytes(content)
    (tmp_path / "victim.bin.other").write_bytes(_content(SIZE, seed=8))
    return path, content, path.stat().st_mtime_ns


@pytest.mark.parametrize("name", list(ANALYSES))
@pytest.mark.parametrize("change", [truncate, rewrite, grow])
async def test_a_file_changed_mid_analysis_is_a_request_error_and_nothing_is_cached(
    tmp_path: Path,
    victim: tuple[Path, bytes, int],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    change: Callable[[Path], None],
) -> None:
    path, content, mtime_ns = victim
    call = ANALYSES[name]
    # Without the estimate, the second read of the file is inside the first
    # chunk computed, with other chunks open in the other worker (``data``
    # reads its sample of the file at once: its first read).
    hook = ChangeAt(monkeypatch, path, change, n=1 if name == "data" else 2)
    with anyio.fail_after(60):
        async with binglide.connect(workers=2, cache_dir=tmp_path / "cache") as client:
            with pytest.raises(binglide.RequestError, match=CHANGED) as info:
                await call(client, path, reports={"estimate": False})
            assert hook.fired.is_set()
            assert str(path) in str(info.value)
            # Put the same bytes back under the same id: whatever the cache
            # kept of the failed request must be of these bytes, so the
            # answer (from the cache where it can) is exact.
            monkeypatch.undo()
            restore(path, content, mtime_ns)
            _check(name, await call(client, path), content, path)


async def test_a_change_during_the_estimate_is_a_request_error(
    tmp_path: Path, victim: tuple[Path, bytes, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, _ = victim
    ChangeAt(monkeypatch, path, truncate, n=1)  # the sample is the first read
    with anyio.fail_after(30):
        async with binglide.connect(workers=2, cache_dir=tmp_path / "cache") as client:
            with pytest.raises(binglide.RequestError, match=CHANGED):
                await client.histogram(path)
            # The workers go on serving everyone.
            other = tmp_path / "other.bin"
            other.write_bytes(b"abc" * 1000)
            assert int((await client.histogram(other)).array.sum()) == 3000


@pytest.mark.parametrize("change", ["replace", "delete"])
async def test_a_file_replaced_or_deleted_mid_analysis_ends_with_a_report_or_an_error(
    tmp_path: Path,
    victim: tuple[Path, bytes, int],
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    # The open descriptor still reads the version it opened; workers that open
    # the path later find another file, or none: either way, no mixed answer.
    path, content, _ = victim

    def act(p: Path) -> None:
        if change == "replace":
            fresh = p.with_suffix(".new")
            fresh.write_bytes(_content(SIZE, seed=99))
            os.replace(fresh, p)
        else:
            p.unlink()

    ChangeAt(monkeypatch, path, act, n=2)
    with anyio.fail_after(30):
        async with binglide.connect(workers=2, cache_dir=tmp_path / "cache") as client:
            outcome: binglide.Report | binglide.RequestError
            try:
                outcome = await client.histogram(path, reports={"estimate": False})
            except binglide.RequestError as exc:
                outcome = exc
    if isinstance(outcome, binglide.RequestError):
        assert CHANGED in str(outcome) or "no such file" in str(outcome)
    else:
        expected = ref.byte_histogram(np.frombuffer(content, np.uint8))
        np.testing.assert_array_equal(outcome.array, expected)


def _read_bytes_of(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/PID/io")


def _has_open(pid: int, path: Path) -> bool:
    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for entry in entries:
        try:
            if os.readlink(f"/proc/{pid}/fd/{entry}") == os.path.realpath(path):
                return True
        except OSError:
            continue
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches the command in /proc")
def test_the_command_says_the_file_changed_instead_of_dying(tmp_path: Path) -> None:
    # `binglide histogram v.bin &; truncate -s 1M v.bin` exited 135 (SIGBUS).
    # A large sparse file (no disk space) and trigrams (the slowest kernel):
    # the command reads it for seconds; once it has opened it and read a
    # first chunk, it is stopped, the file truncated, and the command continued.
    path = tmp_path / "v.bin"
    with open(path, "wb") as f:
        f.truncate(2 << 30)
    env = {**os.environ, "BINGLIDE_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "binglide.cli.main", "ngrams", "-n", "3", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not _has_open(proc.pid, path):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never opened the file"
            time.sleep(0.001)
        opened_at = _read_bytes_of(proc.pid)
        # Past the sample (0.5% of the file) and into the first chunks.
        while _read_bytes_of(proc.pid) < opened_at + 32 * MiB:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never read the file"
            time.sleep(0.0005)
        proc.send_signal(signal.SIGSTOP)
        os.truncate(path, 1 << 20)
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode not in (135, -signal.SIGBUS), err
    assert proc.returncode != 0, out
    lines = err.decode().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("binglide: error: ")
    assert CHANGED in lines[0]
