"""The frames a session has yet to send, with superseded refinements dropped.

A request's reports arrive faster than a busy page (or a busy core) takes
them: on two cores, every refinement the server encodes and the page decodes
and draws is CPU the workers' kernels do not get. A refinement that a newer
one of the same request overtakes before it is sent would be drawn once and
overwritten at once, so the outbox replaces it in place: the page gets the
newest refinement, where the old one stood in the queue. A request's first
report (the estimate, painted at once) and every final frame (the exact
answer, an error, ``cancelled``) are never dropped, and frames are encoded
only when sent, so a dropped one costs nothing but its queueing.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from .protocol import encode_frame

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ("Outbox",)


class _Pending:
    __slots__ = ("arrays", "header")

    def __init__(self, header: dict[str, Any], arrays: Mapping[str, Any]) -> None:
        self.header: dict[str, Any] | None = header
        self.arrays = arrays


class Outbox:
    """A session's queue of frames, oldest first, refinements coalesced."""

    def __init__(self) -> None:
        self._queue: deque[_Pending] = deque()
        # The unsent refinement of each request, replaced by a newer one.
        self._refinement: dict[Any, _Pending] = {}
        # Requests that already had a report queued: their first is out.
        self._started: set[Any] = set()
        self._ready = anyio.Event()
        self._closed = False
        #: Refinements dropped because a newer one replaced them unsent.
        self.dropped = 0

    def put(self, header: dict[str, Any], arrays: Mapping[str, Any] | None = None) -> None:
        """Queue one frame; a refinement replaces its request's unsent one."""
        if self._closed:
            return
        arrays = arrays or {}
        key = header.get("id")
        refinement = header.get("kind") == "report" and not header.get("final")
        if header.get("final"):
            self._started.discard(key)
            queued = self._refinement.pop(key, None)
            if queued is not None and header.get("kind") == "report":
                # The exact answer supersedes the refinement still waiting.
                queued.header = None
                self.dropped += 1
        elif refinement and key in self._started:
            queued = self._refinement.get(key)
            if queued is not None:
                queued.header, queued.arrays = header, arrays
                self.dropped += 1
                return
            pending = _Pending(header, arrays)
            self._refinement[key] = pending
            self._queue.append(pending)
            self._ready.set()
            return
        elif refinement:
            self._started.add(key)
        self._queue.append(_Pending(header, arrays))
        self._ready.set()

    def close(self) -> None:
        """Stop queueing: `get` returns what is queued, then None."""
        self._closed = True
        self._ready.set()

    async def get(self) -> bytes | None:
        """Return the oldest frame, encoded, once there is one (None once closed and empty)."""
        while True:
            while not self._queue:
                if self._closed:
                    return None
                self._ready = anyio.Event()
                await self._ready.wait()
            pending = self._queue.popleft()
            header = pending.header
            if header is None:  # superseded by its request's exact answer
                continue
            if self._refinement.get(header.get("id")) is pending:
                del self._refinement[header.get("id")]
            return encode_frame(header, pending.arrays)

    def __len__(self) -> int:
        return len(self._queue)
