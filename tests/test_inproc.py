"""The in-process transport: objects handed over by function call, in order, never re-entered."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

import binglide
from binglide.core import Heartbeat, Message, Outgoing, PeerId, Protocol, Request
from binglide.transports.base import Incoming


def _out(peer: str, rid: int) -> Outgoing:
    return Outgoing(PeerId(peer), Protocol.CLIENT, Request(rid, "s"))


async def test_what_arrives_before_delivery_waits_for_it_in_order() -> None:
    network = binglide.InprocNetwork()
    broker = network.bind()
    peer = network.connect("p")
    requests = [Request(i, "s") for i in range(1, 4)]
    for request in requests:
        peer.send_nowait(Protocol.CLIENT, request)
    got: list[Incoming] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(broker.deliver_to, got.extend)
            tg.cancel_scope.cancel()
    assert got == [(PeerId("p"), Protocol.CLIENT, r) for r in requests]


async def test_delivery_is_a_call_in_the_senders_step() -> None:
    network = binglide.InprocNetwork()
    broker = network.bind()
    peer = network.connect("p")
    got: list[Incoming] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(broker.deliver_to, got.extend)
            peer.send_nowait(Protocol.CLIENT, Heartbeat())
            # No task ran in between: the broker's handler already has it.
            assert got == [(PeerId("p"), Protocol.CLIENT, Heartbeat())]
            tg.cancel_scope.cancel()


async def test_an_answer_sent_during_a_delivery_waits_until_it_returns() -> None:
    network = binglide.InprocNetwork()
    broker = network.bind()
    a, b = network.connect("a"), network.connect("b")
    log: list[str] = []

    def on_broker(batch: Sequence[Incoming]) -> None:
        for peer, _, msg in batch:
            assert isinstance(msg, Request)
            log.append(f"broker got {msg.rid} from {peer}")
            # Answer both peers at once, from inside the delivery.
            broker.send_nowait(_out("a", msg.rid))
            broker.send_nowait(_out("b", msg.rid))
            log.append(f"broker done with {msg.rid}")

    def on_a(protocol: Protocol, msg: Message) -> None:
        assert isinstance(msg, Request)
        log.append(f"a got {msg.rid}")
        if msg.rid == 1:
            a.send_nowait(Protocol.CLIENT, Request(2, "s"))  # answers at once
            log.append("a sent 2")

    def on_b(protocol: Protocol, msg: Message) -> None:
        assert isinstance(msg, Request)
        log.append(f"b got {msg.rid}")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for end, handler in ((broker, on_broker), (a, on_a), (b, on_b)):
                await tg.start(end.deliver_to, handler)
            a.send_nowait(Protocol.CLIENT, Request(1, "s"))
            tg.cancel_scope.cancel()
    # Every handler ran to its end before the next delivery; order is the sending order.
    assert log == [
        "broker got 1 from a",
        "broker done with 1",
        "a got 1",
        "a sent 2",
        "b got 1",
        "broker got 2 from a",
        "broker done with 2",
        "a got 2",
        "b got 2",
    ]


async def test_a_handlers_error_belongs_to_its_end() -> None:
    network = binglide.InprocNetwork()
    broker = network.bind()
    bad, good = network.connect("bad"), network.connect("good")
    got: list[Message] = []

    def explode(protocol: Protocol, msg: Message) -> None:
        raise ZeroDivisionError("in the handler")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(good.deliver_to, lambda protocol, msg: got.append(msg))

            async def deliver_bad() -> None:
                with pytest.raises(ZeroDivisionError, match="in the handler"):
                    await bad.deliver_to(explode)

            tg.start_soon(deliver_bad)
            await anyio.wait_all_tasks_blocked()
            broker.send_nowait(_out("bad", 1))  # the sender carries on
            broker.send_nowait(_out("bad", 2))  # lost: that end stopped
            broker.send_nowait(_out("good", 3))
            assert got == [Request(3, "s")]
            tg.cancel_scope.cancel()


async def test_a_cancelled_delivery_loses_nothing() -> None:
    network = binglide.InprocNetwork()
    broker = network.bind()
    peer = network.connect("p")
    got: list[Message] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(peer.deliver_to, lambda protocol, msg: got.append(msg))
            tg.cancel_scope.cancel()
        broker.send_nowait(_out("p", 1))
        async with anyio.create_task_group() as tg:
            await tg.start(peer.deliver_to, lambda protocol, msg: got.append(msg))
            tg.cancel_scope.cancel()
    assert got == [Request(1, "s")]


async def test_ends_close_and_break() -> None:
    network = binglide.InprocNetwork()
    broker = network.bind()
    peer, gone = network.connect("p"), network.connect("gone")
    await gone.aclose()
    broker.send_nowait(_out("gone", 1))  # a peer that left loses it, like a ROUTER's
    with pytest.raises(binglide.TransportClosed):
        gone.send_nowait(Protocol.CLIENT, Heartbeat())
    with pytest.raises(binglide.TransportClosed):
        await gone.deliver_to(lambda protocol, msg: None)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def deliver() -> None:
                with pytest.raises(binglide.TransportBroken):
                    await peer.deliver_to(lambda protocol, msg: None)

            tg.start_soon(deliver)
            await anyio.wait_all_tasks_blocked()
            await broker.aclose()
    with pytest.raises(binglide.TransportBroken):
        peer.send_nowait(Protocol.CLIENT, Heartbeat())
    with pytest.raises(binglide.TransportClosed):
        broker.send_nowait(_out("p", 1))


async def test_one_delivery_at_a_time() -> None:
    network = binglide.InprocNetwork()
    peer = network.connect("p")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(peer.deliver_to, lambda *item: None)
            with pytest.raises(anyio.BusyResourceError):
                await peer.deliver_to(lambda *item: None)
            tg.cancel_scope.cancel()


def test_names_are_unique() -> None:
    network = binglide.InprocNetwork()
    network.connect("p")
    with pytest.raises(ValueError, match="already connected"):
        network.connect("p")
    network.bind()
    with pytest.raises(RuntimeError, match="already has a broker"):
        network.bind()
    assert len({network.connect().identity for _ in range(3)}) == 3


async def test_the_broker_end_delivers_each_message_with_its_fields() -> None:
    # `deliver_each_to`: one call a message, (peer, protocol, message), in
    # the sender's step; `deliver_to` still gets batches (of one).
    network = binglide.InprocNetwork()
    broker = network.bind()
    peer = network.connect("p")
    peer.send_nowait(Protocol.CLIENT, Request(1, "s"))  # before delivery: waits
    got: list[tuple[PeerId, Protocol, Message]] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(broker.deliver_each_to, lambda *fields: got.append(fields))
            assert got == [(PeerId("p"), Protocol.CLIENT, Request(1, "s"))]
            peer.send_nowait(Protocol.CLIENT, Heartbeat())
            assert got[1:] == [(PeerId("p"), Protocol.CLIENT, Heartbeat())]
            tg.cancel_scope.cancel()
        batches: list[Sequence[Incoming]] = []
        async with anyio.create_task_group() as tg:
            await tg.start(broker.deliver_to, batches.append)
            peer.send_nowait(Protocol.CLIENT, Request(2, "s"))
            assert batches == [((PeerId("p"), Protocol.CLIENT, Request(2, "s")),)]
            tg.cancel_scope.cancel()
