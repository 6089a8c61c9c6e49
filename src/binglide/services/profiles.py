"""``entropy`` and ``diff``: profiles along a range, progressive.

Both place points along the range (segments of it, or a window around the
middle of each segment for sliding entropy), answer first from a small
sample of the points, then fan runs of points out to the ``segments``
service and refine the answer as runs finish; the last answer is exact.

The entropy of ``n`` bytes is at most ``log2(n)`` bits per byte: 16 random
bytes show 4, not 8. So by default an entropy point covers at least
`MIN_POINT_BYTES` bytes (a small range gets fewer points than asked), and
every report's meta says how many bytes a point covers (``point_bytes``)
and which points cover fewer than `MIN_POINT_BYTES` (``biased_points``),
when a caller asked for those points explicitly.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any, Final

import anyio
import attrs
import numpy as np

from ..errors import RequestError
from ..report import Report
from ..service import Service
from . import kernels
from .common import (
    Opened,
    Parsed,
    RateLimit,
    opened,
    option_choice,
    option_int,
    parse_body,
)
from .engine import chunk_size_for, sample_budget
from .segments import point_edges, split_runs
from .sliding import FRESH_EVERY, windows_around
from .threads import run_kernel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from ..report import Task
    from ..service import Context
    from .sources import Source

__all__ = ("MIN_POINT_BYTES", "DiffService", "EntropyService")

Array = np.ndarray[Any, Any]

#: The most points a profile may have (a float64 each).
MAX_POINTS: Final = 1 << 24
#: The points of an entropy profile when the request does not say.
DEFAULT_RESOLUTION: Final = 1024
#: The fewest bytes an entropy point covers by default: fewer cannot show
#: the entropy of random data (at most log2(bytes) bits per byte), and the
#: estimate is biased low. A request that asks for more points than that
#: allows gets them, with the points marked in ``meta["biased_points"]``.
MIN_POINT_BYTES: Final = 256
#: Above this many points, the first estimate samples every k-th point only.
_SAMPLED_POINTS: Final = 1 << 10


def _sample_points(lo: Array, hi: Array, budget: int) -> list[tuple[int, int, int]]:
    """Return ``(point, a, b)``: a run from the middle of (at most ~1024 of) the points' spans."""
    points = len(lo)
    step = max(1, points // _SAMPLED_POINTS)
    per_point = max(64, budget // max(1, points // step))
    runs = []
    for i in range(0, points, step):
        a, b = int(lo[i]), int(hi[i])
        take = min(b - a, per_point)
        first = a + (b - a - take) // 2
        runs.append((i, first, first + take))
    return runs


def _fill(values: Array, sampled: list[int]) -> Array:
    """Give each unsampled point the value of the sampled point before it."""
    if not sampled:
        return values
    idx = np.zeros(len(values), dtype=np.int64)
    idx[sampled] = sampled
    np.maximum.accumulate(idx, out=idx)
    return values[idx]


def _index_ranges(mask: Array) -> list[list[int]]:
    """Return the ``[first, stop]`` index ranges where `mask` is true."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return [[int(a), int(b)] for a, b in zip(changes[0::2], changes[1::2], strict=True)]


def _point_meta(point_bytes: int, spans: Array) -> dict[str, Any]:
    """Return the meta saying how many bytes the points cover and which are biased.

    Every point is when a point has fewer than `MIN_POINT_BYTES` (some points
    of a resolution have a byte more: alike, all marked); else the points
    whose `spans` are cut short.
    """
    short = spans < MIN_POINT_BYTES
    return {
        "point_bytes": point_bytes,
        "biased_points": _index_ranges(short | (point_bytes < MIN_POINT_BYTES)),
    }


async def _fan_out(
    ctx: Context,
    runs: Sequence[tuple[int, int, int, dict[str, Any], Array]],
    values: Array,
    parsed: Parsed,
    report: Callable[[float], Report],
) -> AsyncIterator[Report]:
    """Compute every run of points; yield refined reports as runs finish.

    Each run is ``(first, stop, weight, body, array)``: a ``segments``
    sub-request computing points ``first .. stop-1``, worth `weight` of the
    progress.
    """
    total = sum(w for _, _, w, _, _ in runs)
    send, receive = anyio.create_memory_object_stream[tuple[int, int, int, Array]](math.inf)
    calls = [(i, j, w, ctx.request("segments", body, array)) for i, j, w, body, array in runs]

    async def collect(i: int, j: int, w: int, call: Any) -> None:
        await send.send((i, j, w, (await call).array))

    limit = RateLimit(ctx.settings.report_interval)
    done = 0
    async with anyio.create_task_group() as tg, send, receive:
        for i, j, w, call in calls:
            tg.start_soon(collect, i, j, w, call)
        for _ in range(len(calls)):
            i, j, w, result = await receive.receive()
            values[i:j] = result
            done += w
            if parsed.reports.progress and done < total and limit.ready():
                yield report(done / max(1, total))


def _sources(ops: Sequence[Opened]) -> dict[str, Any]:
    """Return how a ``segments`` sub-request names its files (see `SegmentsService`)."""
    wheres = [op.where() for op in ops]
    named: dict[str, Any] = {
        "sources": [w.pop("source") for w in wheres],
        "fids": [op.fid for op in ops],
    }
    if any(wheres):
        named["remotes"] = [w or None for w in wheres]
    return named


def _segment_runs(
    op_name: str, ops: Sequence[Opened], edges: Array, target: int
) -> list[tuple[int, int, int, dict[str, Any], Array]]:
    body = {
        "op": op_name,
        **_sources(ops),
    }
    return [
        (i, j, int(edges[j] - edges[i]), body, edges[i : j + 1].copy())
        for i, j in split_runs(edges, target)
    ]


def _sliding_runs(
    op: Opened, centres: Array, lo: Array, hi: Array, window: int, target: int
) -> list[tuple[int, int, int, dict[str, Any], Array]]:
    """Cut the windows into runs of about `target` bytes of work, at multiples of FRESH_EVERY."""
    # A window costs the bytes it adds and removes, or its own when counted afresh.
    moved = np.diff(lo, prepend=0) + np.diff(hi, prepend=0)
    cost = np.minimum(moved, hi - lo)
    cum = np.concatenate([[0], np.cumsum(cost)])
    cuts = {0, len(lo)}
    for _, j in split_runs(cum, target):
        cuts.add(min(len(lo), round(j / FRESH_EVERY) * FRESH_EVERY))
    bounds = sorted(cuts)
    body = {
        "op": "sliding",
        **_sources([op]),
        "window": window,
        "start": op.start,
        "stop": op.stop,
    }
    return [
        (i, j, int(cum[j] - cum[i]) or 1, {**body, "base": i}, centres[i:j].copy())
        for i, j in itertools.pairwise(bounds)
        if j > i
    ]


class EntropyService(Service):
    """Shannon entropy (bits per byte) along the range: by resolution, block or sliding window."""

    name = "entropy"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        parsed = parse_body(task.body, sources=1)
        opts = parsed.options
        mode = option_choice(opts, "mode", "resolution", ("resolution", "block", "sliding"))
        asked = opts.get("resolution") is not None
        resolution = option_int(opts, "resolution", DEFAULT_RESOLUTION, 1, MAX_POINTS)
        window = option_int(opts, "window", MIN_POINT_BYTES, 1, 1 << 30)
        block = option_int(opts, "block", None if mode == "block" else 1024, 1, 1 << 40)
        with opened(parsed.inputs[0], ctx) as op:
            meta: dict[str, Any] = {"mode": mode, "start": op.start, "stop": op.stop}
            if mode == "sliding":
                # Each window is centred on its point.
                points = point_edges(0, op.length, resolution)
                centres = (points[:-1] + points[1:]) // 2
                lo, hi = windows_around(centres, window, op.length)
                meta.update(window=window, resolution=resolution)
                meta.update(_point_meta(min(window, op.length), hi - lo))
                async for report in _sliding(ctx, op, centres, lo, hi, window, parsed, meta):
                    yield report
                return
            if mode == "block":
                count = -(-op.length // block)
                if count > MAX_POINTS:
                    raise RequestError(
                        f"{count} blocks of {block} bytes are too many (at most {MAX_POINTS});"
                        " use a larger block or a smaller range"
                    )
                edges = np.minimum(
                    op.start + np.arange(count + 1, dtype=np.int64) * block, op.stop
                )
                meta["block"] = block
                point_bytes = min(block, op.length)
            else:
                if not asked:
                    # Fewer points rather than points too small to mean anything.
                    resolution = max(1, min(resolution, op.length // MIN_POINT_BYTES))
                edges = point_edges(op.start, op.stop, resolution)
                meta["resolution"] = resolution
                point_bytes = op.length // resolution
            meta.update(_point_meta(point_bytes, np.diff(edges)))
            async for report in _profile(
                ctx, "entropy", [op], edges, parsed, meta, _entropy_sample
            ):
                yield report


def _gather(source: Source, runs: list[tuple[int, int, int]]) -> tuple[Array, Array]:
    """Return the bytes of every run in one buffer, and the edges between runs.

    One kernel call over a few MiB, rather than thousands of small calls.
    """
    lengths = np.array([hi - lo for _, lo, hi in runs], dtype=np.int64)
    gathered = source.gather([(lo, hi) for _, lo, hi in runs])
    source.check_unchanged()
    return gathered, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _entropy_sample(
    sources: Sequence[Source], runs: list[tuple[int, int, int]], values: Array
) -> int:
    gathered, edges = _gather(sources[0], runs)
    if runs:
        values[[i for i, _, _ in runs]] = kernels.segment_entropies(gathered, edges)
    return int(edges[-1])


def _diff_sample(
    sources: Sequence[Source], runs: list[tuple[int, int, int]], values: Array
) -> int:
    a, edges = _gather(sources[0], runs)
    b, _ = _gather(sources[1], runs)
    if runs:
        counts = kernels.diff_counts(a, b, edges)
        lengths = np.maximum(1, np.diff(edges))
        values[[i for i, _, _ in runs]] = counts / lengths  # a rate, scaled to the point later
    return int(edges[-1])


async def _estimate(
    sources: Sequence[Source],
    lo: Array,
    hi: Array,
    sampler: Callable[[Sequence[Source], list[tuple[int, int, int]], Array], int],
) -> tuple[Array, int]:
    """Return the first estimate of every point (sampled ones, the rest filled), and bytes read."""
    runs = _sample_points(lo, hi, sample_budget(int(np.sum(hi - lo))))
    estimate = np.zeros(len(lo), dtype=np.float64)
    read = await run_kernel(sampler, sources, runs, estimate)
    return _fill(estimate, [i for i, _, _ in runs]), read


async def _sliding(
    ctx: Context,
    op: Opened,
    centres: Array,
    lo: Array,
    hi: Array,
    window: int,
    parsed: Parsed,
    meta: dict[str, Any],
) -> AsyncIterator[Report]:
    """Sliding-window entropy: an estimate, runs of windows fanned out, the exact last."""
    values = np.zeros(len(centres), np.float64)

    def report(completion: float, precision: float | None = None) -> Report:
        return Report(
            values.copy(),
            completion=completion,
            precision=completion if precision is None else precision,
            meta=dict(meta),
        )

    covered = int(hi[-1] - lo[0]) if len(lo) else 0
    if covered and parsed.reports.estimate:
        estimate, read = await _estimate(
            [op.source], lo + op.start, hi + op.start, _entropy_sample
        )
        values[:] = estimate
        yield report(0.0, min(1.0, read / covered))
    if covered:
        runs = _sliding_runs(
            op, centres, lo, hi, window, chunk_size_for(covered, ctx.settings.parallelism)
        )
        async for progress in _fan_out(ctx, runs, values, parsed, report):
            yield progress
    yield report(1.0, 1.0)


async def _profile(
    ctx: Context,
    op_name: str,
    ops: Sequence[Opened],
    edges: Array,
    parsed: Parsed,
    meta: dict[str, Any],
    sampler: Callable[[Sequence[Source], list[tuple[int, int, int]], Array], int],
    *,
    finish: Callable[[Array], Array] | None = None,
    extra: Callable[[Array], dict[str, Any]] | None = None,
) -> AsyncIterator[Report]:
    points = len(edges) - 1
    length = int(edges[-1] - edges[0]) if points else 0
    dtype = np.float64 if op_name == "entropy" else np.int64
    values = np.zeros(points, dtype=dtype)
    finish = finish or (lambda v: v)

    def report(completion: float, precision: float | None = None) -> Report:
        data = finish(values).copy()
        return Report(
            data,
            completion=completion,
            precision=completion if precision is None else precision,
            meta={**meta, **(extra(data) if extra else {})},
        )

    if points and length and parsed.reports.estimate:
        estimate, read = await _estimate([o.source for o in ops], edges[:-1], edges[1:], sampler)
        if op_name == "diff":
            estimate = np.rint(estimate * np.diff(edges)).astype(np.int64)
        values[:] = estimate
        yield report(0.0, read / length)
    if points and length:
        target = chunk_size_for(length, ctx.settings.parallelism)
        runs = _segment_runs(op_name, ops, edges, target)
        async for progress in _fan_out(ctx, runs, values, parsed, report):
            yield progress
    yield report(1.0, 1.0)


class DiffService(Service):
    """Differing bytes of two files per point of `resolution`, and the total.

    Bytes past the end of the shorter file count as differing; ``meta`` says
    how many there are.
    """

    name = "diff"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        parsed = parse_body(task.body, sources=2)
        resolution = option_int(parsed.options, "resolution", 1024, 1, MAX_POINTS)
        first, second = parsed.inputs
        with (
            opened(first, ctx) as a,
            opened(second, ctx) as b,
        ):
            sizes = [a.source.size, b.source.size]
            longest, shortest = max(sizes), min(sizes)
            # The range is over the longer file; the shorter one ends early.
            start = first.start or 0
            stop = longest if first.stop is None else min(first.stop, longest)
            if start < 0 or stop < 0 or start > stop:
                raise RequestError(
                    f"range ({first.start}, {first.stop}) is invalid; a range is (start, stop)"
                    " with 0 <= start <= stop (stop past the end is clipped)"
                )
            start = min(start, longest)
            edges = point_edges(start, stop, resolution)
            common_stop = max(start, min(stop, shortest))
            common = np.minimum(edges, common_stop)
            # Bytes of each point past the shorter file's end: differing by definition.
            beyond = np.diff(edges) - np.diff(common)
            meta = {
                "sizes": sizes,
                "start": start,
                "stop": stop,
                "resolution": resolution,
                "length_differs": sizes[0] != sizes[1],
                "beyond_shorter": int(beyond.sum()),
            }
            ops = [
                attrs.evolve(a, start=start, stop=common_stop),
                attrs.evolve(b, start=start, stop=common_stop),
            ]

            def finish(values: Array) -> Array:
                total: Array = values + beyond
                return total

            def extra(data: Array) -> dict[str, Any]:
                return {"total": int(data.sum())}

            final: Report | None = None
            async for report in _profile(
                ctx, "diff", ops, common, parsed, meta, _diff_sample, finish=finish, extra=extra
            ):
                if report.completion < 1.0:
                    yield report  # the estimate and refinements go out at once
                else:
                    final = report  # completed by the first differing offsets below
            assert final is not None
            offsets = await run_kernel(
                _first_offsets, a.source, b.source, common, final.array - beyond, 16
            )
            # Then the bytes past the shorter file's end, which all differ.
            offsets += range(common_stop, min(stop, common_stop + 16 - len(offsets)))
            final.meta["first_offsets"] = offsets
            yield final


def _first_offsets(a: Source, b: Source, edges: Array, counts: Array, limit: int) -> list[int]:
    """Return the first `limit` offsets where `a` and `b` differ (scanning differing points)."""
    found: list[int] = []
    for i in np.flatnonzero(counts):
        lo, hi = int(edges[i]), int(edges[i + 1])
        for (at, _, x), (_, _, y) in zip(a.pieces(lo, hi), b.pieces(lo, hi), strict=True):
            where = np.flatnonzero(x != y)
            found.extend(int(at + w) for w in where[: limit - len(found)])
            if len(found) >= limit:
                break
        if len(found) >= limit:
            break
    a.check_unchanged()
    b.check_unchanged()
    return found
