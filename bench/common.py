"""Shared helpers of the analyses and cache benchmarks.

- `make_mixed_file`: a deterministic file of mixed content (zeros, text,
  random, code-like and structured records), as binaries look to the
  analyses, written once under ``bench/data/`` (git-ignored) and reused while
  its stamp matches the generator's parameters;
- `page_in`: read a file once so that it is page cached before timing;
- `AnonPeak`: the peak of this process's anonymous memory (``RssAnon`` of
  ``/proc/self/status``), sampled by a thread: file-backed pages of the
  memory-mapped input are *not* counted, which ``getrusage``'s maxrss would;
- `machine`: nproc, CPU model, versions, load, for the results;
- `median`, `fmt_bytes`, `table`: small reporting helpers.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

DATA_DIR = Path(__file__).resolve().parent / "data"
MiB = 1 << 20
GiB = 1 << 30
#: Bump when the generator changes, so stale files are regenerated.
GENERATOR_VERSION = 2

_WORDS = (
    b"the of and to in is that for it as was with be by on not he this are or his from at"
    b" which but have an they you were her she there been one all we their has would when"
    b" if so no out up into do any time more some could them these may other than then now"
    b" error warning file open close read write buffer size length offset header section"
    b" return value null void int char struct static const unsigned long printf malloc free"
).split()


def callgrind_instructions(argv: list[str], *, src: str) -> int:
    """The instructions valgrind's callgrind counts for the whole process `argv`.

    `src` goes first on its PYTHONPATH (a binglide source tree). Deterministic,
    unlike wall or CPU time on a shared machine.
    """
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=dict(os.environ, PYTHONPATH=src),
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    [line] = [x for x in out.splitlines() if "Collected" in x]
    return int(line.split()[-1])


def publish(text: str, out: str) -> None:
    """Print the figures, and also write them to `out` when it is given."""
    print(text)
    if out:
        Path(out).write_text(text + "\n")


def _text_pool(rng: np.random.Generator, size: int) -> np.ndarray[Any, Any]:
    """English-ish text with lines, words drawn with a Zipf-like skew."""
    weights = 1.0 / np.arange(1, len(_WORDS) + 1)
    weights /= weights.sum()
    picks = rng.choice(len(_WORDS), size=size // 4, p=weights)
    parts = []
    total = 0
    for i, w in enumerate(picks):
        word = _WORDS[w] + (b"\n" if i % 11 == 10 else b" ")
        parts.append(word)
        total += len(word)
        if total >= size:
            break
    return np.frombuffer(b"".join(parts)[:size], np.uint8).copy()


def _code_pool(rng: np.random.Generator, size: int) -> np.ndarray[Any, Any]:
    """Machine-code-like bytes: skewed opcodes, small immediates, little-endian offsets."""
    # A skewed byte distribution (a few opcodes and 0x00/0xff dominate).
    weights = 1.0 / (np.arange(256) + 3.0) ** 1.1
    weights /= weights.sum()
    perm = rng.permutation(256)
    ops = perm[rng.choice(256, size=size, p=weights)].astype(np.uint8)
    # Every 16 bytes, a 4-byte little-endian relative offset that grows slowly.
    n = size // 16
    offsets = np.arange(n, dtype=np.uint32) * 37 + rng.integers(0, 64, n, dtype=np.uint32)
    ops[: n * 16].reshape(n, 16)[:, 12:16] = offsets.view(np.uint8).reshape(n, 4)
    return ops


def _records_pool(rng: np.random.Generator, size: int) -> np.ndarray[Any, Any]:
    """Structured records: 32-byte entries of ids, flags, floats and padding."""
    n = size // 32 + 1
    rec = np.zeros((n, 32), np.uint8)
    rec[:, 0:4] = np.arange(n, dtype=np.uint32).view(np.uint8).reshape(n, 4)
    rec[:, 4] = rng.integers(0, 8, n, dtype=np.uint8)
    rec[:, 8:16] = rng.normal(0, 1000, n).astype(np.float64).view(np.uint8).reshape(n, 8)
    rec[:, 16:20] = rng.integers(0, 1 << 20, n, dtype=np.uint32).view(np.uint8).reshape(n, 4)
    return rec.reshape(-1)[:size]


def _mixed_blocks(size: int, seed: int):  # type: ignore[no-untyped-def]
    """Yield the blocks of ``size`` bytes of mixed content (regions of 64 KiB .. 8 MiB)."""
    rng = np.random.default_rng(seed)
    pools = {
        "text": _text_pool(rng, 16 * MiB),
        "code": _code_pool(rng, 16 * MiB),
        "records": _records_pool(rng, 16 * MiB),
    }
    kinds = ["zeros", "text", "random", "code", "records"]
    probs = [0.15, 0.2, 0.25, 0.25, 0.15]
    written = 0
    while written < size:
        kind = kinds[rng.choice(len(kinds), p=probs)]
        n = min(size - written, int(rng.integers(64 << 10, 8 * MiB)))
        if kind == "zeros":
            block = np.zeros(n, np.uint8)
        elif kind == "random":
            block = rng.integers(0, 256, n, dtype=np.uint8)
        else:
            pool = pools[kind]
            at = int(rng.integers(0, len(pool)))
            block = np.roll(pool, -at)[:n] if n <= len(pool) else np.resize(pool, n)
        yield block
        written += n


def _stamped(path: Path, stamp: dict[str, Any]) -> bool:
    stamp_path = path.with_suffix(path.suffix + ".stamp")
    try:
        return json.loads(stamp_path.read_text()) == stamp and path.stat().st_size == stamp["size"]
    except (OSError, ValueError):
        return False


def _stamp(path: Path, stamp: dict[str, Any]) -> None:
    path.with_suffix(path.suffix + ".stamp").write_text(json.dumps(stamp))


def make_mixed_file(path: Path, size: int, *, seed: int = 0, period: int | None = None) -> Path:
    """Write (once) ``size`` bytes of mixed content to `path`.

    With `period`, the first `period` bytes of mixed content repeat to fill
    `size` (a realistic large file that is quick to write).
    """
    stamp = {"kind": "mixed", "v": GENERATOR_VERSION, "size": size, "seed": seed, "period": period}
    if _stamped(path, stamp):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    with tmp.open("wb") as f:
        if period is None:
            for block in _mixed_blocks(size, seed):
                f.write(block.tobytes())
        else:
            unit = b"".join(b.tobytes() for b in _mixed_blocks(min(period, size), seed))
            for _ in range(size // len(unit)):
                f.write(unit)
            f.write(unit[: size % len(unit)])
    tmp.replace(path)
    _stamp(path, stamp)
    return path


def make_modified_copy(src: Path, dst: Path, *, seed: int = 1) -> Path:
    """Copy `src` to `dst`, then change 1000 single bytes and 16 runs of 64 KiB."""
    size = src.stat().st_size
    stamp = {
        "kind": "modified",
        "v": GENERATOR_VERSION,
        "size": size,
        "seed": seed,
        "src": src.name,
    }
    if _stamped(dst, stamp):
        return dst
    tmp = dst.with_suffix(dst.suffix + ".part")
    shutil.copyfile(src, tmp)
    rng = np.random.default_rng(seed)
    with tmp.open("r+b") as f:
        for pos in rng.integers(0, size, 1000):
            f.seek(int(pos))
            old = f.read(1)
            f.seek(int(pos))
            f.write(bytes([(old[0] ^ 0x5A) if old else 0]))
        for pos in rng.integers(0, max(1, size - (64 << 10)), 16):
            f.seek(int(pos))
            f.write(rng.integers(0, 256, 64 << 10, dtype=np.uint8).tobytes())
    tmp.replace(dst)
    _stamp(dst, stamp)
    return dst


def page_in(path: Path) -> float:
    """Read the file once so it is page cached; return the seconds it took."""
    t = time.perf_counter()
    with path.open("rb", buffering=0) as f:
        buf = bytearray(16 * MiB)
        while f.readinto(buf):
            pass
    return time.perf_counter() - t


def rss_anon() -> int:
    """Return this process's anonymous resident memory in bytes (RssAnon)."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class AnonPeak:
    """Sample RssAnon every `interval` seconds in a thread; `peak` is the largest seen.

    Use as a context manager around the code to measure; `base` is the value
    on entry, so ``peak - base`` is what the measured code added at its peak.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.base = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon())
            self._stop.wait(self.interval)

    def __enter__(self) -> AnonPeak:
        self.base = self.peak = rss_anon()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, rss_anon())

    @property
    def added(self) -> int:
        """The peak above the value on entry."""
        return self.peak - self.base


def machine() -> dict[str, str]:
    """Describe the machine and software, for the results."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import numba

        versions["numba"] = numba.__version__
    except ImportError:
        versions["numba"] = "missing"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{mem / GiB:.0f} GiB",
        **versions,
        "platform": platform.platform(),
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def command_line() -> str:
    """Return the command that ran this benchmark, as typed."""
    return " ".join(["python", *[a if " " not in a else repr(a) for a in sys.argv]])


def median(values: Sequence[float]) -> float:
    """Return the median."""
    return statistics.median(values)


def fmt_bytes(n: float) -> str:
    """Format a byte count in MiB."""
    return f"{n / MiB:.0f} MiB" if abs(n) >= 10 * MiB else f"{n / MiB:.1f} MiB"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return a Markdown table (readable as plain text too)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        lines.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        )
    return "\n".join(lines)
