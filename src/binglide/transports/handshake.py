"""How a peer's connection to a broker went, as ZeroMQ's socket monitor tells it.

ZeroMQ never fails a connect: it retries in the background, and a broker that
refuses our keys looks, from the socket, like a broker that is not there. The
socket monitor (``zmq_socket_monitor``) says what happened:

- ``CONNECTED``: something accepted the connection (TCP or ipc);
- ``HANDSHAKE_SUCCEEDED``: the ZMTP handshake, and with CURVE the key
  exchange, went through: messages now flow;
- ``HANDSHAKE_FAILED_AUTH``: the broker's authenticator (ZAP) refused our
  public key;
- ``HANDSHAKE_FAILED_PROTOCOL`` with ``ZMTP_MECHANISM_MISMATCH``: one side
  uses CURVE and the other does not;
- ``HANDSHAKE_FAILED_NO_DETAIL`` (the other end closed the connection during
  the handshake) and the other ``HANDSHAKE_FAILED_PROTOCOL`` errors say less.
  A broker that finds our mechanism is not its own may close before our side
  reads why, and one that cannot read our CURVE HELLO (the broker's public
  key we hold is not its own) just closes. So after such a failure the next
  attempts (ZeroMQ retries every 100 ms) are watched for a second, for a
  specific outcome, before settling for the vague one.

`HandshakeWatch` reads the events of a `ZmqPeer` opened with ``monitor=True``
until the first outcome.
"""

from __future__ import annotations

import enum
import math

import anyio
import attrs
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

__all__ = ("Handshake", "HandshakeWatch")


class Handshake(enum.Enum):
    """How the first handshake with the broker ended."""

    SUCCEEDED = "succeeded"
    REFUSED_KEY = "refused-key"  # the broker does not admit our public key
    MECHANISM_MISMATCH = "mechanism-mismatch"  # CURVE on one side only
    FAILED = "failed"  # closed during the handshake, or a protocol error: see above


#: Seconds to wait, after a failure without detail, for a specific one.
_VAGUE_GRACE = 1.0


@attrs.define
class HandshakeWatch:
    """Follow a peer's socket monitor until the first handshake outcome.

    Attributes:
        monitor: the monitor's PAIR socket (`ZmqPeer.monitor`).
        connected: whether anything accepted a connection so far.
        vague: the outcome the failures without detail so far point to
            (None: none seen), while a specific one is awaited.
    """

    monitor: zmq.asyncio.Socket
    connected: bool = False
    vague: Handshake | None = None

    async def outcome(self) -> Handshake:
        """Wait for the handshake to succeed or fail, and return how it ended.

        Cancelling the wait loses no event (pyzmq's receives are cancel-safe).
        """
        give_up = math.inf  # once vague: when to settle for it
        while True:
            raw: list[bytes] | None = None
            with anyio.move_on_after(give_up - anyio.current_time()):
                raw = await self.monitor.recv_multipart()
            if raw is None:
                assert self.vague is not None
                return self.vague
            event = parse_monitor_message(raw)
            kind, value = event["event"], event["value"]
            if kind == zmq.EVENT_CONNECTED:
                self.connected = True
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return Handshake.SUCCEEDED
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                return Handshake.REFUSED_KEY
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and (
                value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
            ):
                return Handshake.MECHANISM_MISMATCH
            elif kind in (
                zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
            ):
                if self.vague is None:
                    give_up = anyio.current_time() + _VAGUE_GRACE
                self.vague = Handshake.FAILED
