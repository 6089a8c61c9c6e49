"""ZeroMQ I/O threads switched between latency and throughput (`binglide.transports.iothreads`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import anyio
import pytest
import zmq
import zmq.asyncio

from binglide.broker import run_broker
from binglide.connect import connect_remote
from binglide.core import Heartbeat, Outgoing, Protocol
from binglide.transports import iothreads
from binglide.transports.base import Incoming
from binglide.transports.iothreads import IoThreadPolicy, start_threads
from binglide.transports.zeromq import ZmqBroker, ZmqPeer, new_context, shared_io_policy
from binglide.worker import run_worker

from .zmq_helpers import (
    HB,
    io_thread_policies,
    ipc_address,
    processes,
    run_io_thread,
    start_broker,
    start_worker,
    value,
)
from .zmq_services import Double

pytestmark = pytest.mark.zmq

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="thread policies and /proc are Linux's"
)


def _policies_switchable() -> bool:
    """Whether this process may set a thread's policy (a seccomp filter may refuse it)."""
    try:
        os.sched_setscheduler(0, os.sched_getscheduler(0), os.sched_param(0))
    except (OSError, AttributeError):
        return False
    return True


switchable = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _policies_switchable(),
    reason="this process may not set its threads' scheduling policy",
)


class _Recorder:
    """Stands for the policy's system call: records (thread, policy), or refuses some."""

    def __init__(self, refuse: int | None = None) -> None:
        self.calls: list[tuple[int, int]] = []
        self.refuse = refuse

    def __call__(self, tid: int, policy: int) -> None:
        self.calls.append((tid, policy))
        if policy == self.refuse:
            raise PermissionError("not here")


def _latency(policy: IoThreadPolicy) -> bool:
    """Whether `policy` favours latency now (a call: mypy keeps no narrowing across one)."""
    return policy.latency


@pytest.fixture
def named_io_threads(monkeypatch):
    """Every candidate thread counts as an I/O thread (no real threads are switched)."""
    monkeypatch.setattr(iothreads, "_io_threads", tuple)


@linux_only
@pytest.mark.usefixtures("named_io_threads")
def test_a_run_of_lone_deliveries_favours_latency_and_a_burst_throughput() -> None:
    record = _Recorder()
    policy = IoThreadPolicy((11, 12), set_policy=record, lone_run=3)
    other, batch = os.SCHED_OTHER, os.SCHED_BATCH

    policy.lone()
    policy.lone()
    assert record.calls == []
    assert not _latency(policy)
    policy.lone()
    assert record.calls == [(11, other), (12, other)]
    assert _latency(policy)
    for _ in range(5):  # already there: no more system calls
        policy.lone()
    assert len(record.calls) == 2

    policy.burst()
    assert record.calls[2:] == [(11, batch), (12, batch)]
    assert not _latency(policy)
    policy.burst()
    assert len(record.calls) == 4

    # A burst breaks the run: lone_run more in a row are needed again.
    policy.lone()
    policy.lone()
    policy.burst()
    policy.lone()
    policy.lone()
    assert len(record.calls) == 4
    policy.lone()
    assert record.calls[4:] == [(11, other), (12, other)]


@linux_only
@pytest.mark.usefixtures("named_io_threads")
def test_a_refused_switch_leaves_the_threads_as_they_started_and_stops_trying() -> None:
    record = _Recorder(refuse=os.SCHED_OTHER)
    policy = IoThreadPolicy((11,), set_policy=record, lone_run=1)
    policy.lone()
    # Tried, refused, and put back as the context started it.
    assert record.calls == [(11, os.SCHED_OTHER), (11, os.SCHED_BATCH)]
    assert policy.off
    assert not _latency(policy)
    policy.burst()
    policy.lone()
    assert len(record.calls) == 2


@linux_only
def test_a_policy_without_io_threads_switches_nothing() -> None:
    # The main thread is no ZeroMQ I/O thread: found by name, nothing to switch.
    record = _Recorder()
    policy = IoThreadPolicy((os.getpid(),), set_policy=record, lone_run=1)
    policy.lone()
    assert policy.off
    assert record.calls == []


