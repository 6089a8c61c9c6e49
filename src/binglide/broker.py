"""`Broker`: the async loop that drives a `BrokerMachine` over a transport.

The loop receives frames, decodes them, feeds the machine, and sends what the
machine says, in order. Malformed frames from a peer are logged and dropped:
one rogue peer never stops the broker serving everyone else. Timers
(heartbeats, expiries, queue deadlines) run from the machine's
`next_deadline`.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import anyio

from .core import BrokerConfig, BrokerMachine, BrokerStatistics, PeerId, decode, encode
from .errors import RemoteProtocolError, TransportClosed, TransportError

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from .transports import BrokerTransport

__all__ = ("Broker",)

log = logging.getLogger("binglide.broker")


class Broker:
    """Route requests to workers and reports back (see `binglide.core.broker`)."""

    def __init__(self, transport: BrokerTransport, *, config: BrokerConfig | None = None):
        self._transport = transport
        self.machine = BrokerMachine(config)
        self._wakeup = anyio.Event()

    def statistics(self) -> BrokerStatistics:
        """Return a snapshot of the broker's queues, tasks and counters."""
        return self.machine.statistics()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled or the transport is closed."""
        task_status.started()
        try:
            while True:
                deadline = self.machine.next_deadline()
                timeout = math.inf if deadline is None else deadline - anyio.current_time()
                received = None
                if timeout > 0:
                    with anyio.move_on_after(timeout):
                        received = await self._transport.receive()
                if received is not None:
                    self._receive(*received)
                now = anyio.current_time()
                deadline = self.machine.next_deadline()
                if deadline is not None and deadline <= now:
                    self.machine.handle_timer(now)
                await self._flush()
        except TransportClosed:
            return
        finally:
            with anyio.CancelScope(shield=True):
                await self._transport.aclose()

    def _receive(self, peer: str, frames: list[bytes | memoryview]) -> None:

        try:
            protocol, msg = decode(frames, from_broker=False)
            self.machine.receive(PeerId(peer), protocol, msg, anyio.current_time())
        except RemoteProtocolError as exc:
            log.warning("dropped a message from peer %r: %s", peer, exc)
        except Exception:
            # A bug must not take the broker down for everyone: log it loudly
            # and go on serving (the machine's state is left as it was).
            log.exception("internal error while handling a message from peer %r", peer)

    async def _flush(self) -> None:
        for out in self.machine.outgoing():
            frames = encode(
                out.message, protocol=out.protocol, from_broker=True, extended=out.extended
            )
            try:
                await self._transport.send(out.peer, frames)
            except TransportClosed:
                raise
            except TransportError as exc:
                log.warning("could not send to peer %r: %s", out.peer, exc)
