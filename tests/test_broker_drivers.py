"""The broker's drivers: `Broker` takes its machine; both loops share one turn."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

import binglide
from binglide.broker import Broker, turn
from binglide.core import BrokerConfig, BrokerMachine, PeerId, Protocol, Ready, Waiting, encode
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


def test_python_dash_m_binglide_is_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "binglide", "--version"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.decode().startswith(f"binglide {binglide.__version__}")
