"""Benchmark what reading files through buffers costs the kernels, against a map.

Usage::

    python bench/reading.py [--size-mib 512] [--repeat 7]

Two threads share the 64 MiB chunks of the first ``--size-mib`` MiB of the
1 GiB mixed file (read twice first, so that it is page cached), as two
workers do, and compute each chunk:

- **map** (how the services read until issue 12): the file memory-mapped,
  ``MADV_POPULATE_READ`` over each chunk, the kernel on the map;
- **pieces** (now): `Source.pieces`, 1 MiB ``preadv`` into a reused buffer,
  the kernel on the buffer (`Histogram`, `NGrams`, `EntResource`,
  `entropy_segments`).

The map is kept here only to measure against: a mapped file truncated while
a kernel reads it kills the process with SIGBUS. Medians of ``--repeat``
runs, the two ways alternating.
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA_DIR, MiB, command_line, machine, make_mixed_file, publish, table

from binglide.services import kernels, resources, segments
from binglide.services.sources import open_source

if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 64 * MiB
#: Linux's MADV_POPULATE_READ (what the services used before each chunk).
POPULATE_READ = 22


def run(chunks: list[tuple[int, int]], fn: Callable[[int, int], Any]) -> float:
    """Compute every chunk with two threads; return the seconds."""
    todo = list(chunks)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not todo:
                    return
                a, b = todo.pop()
            fn(a, b)

    threads = [threading.Thread(target=work) for _ in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    path = make_mixed_file(DATA_DIR / "mixed-1024m.bin", 1024 * MiB)
    size = args.size_mib * MiB
    chunks = [(a, min(size, a + CHUNK)) for a in range(0, size, CHUNK)]
    fd = os.open(path, os.O_RDONLY)
    buf = np.empty(CHUNK, np.uint8)
    for _ in range(2):
        for a, b in chunks:
            os.preadv(fd, [memoryview(buf)[: b - a]], a)
    mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    mapped = np.frombuffer(mapping, np.uint8)
    source = open_source(path)

    def edges(a: int, b: int) -> Any:
        return np.arange(a, b + 1, 4096, dtype=np.int64)

    def mapped_chunk(kernel: Callable[[int, int], Any]) -> Callable[[int, int], Any]:
        def compute(a: int, b: int) -> Any:
            mapping.madvise(POPULATE_READ, a, b - a)
            return kernel(a, b)

        return compute

    cases: dict[str, tuple[Callable[[int, int], Any], Callable[[int, int], Any]]] = {
        "histogram": (
            mapped_chunk(lambda a, b: kernels.byte_histogram(mapped[a:b])),
            lambda a, b: resources.Histogram().compute(source, a, b),
        ),
        "bigrams": (
            mapped_chunk(lambda a, b: kernels.ngram_histogram(mapped[a : b + 1], 2, 8, b - a)),
            lambda a, b: resources.NGrams(2, 8).compute(source, a, b),
        ),
        "ent partial (stats)": (
            mapped_chunk(lambda a, b: kernels.ent_partial(mapped[a:b])),
            lambda a, b: resources.EntResource().compute(source, a, b),
        ),
        "entropy of 4 KiB blocks": (
            mapped_chunk(lambda a, b: kernels.segment_entropies(mapped[a:b], edges(a, b) - a)),
            lambda a, b: segments.entropy_segments(source, edges(a, b)),
        ),
    }
    rows = []
    for name, (old, new) in cases.items():
        old(0, MiB)  # compile (or load) the kernels
        new(0, MiB)
        olds, news = [], []
        for _ in range(args.repeat):
            olds.append(run(chunks, old))
            news.append(run(chunks, new))
        o, n = statistics.median(olds), statistics.median(news)
        rows.append([name, f"{size / o / 1e9:.2f}", f"{size / n / 1e9:.2f}", f"{o / n:.2f}"])
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    info = machine()
    publish(
        "\n".join(
            [
                f"Command: `{command_line()}`",
                "",
                "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
                "",
                table(["kernel", "map GB/s", "pieces GB/s", "pieces / map"], rows),
            ]
        ),
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
