"""The two transport interfaces: the broker's end and a peer's end.

A transport moves lists of frames (the encoding of one message, from the
protocol header on) and knows nothing of what they mean. The broker's end
names the peer of every message; a peer's end talks to the broker only.

Errors: `TransportClosed` when we closed it, `TransportBroken` when the
other side or the socket went away (``__cause__`` holds why).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

from anyio.abc import AsyncResource

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..core import Frame, PeerId

__all__ = ("DEFAULT_MAX_MESSAGE_SIZE", "BrokerTransport", "PeerTransport")

#: The largest frame a broker accepts by default (a 2^24 trigram table of
#: uint32 counts is 64 MiB; twice that leaves room).
DEFAULT_MAX_MESSAGE_SIZE = 256 << 20


class BrokerTransport(AsyncResource):
    """The broker's end: messages from and to many peers."""

    @abstractmethod
    async def send(self, peer: PeerId, frames: Sequence[Frame]) -> None:
        """Send `frames` to `peer`; a peer that is gone loses them silently.

        Raises:
            TransportClosed: this end was closed.
        """

    @abstractmethod
    async def receive(self) -> tuple[PeerId, list[Frame]]:
        """Wait for the next message and return its sender and frames.

        Raises:
            TransportClosed: this end was closed.
        """


class PeerTransport(AsyncResource):
    """A client's or worker's end: messages to and from the broker."""

    #: How the broker will name this peer (its routing id).
    identity: PeerId

    @abstractmethod
    async def send(self, frames: Sequence[Frame]) -> None:
        """Send `frames` to the broker.

        Raises:
            TransportClosed: this end was closed.
            TransportBroken: the broker end is gone.
        """

    @abstractmethod
    async def receive(self) -> list[Frame]:
        """Wait for the next message from the broker.

        Raises:
            TransportClosed: this end was closed.
            TransportBroken: the broker end is gone.
        """
