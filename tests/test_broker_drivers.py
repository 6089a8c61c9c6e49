"""The broker's drivers: `Broker` takes its machine; both loops share one turn."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import anyio
import pytest

import binglide
from binglide.broker import Broker, turn
from binglide.core import (
    BrokerConfig,
    BrokerMachine,
    Disconnect,
    Failure,
    Heartbeat,
    Message,
    PeerId,
    Protocol,
    Ready,
    Request,
    Waiting,
    encode,
)
from binglide.transports.base import BrokerTransport, Incoming
from binglide.transports.zeromq import router_incoming


async def test_broker_drives_the_machine_it_is_given() -> None:
    network = binglide.InprocNetwork()
    machine = BrokerMachine(BrokerConfig(heartbeat_interval=float("inf")))
    broker = Broker(network.bind(), machine)
    assert broker.machine is machine
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(broker.serve)
            async with network.connect("w") as worker:
                await worker.send(Protocol.WORKER, Ready("echo"))
                while machine.statistics().workers == 0:
                    await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()


async def test_broker_refuses_a_machine_and_a_config() -> None:
    async with binglide.InprocNetwork().bind() as transport:
        with pytest.raises(ValueError, match="machine or a config"):
            Broker(transport, BrokerMachine(), config=BrokerConfig())


def test_a_turn_feeds_drops_garbage_and_runs_due_timers() -> None:
    machine = BrokerMachine(BrokerConfig(heartbeat_interval=1.0, liveness=3))
    ready = encode(Ready("echo"), protocol=Protocol.WORKER, from_broker=False)
    # Frames that do not decode are dropped where they are decoded.
    received = [router_incoming([b"w", *ready]), router_incoming([b"x", b"garbage"])]
    assert received[1] is None
    # A message the machine refuses (a client never sends WAITING) is dropped too.
    refused = (PeerId("y"), Protocol.CLIENT, Waiting(1, True))
    out, deadline = turn(machine, [m for m in received if m is not None] + [refused], now=0.0)
    assert machine.statistics().workers == 1
    assert out == []
    assert deadline == 1.0  # the first heartbeat
    # Past the worker's liveness, the same turn (with nothing received) expires it.
    out, deadline = turn(machine, [], now=10.0)
    assert machine.statistics().workers == 0


async def test_an_in_process_broker_takes_its_turns_a_message_at_a_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The in-process transport delivers one message a call (`Broker._on_message`,
    # the machine's `step`): what a turn does must all still happen there.
    network = binglide.InprocNetwork()
    broker = Broker(network.bind(), config=BrokerConfig(heartbeat_interval=float("inf")))
    worker, client = network.connect("w"), network.connect("c")
    got: dict[str, list[Message]] = {"w": [], "c": []}
    failed = anyio.Event()

    def take(name: str, msg: Message) -> None:
        got[name].append(msg)
        if isinstance(msg, Failure):
            failed.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(broker.serve)
            for name, end in (("w", worker), ("c", client)):
                await tg.start(end.deliver_to, lambda _, msg, _n=name: take(_n, msg))
            # A notice (a second READY: handled, the worker disconnected) is logged.
            worker.send_nowait(Protocol.WORKER, Ready("s"))
            worker.send_nowait(Protocol.WORKER, Ready("s"))
            assert got["w"] == [Disconnect()]
            [notice] = [r for r in caplog.records if r.name == "binglide.broker"]
            assert notice.levelno == logging.WARNING
            assert "peer 'w': a second READY" in notice.getMessage()
            # A refused message is dropped (counted: one line a period); the
            # broker serves on.
            client.send_nowait(Protocol.CLIENT, Waiting(1, True))
            assert broker.drops.total == 2
            # A request queued with a timeout: its deadline, new in this turn,
            # wakes the timer task, which fails it when it passes.
            client.send_nowait(Protocol.CLIENT, Heartbeat())
            client.send_nowait(Protocol.CLIENT, Request(1, "s", timeout=0.05))
            await failed.wait()
            [failure] = got["c"][1:]  # (after the broker's HEARTBEAT)
            assert isinstance(failure, Failure)
            assert (failure.rid, failure.kind) == (1, "unavailable")
            tg.cancel_scope.cancel()


async def test_a_transport_of_batches_delivers_each_message_by_default() -> None:
    incoming = [(PeerId(p), Protocol.CLIENT, Heartbeat()) for p in "abc"]

    class Batches(BrokerTransport):
        async def deliver_to(self, handler: Any, **kwargs: Any) -> None:
            handler(incoming[:2])
            handler(incoming[2:])

        def send_nowait(self, out: Any) -> None:
            raise NotImplementedError

        async def send(self, out: Any) -> None:
            raise NotImplementedError

        async def aclose(self) -> None:
            pass

    got: list[Incoming] = []
    await Batches().deliver_each_to(lambda *fields: got.append(fields))
    assert got == incoming


def test_python_dash_m_binglide_is_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "binglide", "--version"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.decode().startswith(f"binglide {binglide.__version__}")
