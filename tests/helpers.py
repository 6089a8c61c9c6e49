"""Shared test helpers: a broker-machine driver and small services."""

from __future__ import annotations

import contextlib
import importlib
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import numpy as np
import pytest

import binglide
from binglide.core import BrokerMachine, Message, Outgoing, PeerId, Protocol

if TYPE_CHECKING:
    from binglide.transports import PeerTransport


#: The benchmarks' directory: some tests check what a bench's figures rely on.
BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench_module(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` (a script directory, not a package)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


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

    def receive(self, peer: str, protocol: Protocol, msg: Message) -> list[Outgoing]:
        """Feed `msg` from `peer` on `protocol` (any sub-protocol and version)."""
        self.machine.receive(PeerId(peer), protocol, msg, self.now)
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


#: The transports the end-to-end tests run over: in one process, and real
#: ZeroMQ sockets (loopback tcp, ipc) with the broker, workers and clients in
#: the same event loop.
TRANSPORTS = (
    "inproc",
    pytest.param("zmq-tcp", marks=pytest.mark.zmq),
    pytest.param("zmq-ipc", marks=pytest.mark.zmq),
)

#: Decorate a test taking a ``transport`` argument to run it over each transport.
all_transports = pytest.mark.parametrize("transport", TRANSPORTS)

#: Heartbeats over ZeroMQ: finite, so that liveness runs, and roomy enough that
#: a test loop stalled by a loaded machine never looks dead (liveness 3: 1.5 s).
ZMQ_HEARTBEAT_INTERVAL = 0.5


class Deployment:
    """A real broker and workers, and a way to open many clients."""

    def __init__(
        self,
        connect: Callable[[str | None], PeerTransport],
        broker: binglide.Broker,
        workers: list[binglide.Worker],
        *,
        heartbeat_interval: float | None = None,
        network: binglide.InprocNetwork | None = None,
    ):
        self._connect = connect
        self.broker = broker
        self.workers = workers
        self.heartbeat_interval = heartbeat_interval
        self.network = network

    def client(self, name: str | None = None) -> binglide.Client:
        return binglide.Client(self._connect(name), heartbeat_interval=self.heartbeat_interval)


@asynccontextmanager
async def deployment(
    services: list[type[binglide.Service]],
    *,
    workers: int | dict[str, int] = 1,
    config: binglide.BrokerConfig | None = None,
    transport: str = "inproc",
) -> AsyncIterator[Deployment]:
    """Start a broker and workers over `transport`; stop them on exit.

    ``inproc`` runs over an `InprocNetwork`; ``zmq-tcp`` and ``zmq-ipc`` over
    real ZeroMQ sockets (a fresh context, loopback tcp or ipc in a temporary
    directory) with heartbeats every `ZMQ_HEARTBEAT_INTERVAL` seconds.
    """
    from binglide.connect import start_workers

    config = config or binglide.BrokerConfig(heartbeat_interval=float("inf"), service_timeout=2.0)
    if transport != "inproc":
        async with _zmq_deployment(services, workers, config, transport) as d:
            yield d
        return
    network = binglide.InprocNetwork()
    async with anyio.create_task_group() as tg:
        broker = binglide.Broker(network.bind(), config=config)
        await tg.start(broker.serve)
        async with start_workers(network, services, workers=workers) as started:
            yield Deployment(network.connect, broker, started, network=network)
        tg.cancel_scope.cancel()


@asynccontextmanager
async def _zmq_deployment(
    services: list[type[binglide.Service]],
    workers: int | dict[str, int],
    config: binglide.BrokerConfig,
    transport: str,
) -> AsyncIterator[Deployment]:
    import zmq.asyncio

    from binglide.connect import _counts
    from binglide.transports.zeromq import ZmqBroker, ZmqPeer, new_identity

    hb = ZMQ_HEARTBEAT_INTERVAL
    config = attrs.evolve(config, heartbeat_interval=hb)
    classes = list(dict.fromkeys(services))
    counts = _counts(classes, workers)
    ctx = zmq.asyncio.Context()
    try:
        with contextlib.ExitStack() as stack:
            if transport == "zmq-ipc":
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bg", dir="/tmp"))
                address = f"ipc://{tmp}/broker.sock"
            elif transport == "zmq-tcp":
                address = "tcp://127.0.0.1:*"
            else:
                raise ValueError(f"unknown transport {transport!r}")
            broker_end = ZmqBroker.bind(address, context=ctx)

            def connect(name: str | None, prefix: str = "client") -> PeerTransport:
                identity = name or new_identity(prefix)
                return ZmqPeer.connect(broker_end.address, identity=identity, context=ctx)

            async with anyio.create_task_group() as tg:
                broker = binglide.Broker(broker_end, config=config)
                await tg.start(broker.serve)
                started: list[binglide.Worker] = []
                for cls in classes:
                    for _ in range(counts[cls.name]):
                        worker = binglide.Worker(
                            cls(), connect(None, f"w-{cls.name}"), heartbeat_interval=hb
                        )
                        await tg.start(worker.serve)
                        started.append(worker)
                # Every worker registered before the test starts: READY
                # crosses real sockets, so wait for the broker to know them.
                while broker.statistics().workers < len(started):  # noqa: ASYNC110
                    await anyio.sleep(0.001)
                yield Deployment(connect, broker, started, heartbeat_interval=hb)
                tg.cancel_scope.cancel()
    finally:
        ctx.destroy(linger=0)


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Wait until `predicate()` holds, checking whenever every task is blocked."""
    while not predicate():
        await anyio.wait_all_tasks_blocked()
        if not predicate():
            # Over ZeroMQ, messages in flight live in ZeroMQ's I/O thread,
            # which no task waits for: poll.
            await anyio.sleep(0.001)
