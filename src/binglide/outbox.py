"""`Outbox`: send at once when the transport can, otherwise in order from a task.

Clients, workers and the broker post messages from plain functions (a reply
routed, a request opened), which must not wait. Most sends go out on the
spot through the transport's ``send_nowait``; when one would block (a full
ZeroMQ socket), it and everything posted after it wait in the outbox, and
`Outbox.run` sends them in order as room comes. `Outbox.drain` is the way
out: close, and send what is left (a client's last CANCELs, its goodbye).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Generic, TypeVarTuple, Unpack

import anyio

from .errors import TransportClosed, TransportError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ("Outbox",)

Ts = TypeVarTuple("Ts")


class Outbox(Generic[*Ts]):
    """Send what is posted, at once or in order from `run`.

    Args:
        send_nowait: the transport's non-blocking send (raises
            ``anyio.WouldBlock`` when it cannot send now).
        send: the transport's waiting send.
    """

    def __init__(
        self,
        send_nowait: Callable[[Unpack[Ts]], None],
        send: Callable[[Unpack[Ts]], Awaitable[None]],
    ) -> None:
        self._send_nowait = send_nowait
        self._send = send
        self._queue: deque[tuple[*Ts]] = deque()
        self._wake: anyio.Event | None = None
        self._closed = False
        self._running = False
        self._stopped = anyio.Event()

    def post(self, *item: *Ts) -> None:
        """Send `item` now if the transport can and nothing waits; else queue it.

        A closed outbox, or a transport we closed, drops it: whatever was
        left to say is moot. Any other transport error is met by `run`.
        """
        if self._closed:
            return
        if not self._queue:
            try:
                self._send_nowait(*item)
                return
            except anyio.WouldBlock:
                pass
            except TransportClosed:
                return
            except TransportError:
                pass  # `run` meets it, in the owner's task
        self._queue.append(item)
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Send what waits, in order, until the outbox is closed and empty.

        Returns when the transport is closed under it (by us: what was left
        to say is moot). Any other transport error is raised.
        """
        queue = self._queue
        self._running = True
        try:
            while True:
                while queue:
                    try:
                        await self._send(*queue[0])
                    except TransportClosed:
                        return
                    queue.popleft()  # only once sent: an interrupted send stays first
                if self._closed:
                    return
                self._wake = anyio.Event()
                await self._wake.wait()
        finally:
            self._running = False
            self._stopped.set()

    def close(self) -> None:
        """Take no more posts; `run` returns once what waits is sent."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()

    async def drain(self) -> None:
        """Close, and return once everything posted is sent.

        `run` sends the rest if it runs; if it does not (it was cancelled, or
        never started), the rest is sent here. Bound this with a timeout.

        Raises:
            TransportError: a send failed (what is left stays unsent).
        """
        self.close()
        if self._running:
            await self._stopped.wait()
        queue = self._queue
        while queue:
            await self._send(*queue[0])
            queue.popleft()
