"""Benchmark the byte-histogram, bigram and ``ent`` kernels against their baselines.

Usage: python bench/kernels.py [--size-mib 512] [--runs 5]

Generates a file of mixed content (random, zero runs, text) in a temporary
directory, reads it once so that it is page cached, then times, on a memory
map of it: a baseline (a chunked np.bincount for the histograms; the numpy
fallback of `EntAccumulator` for ``ent``), the kernels on one thread, and the
kernels on two threads over the two halves. ``ent`` is what a whole file's
``stats`` computes (the Monte Carlo groups of one residue, ``ENTA``), ``ent
@any`` what a range starting anywhere else does (every residue, ``ENT``).
The ``, file`` rows time a resource over the file the way a worker computes
it (read in 1 MiB pieces into a reused buffer, CPU time of the thread).
For ``ent`` it also times the ``ent`` tool on the file (the yardstick of
issue 16), when it is installed.
Prints the median of the runs in GB/s and the ratios.
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from binglide.services import kernels, resources
from binglide.services.sources import open_source

if TYPE_CHECKING:
    from collections.abc import Callable

BLOCK = 4 << 20


def make_file(path: Path, size: int) -> None:
    """Write ``size`` bytes of mixed content: what binaries look like to a histogram."""
    rng = np.random.default_rng(0)
    text = np.frombuffer(
        b"the quick brown fox jumps over the lazy dog 0123456789\n" * 1200, np.uint8
    )
    with path.open("wb") as f:
        for i in range(0, size, BLOCK):
            n = min(BLOCK, size - i)
            kind = (i // BLOCK) % 4
            if kind == 0 or kind == 1:
                block = rng.integers(0, 256, n, dtype=np.uint8)
            elif kind == 2:
                block = np.zeros(n, np.uint8)
            else:
                block = np.resize(text, n)
            f.write(block.tobytes())


def bincount_hist(buf: Any) -> Any:
    out = np.zeros(256, np.int64)
    for s in range(0, len(buf), BLOCK):
        out += np.bincount(buf[s : s + BLOCK], minlength=256)
    return out


def bincount_bigram(buf: Any) -> Any:
    out = np.zeros(1 << 16, np.int64)
    for s in range(0, len(buf) - 1, BLOCK):
        m = min(BLOCK, len(buf) - 1 - s)
        index = (buf[s : s + m].astype(np.int64) << 8) | buf[s + 1 : s + 1 + m]
        out += np.bincount(index, minlength=1 << 16)
    return out


def numpy_ent(buf: Any) -> Any:
    """The ``ent`` statistics by the numpy fallback (numba off for the call)."""
    saved = kernels._use_numba
    kernels._use_numba = False
    try:
        return kernels.ent_partial(buf)
    finally:
        kernels._use_numba = saved


def whole_file_ent(buf: Any) -> Any:
    """The ``ent`` partial a whole file's ``stats`` computes: the Monte Carlo
    groups of one residue where the kernels have that (``ENTA`` blocks),
    else every residue (src/ trees before corpus7)."""
    if "residue" not in inspect.signature(kernels.EntAccumulator).parameters:
        return kernels.ent_partial(buf)
    acc = kernels.EntAccumulator(residue=0)
    acc.add(buf)
    return acc.partial()


def file_gbps(resource: Any, path: Path, runs: int) -> float:
    """Median GB/s (CPU time of this thread) of `resource` over the file, as a worker computes it.

    `Resource.compute` reads the file into a reused buffer piece by piece (1
    MiB: the piece stays in the core's cache for the kernel's passes), where
    the other rows hand the kernels the whole mapped file at once, so that
    each pass reads it from memory.
    """
    with open_source(path) as source:
        resource.compute(source, 0, 2 << 20)  # compile / warm up
        times = []
        for _ in range(runs):
            t = time.thread_time()
            resource.compute(source, 0, source.size)
            times.append(time.thread_time() - t)
        return source.size / statistics.median(times) / 1e9


def ent_tool_gbps(ent: str, path: Path, runs: int) -> float:
    """Median GB/s of the ``ent`` tool reading the (page-cached) file."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([ent, str(path)], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return path.stat().st_size / statistics.median(times) / 1e9


def two_threads(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run(buf: Any) -> Any:
        half = len(buf) // 2
        # The first half carries one byte of overlap for the straddling bigram.
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(fn, [buf[: half + 1], buf[half:]]))

    return run


def median_gbps(fn: Callable[[Any], Any], buf: Any, runs: int) -> float:
    fn(buf[: 2 << 20])  # compile / warm up (past 1 MiB: numba loads)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(buf)
        times.append(time.perf_counter() - t)
    return len(buf) / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"numba: {kernels.NUMBA_AVAILABLE}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.bin"
        make_file(path, args.size_mib << 20)
        # The kernels alone, on the page-cached bytes mapped (as the baseline reads them).
        buf = np.memmap(path, dtype=np.uint8, mode="r")
        bincount_hist(buf)  # page it in
        cases = [
            ("histogram", bincount_hist, kernels.byte_histogram),
            ("bigram", bincount_bigram, lambda b: kernels.ngram_histogram(b, 2, 8)),
            ("ent", numpy_ent, whole_file_ent),
            ("ent @any", numpy_ent, kernels.ent_partial),
        ]
        for name, baseline, kernel in cases:
            base = median_gbps(baseline, buf, args.runs)
            one = median_gbps(kernel, buf, args.runs)
            two = median_gbps(two_threads(kernel), buf, args.runs)
            print(
                f"{name:9}  baseline {base:5.2f} GB/s | kernel 1 thread {one:5.2f} GB/s"
                f" ({one / base:4.1f}x) | 2 threads {two:5.2f} GB/s"
                f" ({two / base:4.1f}x baseline, {two / one:4.2f}x 1 thread)"
            )
        # The way a worker computes a file: pieces read into a reused buffer.
        whole_file = getattr(resources, "ent_resource_for", lambda _: resources.EntResource())(0)
        for name, resource in [
            ("histogram", resources.Histogram()),
            ("ent", whole_file),
            ("ent @any", resources.EntResource()),
        ]:
            print(
                f"{name + ', file':15} {file_gbps(resource, path, args.runs):5.2f} GB/s, 1 thread"
            )
        ent = shutil.which("ent")
        if ent is not None:
            tool = ent_tool_gbps(ent, path, args.runs)
            one = median_gbps(whole_file_ent, buf, args.runs)
            print(
                f"ent tool   {tool:5.2f} GB/s | ent kernel 1 thread {one:5.2f} GB/s"
                f" ({one / tool:4.1f}x the ent tool)"
            )
        del buf


if __name__ == "__main__":
    main()
