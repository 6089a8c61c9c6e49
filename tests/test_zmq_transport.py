"""The ZeroMQ transport: broker, worker and client as separate processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import numpy as np
import pytest
import zmq
import zmq.asyncio

from binglide.broker import run_broker
from binglide.connect import connect_remote
from binglide.core import (
    Final,
    Heartbeat,
    Message,
    Outgoing,
    PeerId,
    Protocol,
    Request,
)
from binglide.errors import TransportClosed
from binglide.transports.base import Incoming
from binglide.transports.zeromq import (
    ZmqBroker,
    ZmqPeer,
    events_reader,
    has_message,
    new_context,
    receive_frames,
    send_frames,
    shared_context,
)

from .zmq_helpers import (
    HB,
    free_tcp_address,
    io_thread_policies,
    ipc_address,
    processes,
    run_io_thread,
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


async def _receive(end: ZmqBroker | ZmqPeer, count: int = 1) -> list[tuple[Any, ...]]:
    """Deliver from `end` until `count` messages came; return them."""
    got: list[tuple[Any, ...]] = []
    async with anyio.create_task_group() as tg:

        def take(*item: Any) -> None:
            got.extend(item[0] if isinstance(end, ZmqBroker) else [item])
            if len(got) >= count:
                tg.cancel_scope.cancel()

        tg.start_soon(end.deliver_to, take)
    return got


async def test_messages_round_trip_with_routing_ids(context):
    with anyio.fail_after(5):
        broker = ZmqBroker.bind("tcp://127.0.0.1:*", context=context)
        peer = ZmqPeer.connect(broker.address, identity="peer-a", context=context)
        big = np.arange(1 << 17, dtype=np.uint8)
        peer.send_nowait(Protocol.CLIENT, Request(1, "echo", (memoryview(big.data),)))
        [(who, protocol, msg)] = await _receive(broker)
        assert who == "peer-a"
        assert protocol is Protocol.CLIENT
        assert isinstance(msg, Request)
        assert (msg.rid, msg.service) == (1, "echo")
        assert bytes(msg.payload[0]) == big.tobytes()
        await broker.send(Outgoing(who, Protocol.CLIENT, Final(1, (b"back",), "echo")))
        assert await _receive(peer) == [(Protocol.CLIENT, Final(1, (b"back",), "echo"))]
        broker.send_nowait(Outgoing(PeerId("nobody"), Protocol.CLIENT, Heartbeat()))  # dropped
        await peer.aclose()
        await broker.aclose()
        with pytest.raises(TransportClosed):
            await broker.deliver_to(lambda batch: None)
        with pytest.raises(TransportClosed):
            await peer.send(Protocol.CLIENT, Heartbeat())


async def test_malformed_frames_are_dropped_and_delivery_goes_on(context, caplog):
    with anyio.fail_after(5):
        broker = ZmqBroker.bind("tcp://127.0.0.1:*", context=context)
        rogue = context.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.connect(broker.address)
        await rogue.send_multipart([b"MDPC02", b"\x11", b"echo", b"1", b"{not json"])
        await rogue.send_multipart([b"MDPC02", b"\x05"])
        [(_, protocol, msg)] = await _receive(broker)
        assert (protocol, msg) == (Protocol.CLIENT, Heartbeat())
        assert any("JSON" in r.getMessage() for r in caplog.records)
        rogue.close(linger=0)
        await broker.aclose()


async def test_close_during_delivery_is_transport_closed(context):
    with anyio.fail_after(5):
        peer = ZmqPeer.connect("tcp://127.0.0.1:1", context=context)
        async with anyio.create_task_group() as tg:

            async def deliver() -> None:
                with pytest.raises(TransportClosed):
                    await peer.deliver_to(lambda protocol, msg: None)

            tg.start_soon(deliver)
            await anyio.wait_all_tasks_blocked()
            await peer.aclose()


async def test_a_waiting_delivery_sees_messages_while_the_peer_sends(context):
    # The peer's sends must not swallow the file descriptor's signal of a
    # message that arrived meanwhile: delivery would wait forever.
    with anyio.fail_after(20):
        broker = ZmqBroker.bind("tcp://127.0.0.1:*", context=context)
        peer = ZmqPeer.connect(broker.address, identity="peer-b", context=context)
        received: list[int] = []
        rounds = 2000

        def echo(batch: Sequence[Incoming]) -> None:
            for who, _, msg in batch:
                assert isinstance(msg, Request)
                broker.send_nowait(Outgoing(who, Protocol.CLIENT, Final(msg.rid, (), "e")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(broker.deliver_to, echo)

            def take(protocol: Protocol, msg: Message) -> None:
                assert isinstance(msg, Final)
                received.append(msg.rid)
                if len(received) == rounds:
                    tg.cancel_scope.cancel()

            tg.start_soon(peer.deliver_to, take)
            for i in range(1, rounds + 1):
                peer.send_nowait(Protocol.CLIENT, Request(i, "e"))
                if i % 7 == 0:
                    await anyio.lowlevel.checkpoint()
        assert received == list(range(1, rounds + 1))
        await peer.aclose()
        await broker.aclose()


async def test_a_full_socket_makes_send_wait_in_order(context):
    # inproc: no I/O thread drains the pipe behind the test's back (over tcp it
    # moves messages on into the kernel's buffers, so "full" does not stay full).
    with anyio.fail_after(10):
        address = f"inproc://full-{os.getpid()}"
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.RCVHWM, 1)
        router.bind(address)
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 1)
        sock.connect(address)
        peer = ZmqPeer(sock, PeerId("full"), address)
        sent = 0
        with pytest.raises(anyio.WouldBlock):
            for sent in range(1, 10_000):
                peer.send_nowait(Protocol.CLIENT, Request(sent, "s"))
        got: list[int] = []

        def take_one() -> None:
            frames = zmq.Socket.shadow(router.underlying).recv_multipart(zmq.NOBLOCK)
            got.append(int(frames[4]))  # routing id, header, command, service, rid

        async with anyio.create_task_group() as tg:
            tg.start_soon(peer.send, Protocol.CLIENT, Request(10_000, "s"))
            await anyio.wait_all_tasks_blocked()
            # Make room without letting the waiting send run: a send_nowait now
            # finds room in the socket, yet must not pass the send that waits.
            while not sock.getsockopt(zmq.EVENTS) & zmq.POLLOUT:
                take_one()
            with pytest.raises(anyio.WouldBlock):
                peer.send_nowait(Protocol.CLIENT, Request(10_001, "s"))
            while not got or got[-1] != 10_000:
                frames = await router.recv_multipart()
                got.append(int(frames[4]))
        assert got == [*range(1, sent), 10_000]
        await peer.aclose()
        router.close(linger=0)


async def test_a_cancelled_delivery_loses_nothing(context):
    with anyio.fail_after(5):
        broker = ZmqBroker.bind("tcp://127.0.0.1:*", context=context)
        peer = ZmqPeer.connect(broker.address, identity="peer-c", context=context)
        with anyio.move_on_after(0.05):
            await peer.deliver_to(lambda protocol, msg: None)
        await peer.send(Protocol.CLIENT, Heartbeat())
        [(who, _, _)] = await _receive(broker)
        await broker.send(Outgoing(who, Protocol.CLIENT, Heartbeat("back")))
        assert await _receive(peer) == [(Protocol.CLIENT, Heartbeat("back"))]
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


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SCHED_BATCH and /proc are Linux's"
)
def test_new_context_runs_its_io_threads_without_wakeup_preemption() -> None:
    before = io_thread_policies()
    ctx = new_context(zmq.Context)
    try:
        # The setting binglide makes, as the context holds it.
        assert ctx.get(zmq.THREAD_SCHED_POLICY) == os.SCHED_BATCH
        run_io_thread(ctx)  # it applies the setting when it starts running
        new = {tid: policy for tid, policy in io_thread_policies().items() if tid not in before}
    finally:
        ctx.term()
    assert new, "the context started no I/O thread"
    assert set(new.values()) == {os.SCHED_BATCH}


def test_shared_context_is_one_per_process_and_binglides_own() -> None:
    assert shared_context() is shared_context()
    assert shared_context() is not zmq.asyncio.Context.instance()


def test_the_events_reader_and_has_message_read_zmq_events_and_refuse_a_closed_socket() -> None:
    # They read ZMQ_EVENTS through zmq_poll (cheaper than pyzmq's get): the
    # same bits as the option, and a closed socket an error, never a poll of
    # whatever its released handle stands for.
    ctx = zmq.Context()
    try:
        server, client = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        server.bind("inproc://events")
        client.connect("inproc://events")
        events = events_reader(server)
        assert events() == server.get(zmq.EVENTS) == zmq.POLLOUT
        assert not has_message(server)
        client.send_multipart([b"a", b"b"])
        assert events() == server.get(zmq.EVENTS) == zmq.POLLIN | zmq.POLLOUT
        assert has_message(server)
        assert server.recv_multipart() == [b"a", b"b"]
        assert not has_message(server)
        server.close(linger=0)
        with pytest.raises(zmq.ZMQError) as caught:
            events()
        assert caught.value.errno == zmq.ENOTSOCK
        with pytest.raises(zmq.ZMQError):
            has_message(server)
    finally:
        ctx.destroy(linger=0)


def test_frames_of_every_kind_and_size_go_out_and_come_back_whole() -> None:
    # Small bytes are copied, 64 KiB and more go without a copy and come
    # back as views; the last frame ends the message, whatever its kind.
    big = np.arange(1 << 15, dtype=np.uint32)  # 128 KiB
    small = np.arange(8, dtype=np.uint8)
    messages: list[list[Any]] = [
        [b"only"],
        [b""],
        [b"head", b"", bytes(big.data), b"tail"],
        [b"head", small.data, big.data],  # views of 1- and 4-byte items
        [big.data, b"x" * (64 << 10), zmq.Frame(b"frame")],
    ]
    ctx = zmq.Context()
    try:
        server, client = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        server.rcvtimeo = 10_000  # a frame that never ends its message fails, not hangs
        server.bind("inproc://frames")
        client.connect("inproc://frames")
        for message in messages:
            send_frames(client, message)
        for message in messages:
            got = receive_frames(server)
            assert [bytes(f) for f in got] == [bytes(f) for f in message]
            for frame in got:
                # A view of ZeroMQ's buffer from 64 KiB on, bytes under.
                assert isinstance(frame, memoryview if len(frame) >= 64 << 10 else bytes)
        assert not has_message(server)
    finally:
        ctx.destroy(linger=0)


async def test_an_eager_delivery_runs_on_the_signal_without_a_read_of_the_events() -> None:
    # A receiving end's callback is called on the descriptor's signal without
    # the events read first (it receives at once, and its failed receive, or
    # its check after the last message, re-arms the descriptor); the events
    # are read when a task waits on them, to wake it.
    from binglide._aio import EdgeWatcher

    reads: list[int] = []
    calls: list[bytes] = []
    readable, writable = os.pipe()
    try:

        def events() -> int:
            reads.append(1)
            return zmq.POLLIN | zmq.POLLOUT

        def callback() -> None:
            try:
                calls.append(os.read(readable, 16))
            except BlockingIOError:
                calls.append(b"")  # a signal that was not for it: it copes

        os.set_blocking(readable, False)
        watcher = EdgeWatcher(readable, events)
        with anyio.fail_after(5):
            watcher.deliver(zmq.POLLIN, callback, eager=True)
            while not calls:  # the look at the next turn: eager too
                await anyio.lowlevel.checkpoint()
            assert calls == [b""]
            os.write(writable, b"x")
            while len(calls) < 2:
                await anyio.lowlevel.checkpoint()
            assert calls == [b"", b"x"]
            assert reads == []  # no read of the events for either
            # A task waiting for room: the events are read (before it waits,
            # and on the signal), the task woken, the callback called.
            async with anyio.create_task_group() as tg:
                woken = anyio.Event()

                async def wait_for_room() -> None:
                    await watcher.wait(zmq.POLLOUT)
                    woken.set()

                watcher_events = events
                reads.clear()

                def no_room() -> int:
                    reads.append(1)
                    return zmq.POLLIN if len(reads) == 1 else watcher_events()

                watcher._events = no_room
                tg.start_soon(wait_for_room)
                await anyio.wait_all_tasks_blocked()
                os.write(writable, b"y")
                await woken.wait()
            assert len(reads) >= 2
            assert calls[-1] == b"y"
            # Without eager, every signal reads the events first.
            watcher._events = events
            watcher.deliver(zmq.POLLIN, callback)
            reads.clear()
            os.write(writable, b"z")
            while calls[-1] != b"z":
                await anyio.lowlevel.checkpoint()
            assert reads
            watcher.close()
    finally:
        os.close(readable)
        os.close(writable)


async def test_an_end_signalled_with_nothing_to_receive_still_delivers_what_comes_later(context):
    # Delivery receives on the descriptor's signal without reading the events
    # first: a signal with no message behind it (here: looks asked for with
    # nothing there) ends in a failed receive, which must leave the
    # descriptor armed for the messages that come after.
    with anyio.fail_after(5):
        broker = ZmqBroker.bind("tcp://127.0.0.1:*", context=context)
        peer = ZmqPeer.connect(broker.address, identity="peer-b", context=context)
        got: list[tuple[Any, ...]] = []
        arrived = [anyio.Event()]

        def take(*item: Any) -> None:
            got.append(item)
            arrived[0].set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(peer.deliver_to, take)
            peer.send_nowait(Protocol.CLIENT, Heartbeat())
            [(who, _, _)] = await _receive(broker)
            for rid in range(1, 4):
                for _ in range(3):  # signals for nothing: each a failed receive
                    peer._watcher.schedule()
                    await anyio.lowlevel.checkpoint()
                assert len(got) == rid - 1
                arrived[0] = anyio.Event()
                await broker.send(Outgoing(who, Protocol.CLIENT, Final(rid, (b"x",), "s")))
                await arrived[0].wait()
            tg.cancel_scope.cancel()
        assert [msg for _, msg in got] == [Final(rid, (b"x",), "s") for rid in range(1, 4)]
        await peer.aclose()
        await broker.aclose()


async def test_a_reply_sent_inside_its_delivery_costs_one_look_at_the_events_a_message(
    context, monkeypatch
):
    # A peer's handler usually sends from inside the delivery (a worker's
    # reply, a client's next request): the send may take the descriptor's
    # signal of a message arrived meanwhile, and the delivery's own look after
    # the handler (is another message there?) is that check too: one look a
    # message, not one after the receive and one after the send.
    import binglide.transports.zeromq as transport

    looks: list[int] = []
    real_read = transport.read_events

    def counted_read(sock: Any) -> int:
        looks.append(1)
        return real_read(sock)

    monkeypatch.setattr(transport, "read_events", counted_read)
    raw_context = zmq.Context()
    router = raw_context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    peer = ZmqPeer.connect(f"tcp://127.0.0.1:{port}", identity="looked", context=context)
    got: list[Final] = []
    rounds = 50
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                def reply(protocol: Protocol, msg: Message) -> None:
                    assert isinstance(msg, Final)
                    got.append(msg)
                    peer.send_nowait(Protocol.CLIENT, Request(len(got), "back"))

                await tg.start(peer.deliver_to, reply)
                peer.send_nowait(Protocol.CLIENT, Heartbeat())  # the router learns the peer
                while not await anyio.to_thread.run_sync(router.poll, 100):
                    pass
                router.recv_multipart()
                sent = 0
                for burst in (1,) * (rounds - 10) + (10,):  # one at a time, then ten at once
                    looks.clear()
                    for _ in range(burst):
                        sent += 1
                        router.send_multipart(
                            transport.router_outgoing(
                                Outgoing(PeerId("looked"), Protocol.CLIENT, Final(sent, (), "e"))
                            )
                        )
                    for _ in range(burst):  # every one answered, in order
                        while not await anyio.to_thread.run_sync(router.poll, 100):
                            pass
                        _, *frames = router.recv_multipart()
                        assert b"back" in frames
                    assert [m.rid for m in got[-burst:]] == list(range(sent - burst + 1, sent + 1))
                    if burst == 1:
                        # The signal's delivery receives at once (no look), and
                        # looks once after its handler's send.
                        assert len(looks) == 1, looks
                    else:
                        # A burst is taken together after its first message:
                        # a look after each receive, and one after the batch's
                        # handler (its sends); at most two a message, however
                        # the burst is split between signals.
                        assert len(looks) <= 2 * burst, looks
                tg.cancel_scope.cancel()
    finally:
        await peer.aclose()
        router.close(linger=0)
        raw_context.term()
    assert len(got) == rounds
