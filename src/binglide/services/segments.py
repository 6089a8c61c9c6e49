"""Profiles along a range: per-segment entropy and per-segment diff counts.

A profile cuts its range into consecutive segments (the points of an entropy
or diff profile). The ``segments`` helper service computes one run of
consecutive segments; the profile services group segments into runs of about
a chunk each, all in flight at once, so that no segment straddles two runs and
every run's answer is final for its segments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RequestError
from ..report import Report
from ..service import Service
from . import kernels
from .common import run_kernel, source_id
from .sources import Source, open_source

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from ..report import Task
    from ..service import Context

__all__ = (
    "SegmentsService",
    "diff_segments",
    "entropy_segments",
    "point_edges",
    "split_runs",
)

Array = np.ndarray[Any, Any]


def point_edges(start: int, stop: int, points: int) -> Array:
    """Return the ``points + 1`` edges of the points of ``[start, stop)``.

    Point i is ``[start + floor(i*L/R), start + floor((i+1)*L/R))``.
    """
    length = stop - start
    i = np.arange(points + 1, dtype=np.int64)
    # i * L / R without overflowing int64: split L into quotient and remainder.
    q, r = divmod(length, points)
    return start + i * q + (i * r) // points


def split_runs(edges: Array, target: int) -> list[tuple[int, int]]:
    """Group segments into runs of about `target` bytes: index pairs ``(first, last + 1)``."""
    runs, first = [], 0
    count = len(edges) - 1
    while first < count:
        goal = edges[first] + max(1, target)
        last = int(np.searchsorted(edges, goal, side="left"))
        last = min(count, max(first + 1, last))
        runs.append((first, last))
        first = last
    return runs


def entropy_segments(source: Source, edges: Array) -> Array:
    """Return the entropy of each segment between consecutive `edges` (blocking)."""
    lo, hi = int(edges[0]), int(edges[-1])
    source.prefetch(lo, hi)
    return kernels.segment_entropies(source.view(lo, hi), edges - lo)


def diff_segments(a: Source, b: Source, edges: Array) -> Array:
    """Return the differing bytes of `a` and `b` per segment (within both files; blocking)."""
    lo, hi = int(edges[0]), int(edges[-1])
    a.prefetch(lo, hi)
    b.prefetch(lo, hi)
    return kernels.diff_counts(a.view(lo, hi), b.view(lo, hi), edges - lo)


class SegmentsService(Service):
    """Compute one run of segments (a helper service of the profiles)."""

    name = "segments"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        body = task.body
        try:
            op = str(body["op"])
            paths: Sequence[str] = [str(p) for p in body["sources"]]
            fids: Sequence[str] = [str(f) for f in body["fids"]]
            (edges,) = task.arrays
            edges = np.ascontiguousarray(edges, dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise RequestError(
                f"a segments request needs op, sources, fids and edges: {exc}"
            ) from exc
        if op not in ("entropy", "diff") or len(paths) != (1 if op == "entropy" else 2):
            raise RequestError(f"unknown segments op {op!r} for {len(paths)} source(s)")
        if len(edges) < 2 or np.any(np.diff(edges) < 0) or edges[0] < 0:
            raise RequestError("segment edges must be at least two sorted offsets")
        sources = [open_source(p, roots=ctx.settings.roots) for p in paths]
        try:
            for source, fid in zip(sources, fids, strict=True):
                if source_id(source.path) != fid:
                    raise RequestError(
                        f"{source.path} changed while it was being analysed; ask again"
                    )
                if edges[-1] > source.size:
                    raise RequestError(f"segments end past the end of {source.path}")
            if op == "entropy":
                result = await run_kernel(entropy_segments, sources[0], edges)
            else:
                result = await run_kernel(diff_segments, sources[0], sources[1], edges)
        finally:
            for source in sources:
                source.close()
        yield Report(result)
