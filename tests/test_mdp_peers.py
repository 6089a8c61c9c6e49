"""Every Majordomo peer against a real binglide broker, over real sockets.

The 7/MDP (MDP/0.1) and 18/MDP (MDP/0.2) clients and workers are
tests/mdp_peers.py, written from the RFC texts alone (no binglide import);
they meet binglide's own client and workers in every pairing, through one
broker process. Also 8/MMI, DISCONNECT for unexpected commands, request id 0,
and per-peer liveness.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import numpy as np
import pytest
import zmq

from . import mdp_peers
from .zmq_helpers import (
    HB,
    REPO,
    array,
    child_env,
    free_tcp_address,
    processes,
    spawn,
    start_worker,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.zmq

PEERS = REPO / "tests" / "mdp_peers.py"
#: The service each kind of worker registers.
WORKERS = {"mdp01": b"upper-01", "mdp02": b"upper-02", "binglide": b"upper"}
#: The PARTIAL reports each kind of worker sends before its FINAL.
PARTIALS = {"mdp01": 0, "mdp02": 1, "binglide": 1}


def rfc_peer(*args: str) -> subprocess.Popen[bytes]:
    """Start ``python tests/mdp_peers.py ARGS...`` (a plain pyzmq process)."""
    return subprocess.Popen(
        [sys.executable, str(PEERS), *args],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )


def start_binglide_broker(address: str, *extra: str) -> subprocess.Popen[bytes]:
    proc = spawn(
        ["broker", address, "--heartbeat-interval", str(HB), *extra], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(b"listening on "), line
    return proc


def wait_registered(address: str, *services: bytes, timeout: float = 30.0) -> None:
    """Wait until the broker says (8/MMI) that a worker serves each of `services`."""
    deadline = time.monotonic() + timeout
    for name in services:
        # Other processes register: ask the broker until it knows them.
        while mdp_peers.mmi_service(address, name, version="0.2") != b"200":
            assert time.monotonic() < deadline, f"no worker of {name!r} registered"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """A binglide broker, and an MDP/0.1, an MDP/0.2 and a binglide worker of "upper"."""
    with processes() as procs:
        address = free_tcp_address()
        procs.append(start_binglide_broker(address))
        # The RFC workers beat every 2.5 s (the guide's interval) while the
        # broker beats every 0.1 s: they live all the same (per-peer liveness).
        procs.append(rfc_peer("worker", "0.1", address, "upper-01"))
        procs.append(rfc_peer("worker", "0.2", address, "upper-02"))
        procs.append(start_worker(address, "tests.zmq_services:Upper"))
        wait_registered(address, *WORKERS.values())
        yield address


def test_the_rfc_peers_import_nothing_of_binglide() -> None:
    imported = set()
    for node in ast.walk(ast.parse(PEERS.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported == {
        "__future__",
        "argparse",
        "json",
        "signal",
        "sys",
        "time",
        "collections",
        "zmq",
    }


def check_report(header: dict[str, object], text: str) -> None:
    """A final report of "upper" for `text`, read by hand (docs/protocol.md, section 4)."""
    assert header["completion"] == 1.0, header
    assert header["meta"] == {"text": text.upper()}
    assert header["frames"] == [text.upper().encode()]


@pytest.mark.parametrize("worker", list(WORKERS))
async def test_an_mdp01_client_gets_one_reply_from_every_worker(address: str, worker: str) -> None:
    text = f"firmware from mdp/0.1 to {worker}"
    body = mdp_peers.binglide_body({"text": text})
    with anyio.fail_after(20):
        reply = await anyio.to_thread.run_sync(
            mdp_peers.request_01, address, WORKERS[worker], body
        )
    # The one reply is the FINAL: a PARTIAL would have taken its place on the REQ socket.
    check_report(mdp_peers.read_report(reply), text)


@pytest.mark.parametrize("worker", list(WORKERS))
async def test_an_mdp02_client_gets_partials_and_a_final_from_every_worker(
    address: str, worker: str
) -> None:
    text = f"firmware from mdp/0.2 to {worker}"
    body = mdp_peers.binglide_body({"text": text})
    with anyio.fail_after(20):
        partials, final = await anyio.to_thread.run_sync(
            mdp_peers.request_02, address, WORKERS[worker], body
        )
    assert len(partials) == PARTIALS[worker]
    for partial in partials:
        assert mdp_peers.read_report(partial)["completion"] == 0.5
    check_report(mdp_peers.read_report(final), text)


@pytest.mark.parametrize("worker", list(WORKERS))
async def test_a_binglide_client_is_served_by_every_worker(address: str, worker: str) -> None:
    from binglide.connect import connect_remote

    text = f"firmware from binglide to {worker}"
    with anyio.fail_after(20):
        async with connect_remote(address, heartbeat_interval=HB) as client:
            reports = [r async for r in client.request(WORKERS[worker].decode(), {"text": text})]
            assert client.missing_features == ()
    *partials, final = reports
    assert len(partials) == PARTIALS[worker]
    assert final.final
    assert final.meta == {"text": text.upper()}
    assert array(final).dtype == np.uint8
    assert array(final).tobytes() == text.upper().encode()
    # Several at once: a plain worker takes them one at a time.
    async with connect_remote(address, heartbeat_interval=HB) as client:
        calls = [client.request(WORKERS[worker].decode(), {"text": f"x{n}"}) for n in range(8)]
        with anyio.fail_after(20):
            assert [(await c).meta["text"] for c in calls] == [f"X{n}" for n in range(8)]


async def test_raw_bodies_pass_through_between_plain_peers_untouched(address: str) -> None:
    body = [b"raw", b"\x00bytes\xff", b""]
    with anyio.fail_after(20):
        reply = await anyio.to_thread.run_sync(mdp_peers.request_01, address, b"upper-02", body)
        assert reply == [b"RAW", b"\x00BYTES\xff", b""]
        partials, final = await anyio.to_thread.run_sync(
            mdp_peers.request_02, address, b"upper-01", body
        )
    assert (partials, final) == ([], [b"RAW", b"\x00BYTES\xff", b""])


# -- 8/MMI --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.1", "0.2"])
async def test_mmi_service_answers_at_once(address: str, version: str) -> None:
    def ask(name: bytes) -> bytes:
        return mdp_peers.mmi_service(address, name, version=version)

    with anyio.fail_after(10):
        for name, code in ((b"upper-01", b"200"), (b"upper", b"200"), (b"nosuch", b"404")):
            started = time.monotonic()
            assert await anyio.to_thread.run_sync(ask, name) == code
            assert time.monotonic() - started < 2.0  # not after a service timeout
        if version == "0.1":
            reply = await anyio.to_thread.run_sync(mdp_peers.request_01, address, b"mmi.x", [])
        else:
            _, reply = await anyio.to_thread.run_sync(mdp_peers.request_02, address, b"mmi.x", [])
    assert reply == [b"501"]


async def test_mmi_services_lists_the_services_and_their_workers(address: str) -> None:
    with anyio.fail_after(10):
        _, [listing] = await anyio.to_thread.run_sync(
            mdp_peers.request_02, address, b"mmi.services", []
        )
    assert json.loads(listing) == {"upper": 1, "upper-01": 1, "upper-02": 1}


# -- DISCONNECT for unexpected commands, request id 0 ---------------------------------------


def exchange(address: str, *messages: list[bytes], timeout: float = 5.0) -> list[bytes]:
    """Send `messages` from one fresh DEALER; return the first thing the broker sends back."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(address)
        for frames in messages:
            sock.send_multipart(frames)
        assert sock.poll(round(timeout * 1000)), "the broker said nothing"
        return list(sock.recv_multipart())
    finally:
        sock.close(linger=0)


