"""The in-process transport: messages handed over as objects, by function call.

Within one process nothing needs bytes. A message a peer sends is handed, as
the object it is, to the broker's handler, and what the broker sends to a
peer, to that peer's handler, in the sender's own step: no encoding, no queue
to wait in, no task to wake. One switchboard per network keeps the order and
keeps handlers from being re-entered: a message sent while another is being
delivered (a handler that answers at once) waits in a FIFO until that
delivery returns, then goes; so every message arrives in the order it was
sent, and a handler runs to its end before it is called again.

A message for an end whose delivery has not begun (or was cancelled) waits
for it; one for a peer that left is dropped, as a ZeroMQ ROUTER drops it. An
exception a handler raises belongs to its end: that end's `deliver_to`
raises it, and the sender carries on.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from ..core import PeerId
from ..errors import TransportBroken, TransportClosed
from .base import BrokerTransport, PeerTransport

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskStatus

    from ..core import Message, Outgoing, Protocol
    from .base import BrokerHandler, BrokerMessageHandler, Dropped, PeerHandler

__all__ = ("InprocBroker", "InprocNetwork", "InprocPeer")


class _End:
    """Where the messages of one end go: its handler, or a backlog until it has one."""

    __slots__ = ("backlog", "deliver", "ended", "error")

    def __init__(self) -> None:
        #: Calls the end's handler with one item's fields (None: not delivering now).
        self.deliver: Callable[..., None] | None = None
        self.backlog: deque[tuple[Any, ...]] = deque()
        self.error: BaseException | None = None
        self.ended: anyio.Event | None = None

    def end(self, error: BaseException) -> None:
        """Stop this end for good; its `deliver_to` raises `error`."""
        if self.error is None:
            self.error = error
            self.backlog.clear()
            if self.ended is not None:
                self.ended.set()

    async def serve(self, deliver: Callable[..., None], board: _Switchboard) -> None:
        """Deliver to `deliver` until the end stops, then raise why."""
        if self.deliver is not None:
            raise anyio.BusyResourceError("delivering from")
        if self.ended is None:
            self.ended = anyio.Event()
        self.deliver = deliver
        try:
            board.flush_backlog(self)
            if self.error is None:
                await self.ended.wait()
            assert self.error is not None
            raise self.error
        finally:
            self.deliver = None


class _Switchboard:
    """Hands items to ends one at a time, in the order they were posted."""

    def __init__(self) -> None:
        self.broker = _End()
        self.bound = False
        self.peers: dict[PeerId, _End] = {}
        #: What waits to be delivered, in order (the transports append to it
        #: and call `run` when not `busy`: what `post` does).
        self.queue: deque[tuple[_End, tuple[Any, ...]]] = deque()
        #: What to call once the queue is empty (`call_when_delivered`), by end.
        self._after: list[tuple[_End, Callable[[], None]]] = []
        #: Whether `run` is delivering (a handler's sends then only queue).
        self.busy = False

    def post(self, end: _End, item: tuple[Any, ...]) -> None:
        """Deliver `item` to `end` after what is queued (now, if nothing is being delivered)."""
        self.queue.append((end, item))
        if not self.busy:
            self.run()

    def flush_backlog(self, end: _End) -> None:
        # What waited for the end goes before anything its delivery causes.
        self.queue.extend((end, item) for item in end.backlog)
        end.backlog.clear()
        if not self.busy:
            self.run()

    def call_when_delivered(self, end: _End, fn: Callable[[], None]) -> None:
        """Call `fn` when nothing is left to deliver (now if nothing is being delivered).

        What it raises belongs to `end`, as what its handler raises does.
        """
        if self.busy:
            self._after.append((end, fn))
            return
        fn()

    def run(self) -> None:
        """Deliver what is queued, in order, until nothing is left (see the module docstring)."""
        self.busy = True
        queue = self.queue
        after = self._after
        try:
            while True:
                while queue:
                    end, item = queue.popleft()
                    if end.error is not None:
                        continue  # the end stopped: what comes for it is lost
                    deliver = end.deliver
                    if deliver is None:
                        end.backlog.append(item)
                        continue
                    try:
                        deliver(*item)
                    except Exception as exc:
                        end.end(exc)
                if not after:
                    break
                # The queue is empty: what waited for that goes now (and
                # what it sends is delivered before the next of them).
                end, fn = after.pop(0)
                if end.error is None:
                    try:
                        fn()
                    except Exception as exc:
                        end.end(exc)
        finally:
            self.busy = False


class InprocNetwork:
    """A broker address inside one process: `bind` once, `connect` many times."""

    def __init__(self) -> None:
        self._board = _Switchboard()
        self._names = itertools.count(1)

    def bind(self) -> InprocBroker:
        """Return the broker's end (once).

        Raises:
            RuntimeError: the network already has a broker.
        """
        if self._board.bound:
            raise RuntimeError("this in-process network already has a broker")
        self._board.bound = True
        return InprocBroker(self._board)

    def connect(self, identity: str | None = None) -> InprocPeer:
        """Return a new peer's end, named `identity` or a fresh name.

        Raises:
            ValueError: a peer of that name is connected.
        """
        peer = PeerId(identity or f"inproc-{next(self._names)}")
        if peer in self._board.peers:
            raise ValueError(f"peer {peer!r} is already connected")
        end = self._board.peers[peer] = _End()
        return InprocPeer(self._board, peer, end)


class InprocBroker(BrokerTransport):
    """The broker's end of an `InprocNetwork`."""

    in_process = True

    def __init__(self, board: _Switchboard) -> None:
        self._board = board
        self._end = board.broker

    def send_nowait(self, out: Outgoing) -> None:
        if self._end.error is not None:
            raise TransportClosed("the broker's in-process transport is closed")
        board = self._board
        end = board.peers.get(out.peer)
        if end is not None:  # else the peer left: like a ROUTER, drop it
            # `board.post`, inline (every message of the network comes here or below).
            board.queue.append((end, (out.protocol, out.message)))
            if not board.busy:
                board.run()

    async def send(self, out: Outgoing) -> None:
        await anyio.lowlevel.checkpoint()
        self.send_nowait(out)

    async def deliver_to(
        self,
        handler: BrokerHandler,
        *,
        dropped: Dropped | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        def batch_of_one(peer: PeerId, protocol: Protocol, message: Message) -> None:
            handler(((peer, protocol, message),))

        await self.deliver_each_to(batch_of_one, dropped=dropped, task_status=task_status)

    async def deliver_each_to(
        self,
        handler: BrokerMessageHandler,
        *,
        dropped: Dropped | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        # Objects are never malformed: nothing is dropped here.
        task_status.started()
        # Each item for the broker is posted as ``(peer, protocol, message)``:
        # the handler is called with its fields, no batch a message.
        await self._end.serve(handler, self._board)

    async def aclose(self) -> None:
        self._end.end(TransportClosed("the broker's in-process transport is closed"))
        for end in self._board.peers.values():
            end.end(TransportBroken("the in-process broker is gone"))


class InprocPeer(PeerTransport):
    """A client's or worker's end of an `InprocNetwork`."""

    in_process = True

    def __init__(self, board: _Switchboard, identity: PeerId, end: _End) -> None:
        self.identity = identity
        self._board = board
        self._end = end
        self._closed = False

    def send_nowait(self, protocol: Protocol, message: Message) -> None:
        if self._closed:
            raise TransportClosed(f"peer {self.identity!r} is closed")
        board = self._board
        broker = board.broker
        if broker.error is not None:
            raise TransportBroken("the in-process broker is gone")
        # `board.post`, inline.
        board.queue.append((broker, (self.identity, protocol, message)))
        if not board.busy:
            board.run()

    async def send(self, protocol: Protocol, message: Message) -> None:
        await anyio.lowlevel.checkpoint()
        self.send_nowait(protocol, message)

    def call_when_delivered(self, fn: Callable[[], None]) -> None:
        # The switchboard delivers in the sender's step: `fn` waits for the
        # end of that (a sub-request's answer may come in it).
        self._board.call_when_delivered(self._end, fn)

    async def deliver_to(
        self,
        handler: PeerHandler,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        if self._closed:
            raise TransportClosed(f"peer {self.identity!r} is closed")
        task_status.started()
        # Called with an item's fields, (protocol, message): no wrapper a message.
        await self._end.serve(handler, self._board)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._board.peers.get(self.identity) is self._end:
            del self._board.peers[self.identity]
        self._end.end(TransportClosed(f"peer {self.identity!r} is closed"))
