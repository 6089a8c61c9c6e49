"""A worker against a broker driven by hand: each run of a task keeps its own state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import anyio
import numpy as np

import binglide
from binglide.core import (
    Cancel,
    Disconnect,
    Failure,
    Final,
    Message,
    Outgoing,
    PeerId,
    Protocol,
    Ready,
    Request,
    Waiting,
)
from binglide.payload import decode_report, encode_body, encode_report
from binglide.transports.base import Incoming

from .helpers import deployment


class Asker(binglide.Service):
    """Ask ``echo`` for ``n``, answer ``n + 1``; a cancelled run cleans up for a moment."""

    name = "asker"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        try:
            echoed = await ctx.request("echo", {"n": task.body["n"]})
        except anyio.get_cancelled_exc_class():
            # Cleanup that awaits (closing something): meanwhile the next run
            # of the same task gets to start.
            with anyio.CancelScope(shield=True):
                for _ in range(3):
                    await anyio.lowlevel.checkpoint()
            raise
        yield binglide.Report(echoed.array + 1)


W = PeerId("w")
M = TypeVar("M", bound=Message)


async def test_a_task_given_again_while_its_last_run_unwinds_runs_on_its_own() -> None:
    # The broker took the worker for dead (DISCONNECT) and gives it the same
    # task again at once: the cancelled run unwinds while the new one starts.
    # The old run must not cancel the new run's sub-request, say it stopped
    # waiting, or take the new run's cancel scope with it.
    network = binglide.InprocNetwork()
    broker = network.bind()
    got: list[Incoming] = []

    def sent(kind: type[M], protocol: Protocol) -> list[M]:
        return [m for _, p, m in got if p is protocol and isinstance(m, kind)]

    def give(tid: int) -> None:
        task = Request(tid, "asker", encode_body({"n": 41}), "1:cjob", ("asker/0",))
        broker.send_nowait(Outgoing(W, Protocol.WORKER, task))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(broker.deliver_to, got.extend)
            worker = binglide.Worker(Asker(), network.connect("w"))
            await tg.start(worker.serve)
            await anyio.wait_all_tasks_blocked()
            assert sent(Ready, Protocol.WORKER) == [Ready("asker")]

            give(5)
            await anyio.wait_all_tasks_blocked()
            [first] = sent(Request, Protocol.CLIENT)
            assert first.parent == 5

            broker.send_nowait(Outgoing(W, Protocol.WORKER, Disconnect()))
            give(5)
            await anyio.wait_all_tasks_blocked()
            # The first run is cancelled and withdraws its sub-request; the
            # second asked for its own and waits on it.
            assert len(sent(Ready, Protocol.WORKER)) == 2
            _, second = sent(Request, Protocol.CLIENT)
            assert second.parent == 5
            assert second.rid != first.rid
            assert not sent(Failure, Protocol.WORKER)
            assert sent(Waiting, Protocol.WORKER)[-1] == Waiting(5, True)
            assert worker.statistics().tasks == 1
            assert worker.statistics().waiting == 1

            answer = Final(second.rid, encode_report(binglide.Report(np.array([41]))), "echo")
            broker.send_nowait(Outgoing(W, Protocol.CLIENT, answer))
            await anyio.wait_all_tasks_blocked()
            [final] = sent(Final, Protocol.WORKER)
            assert final.rid == 5
            assert decode_report(final.payload, final=True).array.tolist() == [42]
            assert worker.statistics().completed == 1

            # Again, and then the broker cancels the second run: it is the one
            # cancelled (the first run's end did not take its scope along).
            give(6)
            await anyio.wait_all_tasks_blocked()
            broker.send_nowait(Outgoing(W, Protocol.WORKER, Disconnect()))
            give(6)
            await anyio.wait_all_tasks_blocked()
            assert worker.statistics().tasks == 1
            broker.send_nowait(Outgoing(W, Protocol.WORKER, Cancel("1:cjob", 6)))
            await anyio.wait_all_tasks_blocked()
            assert worker.statistics().tasks == 0
            assert worker.statistics().cancelled == 3  # both runs of 6, the first of 5
            tg.cancel_scope.cancel()


class _Countdown:
    """An async iterator that is not a generator: reports n, n-1, ..., 1."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __aiter__(self) -> _Countdown:
        return self

    async def __anext__(self) -> binglide.Report:
        if self.n == 0:
            raise StopAsyncIteration
        self.n -= 1
        return binglide.Report(np.array([self.n + 1]), completion=1.0 if self.n == 0 else 0.5)


class _IteratorService(binglide.Service):
    name = "countdown"

    def handle(self, task: binglide.Task, ctx: binglide.Context) -> _Countdown:
        return _Countdown(task.body["n"])


async def test_a_handler_may_return_any_async_iterable() -> None:
    with anyio.fail_after(10):
        async with deployment([_IteratorService]) as d, d.client() as client:
            call = client.request("countdown", {"n": 3})
            got = [int(report.array[0]) async for report in call]
            assert got == [3, 2, 1]
            assert (await client.request("countdown", {"n": 1})).array.tolist() == [1]


def test_a_run_starts_as_a_fresh_pool_call() -> None:
    # `_Run.__init__` sets `PoolCall`'s fields itself (no call a task): it
    # must set each one as `PoolCall.__init__` does, whatever fields it gains.
    from binglide._aio import PoolCall
    from binglide.worker import _Run

    worker = binglide.Worker(Asker(), binglide.InprocNetwork().connect())
    fresh = PoolCall()
    run = _Run(worker, 7)
    for slot in PoolCall.__slots__:
        assert getattr(run, slot) == getattr(fresh, slot), slot
