"""Benchmark the chunk cache: a cold request, the same again, a zoom, a pan.

Usage::

    python bench/cache.py [--size-mib 1536] [--request-mib 1024] [--repeat 3]
                          [--analyses histogram,ngrams,stats] [--out FILE]

On a generated file of mixed content (``bench/data/``, git-ignored, page
cached first), with the embedded default (``binglide.connect(workers=2)``),
cache lookups and commits on and the default reports, for each analysis and
each repetition, with a fresh empty cache directory:

1. **cold**: the range ``R = [0, L)`` (L = ``--request-mib``, 1 GiB);
2. **again**: the same request (target: under 1% of cold);
3. **zoom**: a tenth of it, ``[0.45 L, 0.55 L)`` (target: under 5% of cold);
4. **pan**: R shifted by half its size, ``[L/2, 3L/2)``: half of it is cached
   by the cold request (target: under 55% of cold). The file is 1.5 L long so
   that the pan stays inside it.

Each step is timed to its exact (final) answer; the figures are medians of
``--repeat`` repetitions, as a fraction of the same repetition's cold time.
Every cached answer of the first repetition is checked against the same
request with the cache off.
"""

from __future__ import annotations

import argparse
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

NO_CACHE = {"lookup": False, "commit": False}
TARGETS = {"again": 0.01, "zoom": 0.05, "pan": 0.55}


def status(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def analyses(path: Path) -> dict[str, Callable[..., binglide.Call]]:
    return {
        "histogram": lambda c, r, **kw: c.histogram(path, r, **kw),
        "ngrams": lambda c, r, **kw: c.ngrams(path, r, n=2, **kw),
        "stats": lambda c, r, **kw: c.stats(path, r, **kw),
    }


async def timed(call: binglide.Call) -> tuple[float, float | None, binglide.Report]:
    """Return (seconds to the exact answer, seconds to the first report, the answer)."""
    t0 = time.perf_counter()
    first = None
    n = 0
    async for report in call:
        n += 1
        if first is None:
            first = time.perf_counter() - t0
        final = report
    return time.perf_counter() - t0, first if n > 1 else None, final


def same(x: binglide.Report, y: binglide.Report) -> bool:
    if not np.array_equal(x.array, y.array):
        return False
    keys = ("entropy", "chi_square", "mean", "monte_carlo_pi", "serial_correlation")
    return all(x.meta.get(k) == y.meta.get(k) for k in keys)


async def run(args: argparse.Namespace) -> str:
    length = args.request_mib * MiB
    size = args.size_mib * MiB
    if size < length + length // 2:
        raise SystemExit("--size-mib must be at least 1.5 times --request-mib (for the pan)")
    path = make_mixed_file(DATA_DIR / f"mixed-{args.size_mib}m.bin", size, seed=0)
    status(f"paged in {path.name} in {page_in(path):.1f} s")
    steps = {
        "cold": (0, length),
        "again": (0, length),
        "zoom": (length * 45 // 100, length * 55 // 100),
        "pan": (length // 2, length + length // 2),
    }
    wanted = [a.strip() for a in args.analyses.split(",") if a.strip()]
    calls = analyses(path)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="cache-", dir=DATA_DIR))
    results: dict[str, dict[str, list[float]]] = {}
    firsts: dict[str, dict[str, list[float]]] = {}
    checks: dict[str, bool] = {}
    try:
        # Warm up (compile or load the kernels) on a small range, outside the timings.
        async with binglide.connect(workers=args.workers, cache_dir=root / "warm") as client:
            for name in wanted:
                await calls[name](client, (0, 8 * MiB), cache=NO_CACHE)
        for rep in range(args.repeat):
            for name in wanted:
                cache_dir = root / f"{name}-{rep}"
                times: dict[str, float] = {}
                async with binglide.connect(workers=args.workers, cache_dir=cache_dir) as client:
                    answers = {}
                    for step, rng in steps.items():
                        seconds, first, answers[step] = await timed(calls[name](client, rng))
                        times[step] = seconds
                        firsts.setdefault(name, {}).setdefault(step, []).append(
                            float("nan") if first is None else first
                        )
                    if rep == 0:
                        ok = True
                        for step, rng in steps.items():
                            ref = await calls[name](client, rng, cache=NO_CACHE)
                            ok = ok and same(answers[step], ref)
                        checks[name] = ok
                entries = sum(1 for _ in cache_dir.iterdir()) if cache_dir.exists() else 0
                per = results.setdefault(name, {})
                for step, seconds in times.items():
                    per.setdefault(step, []).append(seconds)
                per.setdefault("entries", []).append(entries)
                status(
                    f"{name} rep {rep}: "
                    + ", ".join(f"{s} {t:.3f} s" for s, t in times.items())
                    + f"; {entries} cache entries"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rows = []
    for name, per in results.items():
        cold = median(per["cold"])
        row = [name, f"{cold:.3f}"]
        for step in ("again", "zoom", "pan"):
            fractions = [t / c for t, c in zip(per[step], per["cold"], strict=True)]
            frac = median(fractions)
            verdict = "ok" if frac < TARGETS[step] else "MISSED"
            row.append(f"{median(per[step]) * 1000:.1f} ms = {frac * 100:.2f}% ({verdict})")
        row.append(f"{median(per['entries']):.0f}")
        row.append("yes" if checks.get(name) else "NO")
        rows.append(row)
    first_rows = []
    for name, per in firsts.items():
        first_rows.append(
            [name]
            + [
                "-" if np.isnan(median(per[s])) else f"{median(per[s]) * 1000:.1f} ms"
                for s in steps
            ]
        )
    info = machine()
    headers = [
        "analysis",
        "cold s",
        "again (< 1%)",
        "zoom (< 5%)",
        "pan (< 55%)",
        "entries",
        "equal to uncached",
    ]
    lines = [
        f"Command: `{command_line()}`",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        f"File: {args.size_mib} MiB of mixed content, page cached; request R = [0, "
        f"{args.request_mib} MiB); zoom = [0.45, 0.55) of R; pan = R shifted by half its size"
        f" ([{args.request_mib // 2}, {args.request_mib * 3 // 2}) MiB); fresh cache per"
        f" repetition; workers={args.workers}; median of {args.repeat}; fraction = step / cold"
        " of the same repetition.",
        "",
        table(headers, rows),
        "",
        "Time to the first report (the estimate; '-' when the exact answer is the only one):",
        "",
        table(["analysis", *steps], first_rows),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1536)
    parser.add_argument("--request-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--analyses", default="histogram,ngrams,stats")
    parser.add_argument("--out", default="", help="also write the figures to this file")
    args = parser.parse_args(argv)
    publish(anyio.run(run, args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