@pytest.mark.parametrize(
    ("messages", "disconnect"),
    [
        ([[b"MDPW02", b"\x01", b"mmi.mine"]], [b"MDPW02", b"\x06"]),
        ([[b"", b"MDPW01", b"\x01", b"mmi.mine"]], [b"", b"MDPW01", b"\x05"]),
        ([[b"MDPW02", b"\x01", b"spare"], [b"MDPW02", b"\x01", b"spare"]], [b"MDPW02", b"\x06"]),
        ([[b"MDPW02", b"\x05"]], [b"MDPW02", b"\x06"]),  # HEARTBEAT before READY
    ],
)
async def test_unexpected_worker_commands_get_disconnect(
    address: str, messages: list[list[bytes]], disconnect: list[bytes]
) -> None:
    with anyio.fail_after(10):
        assert await anyio.to_thread.run_sync(lambda: exchange(address, *messages)) == disconnect


async def test_an_extended_request_numbered_zero_is_refused_at_once(address: str) -> None:
    request = [b"MDPC02", b"\x11", b"upper", b"0", b"{}", *mdp_peers.binglide_body({})]
    with anyio.fail_after(10):
        started = time.monotonic()
        reply = await anyio.to_thread.run_sync(lambda: exchange(address, request))
    assert time.monotonic() - started < 2.0
    header, command, service, rid, failure = reply
    assert (header, command, service, rid) == (b"MDPC02", b"\x15", b"upper", b"0")
    assert json.loads(failure)["kind"] == "request"


# -- per-peer liveness ----------------------------------------------------------------------


async def test_a_slow_beating_plain_worker_lives_where_binglide_peers_would_be_dead() -> None:
    # The broker declares binglide's peers dead after 0.3 s of silence, and
    # plain MDP workers after 1.5 s (3 x 0.5 s): an MDP/0.1 worker beating
    # every 0.5 s stays registered, once, for several of its intervals.
    with processes() as procs:
        address = free_tcp_address()
        procs.append(start_binglide_broker(address, "--plain-heartbeat-interval", "0.5"))
        worker = rfc_peer("worker", "0.1", address, "slow-beats", "--heartbeat-interval", "0.5")
        procs.append(worker)
        with anyio.fail_after(30):
            await anyio.to_thread.run_sync(lambda: wait_registered(address, b"slow-beats"))
            # The subject is time passing: 5 of its intervals, 8 of binglide's limits.
            await anyio.sleep(2.5)
            body = mdp_peers.binglide_body({"text": "still here"})
            reply = await anyio.to_thread.run_sync(
                mdp_peers.request_01, address, b"slow-beats", body
            )
        check_report(mdp_peers.read_report(reply), "still here")
        worker.terminate()
        assert worker.stdout is not None
        out, _ = worker.communicate(timeout=10)
    # Registered once: the broker never dropped it (it would have told it
    # DISCONNECT at its next heartbeat, and it would have said READY again).
    assert out.split() == [b"ready"]
