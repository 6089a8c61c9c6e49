"""The ZeroMQ transport: broker, worker and client as separate processes."""

from __future__ import annotations

import os
import sys

import anyio
import anyio.lowlevel
import numpy as np
import pytest
import zmq
import zmq.asyncio

from binglide.broker import run_broker
from binglide.connect import connect_remote
from binglide.errors import TransportClosed
from binglide.transports.zeromq import ZmqBroker, ZmqPeer, new_context, shared_context

from .zmq_helpers import (
    HB,
    free_tcp_address,
    ipc_address,
    processes,
    start_broker,
    start_worker,
    value,
)

pytestmark = pytest.mark.zmq


@pytest.fixture
def context():
    ctx = zmq.asyncio.Context()
    yield ctx
    ctx.destroy(linger=0)


async def test_frames_round_trip_with_routing_ids(context):
    with anyio.fail_after(5):
        broker = ZmqBroker.bind("tcp://127.0.0.1:*", context=context)
        peer = ZmqPeer.connect(broker.address, identity="peer-a", context=context)
        big = np.arange(1 << 17, dtype=np.uint8)
        await peer.send([b"MDPC02", b"\x05", memoryview(big.data)])
        who, frames = await broker.receive()
        assert who == "peer-a"
        assert frames[:2] == [b"MDPC02", b"\x05"]
        assert bytes(frames[2]) == big.tobytes()
        await broker.send(who, [b"MDPC02", b"\x05"])
        assert await peer.receive() == [b"MDPC02", b"\x05"]
        await broker.send(type(who)("nobody"), [b"lost"])  # silently dropped
        await peer.aclose()
        await broker.aclose()
        with pytest.raises(TransportClosed):
            await broker.receive()
        with pytest.raises(TransportClosed):
            await peer.send([b"x"])


async def test_close_during_receive_is_transport_closed(context):
    with anyio.fail_after(5):
        peer = ZmqPeer.connect("tcp://127.0.0.1:1", context=context)
        async with anyio.create_task_group() as tg:

            async def receive() -> None:
                with pytest.raises(TransportClosed):
                    await peer.receive()

            tg.start_soon(receive)
            await anyio.wait_all_tasks_blocked()
            await peer.aclose()


async def test_a_waiting_receive_sees_messages_while_the_peer_sends(context):
    """The peer waits on ZeroMQ's edge-triggered fd; its own sends must not eat a wake-up."""
    with anyio.fail_after(10):
        broker = ZmqBroker.bind("tcp://127.0.0.1:*", context=context)
        peer = ZmqPeer.connect(broker.address, identity="peer-b", context=context)
        received: list[list[bytes]] = []
        rounds = 2000

        async def peer_receives() -> None:
            while len(received) < rounds:
                received.append([bytes(f) for f in await peer.receive()])

        async def echo() -> None:
            for _ in range(rounds):
                who, frames = await broker.receive()
                await broker.send(who, frames)

        async with anyio.create_task_group() as tg:
            tg.start_soon(peer_receives)
            tg.start_soon(echo)
            for i in range(rounds):
                peer.send_nowait([b"%d" % i])
                if i % 7 == 0:
                    await anyio.lowlevel.checkpoint()
        assert received == [[b"%d" % i] for i in range(rounds)]
        await peer.aclose()
        await broker.aclose()


async def test_a_full_socket_makes_send_wait_in_order(context):
    with anyio.fail_after(10):
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.RCVHWM, 1)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        peer = ZmqPeer.connect(f"tcp://127.0.0.1:{port}", context=context)
        peer._socket.setsockopt(zmq.SNDHWM, 1)
        payload = b"x" * 100_000
        sent = 0
        with pytest.raises(anyio.WouldBlock):
            for sent in range(10_000):
                peer.send_nowait([b"%d" % sent, payload])
        async with anyio.create_task_group() as tg:
            tg.start_soon(peer.send, [b"late", b""])
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.WouldBlock):
                peer.send_nowait([b"overtakes", b""])  # must not pass the waiting send
            got = []
            while True:
                frames = await router.recv_multipart()
                got.append(frames[1])
                if frames[1] == b"late":
                    break
        assert got == [b"%d" % i for i in range(sent)] + [b"late"]
        await peer.aclose()
        router.close(linger=0)


