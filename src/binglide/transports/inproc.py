"""The in-process transport: anyio memory streams between peers and a broker.

The broker's inbox is bounded (a flood of requests waits instead of growing
memory without end); each peer's inbox is unbounded so that the broker never
blocks on a slow peer, which would stall every other peer (the broker's loop
must not wait on any single peer). Frames are passed as they are: no copies.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import anyio

from ..core import Frame, PeerId
from ..errors import TransportBroken, TransportClosed
from .base import BrokerTransport, PeerTransport

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ("InprocBroker", "InprocNetwork", "InprocPeer")

_Envelope = tuple[PeerId, list[Frame]]


class InprocNetwork:
    """A broker address inside one process: `bind` once, `connect` many times."""

    def __init__(self, *, broker_buffer: int = 4096) -> None:
        self._inbox_send, self._inbox_receive = anyio.create_memory_object_stream[_Envelope](
            broker_buffer
        )
        self._peers: dict[PeerId, MemoryObjectSendStream[list[Frame]]] = {}
        self._names = itertools.count(1)
        self._bound = False

    def bind(self) -> InprocBroker:
        """Return the broker's end (once)."""
        if self._bound:
            raise RuntimeError("this in-process network already has a broker")
        self._bound = True
        return InprocBroker(self)

    def connect(self, identity: str | None = None) -> InprocPeer:
        """Return a new peer's end, named `identity` or a fresh name."""
        peer = PeerId(identity or f"inproc-{next(self._names)}")
        if peer in self._peers:
            raise ValueError(f"peer {peer!r} is already connected")
        send, receive = anyio.create_memory_object_stream[list[Frame]](math.inf)
        self._peers[peer] = send
        return InprocPeer(self, peer, receive, self._inbox_send.clone())

    def _deliver(self, peer: PeerId, frames: list[Frame]) -> None:
        stream = self._peers.get(peer)
        if stream is None:
            return  # the peer left: like a ROUTER, drop what is addressed to it
        try:
            stream.send_nowait(frames)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._peers.pop(peer, None)

    def _leave(self, peer: PeerId) -> None:
        stream = self._peers.pop(peer, None)
        if stream is not None:
            stream.close()


class InprocBroker(BrokerTransport):
    """The broker's end of an `InprocNetwork`."""

    def __init__(self, network: InprocNetwork) -> None:
        self._network = network
        self._closed = False

    async def send(self, peer: PeerId, frames: Sequence[Frame]) -> None:
        if self._closed:
            raise TransportClosed("the broker's in-process transport is closed")
        self._network._deliver(peer, list(frames))

    async def receive(self) -> tuple[PeerId, list[Frame]]:
        try:
            return await self._network._inbox_receive.receive()
        except (anyio.ClosedResourceError, anyio.EndOfStream) as exc:
            raise TransportClosed("the broker's in-process transport is closed") from exc

    def receive_nowait(self) -> tuple[PeerId, list[Frame]] | None:
        """Return the next message if one is waiting, else None."""
        try:
            return self._network._inbox_receive.receive_nowait()
        except anyio.WouldBlock:
            return None
        except (anyio.ClosedResourceError, anyio.EndOfStream) as exc:
            raise TransportClosed("the broker's in-process transport is closed") from exc

    async def aclose(self) -> None:
        self._closed = True
        self._network._inbox_receive.close()
        self._network._inbox_send.close()
        for peer in list(self._network._peers):
            self._network._leave(peer)


class InprocPeer(PeerTransport):
    """A client's or worker's end of an `InprocNetwork`."""

    def __init__(
        self,
        network: InprocNetwork,
        identity: PeerId,
        inbox: MemoryObjectReceiveStream[list[Frame]],
        outbox: MemoryObjectSendStream[_Envelope],
    ) -> None:
        self.identity = identity
        self._network = network
        self._inbox = inbox
        self._outbox = outbox
        self._closed = False

    async def send(self, frames: Sequence[Frame]) -> None:
        if self._closed:
            raise TransportClosed(f"peer {self.identity!r} is closed")
        try:
            await self._outbox.send((self.identity, list(frames)))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise TransportBroken("the in-process broker is gone") from exc

    async def receive(self) -> list[Frame]:
        if self._closed:
            raise TransportClosed(f"peer {self.identity!r} is closed")
        try:
            return await self._inbox.receive()
        except anyio.ClosedResourceError as exc:
            raise TransportClosed(f"peer {self.identity!r} is closed") from exc
        except anyio.EndOfStream as exc:
            raise TransportBroken("the in-process broker is gone") from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._network._leave(self.identity)
        self._inbox.close()
        self._outbox.close()
