"""Reports between peers: objects in one process, frames at a ZeroMQ socket, arrays read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import numpy as np
import pytest
import zmq.asyncio

import binglide
from binglide.core import Final, Heartbeat, Outgoing, PeerId, Protocol
from binglide.payload import DeferredReport, decode_report, defer_report
from binglide.transports.zeromq import ZmqBroker, ZmqPeer

from .helpers import deployment

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def _report() -> binglide.Report:
    data = {"counts": np.arange(6, dtype=np.uint32).reshape(2, 3), "total": np.array(15)}
    return binglide.Report(data, completion=0.5, precision=0.25, meta={"k": "v", "x": 1.5})


def _assert_is(got: binglide.Report, sent: binglide.Report, *, final: bool) -> None:
    assert (got.completion, got.precision, got.meta, got.final) == (0.5, 0.25, sent.meta, final)
    assert isinstance(got.data, dict)
    assert isinstance(sent.data, dict)
    assert list(got.data) == list(sent.data)
    for key, array in got.data.items():
        assert (array.dtype, array.shape) == (sent.data[key].dtype, sent.data[key].shape)
        np.testing.assert_array_equal(array, sent.data[key])
        assert not array.flags.writeable


@pytest.mark.zmq
@pytest.mark.parametrize("hop", ["to a client", "from a worker"])
async def test_a_deferred_report_is_encoded_at_a_zeromq_socket(hop: str) -> None:
    # A broker that serves peers of both kinds routes a report made in its
    # process (a DeferredReport, never encoded there) to a remote client, or
    # receives one from a worker whose payload was deferred: either way the
    # frames are made where the socket reads them, and parse as the report.
    report = _report()
    payload = defer_report(report)
    assert isinstance(payload, DeferredReport)
    ctx = zmq.asyncio.Context()
    try:
        with anyio.fail_after(10):
            broker = ZmqBroker.bind("tcp://127.0.0.1:*", context=ctx)
            peer = ZmqPeer.connect(broker.address, identity="peer-a", context=ctx)
            if hop == "to a client":
                # The client speaks first: then the broker's ROUTER knows it.
                await peer.send(Protocol.CLIENT, Heartbeat())
                await _receive(broker)
                out = Outgoing(PeerId("peer-a"), Protocol.CLIENT, Final(7, payload, "svc"))
                await broker.send(out)
                [(_, msg)] = await _receive(peer)
            else:
                await peer.send(Protocol.WORKER, Final(7, payload))
                [(_, _, msg)] = await _receive(broker)
            assert isinstance(msg, Final)
            assert msg.rid == 7
            assert type(msg.payload) is not DeferredReport  # real frames off the wire
            _assert_is(decode_report(msg.payload, final=True), report, final=True)
            await peer.aclose()
            await broker.aclose()
    finally:
        ctx.destroy(linger=0)


async def _receive(end: ZmqBroker | ZmqPeer) -> list[tuple[Any, ...]]:
    """Deliver from `end` until a message came; return it."""
    got: list[tuple[Any, ...]] = []
    async with anyio.create_task_group() as tg:

        def take(*item: Any) -> None:
            got.extend(item[0] if isinstance(end, ZmqBroker) else [item])
            tg.cancel_scope.cancel()

        tg.start_soon(end.deliver_to, take)
    return got


class _Keeper(binglide.Service):
    """Answers with an array of its own that it changes afterwards, and checks the request's."""

    name = "keeper"
    kept: ClassVar[list[np.ndarray[Any, Any]]] = []
    seen: ClassVar[list[tuple[bool, bool]]] = []

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        (sent,) = task.arrays
        # The worker cannot write the client's array through the request.
        _Keeper.seen.append((sent.flags.writeable, _writes(sent)))
        own = np.arange(4) + int(sent.sum())
        _Keeper.kept.append(own)
        yield binglide.Report(own, meta={"n": 1})


def _writes(array: np.ndarray[Any, Any]) -> bool:
    try:
        array[...] = 0
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("transport", ["inproc", "zmq-ipc"])
async def test_peers_cannot_write_each_others_arrays(transport: str) -> None:
    _Keeper.kept.clear()
    _Keeper.seen.clear()
    with anyio.fail_after(20):
        async with deployment([_Keeper], transport=transport) as d, d.client() as client:
            mine = np.ones(3, dtype=np.int64)
            report = await client.request("keeper", {}, mine)
            np.testing.assert_array_equal(mine, [1, 1, 1])
            assert _Keeper.seen == [(False, False)]
            [own] = _Keeper.kept
            got = report.array
            np.testing.assert_array_equal(got, [3, 4, 5, 6])
            assert report.meta == {"n": 1}
            # The client cannot write the worker's array through its report...
            assert not got.flags.writeable
            assert not _writes(got)
            np.testing.assert_array_equal(own, [3, 4, 5, 6])
            assert own.flags.writeable  # ... which stays the worker's to change
