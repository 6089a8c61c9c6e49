"""binglide's client through a plain 18/MDP broker (tests/mdp_peers.py, written from RFC 18).

The broker knows nothing of binglide: it drops XREQUEST and HEARTBEAT. The
client notices (no answer to its extensions), falls back to plain MDP/0.2,
and says what is then unavailable instead of failing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import pytest

import binglide
from binglide.connect import connect_remote

from .test_mdp_peers import rfc_peer
from .zmq_helpers import array, free_tcp_address, processes

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.zmq

#: The plain broker and worker beat at this interval (they must agree, RFC 18).
PLAIN_HB = 0.5


@pytest.fixture
def plain_broker() -> Iterator[str]:
    """A minimal RFC 18 broker and an RFC 18 worker of "upper"."""
    with processes() as procs:
        broker = rfc_peer("broker", free_tcp_address(), "--heartbeat-interval", str(PLAIN_HB))
        procs.append(broker)
        assert broker.stdout is not None
        line = broker.stdout.readline()
        assert line.startswith(b"listening on "), line
        address = line.split()[-1].decode()
        worker = rfc_peer("worker", "0.2", address, "upper", "--heartbeat-interval", str(PLAIN_HB))
        procs.append(worker)
        assert worker.stdout is not None
        assert worker.stdout.readline() == b"ready\n"
        yield address


async def test_a_client_falls_back_to_plain_mdp_and_says_what_is_missing(
    plain_broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "binglide.client")
    with anyio.fail_after(20):
        async with connect_remote(plain_broker, heartbeat_interval=0.1) as client:
            # Sent before anything is known: as XREQUESTs the broker drops,
            # then again, plainly, one at a time.
            calls = [client.request("upper", {"text": f"x{n}"}) for n in range(4)]
            first = [r async for r in calls[0]]
            assert [r.final for r in first] == [False, True]  # the PARTIAL, then the FINAL
            assert first[-1].meta == {"text": "X0"}
            assert [(await c).meta["text"] for c in calls[1:]] == ["X1", "X2", "X3"]
            assert array(first[-1]).tobytes() == b"X0"
            missing = client.missing_features
    assert any("cancellation does not reach workers" in m for m in missing)
    assert any("progress guarantee" in m for m in missing)
    [warning] = [r for r in caplog.records if "plain MDP/0.2" in r.getMessage()]
    assert "cancellation does not reach workers" in warning.getMessage()


async def test_through_a_plain_broker_a_cancelled_request_does_not_mix_up_replies(
    plain_broker: str,
) -> None:
    with anyio.fail_after(20):
        async with connect_remote(plain_broker, heartbeat_interval=0.1) as client:
            await client.wait_plain_broker()
            first = client.request("upper", {"text": "cancelled"})
            second = client.request("upper", {"text": "second"})
            first.cancel()  # in flight: its replies, when they come, are dropped
            with pytest.raises(binglide.JobCancelled):
                await first
            assert (await second).meta == {"text": "SECOND"}
            third = client.request("upper", {"text": "third"})
            assert (await third).meta == {"text": "THIRD"}


async def test_connect_accepts_a_plain_broker_after_its_liveness_bound(plain_broker: str) -> None:
    # connect() waits for the broker's answer; a plain broker never gives one,
    # but a ZeroMQ peer does listen there: after 3 s (1 s x 3) it is taken
    # for a plain MDP/0.2 broker, not for no broker.
    with anyio.fail_after(20):
        async with binglide.connect(plain_broker, connect_timeout=8.0) as client:
            assert client.missing_features
            report = await client.request("upper", {"text": "connected"})
    assert report.meta == {"text": "CONNECTED"}


def test_the_plain_broker_is_plain() -> None:
    # It drops an XREQUEST: nothing comes back (what makes a client fall back).
    import zmq

    from . import mdp_peers

    with processes() as procs:
        broker = rfc_peer("broker", free_tcp_address())
        procs.append(broker)
        assert broker.stdout is not None
        address = broker.stdout.readline().split()[-1].decode()
        procs.append(rfc_peer("worker", "0.2", address, "upper"))
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(address)
            sock.send_multipart([b"MDPC02", b"\x11", b"upper", b"1", b"{}", b"x"])
            sock.send_multipart([b"MDPC02", b"\x05"])
            assert not sock.poll(500)
        finally:
            sock.close(linger=0)
        assert mdp_peers.request_02(address, b"upper", [b"plain"])[1] == [b"PLAIN"]
