"""Benchmark the analyses, embedded default vs the fastest single-process numpy baseline.

Usage::

    python bench/analyses.py [--size-mib 1024] [--big-mib 4096] [--repeat 3]
                             [--only histogram,ngrams2,...] [--skip-memory] [--out FILE]

Generates (once, under ``bench/data/``, git-ignored) a deterministic file of
mixed content (zeros, text, random, code-like, structured records), a
modified copy for ``diff``, and a large file of 64 MiB of mixed content
repeated; reads each once so that it is page cached. Then, for each analysis,
interleaving the runs (baseline, binglide, binglide bare, repeated):

- **baseline**: the fastest plain-numpy, single-process code written here for
  the same result (chunked ``np.bincount`` and friends on a memory map),
  checked equal to binglide's answer;
- **binglide**: ``binglide.connect(workers=2)`` (the embedded default) with a
  fresh empty cache directory per measurement (so the cache is committed but
  never helps), reports on (the default): the time of the exact answer, and
  of the first report (the sampled estimate) as a fraction of it;
- **bare**: the same with ``reports={"estimate": False, "progress": False}``
  and ``cache={"lookup": False, "commit": False}``, to show what the reports
  and the cache commits cost.

The connect (workers starting) is outside the timings; numba kernels are
compiled (or loaded from numba's cache) by a warm-up request first.

Memory: the peak of the process's *anonymous* resident memory (``RssAnon``,
sampled every 5 ms by a thread) during the request, above its value before.
In embedded mode client, broker and workers are this one process. The input
is memory-mapped, so its page-cached pages are file-backed and would inflate
``getrusage`` maxrss / VmHWM by the file size; RssAnon excludes them. The
histogram is also run on the large file to show the peak does not grow with
the file size.

Ratios are medians of ``--repeat`` runs: baseline time / binglide time.
"""

from __future__ import annotations

import argparse
import gc
import math
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DATA_DIR,
    AnonPeak,
    MiB,
    command_line,
    fmt_bytes,
    machine,
    make_mixed_file,
    make_modified_copy,
    median,
    page_in,
    publish,
    table,
)

import binglide

if TYPE_CHECKING:
    from collections.abc import Callable

Array = np.ndarray[Any, Any]

#: Block size of the numpy baselines, measured fastest here (256 MiB of the
#: mixed file, median of 3): np.bincount and the index arithmetic make int64
#: copies of each block, which must stay in cache. Histogram: 0.35 s at 256 KiB
#: and 1 MiB, 0.56 s at 4 MiB, and 64 MiB blocks are ~4x slower still; bigram
#: 0.72 / 0.75 / 1.25 s; block entropy 0.52 / 0.69 / 1.43 s; stats 1.36 /
#: 1.89 / 6.13 s.
BLOCK = 256 << 10
#: Trigram tables (2**21 cells) are cleared and added per block: larger
#: blocks pay off (2.76 s at 256 KiB, 1.84 s at 1 MiB, 3.37 s at 4 MiB).
NGRAM3_BLOCK = 1 * MiB

# -- plain numpy baselines -------------------------------------------------------------


def np_map(path: Path) -> Array:
    return np.memmap(path, dtype=np.uint8, mode="r")


def base_histogram(path: Path, block: int = BLOCK) -> Array:
    buf = np_map(path)
    out = np.zeros(256, np.int64)
    for s in range(0, len(buf), block):
        out += np.bincount(buf[s : s + block], minlength=256)
    return out


def base_ngrams(path: Path, n: int, bits: int) -> Array:
    buf = np_map(path)
    count = len(buf) - n + 1
    shift = 8 - bits
    out = np.zeros(1 << (n * bits), np.int64)
    block = BLOCK if n * bits <= 16 else NGRAM3_BLOCK
    for s in range(0, count, block):
        m = min(block, count - s)
        if bits == 8 and n == 2:
            idx = buf[s : s + m].astype(np.intp) << 8
            idx |= buf[s + 1 : s + 1 + m]
        else:
            idx = np.zeros(m, np.intp)
            for k in range(n):
                idx <<= bits
                idx |= buf[s + k : s + k + m] >> shift
        out += np.bincount(idx, minlength=out.shape[0])
    return out.reshape((1 << bits,) * n)


