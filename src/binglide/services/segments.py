"""Profiles along a range: per-segment entropy and diff counts, sliding windows.

A profile cuts its range into consecutive segments (the points of an entropy
or diff profile), or places a window around each point (sliding entropy).
The ``segments`` helper service computes one run of consecutive points; the
profile services group points into runs of about a chunk each, all in
flight at once, so that every run's answer is final for its points.

Segments are read piece by piece (`binglide.services.sources`): runs of
whole segments of a piece or less together, each larger segment alone with
its counts added up piece by piece.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RequestError
from ..report import Report
from ..service import Service
from . import kernels
from .common import source_id
from .remote import Remote, open_input
from .sliding import sliding_entropies, windows_around
from .sources import PIECE, Source, changed_error, scratch
from .threads import checkpoint, run_kernel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from ..report import Task
    from ..service import Context

__all__ = (
    "SegmentsService",
    "diff_segments",
    "entropy_segments",
    "point_edges",
    "sliding_windows",
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


def _groups(edges: Array, piece: int) -> Iterator[tuple[int, int]]:
    """Index pairs ``(i, j)``: segments ``i .. j-1`` of at most `piece` bytes together, or one."""
    count = len(edges) - 1
    i = 0
    while i < count:
        j = int(np.searchsorted(edges, edges[i] + piece, side="right")) - 1
        j = min(count, max(i + 1, j))
        yield i, j
        i = j


def entropy_segments(source: Source, edges: Array, *, piece: int = PIECE) -> Array:
    """Return the entropy of each segment between consecutive `edges` (blocking).

    Raises:
        RequestError: the file changed while it was read.
    """
    out = np.zeros(len(edges) - 1, np.float64)
    with scratch(piece) as buf:
        for i, j in _groups(edges, piece):
            lo, hi = int(edges[i]), int(edges[j])
            if hi - lo <= piece:
                checkpoint()
                data = source.read(lo, hi, buf)
                out[i:j] = kernels.segment_entropies(data, edges[i : j + 1] - lo)
                continue
            counts = np.zeros(256, np.uint64)
            for _, _, data in source.pieces(lo, hi, piece=piece):
                kernels.byte_histogram(data, out=counts)
            out[i] = kernels.entropy_of_counts(counts)
    source.check_unchanged()
    return out


def diff_segments(a: Source, b: Source, edges: Array, *, piece: int = PIECE) -> Array:
    """Return the differing bytes of `a` and `b` per segment (within both files; blocking).

    Raises:
        RequestError: a file changed while it was read.
    """
    out = np.zeros(len(edges) - 1, np.int64)
    with scratch(piece) as buf_a, scratch(piece) as buf_b:
        for i, j in _groups(edges, piece):
            lo, hi = int(edges[i]), int(edges[j])
            if hi - lo <= piece:
                checkpoint()
                x, y = a.read(lo, hi, buf_a), b.read(lo, hi, buf_b)
                out[i:j] = kernels.diff_counts(x, y, edges[i : j + 1] - lo)
                continue
            parts = zip(a.pieces(lo, hi, piece=piece), b.pieces(lo, hi, piece=piece), strict=True)
            out[i] = sum(int(np.count_nonzero(x != y)) for (_, _, x), (_, _, y) in parts)
    a.check_unchanged()
    b.check_unchanged()
    return out


def sliding_windows(source: Source, lo: Array, hi: Array, *, base: int = 0) -> Array:
    """Return the entropy of each window ``[lo[k], hi[k])`` of `source` (sorted; blocking).

    `base` is the index of the first window in the whole profile (see
    `binglide.services.sliding.FRESH_EVERY`).

    Raises:
        RequestError: the file changed while it was read.
    """
    with scratch() as lead, scratch() as trail:
        buffers = [lead, trail]

        def read(runs: Array, slot: int) -> Array:
            checkpoint()
            need = int((runs[:, 1] - runs[:, 0]).sum())
            if buffers[slot].shape[0] < need:
                buffers[slot] = np.empty(need, np.uint8)
            return source.gather(runs.tolist(), buffers[slot])

        values = sliding_entropies(read, lo, hi, base=base, piece=PIECE)
    source.check_unchanged()
    return values


class SegmentsService(Service):
    """Compute one run of segments (a helper service of the profiles)."""

    name = "segments"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        body = task.body
        try:
            op = str(body["op"])
            paths: Sequence[str] = [str(p) for p in body["sources"]]
            fids: Sequence[str] = [str(f) for f in body["fids"]]
            remotes = body.get("remotes") or [None] * len(paths)
            if not isinstance(remotes, list) or len(remotes) != len(paths):
                raise ValueError("'remotes' must be a list with one entry per source")
            (points,) = task.arrays
            points = np.ascontiguousarray(points, dtype=np.int64)
            if op == "sliding":
                window, base = int(body["window"]), int(body["base"])
                start, stop = int(body["start"]), int(body["stop"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RequestError(
                f"a segments request needs op, sources, fids and an array: {exc}"
            ) from exc
        if op not in ("entropy", "diff", "sliding") or len(paths) != (2 if op == "diff" else 1):
            raise RequestError(f"unknown segments op {op!r} for {len(paths)} source(s)")
        if op == "sliding":
            # The array holds the windows' centres, relative to the range start.
            if points.ndim != 1 or np.any(np.diff(points) < 0) or window < 1 or start > stop:
                raise RequestError("sliding windows need sorted centres and a window of 1 or more")
            lo, hi = windows_around(points, window, stop - start)
            limit = stop
        else:
            if len(points) < 2 or np.any(np.diff(points) < 0) or points[0] < 0:
                raise RequestError("segment edges must be at least two sorted offsets")
            limit = int(points[-1])
        wheres = [
            (p, Remote.from_input(r) if r else None) for p, r in zip(paths, remotes, strict=True)
        ]
        sources: list[Source] = []
        try:
            for path, remote in wheres:
                sources.append(open_input(path, remote, roots=ctx.settings.roots, ctx=ctx))
            for source, fid in zip(sources, fids, strict=True):
                if await run_kernel(source_id, source) != fid:
                    raise changed_error(source.path)
                if limit > source.size or limit < 0:
                    raise RequestError(f"segments end past the end of {source.path}")
            if op == "entropy":
                result = await run_kernel(entropy_segments, sources[0], points)
            elif op == "diff":
                result = await run_kernel(diff_segments, sources[0], sources[1], points)
            else:
                result = await run_kernel(
                    lambda: sliding_windows(sources[0], lo + start, hi + start, base=base)
                )
        finally:
            for source in sources:
                source.close()
        yield Report(result)
