"""``data``: a view of a range's bytes, decimated when the range is larger than the view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..report import Report
from ..service import Service
from . import kernels
from .common import opened, option_int, parse_body
from .threads import run_kernel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..report import Task
    from ..service import Context
    from .sources import Source

__all__ = ("DataService", "runs_of")

Array = np.ndarray[Any, Any]


def runs_of(offsets: Array) -> list[list[int]]:
    """Return the ``[offset, length]`` runs of consecutive offsets."""
    if len(offsets) == 0:
        return []
    breaks = np.flatnonzero(np.diff(offsets) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(offsets)]])
    return [[int(offsets[s]), int(e - s)] for s, e in zip(starts, ends, strict=True)]


def _view(source: Source, start: int, stop: int, size: int) -> tuple[Array, list[list[int]]]:
    length = stop - start
    if length <= size:
        data = source.read(start, stop)
        source.check_unchanged()
        return data, [[start, length]] if length else []
    runs = runs_of(kernels.decimate(length, size) + start)
    # One read per run of about sqrt(size) bytes: only the kept bytes.
    data = source.gather([(offset, offset + count) for offset, count in runs])
    source.check_unchanged()
    return data, runs


class DataService(Service):
    """At most `size` bytes of the range: all of them, or runs of about sqrt(size) spread out."""

    name = "data"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        parsed = parse_body(task.body, sources=1)
        size = option_int(parsed.options, "size", 65536, 1, 1 << 30)
        with opened(parsed.inputs[0], ctx) as op:
            data, runs = await run_kernel(_view, op.source, op.start, op.stop, size)
            exact = op.length <= size
            yield Report(
                data,
                precision=1.0,
                meta={"exact": exact, "runs": runs, "start": op.start, "stop": op.stop},
            )
