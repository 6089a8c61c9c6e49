"""Stand-in services for the command's tests against a real broker.

Workers serve them as ``tests.cli.cli_services:Name``.

They take the names of built-in analyses, so that ``binglide histogram
--connect`` reaches them, and leave marker files (see `tests.zmq_services.mark`)
in ``$BINGLIDE_TEST_MARKERS``, so a test can wait for "the task started" and
"the task was cancelled" without guessing times.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import anyio
import numpy as np

from binglide import Report, Service
from tests.zmq_services import mark

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from binglide import Context, Task


def _markers() -> str:
    return os.environ["BINGLIDE_TEST_MARKERS"]


class BlockingHistogram(Service):
    """A ``histogram`` that sends one estimate, then waits until it is cancelled."""

    name = "histogram"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        meta = {"start": 0, "stop": 1 << 30}
        yield Report(np.zeros(256, dtype=np.uint64), completion=0.0, precision=0.0, meta=meta)
        mark(_markers(), "started")
        try:
            await anyio.sleep_forever()
        finally:
            mark(_markers(), "cancelled")


class FailingStats(Service):
    """A ``stats`` whose handler raises after a first estimate, as a buggy analysis would."""

    name = "stats"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        yield Report(np.zeros(256, dtype=np.uint64), completion=0.0, precision=0.0)
        raise ZeroDivisionError("the stand-in stats service always fails")
