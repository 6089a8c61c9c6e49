"""The ``chunk`` service: one chunk of one resource, from the cache or computed.

Analyses fan their ranges out to it (see `binglide.services.engine`). A chunk
worker answers from the cache when the chunk is there; otherwise it computes
the chunk in a thread, in pieces of the finest cache level asked, stores
every aligned block of every level asked that lies inside the chunk, and
answers the merged result.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cachefs import ChunkKey, aligned_blocks
from ..errors import RequestError
from ..report import Report
from ..service import Service
from .common import source_id, usable_cache
from .remote import Remote, open_input
from .resources import Resource, resource_from_name
from .sources import Source, changed_error
from .threads import run_kernel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from ..cachefs import ChunkStore
    from ..report import Task
    from ..service import Context

__all__ = ("ChunkService", "compute_chunk")

Array = np.ndarray[Any, Any]


def compute_chunk(
    resource: Resource,
    source: Source,
    fid: str,
    start: int,
    stop: int,
    levels: Sequence[int],
    store: ChunkStore | None,
) -> Array:
    """Compute ``[start, stop)``, storing the aligned blocks of `levels` inside it (blocking).

    Raises:
        RequestError: the file changed while it was read (nothing is stored then).
    """
    # A level larger than the chunk still has a block here when the chunk is
    # the file's cut last block (aligned_blocks finds it).
    levels = sorted(set(levels))
    if not levels or store is None:
        result = resource.compute(source, start, stop)
        source.check_unchanged()
        return result
    finest = levels[0]
    edges = sorted({start, stop, *range(-(-start // finest) * finest, stop, finest)})
    pieces = {a: (b, resource.compute(source, a, b)) for a, b in itertools.pairwise(edges)}
    # Nothing read from a file that changed meanwhile may be stored.
    source.check_unchanged()
    for level in levels:
        for a, b in aligned_blocks(start, stop, level, end=source.size):
            inside = [pieces[s][1] for s in edges[:-1] if a <= s < b]
            block = inside[0] if len(inside) == 1 else resource.merge(inside)
            store.put(ChunkKey(resource.name, (fid,), a, b), block)
    return resource.merge([pieces[s][1] for s in edges[:-1]])


class ChunkService(Service):
    """Compute one chunk of a resource (a helper service of the analyses)."""

    name = "chunk"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        body = task.body
        try:
            resource = resource_from_name(body["resource"])
            path, fid = str(body["source"]), str(body["fid"])
            start, stop = int(body["start"]), int(body["stop"])
            levels = [int(lv) for lv in body.get("commit", [])]
            lookup = bool(body.get("lookup", True))
            remote = Remote.from_input(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise RequestError(
                f"a chunk request needs resource, source, fid, start, stop: {exc}"
            ) from exc
        store = usable_cache(ctx)
        key = ChunkKey(resource.name, (fid,), start, stop)

        def answer() -> tuple[Array, bool]:
            # Lookup, opening, the identity check and the computation in one
            # thread hop: a corpus of small files is thousands of chunks, and
            # each hop costs a loop turn and two context switches.
            if store is not None and lookup:
                cached = store.get(key)
                if cached is not None:
                    return cached, True
            with open_input(path, remote, roots=ctx.settings.roots, ctx=ctx) as source:
                if source_id(source) != fid:
                    # Never mix two versions of a file in one answer, or in the cache.
                    raise changed_error(path)
                if not 0 <= start <= stop <= source.size:
                    raise RequestError(
                        f"chunk [{start}, {stop}) is outside {path} ({source.size} bytes)"
                    )
                return compute_chunk(resource, source, fid, start, stop, levels, store), False

        result, cached = await run_kernel(answer)
        yield Report(result, meta={"cached": cached})
