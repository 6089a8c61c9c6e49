"""`Broker`: the async loop that drives a `BrokerMachine` over a transport.

The loop receives frames, decodes them, feeds the machine, and sends what the
machine says, in order. Malformed frames from a peer are logged and dropped:
one rogue peer never stops the broker serving everyone else. Timers
(heartbeats, expiries, queue deadlines) run from the machine's
`next_deadline`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ._clock import loop_time
from .core import (
    BrokerConfig,
    BrokerMachine,
    BrokerStatistics,
    Frame,
    Outgoing,
    PeerId,
    decode,
    encode,
)
from .errors import RemoteProtocolError, TransportClosed, TransportError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anyio.abc import TaskStatus

    from .transports import BrokerTransport

__all__ = ("Broker", "encode_outgoing", "feed")

log = logging.getLogger("binglide.broker")

#: Messages handled in a row without waiting before the loop lets other tasks run.
_DRAIN = 64


class Broker:
    """Route requests to workers and reports back (see `binglide.core.broker`)."""

    def __init__(self, transport: BrokerTransport, *, config: BrokerConfig | None = None):
        self._transport = transport
        self.machine = BrokerMachine(config, instance=os.urandom(8).hex())

    def statistics(self) -> BrokerStatistics:
        """Return a snapshot of the broker's queues, tasks and counters."""
        return self.machine.statistics()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled or the transport is closed."""
        transport = self._transport
        machine = self.machine
        # Drain what is ready without waiting (a wait, with its cancel scope,
        # costs more than handling a message); await only when nothing is.
        receive_nowait = getattr(transport, "receive_nowait", None)
        drained = 0
        task_status.started()
        try:
            while True:
                received: tuple[PeerId, list[Frame]] | None = None
                if receive_nowait is not None and drained < _DRAIN:
                    # Nothing ready: WouldBlock (ZeroMQ) or None (in-process).
                    with contextlib.suppress(anyio.WouldBlock):
                        received = receive_nowait()
                if received is not None:
                    drained += 1
                else:
                    if drained:
                        # Others (in this loop) get their turn.
                        drained = 0
                        await anyio.lowlevel.checkpoint()
                        continue
                    deadline = machine.next_deadline()
                    if deadline is None:
                        received = await transport.receive()
                    else:
                        timeout = deadline - loop_time()
                        if timeout > 0:
                            with anyio.move_on_after(timeout):
                                received = await transport.receive()
                now = loop_time()
                if received is not None:
                    feed(machine, received[0], received[1], now)
                deadline = machine.next_deadline()
                if deadline is not None and deadline <= now:
                    machine.handle_timer(now)
                await self._flush()
        except TransportClosed:
            return
        finally:
            with anyio.CancelScope(shield=True):
                await self._transport.aclose()

    async def _flush(self) -> None:
        for out in self.machine.outgoing():
            try:
                await self._transport.send(out.peer, encode_outgoing(out))
            except TransportClosed:
                raise
            except TransportError as exc:
                log.warning("could not send to peer %r: %s", out.peer, exc)


def feed(machine: BrokerMachine, peer: str, frames: Sequence[Frame], now: float) -> None:
    """Decode `frames` from `peer` and feed them to `machine`; log and drop what is bad.

    A malformed message is dropped with a warning; an internal error is
    logged loudly and the broker serves on (the machine's state is left as
    it was): one rogue peer never stops the broker serving everyone else.
    """
    try:
        protocol, msg = decode(frames, from_broker=False)
        machine.receive(PeerId(peer), protocol, msg, now)
    except RemoteProtocolError as exc:
        log.warning("dropped a message from peer %r: %s", peer, exc)
    except Exception:
        log.exception("internal error while handling a message from peer %r", peer)


def encode_outgoing(out: Outgoing) -> list[Frame]:
    """Return the frames of one message the machine sends."""
    return encode(out.message, protocol=out.protocol, from_broker=True, extended=out.extended)
