"""Shared test helpers: a broker-machine driver and small services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import numpy as np

import binglide
from binglide.core import BrokerMachine, Message, Outgoing, PeerId, Protocol


class BrokerDriver:
    """Feed a `BrokerMachine` and collect what it sends, per peer (no I/O)."""

    def __init__(self, machine: BrokerMachine) -> None:
        self.machine = machine
        self.now = 0.0

    def client(self, peer: str, msg: Message) -> list[Outgoing]:
        self.machine.receive(PeerId(peer), Protocol.CLIENT, msg, self.now)
        return self.machine.outgoing()

    def worker(self, peer: str, msg: Message) -> list[Outgoing]:
        self.machine.receive(PeerId(peer), Protocol.WORKER, msg, self.now)
        return self.machine.outgoing()

    def tick(self, now: float) -> list[Outgoing]:
        self.now = now
        self.machine.handle_timer(now)
        return self.machine.outgoing()


def to(out: list[Outgoing], peer: str) -> list[Message]:
    """The messages of `out` addressed to `peer`."""
    return [o.message for o in out if o.peer == peer]


class Echo(binglide.Service):
    """Yield three partial reports, then the body's ``x`` as the final one."""

    name = "echo"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        parts = int(task.body.get("parts", 3))
        for i in range(parts):
            yield binglide.Report(np.arange(i + 1), completion=(i + 1) / (parts + 1))
        yield binglide.Report(np.array([task.body["x"]]), meta={"x": task.body["x"]})


class TreeSum(binglide.Service):
    """Split ``n`` in two sub-requests down to 1: the result is ``n`` (every node counted)."""

    name = "treesum"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        n, tag = task.body["n"], task.body.get("tag", "")
        if n <= 1:
            yield binglide.Report(np.array([1], dtype=np.int64))
            return
        left = ctx.request("treesum", {"n": n // 2, "tag": tag + "L"})
        right = ctx.request("treesum", {"n": n - n // 2, "tag": tag + "R"})
        results: list[Any] = [None, None]

        async def get(i: int, call: binglide.Call) -> None:
            results[i] = await call

        async with anyio.create_task_group() as tg:
            tg.start_soon(get, 0, left)
            tg.start_soon(get, 1, right)
        yield binglide.Report(results[0].data + results[1].data)


class Boom(binglide.Service):
    """Raise the exception the body names."""

    name = "boom"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        yield binglide.Report(None, completion=0.1)
        if task.body.get("kind") == "request":
            raise binglide.RequestError("bad input: fix it")
        raise ZeroDivisionError("division by zero in the handler")


class Deployment:
    """A real in-process broker and workers, and a way to open many clients."""

    def __init__(
        self,
        network: binglide.InprocNetwork,
        broker: binglide.Broker,
        workers: list[binglide.Worker],
    ):
        self.network = network
        self.broker = broker
        self.workers = workers

    def client(self, name: str | None = None) -> binglide.Client:
        return binglide.Client(self.network.connect(name))


@asynccontextmanager
async def deployment(
    services: list[type[binglide.Service]],
    *,
    workers: int | dict[str, int] = 1,
    config: binglide.BrokerConfig | None = None,
) -> AsyncIterator[Deployment]:
    """Start a broker and workers over an `InprocNetwork`; stop them on exit."""
    from binglide.connect import start_workers

    network = binglide.InprocNetwork()
    config = config or binglide.BrokerConfig(heartbeat_interval=float("inf"), service_timeout=2.0)
    async with anyio.create_task_group() as tg:
        broker = binglide.Broker(network.bind(), config=config)
        await tg.start(broker.serve)
        async with start_workers(network, services, workers=workers) as started:
            yield Deployment(network, broker, started)
        tg.cancel_scope.cancel()


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Wait until `predicate()` holds, checking whenever every task is blocked."""
    while not predicate():
        await anyio.wait_all_tasks_blocked()