def _entropy_rows(counts: Array) -> Array:
    total = counts.sum(axis=1, keepdims=True).astype(np.float64)
    p = counts / np.where(total > 0, total, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p), 0.0)
    return -terms.sum(axis=1)


def base_entropy_block(path: Path, block: int) -> Array:
    buf = np_map(path)
    size = len(buf)
    per = max(1, BLOCK // block)  # blocks per step
    step = per * block
    ids = np.repeat(np.arange(per, dtype=np.intp) * 256, block)
    out = np.empty(-(-size // block), np.float64)
    k = 0
    for s in range(0, size, step):
        chunk = buf[s : s + step]
        m = len(chunk)
        nb = -(-m // block)
        key = ids[:m] + chunk
        counts = np.bincount(key, minlength=nb * 256).reshape(nb, 256)
        out[k : k + nb] = _entropy_rows(counts)
        k += nb
    return out


def _edges(start: int, stop: int, points: int) -> Array:
    i = np.arange(points + 1, dtype=np.int64)
    q, r = divmod(stop - start, points)
    return start + i * q + (i * r) // points


def base_entropy_resolution(path: Path, resolution: int) -> Array:
    buf = np_map(path)
    edges = _edges(0, len(buf), resolution)
    counts = np.zeros((resolution, 256), np.int64)
    for i in range(resolution):
        a, b = int(edges[i]), int(edges[i + 1])
        for s in range(a, b, BLOCK):
            counts[i] += np.bincount(buf[s : min(b, s + BLOCK)], minlength=256)
    return _entropy_rows(counts)


def base_entropy_sliding(path: Path, window: int, resolution: int) -> Array:
    """Windows around the points' middles: counts of the segments between all
    window edges, summed by prefix sums, a batch of windows at a time."""
    buf = np_map(path)
    size = len(buf)
    edges = _edges(0, size, resolution)
    centres = (edges[:-1] + edges[1:]) // 2
    lo = np.clip(centres - window // 2, 0, size)
    hi = np.clip(centres - window // 2 + window, 0, size)
    out = np.empty(resolution, np.float64)
    for s in range(0, resolution, 2048):
        e = min(resolution, s + 2048)
        cuts = np.unique(np.concatenate([lo[s:e], hi[s:e]]))
        counts = np.zeros((len(cuts), 256), np.int64)  # row i: bytes [cuts[i-1], cuts[i])
        for i in range(1, len(cuts)):
            a, b = int(cuts[i - 1]), int(cuts[i])
            for x in range(a, b, BLOCK):
                counts[i] += np.bincount(buf[x : min(b, x + BLOCK)], minlength=256)
        np.cumsum(counts, axis=0, out=counts)
        rows = counts[np.searchsorted(cuts, hi[s:e])] - counts[np.searchsorted(cuts, lo[s:e])]
        out[s:e] = _entropy_rows(rows)
    return out


def base_diff(path_a: Path, path_b: Path, resolution: int) -> Array:
    a, b = np_map(path_a), np_map(path_b)
    edges = _edges(0, len(a), resolution)
    out = np.zeros(resolution, np.int64)
    for i in range(resolution):
        lo, hi = int(edges[i]), int(edges[i + 1])
        for s in range(lo, hi, BLOCK):
            e = min(hi, s + BLOCK)
            out[i] += np.count_nonzero(a[s:e] != b[s:e])
    return out


def base_stats(path: Path) -> dict[str, float]:
    """ent's statistics (entropy, chi-square, mean, Monte Carlo pi, serial correlation)."""
    buf = np_map(path)
    n = len(buf)
    counts = np.zeros(256, np.int64)
    pairs = 0
    inside = 0
    incirc = float(((1 << 24) - 1) ** 2)
    step = BLOCK - BLOCK % 6  # a multiple of 6: the Monte Carlo groups stay aligned
    for s in range(0, n, step):
        e = min(n, s + step)
        chunk = buf[s:e]
        counts += np.bincount(chunk, minlength=256)
        f = chunk.astype(np.float64)
        pairs += int(np.dot(f[:-1], f[1:]))  # exact: < 2**53 per block
        if e < n:
            pairs += int(buf[e - 1]) * int(buf[e])
        g = (e - s) // 6
        if g:
            six = f[: g * 6].reshape(g, 6)
            x = (six[:, 0] * 65536 + six[:, 1] * 256) + six[:, 2]
            y = (six[:, 3] * 65536 + six[:, 4] * 256) + six[:, 5]
            inside += int(np.count_nonzero(x * x + y * y <= incirc))
    # Groups of a tail shorter than 6 bytes at the very end do not count (ent).
    v = np.arange(256, dtype=np.float64)
    c = counts.astype(np.float64)
    p = c / n
    nz = p > 0
    entropy = float(-(p[nz] * np.log2(p[nz])).sum())
    expected = n / 256.0
    chisq = float((((c - expected) ** 2) / expected).sum())
    mean = float((v * c).sum() / n)
    t1 = float(pairs + int(buf[-1]) * int(buf[0]))
    t2 = float((v * c).sum()) ** 2
    t3 = float((v * v * c).sum())
    scc = (n * t1 - t2) / (n * t3 - t2)
    groups = n // 6
    return {
        "entropy": entropy,
        "chi_square": chisq,
        "mean": mean,
        "monte_carlo_pi": 4.0 * inside / groups,
        "serial_correlation": scc,
    }


def base_data(path: Path, size: int) -> Array:
    """About `size` bytes: sqrt(size)-byte runs spread evenly (what ``data`` decimates to)."""
    buf = np_map(path)
    run = math.isqrt(size)
    count = size // run
    starts = np.linspace(0, len(buf) - run, count).astype(np.int64)
    return np.concatenate([np.asarray(buf[s : s + run]) for s in starts])


# -- binglide ----------------------------------------------------------------------------


BARE = {
    "reports": {"estimate": False, "progress": False},
    "cache": {"lookup": False, "commit": False},
}


def make_cases(path: Path, other: Path) -> list[dict[str, Any]]:
    """Each case: name, the binglide request, the baseline, and a check of equality."""

    def same_int(x: Array, y: Array) -> bool:
        return bool(np.array_equal(np.asarray(x, np.int64), np.asarray(y, np.int64)))

    def close(x: Array, y: Array) -> bool:
        return bool(np.allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-9))

    def stats_close(report: binglide.Report, base: dict[str, float]) -> bool:
        return all(
            math.isclose(report.meta[k], v, rel_tol=1e-9, abs_tol=1e-9) for k, v in base.items()
        )

    def data_ok(report: binglide.Report, base: Array) -> bool:
        return report.array.shape == (65536,) and base.shape[0] > 60000

    return [
        {
            "name": "histogram",
            "call": lambda c, **kw: c.histogram(path, **kw),
            "base": lambda: base_histogram(path),
            "check": lambda r, b: same_int(r.array, b),
        },
        {
            "name": "ngrams n=2",
            "call": lambda c, **kw: c.ngrams(path, n=2, **kw),
            "base": lambda: base_ngrams(path, 2, 8),
            "check": lambda r, b: same_int(r.array, b),
        },
        {
            "name": "ngrams n=3 bits=7",
            "call": lambda c, **kw: c.ngrams(path, n=3, bits=7, **kw),
            "base": lambda: base_ngrams(path, 3, 7),
            "check": lambda r, b: same_int(r.array, b),
        },
        {
            "name": "entropy block=4096",
            "call": lambda c, **kw: c.entropy(path, mode="block", block=4096, **kw),
            "base": lambda: base_entropy_block(path, 4096),
            "check": lambda r, b: close(r.array, b),
        },
        {
            "name": "entropy resolution=1024",
            "call": lambda c, **kw: c.entropy(path, **kw),
            "base": lambda: base_entropy_resolution(path, 1024),
            "check": lambda r, b: close(r.array, b),
        },
        {
            "name": "entropy sliding window=65536 resolution=65536",
            "call": lambda c, **kw: c.entropy(
                path, mode="sliding", window=65536, resolution=65536, **kw
            ),
            "base": lambda: base_entropy_sliding(path, 65536, 65536),
            "check": lambda r, b: close(r.array, b),
        },
        {
            "name": "stats",
            "call": lambda c, **kw: c.stats(path, **kw),
            "base": lambda: base_stats(path),
            "check": stats_close,
        },
        {
            "name": "diff resolution=1024",
            "call": lambda c, **kw: c.diff(path, other, **kw),
            "base": lambda: base_diff(path, other, 1024),
            "check": lambda r, b: same_int(r.array, b),
        },
        {
            "name": "data size=65536",
            "call": lambda c, **kw: c.data(path, **kw),
            "base": lambda: base_data(path, 65536),
            "check": data_ok,
        },
    ]


class Scratch:
    """Fresh, empty cache directories, removed at the end."""

    def __init__(self) -> None:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="cache-", dir=DATA_DIR))
        self.n = 0

    def fresh(self) -> Path:
        self.n += 1
        return self.root / f"c{self.n}"

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


async def time_binglide(
    call: Callable[..., binglide.Call], cache_dir: Path, workers: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """One measurement: connect (untimed), then time the request's reports."""
    async with binglide.connect(workers=workers, cache_dir=cache_dir) as client:
        gc.collect()
        first = None
        reports = 0
        with AnonPeak() as mem:
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            async for report in call(client, **extra):
                reports += 1
                if first is None:
                    first = time.perf_counter() - t0
                if report.final:
                    final = report
            exact = time.perf_counter() - t0
            cpu = cpu_seconds() - c0
    return {
        "cpu": cpu / exact,
        "exact": exact,
        "first": first if reports > 1 else None,
        "reports": reports,
        "peak": mem.added,
        "abs": mem.peak,
        "report": final,
    }


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (every thread)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_of(runs: list[dict[str, Any]]) -> str:
    """The largest peak above the start, and the largest absolute peak, of some runs."""
    added = max(x["peak"] for x in runs)
    absolute = max(x["abs"] for x in runs)
    return f"{fmt_bytes(added)} ({fmt_bytes(absolute)})"


def time_baseline(fn: Callable[[], Any]) -> dict[str, Any]:
    gc.collect()
    with AnonPeak() as mem:
        t0 = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - t0
    return {"time": elapsed, "peak": mem.added, "abs": mem.peak, "result": result}


async def warm_up(path: Path, other: Path, workers: int, scratch: Scratch) -> None:
    """Compile (or load) every kernel on small inputs."""
    for case in make_cases(path, other):
        await time_binglide(case["call"], scratch.fresh(), workers, {})


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def status(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> str:
    size = args.size_mib * MiB
    t = time.perf_counter()
    path = make_mixed_file(DATA_DIR / f"mixed-{args.size_mib}m.bin", size)
    other = make_modified_copy(path, DATA_DIR / f"mixed-{args.size_mib}m-modified.bin")
    big = make_mixed_file(
        DATA_DIR / f"mixed-{args.big_mib}m-p64.bin", args.big_mib * MiB, period=64 * MiB
    )
    small = make_mixed_file(DATA_DIR / "mixed-8m.bin", 8 * MiB, seed=3)
    small_other = make_modified_copy(small, DATA_DIR / "mixed-8m-modified.bin")
    status(f"files ready in {time.perf_counter() - t:.1f} s")
    for p in (path, other, big):
        status(f"paged in {p.name} in {page_in(p):.1f} s")
    scratch = Scratch()
    try:
        await warm_up(small, small_other, args.workers, scratch)
        cases = make_cases(path, other)
        if args.only:
            wanted = {w.strip() for w in args.only.split(",")}
            cases = [c for c in cases if c["name"].split()[0] in wanted or c["name"] in wanted]
        rows = []
        raw = []
        for case in cases:
            base, full, bare = [], [], []
            ok = True
            for _ in range(args.repeat):
                b = time_baseline(case["base"])
                f = await time_binglide(case["call"], scratch.fresh(), args.workers, {})
                r = await time_binglide(case["call"], scratch.fresh(), args.workers, BARE)
                ok = (
                    ok
                    and case["check"](f["report"], b["result"])
                    and case["check"](r["report"], b["result"])
                )
                base.append(b)
                full.append(f)
                bare.append(r)
                del b["result"], f["report"], r["report"]
            tb = median([x["time"] for x in base])
            tf = median([x["exact"] for x in full])
            tr = median([x["exact"] for x in bare])
            cores = median([x["cpu"] for x in full])
            firsts = [x["first"] / x["exact"] for x in full if x["first"] is not None]
            first = median(firsts) if firsts else None
            first_s = median([x["first"] for x in full if x["first"] is not None] or [0.0])
            peak, peak_bare, peak_base = peak_of(full), peak_of(bare), peak_of(base)
            raw.append((case["name"], base, full, bare))
            row = [
                case["name"],
                f"{tb:.3f}",
                f"{tf:.3f}",
                f"{tb / tf:.2f}x",
                f"{tr:.3f}",
                f"{tb / tr:.2f}x",
                f"{cores:.2f}",
                "-" if first is None else f"{first * 100:.1f}% ({first_s * 1000:.0f} ms)",
                peak,
                peak_bare,
                peak_base,
                "yes" if ok else "NO",
            ]
            rows.append(row)
            status(" | ".join(row))
        # Memory independence of the file size: the histogram (and the largest
        # results, trigram tables) on the big file too.
        mem_rows = []
        mem_cases = [
            ("histogram", lambda c, p, **kw: c.histogram(p, **kw)),
            ("ngrams n=3 bits=7", lambda c, p, **kw: c.ngrams(p, n=3, bits=7, **kw)),
        ]
        if args.skip_memory:
            mem_cases = []
        for label, fn in mem_cases:
            for p in (path, big):
                peaks, absolute, times = [], [], []
                for _ in range(args.repeat if label == "histogram" else 1):
                    f = await time_binglide(
                        lambda c, fn=fn, p=p, **kw: fn(c, p, **kw),
                        scratch.fresh(),
                        args.workers,
                        {},
                    )
                    peaks.append(f["peak"])
                    absolute.append(f["abs"])
                    times.append(f["exact"])
                mem_rows.append(
                    [
                        f"{label} of {p.stat().st_size // MiB} MiB",
                        str(len(peaks)),
                        fmt_bytes(median(peaks)),
                        fmt_bytes(max(peaks)),
                        fmt_bytes(max(absolute)),
                        f"{median(times):.3f}",
                        f"{p.stat().st_size / median(times) / 1e9:.2f}",
                    ]
                )
                status(" | ".join(mem_rows[-1]))
    finally:
        scratch.cleanup()
    headers = [
        "analysis",
        "numpy s",
        "binglide s",
        "ratio",
        "bare s",
        "bare ratio",
        "cores used",
        "first report / exact",
        "peak anon +added (abs)",
        "bare peak",
        "numpy peak",
        "equal",
    ]
    info = machine()
    lines = [
        f"Command: `{command_line()}`",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        f"File: {args.size_mib} MiB of mixed content (bench/common.py), page cached;"
        f" workers={args.workers}; median of {args.repeat}.",
        "",
        table(headers, rows),
        "",
        "ratio = numpy s / binglide s (reports and cache on); bare = reports and cache off;"
        " cores used = process CPU seconds / wall seconds during the binglide request;"
        " first report = time of the first report (the sampled estimate) / time of the exact one;"
        " peak anon = RssAnon peak above its value before the request (absolute in parentheses).",
        "",
        f"Load average at the end: {load_average()}",
    ]
    if mem_rows:
        lines += [
            "",
            "Peak anonymous memory (RssAnon above its value before the request) vs file size:",
            "",
            table(
                [
                    "request",
                    "runs",
                    "median peak added",
                    "max added",
                    "max abs",
                    "exact s",
                    "GB/s",
                ],
                mem_rows,
            ),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--big-mib", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated analysis names")
    parser.add_argument(
        "--skip-memory", action="store_true", help="leave out the memory-vs-file-size runs"
    )
    parser.add_argument("--out", default="", help="also write the figures to this file")
    args = parser.parse_args(argv)
    publish(anyio.run(run, args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
