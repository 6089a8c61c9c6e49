"""The engine every cached analysis runs on: cover, sample, fan out, merge.

For a range of one source and a `Resource`:

1. **Cover**: the largest cached aligned blocks inside the range answer what
   they can (`binglide.cachefs.find_cover`); what they leave are the gaps.
2. **First answer**: from the cached blocks and a small deterministic sample
   of the gaps, at once (``precision`` is the fraction of bytes it read).
3. **Fan out**: the gaps are cut into power-of-two aligned chunks, about the
   range over four times the number of workers (every worker busy, and
   progress to report), each a sub-request to the ``chunk`` service, all in
   flight at once; answers refined as they finish, rate-limited. A request
   that need not be spread (``"spread": false``: a batch run, whose other
   files keep the workers busy) is cut only at the largest chunk size, and
   stores only its chunks' blocks. A range of one chunk is computed right
   here, and without an estimate to send first the whole request is one
   thread hop (lookup, compute, store).
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
from .chunk_service import compute_chunk
from .common import Opened, Parsed, RateLimit, usable_cache
from .planning import floor_power_of_two, plan_chunks, sample_runs
from .threads import run_kernel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

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
    """One answer of the engine: the merged data so far, and how good it is.

    Attributes:
        data: the merged data.
        completion: the fraction of the range computed exactly.
        precision: the fraction of its bytes the data comes from.
        summary: for the exact answer, what ``run_chunked``'s `summarize`
            made of `data` (None without one, and for the answers before).
    """

    data: Array
    completion: float
    precision: float
    summary: Any = None


def chunk_size_for(length: int, parallelism: int) -> int:
    """Return the power-of-two chunk size for a range of `length` bytes."""
    share = max(1, length // max(1, 4 * parallelism))
    return min(MAX_CHUNK, max(MIN_CHUNK, floor_power_of_two(share)))


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
    total: Array | None = None
    read = 0
    for a, b in gaps:
        share = max(1, budget * (b - a) // max(1, gap_bytes))
        for lo, hi in sample_runs(a, b, budget=share):
            # Count into one table as we go: n-gram tables are large (16 MiB
            # for trigrams) and a sample has many runs.
            if total is None:
                total = np.array(resource.compute(op.source, lo, hi))
            else:
                total = resource.compute_into(total, op.source, lo, hi)
            read += hi - lo
    op.source.check_unchanged()  # an estimate of one version, or none
    return (total if total is not None else resource.merge([])), read


class _Accumulator:
    """The parts of a range, merged as they arrive, in bounded memory.

    Ordered resources (``ent``'s partials, small) keep every part and merge
    them in range order at the end. Summed resources (counts, possibly large
    n-gram tables) add each part into one total as it arrives, and into the
    coarse cache blocks it belongs to, each stored and dropped once complete.
    """

    def __init__(
        self, resource: Resource, op: Opened, coarse: Sequence[int], store: ChunkStore | None
    ):
        self.resource = resource
        self.op = op
        self.store = store if coarse else None
        self.parts: dict[int, tuple[int, Array]] = {}
        self.total: Array | None = None
        self.bytes = 0
        # Coarse blocks to store: start -> (stop, running total or None, bytes seen).
        self.blocks: dict[int, list[Any]] = {}
        if self.store is not None:
            for level in coarse:
                for a, b in aligned_blocks(op.start, op.stop, level, end=op.source.size):
                    self.blocks.setdefault(a, [b, None, 0])

    def add(self, a: int, b: int, array: Array, *, cached: bool = False) -> None:
        self.bytes += b - a
        if self.resource.ordered:
            self.parts[a] = (b, array)
        elif self.total is None:
            self.total = np.array(array)  # a writable copy: frames are read-only
        else:
            self.resource.add_into(self.total, array)
        if self.store is None or self.resource.ordered:
            return
        for start, block in list(self.blocks.items()):
            stop = block[0]
            if start <= a and b <= stop and not (cached and (a, b) == (start, stop)):
                block[1] = (
                    np.array(array) if block[1] is None else self.resource.merge([block[1], array])
                )
                block[2] += b - a
                if block[2] == stop - start:
                    if (a, b) != (start, stop):  # else it is that block's own entry already
                        self.store.put(
                            ChunkKey(self.resource.name, (self.op.fid,), start, stop), block[1]
                        )
                    del self.blocks[start]
            elif start <= a < stop or start < b <= stop:
                del self.blocks[start]  # not tiled by parts (a larger hit covers it)

    def merged(self) -> Array:
        if self.resource.ordered:
            return self.resource.merge([self.parts[s][1] for s in sorted(self.parts)])
        return self.total if self.total is not None else self.resource.merge([])

    def commit_ordered(self) -> None:
        """Store the coarse blocks of an ordered resource (its parts are all kept)."""
        if self.store is None or not self.resource.ordered:
            return
        for start, (stop, _, _) in self.blocks.items():
            inside = [s for s in sorted(self.parts) if start <= s < stop]
            if not inside or inside[0] != start or self.parts[inside[-1]][0] != stop:
                continue
            if (
                any(self.parts[x][0] != y for x, y in itertools.pairwise(inside))
                or len(inside) == 1
            ):
                continue
            merged = self.resource.merge([self.parts[s][1] for s in inside])
            self.store.put(ChunkKey(self.resource.name, (self.op.fid,), start, stop), merged)


def _chunk_for(ctx: Context, parsed: Parsed, length: int) -> int:
    """Return the chunk size of a request: shared out among the workers, or as large as allowed.

    A request that need not be spread (a batch run, whose other files keep
    the workers busy) is cut only where the largest chunk ends, and a range
    shorter than that is one chunk (the power of two above its length): every
    cut is a sub-request, a broker round trip and a thread hop, for nothing.
    """
    if parsed.spread:
        return chunk_size_for(length, ctx.settings.parallelism)
    return min(MAX_CHUNK, max(MIN_CHUNK, 1 << (length - 1).bit_length()))


def _commit_levels(
    store: ChunkStore | None, resource: Resource, parsed: Parsed, length: int, chunk: int
) -> list[int]:
    """Return the cache levels a request stores, largest first."""
    if store is None or not parsed.cache.commit:
        return []
    if parsed.spread:
        # The recommended levels, and the request's own size: asked again
        # (a viewer redrawing), an aligned request is then one entry to read.
        wanted = [*commit_levels(length, min_block=resource.min_block, chunk=chunk)]
        wanted.append(floor_power_of_two(length))
    else:
        # One of many (a batch): the blocks it is computed in, what a rerun
        # reads (one entry for a range of one chunk), and not the finer
        # blocks a viewer zooming in would (a tenth of it, ...): each entry
        # is a file created, and for bench/corpus.py's 2,000 files that is
        # 652 entries instead of 6,501.
        wanted = [chunk]
    return sorted(
        {lv for lv in wanted if lv >= resource.min_block and parsed.cache.commits(lv)},
        reverse=True,
    )


async def run_chunked(
    ctx: Context,
    resource: Resource,
    op: Opened,
    parsed: Parsed,
    *,
    summarize: Callable[[Array], Any] | None = None,
) -> AsyncIterator[Progress]:
    """Compute `resource` over `op`'s range, yielding answers coarse to exact.

    Args:
        ctx: the task's context.
        resource: what to compute.
        op: the opened source and range.
        parsed: the request.
        summarize: what the service makes of the exact data (``stats``: ent's
            statistics), called in the kernel thread that finishes it, so that
            this work is off the event loop, which every file of a batch
            waits on; its result is the exact answer's `Progress.summary`.
    """
    length = op.length
    store = usable_cache(ctx)

    def exact(data: Array) -> Progress:
        return Progress(data, 1.0, 1.0, None if summarize is None else summarize(data))

    if length == 0:
        merged = resource.merge([])
        yield exact(resource.finish(op.source, op.start, op.stop, merged))
        return
    chunk = _chunk_for(ctx, parsed, length)
    levels = _commit_levels(store, resource, parsed, length, chunk)
    fine = [lv for lv in levels if lv <= chunk]
    acc = _Accumulator(resource, op, [lv for lv in levels if lv > chunk], store)

    def finish() -> Progress:
        merged = acc.merged()
        data = resource.finish(op.source, op.start, op.stop, merged)
        # Every part is of the version `op.fid` names (chunk workers check
        # theirs); the bytes read here too, before anything is committed.
        op.source.check_unchanged()
        acc.commit_ordered()
        return exact(data)

    def compute_here(a: int, b: int) -> Progress:
        # What a chunk worker would do (the finer cache levels stored too),
        # a round trip through the broker nearer.
        acc.add(a, b, compute_chunk(resource, op.source, op.fid, a, b, fine, store))
        return finish()

    def cover() -> tuple[list[tuple[int, int]], list[tuple[int, int]], Progress | None]:
        hits, gaps = _cover(store, resource, op, parsed)
        for a, b, array in hits:
            acc.add(a, b, array, cached=True)
        chunks = [
            c
            for a, b in gaps
            for c in plan_chunks(a, b, workers=1, min_chunk=chunk, max_chunk=chunk)
        ]
        if not chunks:
            return gaps, chunks, finish()
        if len(chunks) == 1 and not parsed.reports.estimate:
            # One chunk and no estimate to send first (small files, and a
            # batch's files): the request is this one thread hop.
            return gaps, chunks, compute_here(*chunks[0])
        return gaps, chunks, None

    gaps, chunks, answered = await run_kernel(cover)
    if answered is not None:
        yield answered
        return
    covered = acc.bytes

    if parsed.reports.estimate:
        # The sample first, alone on the cores: a few MiB read in a few ms,
        # where sharing the cores with the chunks just sent made it 10x slower.
        sample, read = await run_kernel(_sample, resource, op, gaps)
        estimate = resource.estimate(sample, (length - covered) / max(1, read))
        data = resource.merge([acc.merged(), estimate]) if covered else estimate
        yield Progress(data, covered / length, (covered + read) / length)

    if len(chunks) == 1:
        yield await run_kernel(compute_here, *chunks[0])
        return
    send, receive = anyio.create_memory_object_stream[tuple[int, int, Array]](math.inf)
    calls = []
    for a, b in chunks:
        body = {
            "resource": resource.name,
            **op.where(),
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
    async with anyio.create_task_group() as tg, send, receive:
        count = len(calls)
        while calls:
            # Handed over: a Call (and its result) lives only while collected.
            tg.start_soon(collect, *calls.pop())
        received = 0
        while received < count:
            # The answers that arrived together are merged in one thread hop.
            answers = [await receive.receive()]
            while True:
                try:
                    answers.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            await run_kernel(_add_all, acc, answers)
            received += len(answers)
            done = acc.bytes
            if parsed.reports.progress and done < length and limit.ready():
                estimate = resource.estimate(acc.merged(), length / done)
                yield Progress(estimate, done / length, done / length)
    yield await run_kernel(finish)


def _add_all(acc: _Accumulator, answers: list[tuple[int, int, Array]]) -> None:
    for a, b, array in answers:
        acc.add(a, b, array)


def progress_report(progress: Progress, **meta: Any) -> Report:
    """Return the `Report` of one engine answer."""
    return Report(
        progress.data, completion=progress.completion, precision=progress.precision, meta=meta
    )
