"""Benchmark how soon the work of a cancelled request stops.

Usage::

    python bench/cancel.py [--size-mib 1024] [--repeat 5] [--after 0.5] [--out FILE]

For each request: ``binglide.connect(workers=2)`` (the embedded default: the
client, broker and workers are this one process, with a fresh cache), start
the request, let it compute for ``--after`` seconds, cancel it, and watch
the process's CPU time (user + system, every thread) every 2 ms. The work
has stopped when the process stays below 10% of a core for 50 ms; the
latency is the time from ``call.cancel()`` to the last sample before that
quiet spell (its 2 ms resolution is the floor). Also: when the caller got
`JobCancelled`, and the CPU seconds burnt after the cancel.

Black-box (no hook in the code measured), so the same script measures any
tree: put its ``src`` first on ``PYTHONPATH`` to compare before and after.
"""

from __future__ import annotations

import argparse
import functools
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DATA_DIR,
    MiB,
    command_line,
    machine,
    make_mixed_file,
    median,
    page_in,
    publish,
    table,
)

import binglide

if TYPE_CHECKING:
    from collections.abc import Callable

#: CPU sampling period, and the quiet spell that says the work stopped.
TICK = 0.002
QUIET = 0.05
#: Below this share of one core, the process is idle.
IDLE = 0.10


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(
    call: Callable[[binglide.Client], binglide.Call], after: float, cache_dir: Path
) -> dict[str, float]:
    async with binglide.connect(workers=2, cache_dir=cache_dir) as client:
        handle = call(client)
        answered: list[float] = []

        async def wait() -> None:
            try:
                await handle
            except binglide.JobCancelled:
                answered.append(time.perf_counter())

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.sleep(after)
            if handle.done():
                raise SystemExit("the request ended before the cancel: raise --size-mib")
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            handle.cancel()
            last_busy, cpu_busy = t0, c0
            t_prev, cpu_prev = t0, c0
            while True:
                await anyio.sleep(TICK)
                now, cpu = time.perf_counter(), cpu_seconds()
                if (cpu - cpu_prev) / max(1e-9, now - t_prev) > IDLE:
                    last_busy, cpu_busy = now, cpu
                elif now - last_busy >= QUIET or now - t0 > 30:
                    break
                t_prev, cpu_prev = now, cpu
    return {
        "stop": last_busy - t0,
        "answer": (answered[0] - t0) if answered else float("nan"),
        "cpu": cpu_busy - c0,
    }


async def run(args: argparse.Namespace) -> str:
    path = make_mixed_file(DATA_DIR / f"mixed-{args.size_mib}m.bin", args.size_mib * MiB)
    small = make_mixed_file(DATA_DIR / "mixed-8m.bin", 8 * MiB, seed=3)
    page_in(path)
    cases: list[tuple[str, Callable[[binglide.Client, Path], binglide.Call]]] = [
        (
            "entropy sliding window=65536 resolution=65536",
            lambda c, p: c.entropy(p, mode="sliding", window=65536, resolution=65536),
        ),
        ("ngrams n=3 bits=7", lambda c, p: c.ngrams(p, n=3, bits=7)),
        ("histogram", lambda c, p: c.histogram(p)),
    ]
    scratch = DATA_DIR / "cancel-cache"
    shutil.rmtree(scratch, ignore_errors=True)
    # Compile (or load) every kernel first: the first call of a numba kernel
    # in a process spends a few hundred ms in numba itself, cancel or not.
    async with binglide.connect(workers=2, cache_dir=scratch / "warm") as client:
        for _, call in cases:
            await call(client, small)
    rows = []
    n = 0
    for name, call_of in cases:
        call = functools.partial(call_of, p=path)
        after = args.after if name != "histogram" else args.after / 4
        results = []
        for _ in range(args.repeat):
            n += 1
            results.append(await measure(call, after, scratch / str(n)))
        row = [
            name,
            f"{after:.2f}",
            f"{median([r['stop'] for r in results]) * 1000:.0f}",
            f"{max(r['stop'] for r in results) * 1000:.0f}",
            f"{median([r['answer'] for r in results]) * 1000:.1f}",
            f"{median([r['cpu'] for r in results]):.3f}",
        ]
        rows.append(row)
        print(" | ".join(row), file=sys.stderr, flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    info = machine()
    headers = [
        "request",
        "cancelled after s",
        "work stopped ms (median)",
        "max ms",
        "JobCancelled ms",
        "CPU s burnt after",
    ]
    return "\n".join(
        [
            f"Command: `{command_line()}`",
            "",
            "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
            "",
            f"File: {args.size_mib} MiB of mixed content, page cached; workers=2;"
            f" {args.repeat} runs each.",
            "",
            table(headers, rows),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--after", type=float, default=0.5)
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    publish(anyio.run(run, args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
