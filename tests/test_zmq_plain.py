"""Plain MDP/0.2 peers, written from docs/protocol.md with bare pyzmq, against the broker."""

from __future__ import annotations

import json
import subprocess
import sys

import anyio
import numpy as np
import pytest
import zmq
import zmq.asyncio

from .zmq_helpers import (
    HB,
    REPO,
    array,
    child_env,
    free_tcp_address,
    processes,
    start_broker,
    start_worker,
)

pytestmark = pytest.mark.zmq


def raw_worker(address: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "raw_worker.py"), address],
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def context():
    ctx = zmq.asyncio.Context()
    yield ctx
    ctx.destroy(linger=0)


async def test_raw_worker_serves_a_binglide_client():
    from binglide.connect import connect_remote

    with anyio.fail_after(20), processes() as procs:
        address = free_tcp_address()
        procs.append(await start_broker(address))
        procs.append(raw_worker(address))
        async with connect_remote(address, heartbeat_interval=HB) as client:
            report = await client.request("upper", {"text": "firmware"})
            assert report.final
            assert report.meta == {"text": "FIRMWARE"}
            assert array(report).dtype == np.uint8
            assert array(report).tobytes() == b"FIRMWARE"
            # Several at once: the plain worker takes one at a time.
            calls = [client.request("upper", {"text": f"x{n}"}) for n in range(10)]
            assert [(await c).meta["text"] for c in calls] == [f"X{n}" for n in range(10)]


async def plain_request(sock: zmq.asyncio.Socket, service: bytes, *body: bytes) -> list[bytes]:
    """One MDP/0.2 client exchange (RFC 18): REQUEST, then PARTIALs and a FINAL."""
    await sock.send_multipart([b"MDPC02", b"\x01", service, *body])
    while True:
        reply = await sock.recv_multipart()
        assert reply[0] == b"MDPC02"
        assert reply[2] == service
        if reply[1] == b"\x03":
            return reply[3:]
        assert reply[1] == b"\x02"


async def test_plain_mdp_client_against_the_broker(context):
    with anyio.fail_after(20), processes() as procs:
        address = free_tcp_address()
        # Long enough for worker processes to register on a loaded machine;
        # the unknown service below then fails after it.
        procs.append(await start_broker(address, "--service-timeout", "3"))
        procs += [raw_worker(address), start_worker(address, "tests.zmq_services:Double")]
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        try:
            # A plain worker, plain bytes.
            assert await plain_request(sock, b"upper", b"raw", b"bytes") == [b"RAW", b"BYTES"]
            # A binglide worker, its body format written by hand from the spec.
            body = json.dumps({"v": 1, "body": {"n": 21}, "arrays": []}).encode()
            head, data = await plain_request(sock, b"double", body)
            header = json.loads(head)
            assert header["data"] == "array"
            assert header["arrays"] == [{"dtype": "<i8", "shape": [1]}]
            assert np.frombuffer(data, dtype="<i8").tolist() == [42]
            # Failures reach a plain client as a FINAL with a marker frame.
            marker, info = await plain_request(sock, b"nosuch", b"")
            assert marker == b"binglide-error"
            assert json.loads(info)["kind"] == "unavailable"
        finally:
            sock.close(linger=0)
