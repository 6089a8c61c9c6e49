"""The broker's drivers: `Broker` takes its machine; both loops share one turn."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from typing import Any

import anyio
import anyio.to_thread
import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st

import binglide
from binglide.broker import (
    _DRAIN_BLOCKING,
    _WAIT_AT_MOST,
    Broker,
    _receive_plan,
    _receive_timeout,
    turn,
)
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

from .zmq_helpers import free_tcp_address, start_broker, stop


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


# -- the blocking loop (`binglide broker`) ----------------------------------------------


@given(
    current=st.one_of(st.just(-1), st.integers(1, 10**8)),
    wait=st.integers(1, 10**8),
)
def test_a_blocking_broker_s_receive_timeout_never_waits_past_its_deadline(
    current: int, wait: int
) -> None:
    timeout = _receive_timeout(current, wait)
    # Never past the deadline, never a busy loop (0 would not block at all),
    # and at least half the time to it: an idle broker wakes up a few times
    # per deadline, not hundreds.
    assert 1 <= timeout <= wait
    assert timeout >= wait // 2
    # What is kept is kept: asked again with its own answer, nothing changes.
    assert _receive_timeout(timeout, wait) == timeout


def test_a_busy_blocking_broker_sets_its_receive_timeout_a_few_times_a_deadline() -> None:
    # Messages every millisecond until the deadline 10 s away: the time to it
    # shrinks at each one, and a timeout set again each time would be a
    # pyzmq option call a message.
    current, changes = -1, 0
    for wait in range(10_000, 0, -1):
        timeout = _receive_timeout(current, wait)
        assert timeout <= wait
        changes += timeout != current
        current = timeout
    assert changes <= 15  # about log2(10,000)


@given(
    deadline=st.one_of(st.none(), st.floats(0, 100)),
    now=st.floats(0, 100),
    current=st.one_of(st.just(-1), st.integers(1, _WAIT_AT_MOST)),
    later=st.floats(0, 1),
)
def test_a_blocking_broker_keeps_its_receive_plan_only_while_it_would_be_made_again(
    deadline: float | None, now: float, current: int, later: float
) -> None:
    timeout, recheck = _receive_plan(deadline, now, current)
    # Due: take what is ready, without a wait.
    assert (timeout == 0) == (deadline is not None and deadline <= now)
    if not timeout:
        return
    assert 1 <= timeout <= _WAIT_AT_MOST
    # The loop keeps the timeout, for the same deadline, until `recheck` and
    # works nothing out meanwhile: at any time before it, working it out
    # again would keep it (so it never waits past the deadline either).
    at = now + later * (min(recheck, now + 2 * _WAIT_AT_MOST) - now)
    if at < recheck:
        assert _receive_plan(deadline, at, timeout)[0] == timeout
        if deadline is not None:
            assert at + timeout / 1000 <= deadline + 1e-9


def _mdp_client_burst(address: str, count: int) -> list[list[bytes]]:
    """Send a few MMI requests one at a time, then `count` at once; return the burst's replies."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(address)
        # One at a time first: the broker stops looking for a second message
        # after each (`_LOOK_EVERY`), and the burst's first messages meet it so.
        for _ in range(3):
            sock.send_multipart([b"MDPC02", b"\x01", b"mmi.service", b"nothing"])
            assert sock.poll(10_000), "no reply"
            assert sock.recv_multipart()[-1] == b"404"
        for i in range(count):
            sock.send_multipart([b"MDPC02", b"\x01", b"mmi.service", b"nothing-%d" % i])
        replies: list[list[bytes]] = []
        while len(replies) < count:
            assert sock.poll(10_000), f"{len(replies)} of {count} replies"
            replies.append(sock.recv_multipart())
        return replies
    finally:
        sock.close(linger=0)


def _heartbeats_of_an_idle_worker(address: str, count: int) -> None:
    """Register a plain MDP/0.2 worker; return once the broker has sent `count` heartbeats."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(address)
        sock.send_multipart([b"MDPW02", b"\x01", b"idle"])
        seen = 0
        while seen < count:
            # Nothing but heartbeats goes through the broker meanwhile: only its
            # timers can wake it up to send them.
            assert sock.poll(10_000), f"{seen} of {count} heartbeats"
            assert sock.recv_multipart() == [b"MDPW02", b"\x05"]
            sock.send_multipart([b"MDPW02", b"\x05"])  # alive: stay registered
            seen += 1
    finally:
        sock.close(linger=0)


@pytest.mark.zmq
async def test_the_blocking_broker_answers_a_burst_larger_than_a_turn_and_heartbeats_idle() -> (
    None
):
    address = free_tcp_address()
    broker = await start_broker(address)
    try:
        with anyio.fail_after(60):
            # More messages at once than one turn takes (`_DRAIN_BLOCKING`): the
            # rest wait for the next turns, none is lost.
            replies = await anyio.to_thread.run_sync(
                _mdp_client_burst, address, 3 * _DRAIN_BLOCKING + 7
            )
            assert {tuple(r[:3]) for r in replies} == {(b"MDPC02", b"\x03", b"mmi.service")}
            assert [r[3] for r in replies] == [b"404"] * len(replies)
            await anyio.to_thread.run_sync(_heartbeats_of_an_idle_worker, address, 5)
    finally:
        stop(broker)


def _one_request_then_gone(address: str) -> None:
    """Ask the broker one MMI question on a connection of its own, then close it."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(address)
        sock.send_multipart([b"MDPC02", b"\x01", b"mmi.service", b"nothing"])
        assert sock.poll(10_000), "no reply"
        assert sock.recv_multipart()[-1] == b"404"
    finally:
        sock.close(linger=0)
        ctx.term()


@pytest.mark.zmq
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_the_blocking_broker_stops_on_a_signal_however_it_waits(
    signum: signal.Signals,
) -> None:
    # A client's question, its connection closed, the signal: the broker is
    # then inside its receive, where libzmq handles the disconnection, and a
    # signal that comes while libzmq works (not while it sleeps in a system
    # call) is only noted: the receive waited on (about one time in four
    # here, before the broker bounded its waits), and the broker never
    # stopped. It stops, as asked (status 0), however the signal falls.
    for _ in range(4):
        address = free_tcp_address()
        broker = await start_broker(address)
        try:
            with anyio.fail_after(20):
                await anyio.to_thread.run_sync(_one_request_then_gone, address)
                broker.send_signal(signum)
                stopped = await anyio.to_thread.run_sync(_exited, broker, 10.0)
            assert stopped == 0, "the broker did not stop on the signal"
        finally:
            stop(broker)


def _exited(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """`proc`'s exit status, or None if it is still running after `timeout` seconds."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
