"""`Client`: sending requests to a broker and receiving their reports.

A client has a `Requester` (which opens requests and routes each reply to
the `Call` of its request) and an `Outbox` (which sends at once when the
transport can). Its transport delivers the broker's messages to it as they
arrive, so `request()` itself never blocks and many requests can be in
flight at once. A worker issues sub-requests with the same `Requester`: a
worker is a client too.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from ._aio import loop_clock, loop_time
from .analyses import AnalysisMethods
from .call import Call, Then
from .core import BrokerPlain, Disconnect, Message, Protocol
from .errors import RemoteProtocolError, TransportClosed, TransportError
from .outbox import Outbox
from .requester import Requester

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    import numpy as np
    from anyio.abc import TaskStatus

    from .broker import Broker
    from .transports import PeerTransport

__all__ = ("Call", "Client", "Then")

log = logging.getLogger("binglide.client")

# Protocol's members as module names: an enum member read off its class is a
# call of `EnumType.__getattr__`'s hook on 3.11 (read at every message).
_CLIENT = Protocol.CLIENT


class Client(AnalysisMethods, anyio.AsyncContextManagerMixin):
    """A connection to a broker that sends requests and receives their reports.

    Use it as an async context manager (`binglide.connect` gives one)::

        async with Client(transport) as client:
            report = await client.histogram("fw.bin")

    Args:
        transport: the client's end of a transport to the broker.
        heartbeat_interval: seconds between heartbeats to the broker (None:
            none; the broker then never cancels this client's jobs on
            silence, and a restarted broker goes unnoticed).
    """

    def __init__(
        self, transport: PeerTransport, *, heartbeat_interval: float | None = None
    ) -> None:
        self._transport = transport
        self._heartbeat_interval = heartbeat_interval
        self._outbox: Outbox[Protocol, Message] = Outbox(transport.send_nowait, transport.send)
        self._requester = Requester(
            transport.identity, self._outbox.post, heartbeat_interval=heartbeat_interval
        )
        self._broker_lost = False
        self._open = False
        self._closed = False
        self._heard = anyio.Event()
        #: Whether `_heard` is set (a plain flag: read at every message).
        self._heard_once = False
        self._plain = anyio.Event()
        self._missing: tuple[str, ...] = ()
        #: The event loop's clock (`loop_time`; the loop's own once open).
        self._clock: Callable[[], float] = loop_time
        #: The embedded broker, when `binglide.connect` started one (for its statistics).
        self.broker: Broker | None = None
        #: Rewrites every request body before it goes (`binglide.connect` sets
        #: it when this client serves its own files): ``(service, body) -> body``.
        self.body_filter: Callable[[str, Mapping[str, Any]], Mapping[str, Any]] | None = None

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[Client]:
        error: Exception | None = None
        self._clock = loop_clock()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._outbox.run)
                await tg.start(self._receive)
                if self._heartbeat_interval:
                    tg.start_soon(self._timer_loop)
                self._open = True
                try:
                    yield self
                except Exception as exc:
                    # Raised after the task group, as itself (not in a group).
                    error = exc
                finally:
                    await self.aclose()
                    tg.cancel_scope.cancel()
        finally:
            await self.aclose()  # when the task group itself failed
        if error is not None:
            raise error

    def request(
        self,
        service: str,
        body: Mapping[str, Any] | None = None,
        *arrays: np.ndarray[Any, Any],
        timeout: float | None = None,
    ) -> Call:
        """Send a request to `service` and return its `Call` at once.

        Args:
            service: the service name.
            body: a JSON-able mapping (see the request format in the docs).
            *arrays: numpy arrays sent with it as raw frames.
            timeout: seconds the request may wait for a free worker before it
                fails with `ServiceUnavailable` (default: the broker's).

        Raises:
            RuntimeError: the client is not open.
            TypeError: the body is not JSON-able.
        """
        if not self._open or self._closed:
            raise RuntimeError("the client is not open: use `async with` (or binglide.connect)")
        if self.body_filter is not None and body is not None:
            body = self.body_filter(service, body)
        return self._requester.open(service, body, arrays, timeout=timeout)

    async def wait_connected(self) -> None:
        """Wait until the broker has answered once (a heartbeat or a report).

        Over ZeroMQ a connection to an address where no broker listens does
        not fail: it waits. Bound this with a timeout to find out.
        """
        await self._heard.wait()

    @property
    def missing_features(self) -> tuple[str, ...]:
        """What the broker does not offer, for a person; empty while it speaks binglide's protocol.

        A client with heartbeats that hears nothing from its broker for its
        liveness bound takes it for a plain MDP/0.2 broker (RFC 18), goes on
        in plain MDP (one request at a time), and lists here what is then
        unavailable (cancellation reaching workers, the progress guarantee,
        ...); it also logs them once as a warning. A binglide broker heard
        later empties the list again.
        """
        return self._missing

    async def wait_plain_broker(self) -> None:
        """Wait until the client has taken its broker for a plain MDP/0.2 one."""
        await self._plain.wait()

    async def aclose(self) -> None:
        """Cancel every open request, say goodbye to the broker and close.

        The goodbye is sent even when closing is what a cancellation (Ctrl-C,
        a timeout around `connect`) does: the broker must hear the CANCELs,
        or its workers compute on.
        """
        if self._closed:
            return
        self._closed = True
        self._requester.cancel_all()
        self._outbox.post(_CLIENT, Disconnect())
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(1.0):
                try:
                    await self._outbox.drain()
                except TransportError as exc:
                    log.warning("could not say goodbye to the broker: %s", exc)
            await self._transport.aclose()

    async def _receive(self, *, task_status: TaskStatus[None]) -> None:
        try:
            await self._transport.deliver_to(self._on_message, task_status=task_status)
        except TransportClosed:
            pass
        except TransportError as exc:
            self._requester.fail_all(f"the connection to the broker was lost: {exc}")

    def _on_message(self, protocol: Protocol, msg: Message) -> None:
        try:
            if protocol is not _CLIENT:
                raise RemoteProtocolError("the broker sent a worker message to a client")
            if not self._heard_once:
                self._heard_once = True
                self._heard.set()
            if self._broker_lost:
                # The broker answers again (restarted, or back on the
                # network): re-issue what is still open. A broker that
                # still knows a request refuses the duplicate id, and
                # its own copy goes on (docs/protocol.md, failures).
                self._broker_lost = False
                self._requester.resend_open()
            # The machine reads the time for liveness only: none without heartbeats.
            lost = self._requester.receive(msg, self._clock() if self._heartbeat_interval else 0.0)
            # Through a plain broker (`_missing` lists what it lacks, and is
            # empty while the broker speaks binglide's protocol: read first,
            # it spares two property calls a message).
            if self._missing and self._requester.plain_broker:
                self._requester.flush()  # a FINAL lets the next plain request go
        except RemoteProtocolError as exc:
            log.warning("dropped a malformed message from the broker: %s", exc)
            return
        if lost is not None:
            if lost.reissued:
                self._missing = ()  # a binglide broker after all (core.client)
                self._requester.flush()
            else:
                self._broker_lost = True
            log.warning("%s", lost.reason)

    async def _timer_loop(self) -> None:
        # Client heartbeats (a binglide extension): the broker cancels the
        # jobs of a client that falls silent, and we notice a lost broker.
        requester = self._requester
        while True:
            lost = requester.handle_timer(loop_time())
            if isinstance(lost, BrokerPlain):
                self._missing = lost.unavailable
                self._plain.set()
                log.warning("%s; unavailable then: %s", lost.reason, "; ".join(lost.unavailable))
            elif lost is not None:
                self._broker_lost = True
                log.warning("%s; open requests are re-issued when it answers", lost.reason)
            deadline = requester.next_deadline()
            if deadline is None:
                await anyio.sleep_forever()
                return
            await anyio.sleep(max(0.0, deadline - loop_time()))
