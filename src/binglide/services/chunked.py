"""The engine every cached analysis runs on: cover, sample, fan out, merge.

For a range of one source and a `Resource`:

1. **Cover**: the largest cached aligned blocks inside the range answer what
   they can (`binglide.cachefs.find_cover`); what they leave are the gaps.
2. **First answer**: from the cached blocks and a small deterministic sample
   of the gaps, at once (``precision`` is the fraction of bytes it read).
3. **Fan out**: the gaps are cut into power-of-two aligned chunks, about the
   range over four times the number of workers (every worker busy, and
   progress to report), each a sub-request to the ``chunk`` service, all in
   flight at once; answers refined as they finish, rate-limited.
4. **Commit**: chunk workers store their chunks (and the finer cache levels
   inside them); the engine stores the coarser levels by merging chunks.
5. **Final answer**: every part merged in order, exact.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import numpy as np

from ..cachefs import ChunkKey, aligned_blocks, commit_levels, find_cover
from ..report import Report
from .chunks import plan_chunks, sample_runs
from .common import Opened, Parsed, RateLimit, run_kernel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from ..cachefs import ChunkStore
    from ..service import Context
    from .resources import Resource

__all__ = ("Progress", "chunk_size_for", "run_chunked", "sample_budget")

Array = np.ndarray[Any, Any]

#: The smallest chunk computed as a sub-request (smaller ranges are one chunk).
MIN_CHUNK = 1 << 18
#: The largest chunk: bounds a chunk's time and memory, and the cancel latency.
MAX_CHUNK = 1 << 26


@attrs.frozen
class Progress:
    """One answer of the engine: the merged data so far, and how good it is."""

    data: Array
    completion: float
    precision: float
    final: bool


def chunk_size_for(length: int, parallelism: int) -> int:
    """Return the power-of-two chunk size for a range of `length` bytes."""
    share = max(1, length // max(1, 4 * parallelism))
    return min(MAX_CHUNK, max(MIN_CHUNK, 1 << (share.bit_length() - 1)))


def sample_budget(length: int) -> int:
    """Return how many bytes the first estimate reads: about 0.5%, within [256 KiB, 16 MiB]."""
    return min(length, max(1 << 18, min(1 << 24, length // 200)))


def _levels(length: int, min_block: int) -> list[int]:
    top = max(min_block, 1 << max(0, length.bit_length()))
    return [1 << k for k in range(min_block.bit_length() - 1, top.bit_length())]


def _cover(
    store: ChunkStore | None, resource: Resource, op: Opened, parsed: Parsed
) -> tuple[list[tuple[int, int, Array]], list[tuple[int, int]]]:
    if store is None or not store.enabled or not parsed.cache.lookup:
        return [], [(op.start, op.stop)]
    levels = [lv for lv in _levels(op.length, resource.min_block) if parsed.cache.looks_up(lv)]
    if not levels:
        return [], [(op.start, op.stop)]
    cover = find_cover(
        store, resource.name, (op.fid,), op.start, op.stop, levels, end=op.source.size
    )
    hits = [(key.start, key.stop, np.asarray(array)) for key, array in cover.hits]
    return hits, list(cover.gaps)


def _sample(resource: Resource, op: Opened, gaps: Sequence[tuple[int, int]]) -> tuple[Array, int]:
    gap_bytes = sum(b - a for a, b in gaps)
    budget = sample_budget(gap_bytes)
    parts, read = [], 0
    for a, b in gaps:
        share = max(1, budget * (b - a) // max(1, gap_bytes))
        for lo, hi in sample_runs(a, b, budget=share):
            parts.append(resource.compute(op.source, lo, hi))
            read += hi - lo
    return resource.merge(parts), read


def _commit_coarse(
    store: ChunkStore,
    resource: Resource,
    op: Opened,
    parts: dict[int, tuple[int, Array]],
    levels: Sequence[int],
) -> None:
    """Store the levels coarser than a chunk, merging the parts inside each block."""
    starts = sorted(parts)
    for level in levels:
        for a, b in aligned_blocks(op.start, op.stop, level, end=op.source.size):
            inside = [s for s in starts if a <= s < b]
            if not inside or inside[0] != a or parts[inside[-1]][0] != b:
                continue  # covered by a larger cached block, or not tiled by parts
            if any(parts[x][0] != y for x, y in itertools.pairwise(inside)):
                continue
            if len(inside) == 1:
                continue  # the part itself is this block: already stored
            merged = resource.merge([parts[s][1] for s in inside])
            store.put(ChunkKey(resource.name, (op.fid,), a, b), merged)


async def run_chunked(
    ctx: Context, resource: Resource, op: Opened, parsed: Parsed
) -> AsyncIterator[Progress]:
    """Compute `resource` over `op`'s range, yielding answers coarse to exact."""
    length = op.length
    store = ctx.settings.cache
    if length == 0:
        merged = resource.merge([])
        yield Progress(resource.finish(op.source, op.start, op.stop, merged), 1.0, 1.0, True)
        return
    hits, gaps = await run_kernel(_cover, store, resource, op, parsed)
    parts: dict[int, tuple[int, Array]] = {a: (b, arr) for a, b, arr in hits}
    covered = sum(b - a for a, b, _ in hits)

    async def exact() -> Progress:
        ordered = [parts[s][1] for s in sorted(parts)]
        merged = resource.merge(ordered)
        data = await run_kernel(resource.finish, op.source, op.start, op.stop, merged)
        return Progress(data, 1.0, 1.0, True)

    if not gaps:
        yield await exact()
        return

    if parsed.reports.estimate:
        sample, read = await run_kernel(_sample, resource, op, gaps)
        gap_bytes = length - covered
        estimate = resource.estimate(sample, gap_bytes / max(1, read))
        known = [arr for _, arr in parts.values()]
        data = resource.merge([*known, estimate]) if known else estimate
        yield Progress(data, covered / length, (covered + read) / length, False)

    chunk = chunk_size_for(length, ctx.settings.parallelism)
    chunks = [
        c for a, b in gaps for c in plan_chunks(a, b, workers=1, min_chunk=chunk, max_chunk=chunk)
    ]
    levels = []
    if store is not None and store.enabled and parsed.cache.commit:
        levels = [
            lv
            for lv in commit_levels(length, min_block=resource.min_block, chunk=chunk)
            if parsed.cache.commits(lv)
        ]
    fine = [lv for lv in levels if lv <= chunk]
    send, receive = anyio.create_memory_object_stream[tuple[int, int, Array]](math.inf)
    calls = []
    for a, b in chunks:
        body = {
            "resource": resource.name,
            "source": op.source.path,
            "fid": op.fid,
            "start": a,
            "stop": b,
            "commit": fine,
            "lookup": bool(parsed.cache.lookup),
        }
        calls.append((a, b, ctx.request("chunk", body)))

    async def collect(a: int, b: int, call: Any) -> None:
        report = await call
        await send.send((a, b, report.array))

    limit = RateLimit(ctx.settings.report_interval)
    done = covered
    async with anyio.create_task_group() as tg, send, receive:
        for a, b, call in calls:
            tg.start_soon(collect, a, b, call)
        for _ in range(len(calls)):
            a, b, array = await receive.receive()
            parts[a] = (b, array)
            done += b - a
            if parsed.reports.progress and done < length and limit.ready():
                merged = resource.merge([parts[s][1] for s in sorted(parts)])
                yield Progress(
                    resource.estimate(merged, length / done), done / length, done / length, False
                )
    coarse = [lv for lv in levels if lv > chunk]
    if store is not None and coarse:
        await run_kernel(_commit_coarse, store, resource, op, parts, coarse)
    yield await exact()


def progress_report(progress: Progress, **meta: Any) -> Report:
    """Return the `Report` of one engine answer."""
    return Report(
        progress.data, completion=progress.completion, precision=progress.precision, meta=meta
    )
