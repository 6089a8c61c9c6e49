"""The client state machine: open requests, their reports, cancellation.

Theory of operation: `ClientMachine.request` numbers a request with the
injected `IdSource` and queues the REQUEST; the request is *open* until a
FINAL or a failure for its id arrives. `receive` routes PARTIAL, FINAL and
failures of open requests to their request id and drops reports of requests
that are no longer open (they were cancelled: nothing reaches a caller after
its cancellation). `cancel` queues a CANCEL and closes the request at once.
A machine whose broker went away (DISCONNECT, or silence past the liveness
bound) reports it once with `BrokerLost` and keeps its open requests, so that
the runtime can re-issue them to a new broker.
"""

from __future__ import annotations

import attrs

from ..errors import LocalProtocolError, RemoteProtocolError
from .ids import IdSource
from .liveness import Liveness
from .messages import (
    Cancel,
    Disconnect,
    Failure,
    Final,
    Frame,
    Heartbeat,
    Message,
    Partial,
    Request,
)

__all__ = ("BrokerLost", "ClientMachine", "Reply")


@attrs.frozen
class Reply:
    """A report or failure for open request `rid`."""

    rid: int
    message: Partial | Final | Failure

    @property
    def last(self) -> bool:
        """Whether this ends the request."""
        return not isinstance(self.message, Partial)


@attrs.frozen
class BrokerLost:
    """The broker disconnected us, fell silent, or restarted.

    Attributes:
        reason: what happened, for a person.
        reissued: the open requests are already queued again (a restarted
            broker answered); otherwise re-issue them when the broker answers.
    """

    reason: str
    reissued: bool = False


class ClientMachine:
    """Track one client's open requests (see the module docstring)."""

    def __init__(self, *, ids: IdSource | None = None, heartbeat_interval: float | None = None):
        self._ids = ids or IdSource()
        self._open: dict[int, Request] = {}
        self._out: list[Message] = []
        self._liveness = Liveness(heartbeat_interval) if heartbeat_interval else None
        self._lost = False
        self._instance = ""

    @property
    def open_requests(self) -> tuple[int, ...]:
        """The ids of the requests still open."""
        return tuple(self._open)

    def request(
        self,
        service: str,
        payload: tuple[Frame, ...] = (),
        *,
        job: str = "",
        ancestry: tuple[str, ...] = (),
        parent: int = 0,
        timeout: float | None = None,
    ) -> int:
        """Open a request and queue its REQUEST; return its request id."""
        if not service:
            raise LocalProtocolError("a request must name a service")
        rid = self._ids()
        msg = Request(rid, service, payload, job, ancestry, parent, timeout)
        self._open[rid] = msg
        self._out.append(msg)
        return rid

    def cancel(self, rid: int) -> bool:
        """Close request `rid` and queue its CANCEL; return whether it was open."""
        if self._open.pop(rid, None) is None:
            return False
        self._out.append(Cancel(rid=rid))
        return True

    def resend_open(self) -> None:
        """Queue every open request again (after the broker came back)."""
        self._lost = False
        self._out.extend(self._open.values())

    def receive(self, msg: Message, now: float = 0.0) -> Reply | BrokerLost | None:
        """Take one message from the broker; return what it means, if anything.

        Raises:
            RemoteProtocolError: the broker sent something a client never gets.
        """
        if self._liveness is not None:
            self._liveness.heard(now)
        match msg:
            case Partial() | Final() | Failure():
                if msg.rid not in self._open:
                    return None  # cancelled, or a duplicate: nobody waits for it
                reply = Reply(msg.rid, msg)
                if reply.last:
                    del self._open[msg.rid]
                return reply
            case Heartbeat(instance=instance):
                if instance and self._instance and instance != self._instance:
                    # A restarted broker knows nothing of our requests.
                    self._instance = instance
                    self._out.extend(self._open.values())
                    return BrokerLost("the broker restarted; open requests are re-issued", True)
                self._instance = instance or self._instance
                return None
            case Disconnect():
                return self._lose("the broker disconnected this client")
        raise RemoteProtocolError(f"a client never gets {type(msg).__name__} from the broker")

    def handle_timer(self, now: float) -> BrokerLost | None:
        """Queue a heartbeat if one is due; report a silent broker once."""
        if self._liveness is None:
            return None
        beat, lost = self._liveness.tick(now)
        if beat:
            self._out.append(Heartbeat())
        if not lost:
            return None
        if not self._liveness.answered:
            return self._lose("no broker has answered yet")
        return self._lose("the broker stopped answering heartbeats")

    def next_deadline(self) -> float | None:
        """Return when `handle_timer` should next be called."""
        return self._liveness.next_deadline() if self._liveness else None

    def outgoing(self) -> list[Message]:
        """Return and forget the messages to send, in order."""
        out, self._out = self._out, []
        return out

    def _lose(self, reason: str) -> BrokerLost | None:
        if self._lost:
            return None
        self._lost = True
        return BrokerLost(reason)
