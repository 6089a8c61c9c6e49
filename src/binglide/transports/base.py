"""The two transport interfaces: the broker's end and a peer's end.

A transport moves protocol messages (`binglide.core` messages, tagged with
the hop they travel on) between peers and the broker. It encodes them only
where a socket needs bytes: the ZeroMQ transport turns them into MDP/0.2
frames (`binglide.core.frames`) and back; the in-process transport hands the
objects over as they are.

Sending has two forms with one contract: ``send_nowait`` sends at once or
raises anyio's `~anyio.WouldBlock` (nothing was sent), and ``send`` waits
for room. Receiving is a delivery: ``deliver_to(handler)`` calls the handler
with each message as it arrives, in order, until the transport closes. The
in-process transport calls it from the sender's own step (no task hop, no
queue), a socket transport from its receive loop; so a handler must not
block, and must not assume which task it runs in.

Errors: `TransportClosed` when we closed it, `TransportBroken` when the
other side or the socket went away (``__cause__`` holds why). A message that
cannot be decoded is logged and dropped by the transport: one rogue peer
never stops the other end.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, TypeAlias

import anyio
from anyio.abc import AsyncResource

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from anyio.abc import TaskStatus

    from ..core import Message, Outgoing, PeerId, Protocol
    from ..errors import RemoteProtocolError

__all__ = (
    "DEFAULT_MAX_MESSAGE_SIZE",
    "BrokerHandler",
    "BrokerMessageHandler",
    "BrokerTransport",
    "Dropped",
    "Incoming",
    "PeerHandler",
    "PeerTransport",
)

#: The largest frame a broker accepts by default (a 2^24 trigram table of
#: uint32 counts is 64 MiB; twice that leaves room).
DEFAULT_MAX_MESSAGE_SIZE = 256 << 20

#: A message as the broker receives it: its sender, its hop and the message.
Incoming: TypeAlias = "tuple[PeerId, Protocol, Message]"
#: What a broker's end delivers to: every message that arrived together.
BrokerHandler: TypeAlias = "Callable[[Sequence[Incoming]], None]"
#: What a broker's end delivers to one message at a time (`BrokerTransport.deliver_each_to`).
BrokerMessageHandler: TypeAlias = "Callable[[PeerId, Protocol, Message], None]"
#: What a peer's end delivers to: each message from the broker, with its hop.
PeerHandler: TypeAlias = "Callable[[Protocol, Message], None]"
#: What a broker's end tells of a message it could not decode (and dropped).
Dropped: TypeAlias = "Callable[[PeerId, RemoteProtocolError], None]"


class BrokerTransport(AsyncResource):
    """The broker's end: messages from and to many peers."""

    #: Whether messages arrive one at a time in the sender's own step (in one
    #: process), and `send_nowait` never raises `~anyio.WouldBlock`: a broker
    #: then takes them through `deliver_each_to` and sends without an outbox.
    in_process: bool = False

    @abstractmethod
    def send_nowait(self, out: Outgoing) -> None:
        """Send `out` to its peer now; a peer that is gone loses it silently.

        Raises:
            anyio.WouldBlock: it cannot go now (nothing was sent).
            TransportClosed: this end was closed.
        """

    @abstractmethod
    async def send(self, out: Outgoing) -> None:
        """Send `out` to its peer, waiting for room if needed, after earlier waiting sends.

        Raises:
            TransportClosed: this end was closed.
        """

    @abstractmethod
    async def deliver_to(
        self,
        handler: BrokerHandler,
        *,
        dropped: Dropped | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Call `handler` with the messages that arrive, in order, until this end closes.

        Messages that arrive together come in one call, so that the broker
        can answer them in one burst. A message that cannot be decoded is
        dropped and told to `dropped` (default: a warning logged).
        `task_status` is told once delivery has begun.

        Raises:
            TransportClosed: this end was closed (the normal way out).
            Exception: whatever `handler` raised.
        """

    async def deliver_each_to(
        self,
        handler: BrokerMessageHandler,
        *,
        dropped: Dropped | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """`deliver_to`, calling `handler` once a message with its fields.

        By default each batch is taken apart; an end whose messages come one
        at a time anyway (in one process) hands them over as they come.
        """

        def each(batch: Sequence[Incoming]) -> None:
            for peer, protocol, message in batch:
                handler(peer, protocol, message)

        await self.deliver_to(each, dropped=dropped, task_status=task_status)


class PeerTransport(AsyncResource):
    """A client's or worker's end: messages to and from the broker."""

    #: How the broker will name this peer (its routing id).
    identity: PeerId
    #: Whether messages arrive in the sender's own step (in one process): a
    #: worker's reports then cross as their objects (`payload.defer_report`).
    in_process: bool = False

    def call_when_delivered(self, fn: Callable[[], None]) -> None:
        """Call `fn` once the messages being delivered now, and what they cause, are.

        In one process a message sent is delivered in its sender's step, and
        so are its consequences (a sub-request's answer, say): `fn` runs
        after them, before any other step. Elsewhere (and by default) it
        runs at once.
        """
        fn()

    @abstractmethod
    def send_nowait(self, protocol: Protocol, message: Message) -> None:
        """Send `message` on hop `protocol` to the broker now.

        Raises:
            anyio.WouldBlock: it cannot go now, or earlier sends wait for room
                (nothing was sent: the order of what waits is kept).
            TransportClosed: this end was closed.
            TransportBroken: the broker end is gone.
        """

    @abstractmethod
    async def send(self, protocol: Protocol, message: Message) -> None:
        """Send `message` on hop `protocol` to the broker, waiting for room if needed.

        Sends that wait go out in the order they were made.

        Raises:
            TransportClosed: this end was closed.
            TransportBroken: the broker end is gone.
        """

    @abstractmethod
    async def deliver_to(
        self,
        handler: PeerHandler,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Call `handler` with each message from the broker, in order, until this end closes.

        `task_status` is told once delivery has begun. Cancelled, it stops
        delivering; messages that arrive meanwhile wait for the next call.

        Raises:
            TransportClosed: this end was closed (the normal way out).
            TransportBroken: the broker end is gone.
            Exception: whatever `handler` raised.
        """
