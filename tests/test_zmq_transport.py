"""The ZeroMQ transport: broker, worker and client as separate processes."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
import zmq
import zmq.asyncio

from binglide.errors import TransportClosed
from binglide.remote import connect_remote, run_broker
from binglide.transports.zeromq import ZmqBroker, ZmqPeer

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
