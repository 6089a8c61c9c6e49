"""Small services for the ZeroMQ process tests, importable as ``tests.zmq_services:Name``.

They leave marker files in the directory their request names, so that a test
can wait for "the task started on worker pid P" or "the task was cancelled"
without sleeping for a guessed time.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import numpy as np

from binglide import Report, Service

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from binglide import Context, Task


def mark(directory: str, what: str) -> None:
    """Leave a marker file ``what-<pid>-<unique>`` in `directory`, atomically."""
    final = Path(directory) / f"{what}-{os.getpid()}-{uuid.uuid4().hex}"
    temp = final.with_suffix(".tmp")
    temp.write_text(str(os.getpid()))
    temp.rename(final)


class Double(Service):
    """Answer ``n * 2`` (and the pid that computed it)."""

    name = "double"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        n = int(task.body["n"])
        yield Report(np.array([n * 2], dtype=np.int64), meta={"pid": os.getpid()})


class Slow(Service):
    """Compute ``n * 2`` in a thread for ``seconds`` (a kernel stand-in)."""

    name = "slow"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        n, seconds = int(task.body["n"]), float(task.body["seconds"])
        mark(task.body["dir"], "started")
        # Like the analyses' kernels: the work runs in a thread, the event
        # loop (and so the heartbeats) runs on.
        await anyio.to_thread.run_sync(time.sleep, seconds)
        yield Report(np.array([n * 2], dtype=np.int64), meta={"pid": os.getpid()})


class Block(Service):
    """Wait until cancelled, leaving a ``cancelled`` marker when it is."""

    name = "block"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        mark(task.body["dir"], "started")
        try:
            await anyio.sleep_forever()
        finally:
            mark(task.body["dir"], "cancelled")
        yield Report(None)  # pragma: no cover - never reached


class Upper(Service):
    """The text of the request in capitals, as tests/mdp_peers.py's workers answer it.

    A partial report first (half done), then the final one: meta ``text``, and
    the text's bytes as a uint8 array.
    """

    name = "upper"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        text = str(task.body.get("text", "")).upper()
        data = np.frombuffer(text.encode(), dtype=np.uint8)
        yield Report(data, completion=0.5, meta={"text": text})
        yield Report(data, meta={"text": text})
