"""Security: the loopback rule, CURVE, and a broker that survives a rogue peer."""

from __future__ import annotations

import logging
import random

import anyio
import pytest
import zmq
import zmq.asyncio

from binglide import BrokerConfig
from binglide.broker import run_broker
from binglide.connect import connect_remote
from binglide.core import Cancel, Disconnect, Heartbeat, Protocol, Ready, Request, encode
from binglide.core.messages import Failure, Final, Message, Partial, Waiting
from binglide.transports.zeromq import (
    CurveClientKeys,
    CurveServerKeys,
    ZmqBroker,
    generate_keys,
    is_local_address,
)
from binglide.worker import run_worker

from .zmq_helpers import value
from .zmq_services import Double

pytestmark = pytest.mark.zmq


@pytest.fixture
def context():
    ctx = zmq.asyncio.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.3.4.5:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("tcp://127.0.0.1:*", True),
        ("ipc:///tmp/x.sock", True),
        ("inproc://broker", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://10.0.0.5:5555", False),
        ("tcp://[::]:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://example.com:5555", False),
        ("tcp://10.0.0.5;127.0.0.1:5555", True),
        ("tcp://127.0.0.1;10.0.0.5:5555", False),
        ("udp://127.0.0.1:5555", False),
        ("127.0.0.1:5555", False),
    ],
)
def test_is_local_address(address, local):
    assert is_local_address(address) is local


class _NoSockets:
    """A context that fails the test if anything tries to make a socket."""

    def socket(self, *_: object) -> None:
        raise AssertionError("a socket was made: the refusal came too late")


@pytest.mark.parametrize("address", ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.1.2.3:1"])
async def test_non_loopback_bind_without_curve_is_refused_before_binding(address):
    with pytest.raises(ValueError, match="without CURVE"):
        ZmqBroker.bind(address, context=_NoSockets())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="without CURVE"):
        await run_broker(address, context=_NoSockets())  # type: ignore[arg-type]


async def test_curve_admits_authorised_peers_only(tmp_path, context):
    keys = generate_keys(tmp_path / "keys", clients=("client", "worker"))
    rogue = generate_keys(tmp_path / "rogue", clients=("client",))
    server = CurveServerKeys.from_directory(keys)
    assert sorted(p.name for p in server.authorized.iterdir()) == ["client.key", "worker.key"]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            running = await tg.start(
                lambda task_status: run_broker(
                    "tcp://127.0.0.1:*", curve=server, task_status=task_status
                )
            )
            await tg.start(
                lambda task_status: run_worker(
                    running.address,
                    Double,
                    heartbeat_interval=None,
                    curve=CurveClientKeys.from_directory(keys, "worker"),
                    context=context,
                    task_status=task_status,
                )
            )
            good = CurveClientKeys.from_directory(keys, "client")
            async with connect_remote(running.address, curve=good, context=context) as client:
                assert value(await client.request("double", {"n": 4})) == 8
            # A key pair the broker does not list, and no CURVE at all: nothing
            # gets through (the handshake fails; the requests wait unanswered).
            outsider = CurveClientKeys.from_directory(rogue, "client")
            outsider = CurveClientKeys(outsider.public, outsider.secret, good.server_public)
            for curve in (outsider, None):
                async with connect_remote(
                    running.address, curve=curve, context=context, heartbeat_interval=None
                ) as client:
                    call = client.request("double", {"n": 1})
                    with anyio.move_on_after(0.5) as waited:
                        await call
                    assert waited.cancelled_caught
            assert running.broker.statistics().completed == 1
            tg.cancel_scope.cancel()