async def test_a_cancelled_receive_leaves_nothing_behind(context):
    with anyio.fail_after(5):
        broker = ZmqBroker.bind("tcp://127.0.0.1:*", context=context)
        peer = ZmqPeer.connect(broker.address, identity="peer-c", context=context)
        with anyio.move_on_after(0.05):
            await peer.receive()
        assert peer._waiters == []
        await peer.send([b"hello"])
        who, _ = await broker.receive()
        await broker.send(who, [b"back"])
        assert await peer.receive() == [b"back"]
        await peer.aclose()
        await broker.aclose()


@pytest.mark.parametrize("kind", ["tcp", "ipc"])
async def test_processes_serve_a_client(kind):
    with anyio.fail_after(20), processes() as procs, ipc_address() as ipc:
        address = free_tcp_address() if kind == "tcp" else ipc
        procs.append(await start_broker(address))
        procs.append(start_worker(address, "tests.zmq_services:Double"))
        async with connect_remote(address, heartbeat_interval=HB) as client:
            reports = [await client.request("double", {"n": n}) for n in range(5)]
            assert [value(r) for r in reports] == [0, 2, 4, 6, 8]
            assert reports[0].meta["pid"] == procs[1].pid


async def test_in_process_broker_with_worker_process(context):
    with anyio.fail_after(20), processes() as procs:
        async with anyio.create_task_group() as tg:
            running = await tg.start(
                lambda task_status: run_broker(
                    "tcp://127.0.0.1:*", context=context, task_status=task_status
                )
            )
            procs.append(start_worker(running.address, "tests.zmq_services:Double"))
            async with connect_remote(
                running.address, heartbeat_interval=None, context=context
            ) as client:
                calls = [client.request("double", {"n": n}) for n in range(50)]
                results = [value(await c) for c in calls]
            assert results == [2 * n for n in range(50)]
            assert running.broker.statistics().completed == 50
            tg.cancel_scope.cancel()


def _io_threads() -> dict[int, int]:
    """ZeroMQ I/O threads of this process: thread id -> scheduling policy."""
    found = {}
    for entry in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{entry}/comm") as f:
                name = f.read().strip()
            if name.startswith("ZMQbg/IO"):
                found[int(entry)] = os.sched_getscheduler(int(entry))
        except OSError:
            continue  # a thread that ended meanwhile
    return found


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SCHED_BATCH and /proc are Linux's"
)
def test_new_context_runs_its_io_threads_without_wakeup_preemption() -> None:
    before = _io_threads()
    ctx = new_context(zmq.Context)
    try:
        # The setting binglide makes, as the context holds it.
        assert ctx.get(zmq.THREAD_SCHED_POLICY) == os.SCHED_BATCH
        # The I/O thread applies it (and its name) when it starts running,
        # after the first socket returns: wait for a message to go through
        # it (TCP is carried by the I/O thread), then it has surely started.
        server, client = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        try:
            port = server.bind_to_random_port("tcp://127.0.0.1")
            client.connect(f"tcp://127.0.0.1:{port}")
            client.send(b"ping")
            assert server.poll(10_000), "no message through the I/O thread in 10 s"
            assert server.recv() == b"ping"
            new = {tid: policy for tid, policy in _io_threads().items() if tid not in before}
        finally:
            server.close(linger=0)
            client.close(linger=0)
    finally:
        ctx.term()
    assert new, "the context started no I/O thread"
    assert set(new.values()) == {os.SCHED_BATCH}


def test_shared_context_is_one_per_process_and_binglides_own() -> None:
    assert shared_context() is shared_context()
    assert shared_context() is not zmq.asyncio.Context.instance()
