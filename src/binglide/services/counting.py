"""``histogram``, ``ngrams`` and ``stats``: counts over a range, cached by chunk."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..report import Report
from ..service import Service
from . import kernels
from .common import opened, option_int, parse_body
from .engine import progress_report, run_chunked
from .resources import Histogram, NGrams, ent_resource_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import numpy as np

    from ..report import Task
    from ..service import Context

__all__ = ("HistogramService", "NGramsService", "StatsService")


class HistogramService(Service):
    """256 uint64 counts of the bytes in the range."""

    name = "histogram"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        parsed = parse_body(task.body, sources=1)
        with opened(parsed.inputs[0], ctx) as op:
            async for progress in run_chunked(ctx, Histogram(), op, parsed):
                yield progress_report(progress, start=op.start, stop=op.stop)


class NGramsService(Service):
    """Counts of every n-gram wholly in the range, bytes reduced to their top bits."""

    name = "ngrams"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        parsed = parse_body(task.body, sources=1)
        n = option_int(parsed.options, "n", 2, 2, 3)
        bits = option_int(parsed.options, "bits", 8 if n == 2 else 7, 1, 8)
        with opened(parsed.inputs[0], ctx) as op:
            async for progress in run_chunked(ctx, NGrams(n, bits), op, parsed):
                yield progress_report(progress, start=op.start, stop=op.stop, n=n, bits=bits)


class StatsService(Service):
    """The statistics ``ent`` prints; ``data`` is the 256 byte counts they come from."""

    name = "stats"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        parsed = parse_body(task.body, sources=1)
        with opened(parsed.inputs[0], ctx) as op:
            # The exact answer's statistics are worked out in the kernel
            # thread that finishes it (`run_chunked`'s summarize).
            # A range starting at a multiple of 6 (a whole file) needs only
            # the Monte Carlo groups at those offsets: the faster kernel.
            resource = ent_resource_for(op.start)
            async for progress in run_chunked(ctx, resource, op, parsed, summarize=_summary):
                stats, counts = progress.summary or _summary(progress.data)
                yield Report(
                    counts,
                    completion=progress.completion,
                    precision=progress.precision,
                    meta={**stats, "start": op.start, "stop": op.stop},
                )


def _summary(data: np.ndarray[Any, Any]) -> tuple[dict[str, Any], np.ndarray[Any, Any]]:
    """Return ent's statistics of a packed partial (JSON-ready), and its 256 byte counts."""
    partial = kernels.EntPartial.from_array(data)
    # ent prints nan for an empty stream; JSON has no nan: None.
    stats: dict[str, Any] = {
        k: None if isinstance(v, float) and math.isnan(v) else v
        for k, v in kernels.ent_finish(partial).items()
    }
    if stats["serial_correlation"] == kernels.UNDEFINED_CORRELATION:
        # ent -t's sentinel; ent itself prints "undefined".
        stats["serial_correlation"] = None
    return stats, data[4:260].copy()