def _fuzz_messages(rng: random.Random, count: int, huge: int) -> list[list[bytes]]:
    """Random frames, truncated and corrupted valid messages, wrong headers, huge frames."""
    samples: list[tuple[Message, Protocol]] = [
        (Request(7, "fuzz", (b"{}",), ancestry=("a/b",), parent=3), Protocol.CLIENT),
        (Request(0, "fuzz", (b"x",)), Protocol.CLIENT),
        (Cancel(rid=7), Protocol.CLIENT),
        (Cancel(job="1:x1"), Protocol.CLIENT),
        (Heartbeat(), Protocol.CLIENT),
        (Ready("fuzz"), Protocol.WORKER),
        (Partial(1, (b"p",)), Protocol.WORKER),
        (Final(99, (b"f",)), Protocol.WORKER),
        (Failure(2, "failed", "boom", "E"), Protocol.WORKER),
        (Waiting(5, True), Protocol.WORKER),
        (Heartbeat(), Protocol.WORKER),
        (Disconnect(), Protocol.WORKER),
    ]
    valid = [[bytes(f) for f in encode(m, protocol=p, from_broker=False)] for m, p in samples]
    nasty = [
        b"",
        b"\x00",
        b"MDPC01",
        b"MDPW01",
        b"MDPC02",
        b"MDPW02",
        b"\xff" * 7,
        b"[" * 100_000,  # deeply nested JSON
        b'{"job": 1}',
        b'{"service": "fuzz", "ancestry": "x"}',
        b'{"parent": -1}',
        b'{"timeout": "soon"}',
        b"99999999999999999999999",
        b"-1",
    ]
    deep = b"[" * 100_000
    out: list[list[bytes]] = [
        # Deeply nested JSON wherever the codec parses JSON.
        [b"MDPC02", b"\x11", b"fuzz", b"1", deep],
        [b"MDPW02", b"\x15", b"1", deep],
        [b"MDPC02", b"\x11", b"fuzz", b"2", b'{"ancestry": ' + deep + b"}"],
    ]
    for i in range(count):
        roll = rng.random()
        if i % 500 == 499:
            out.append([b"MDPC02", b"\x01", b"fuzz", b"\0" * huge])
        elif roll < 0.3:
            out.append([rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.randrange(1, 8))])
        elif roll < 0.55:
            msg = rng.choice(valid)
            out.append(msg[: rng.randrange(1, len(msg) + 1)])
        elif roll < 0.8:
            msg = list(rng.choice(valid))
            msg[rng.randrange(len(msg))] = rng.choice(nasty)
            out.append(msg)
        else:
            header = rng.choice([b"MDPC02", b"MDPW02", b"MDPX02", b""])
            body = [rng.choice(nasty) for _ in range(rng.randrange(0, 5))]
            out.append([header, bytes([rng.randrange(256)]), *body])
    return out


async def test_rogue_peer_cannot_break_the_broker(context, caplog):
    caplog.set_level(logging.WARNING, logger="binglide.broker")
    bound = 1 << 20
    rng = random.Random(20240601)
    messages = _fuzz_messages(rng, 3000, huge=2 * bound)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            running = await tg.start(
                lambda task_status: run_broker(
                    "tcp://127.0.0.1:*",
                    config=BrokerConfig(heartbeat_interval=0.2),
                    max_message_size=bound,
                    context=context,
                    task_status=task_status,
                )
            )
            await tg.start(
                lambda task_status: run_worker(
                    running.address,
                    Double,
                    heartbeat_interval=0.2,
                    context=context,
                    task_status=task_status,
                )
            )
            rogue = context.socket(zmq.DEALER)
            rogue.setsockopt(zmq.LINGER, 0)
            rogue.connect(running.address)
            try:
                for frames in messages:
                    await rogue.send_multipart(frames)
                async with connect_remote(
                    running.address, heartbeat_interval=0.2, context=context
                ) as client:
                    calls = [client.request("double", {"n": n}) for n in range(20)]
                    assert [value(await c) for c in calls] == [2 * n for n in range(20)]
            finally:
                rogue.close(linger=0)
            tg.cancel_scope.cancel()
    # The broker read (and dropped) most of the junk; what the size bound
    # cut off died with the rogue's connection. The log says so with a
    # reason, once, not once a message (the rest is counted).
    assert running.broker.drops.total > 1000
    dropped = [r for r in caplog.records if r.getMessage().startswith("dropped")]
    assert 1 <= len(dropped) <= 2
    assert dropped[0].getMessage().startswith("dropped a message from peer")