@switchable
def test_a_new_contexts_io_thread_is_found_and_switched() -> None:
    ctx = new_context(zmq.Context)
    try:
        threads = start_threads(ctx)
        assert start_threads(ctx) == ()  # started already: nothing new
        run_io_thread(ctx)  # it names itself and applies SCHED_BATCH when it runs
        [io] = iothreads._io_threads(threads)
        assert os.sched_getscheduler(io) == os.SCHED_BATCH
        policy = IoThreadPolicy(threads, lone_run=1)
        policy.lone()
        assert os.sched_getscheduler(io) == os.SCHED_OTHER
        policy.burst()
        assert os.sched_getscheduler(io) == os.SCHED_BATCH
    finally:
        ctx.term()


class _Told:
    """A policy that records what the transport told it."""

    def __init__(self) -> None:
        self.told: list[str] = []

    def lone(self) -> None:
        self.told.append("lone")

    def burst(self) -> None:
        self.told.append("burst")


async def test_a_peer_tells_its_policy_whether_messages_come_alone_or_in_a_burst() -> None:
    ctx = zmq.asyncio.Context()
    broker = ZmqBroker.bind("inproc://io-policy", curve=None, max_message_size=None, context=ctx)
    peer = ZmqPeer.connect("inproc://io-policy", identity="p", context=ctx)
    assert peer.io_policy is None  # a context of the caller's: not binglide's to switch
    told = _Told()
    peer.io_policy = told  # type: ignore[assignment]  # duck-typed stand-in
    received: list[object] = []
    enough = anyio.Event()
    wanted = 1

    def on_message(protocol: Protocol, msg: object) -> None:
        received.append(msg)
        if len(received) == wanted:
            enough.set()

    try:
        with anyio.fail_after(10):
            # The broker learns the peer's route from a message of its.
            await peer.send(Protocol.WORKER, Heartbeat())
            got: list[Sequence[Incoming]] = []
            ready = anyio.Event()

            def on_broker(batch: Sequence[Incoming]) -> None:
                got.append(batch)
                ready.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(broker.deliver_to, on_broker)
                await ready.wait()
                [[(who, _, _)]] = got
                await tg.start(peer.deliver_to, on_message)
                # One message: delivered alone.
                broker.send_nowait(Outgoing(who, Protocol.WORKER, Heartbeat()))
                await enough.wait()
                assert told.told == ["lone"]
                # Three sent at once (inproc: all in the peer's queue before its
                # reader runs): one burst, and no lone delivery in it.
                enough, wanted = anyio.Event(), 4
                for _ in range(3):
                    broker.send_nowait(Outgoing(who, Protocol.WORKER, Heartbeat()))
                await enough.wait()
                assert told.told == ["lone", "burst"]
                tg.cancel_scope.cancel()
    finally:
        await peer.aclose()
        await broker.aclose()
        ctx.destroy(linger=0)


@linux_only
async def test_a_peer_asks_for_the_shared_contexts_policy() -> None:
    with ipc_address() as address:
        peer = ZmqPeer.connect(address, adaptive_io=True)
        try:
            assert peer.io_policy is not None
            assert peer.io_policy is shared_io_policy()
        finally:
            await peer.aclose()
        plain = ZmqPeer.connect(address)
        try:
            assert plain.io_policy is None
        finally:
            await plain.aclose()


@switchable
async def test_a_worker_serving_requests_one_at_a_time_lets_its_io_thread_preempt_it() -> None:
    with anyio.fail_after(30), processes() as procs, ipc_address() as address:
        procs.append(await start_broker(address))
        worker = start_worker(address, "tests.zmq_services:Double")
        procs.append(worker)
        async with connect_remote(address, heartbeat_interval=HB) as client:
            # Requests one at a time come alone (as the broker's heartbeats
            # do); a heartbeat beside a request may make a burst now and
            # then, so look after each.
            seen = set()
            for n in range(60):
                assert value(await client.request("double", {"n": n})) == 2 * n
                seen |= set(io_thread_policies(worker.pid).values())
                if os.SCHED_OTHER in seen:
                    break
            assert os.SCHED_OTHER in seen


@linux_only
async def test_run_worker_asks_for_the_shared_contexts_policy() -> None:
    with anyio.fail_after(10), ipc_address() as address:
        async with anyio.create_task_group() as tg:
            running = await tg.start(
                lambda task_status: run_broker(address, task_status=task_status)
            )
            worker = await tg.start(
                lambda task_status: run_worker(
                    running.address, Double, heartbeat_interval=None, task_status=task_status
                )
            )
            assert worker._transport.io_policy is shared_io_policy() is not None
            tg.cancel_scope.cancel()
