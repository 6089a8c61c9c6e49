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

Plain brokers. With ``plain_fallback``, a heartbeating machine that has heard
nothing at all from its broker for ``liveness`` intervals takes it for a
plain MDP/0.2 broker (RFC 18), which drops binglide's XREQUEST and HEARTBEAT
unanswered, and reports it once with `BrokerPlain`. From then on it speaks
plain MDP/0.2: plain REQUESTs, one at a time (their replies carry no request
id, only the service name: RFC 18's client dialog is synchronous), queued in
order; a cancelled request's replies are dropped until its FINAL. Anything
only a binglide broker sends (a HEARTBEAT, an XFINAL...) switches it back:
the open requests are re-issued in binglide's form (`BrokerLost` with
``reissued``). A broker that answered once is never taken for plain: its
silence is a lost broker.
"""

from __future__ import annotations

import enum
from collections import deque

import attrs

from ..errors import LocalProtocolError, RemoteProtocolError
from .frames import plain_failure
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

__all__ = ("PLAIN_BROKER_LIMITS", "BrokerLost", "BrokerPlain", "ClientMachine", "Reply")

#: What a client loses through a plain MDP/0.2 broker, for a person.
PLAIN_BROKER_LIMITS = (
    "cancellation does not reach workers (a cancelled request runs to its end)",
    "no progress guarantee for requests that workers make to other workers",
    "requests go one at a time (RFC 18's client dialog is synchronous)",
    "no liveness: a lost broker or client goes unnoticed, and request timeouts are ignored",
)


class _Broker(enum.Enum):
    UNKNOWN = "unknown"  # nothing heard yet
    BINGLIDE = "binglide"  # it answered in binglide's dialect
    PLAIN = "plain"  # silent to binglide's extensions: plain MDP/0.2


# The members, as module names: an enum member read off its class is a call
# of `EnumType.__getattr__`'s hook on 3.11 (about a Python call each; read at
# every request and reply).
_UNKNOWN = _Broker.UNKNOWN
_BINGLIDE = _Broker.BINGLIDE
_PLAIN = _Broker.PLAIN


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class Reply:
    """A report or failure for open request `rid`."""

    rid: int
    message: Partial | Final | Failure

    def __init__(self, rid: int, message: Partial | Final | Failure) -> None:
        # By hand, as the messages' are: attrs' frozen `__init__` sets each
        # field through `object.__setattr__` (one a reply).
        self.rid = rid
        self.message = message

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


@attrs.frozen
class BrokerPlain:
    """The broker never answered binglide's extensions: it is taken for a plain MDP/0.2 broker.

    Attributes:
        reason: what was seen, for a person.
        unavailable: the features missing through such a broker.
    """

    reason: str
    unavailable: tuple[str, ...] = PLAIN_BROKER_LIMITS


class ClientMachine:
    """Track one client's open requests (see the module docstring)."""

    def __init__(
        self,
        *,
        ids: IdSource | None = None,
        heartbeat_interval: float | None = None,
        plain_fallback: bool = False,
    ):
        """Make a machine.

        Args:
            ids: numbers the requests (default: from 1).
            heartbeat_interval: seconds between heartbeats; None: none (and no
                notice of a silent broker).
            plain_fallback: with heartbeats, take a broker that never answers
                for a plain MDP/0.2 one (module docstring) rather than a lost
                one.
        """
        self._ids = ids or IdSource()
        #: What calling `_ids` does, without a Python frame when it can (one a request).
        self._next_id = self._ids.taker()
        self._open: dict[int, Request] = {}
        self._out: list[Message] = []
        self._liveness = Liveness(heartbeat_interval) if heartbeat_interval else None
        self._lost = False
        self._instance = ""
        self._fallback = plain_fallback and self._liveness is not None
        self._broker = _UNKNOWN
        # Plain MDP/0.2 (module docstring): the requests waiting their turn,
        # the one in flight, and whether it was cancelled meanwhile.
        self._plain_queue: deque[int] = deque()
        self._plain_current: int | None = None
        self._plain_cancelled = False

    @property
    def plain_broker(self) -> bool:
        """Whether the broker is taken for a plain MDP/0.2 one (module docstring)."""
        return self._broker is _PLAIN

    @property
    def open_requests(self) -> tuple[int, ...]:
        """The ids of the requests still open."""
        return tuple(self._open)

    def request(
        self,
        service: str,
        payload: tuple[Frame, ...] = (),
        job: str = "",
        ancestry: tuple[str, ...] = (),
        parent: int = 0,
        timeout: float | None = None,
    ) -> int:
        """Open a request and queue its REQUEST; return its request id."""
        if not service:
            raise LocalProtocolError("a request must name a service")
        rid = self._next_id()
        msg = Request(rid, service, payload, job, ancestry, parent, timeout)
        self._open[rid] = msg
        if self._broker is _PLAIN:
            self._plain_queue.append(rid)
            self._plain_next()
        else:
            self._out.append(msg)
        return rid

    def cancel(self, rid: int) -> bool:
        """Close request `rid` and queue its CANCEL; return whether it was open.

        Through a plain broker nothing is sent (MDP/0.2 has no CANCEL): a
        request not sent yet is dropped, and the one in flight runs to its
        end, unheard.
        """
        if self._open.pop(rid, None) is None:
            return False
        if self._broker is not _PLAIN:
            self._out.append(Cancel(rid=rid))
        elif rid == self._plain_current:
            self._plain_cancelled = True
        else:
            self._plain_queue.remove(rid)
        return True

    def resend_open(self) -> None:
        """Queue every open request again (after the broker came back)."""
        self._lost = False
        if self._broker is not _PLAIN:
            self._out.extend(self._open.values())

    def receive(self, msg: Message, now: float = 0.0) -> Reply | BrokerLost | None:
        """Take one message from the broker; return what it means, if anything.

        Raises:
            RemoteProtocolError: the broker sent something a client never gets,
                or a plain reply for another service than the one asked.
        """
        if self._liveness is not None:
            self._liveness.heard(now)
        if self._broker is not _BINGLIDE:
            plain_reply = isinstance(msg, Partial | Final) and msg.rid == 0
            if self._broker is _PLAIN and plain_reply:
                return self._plain_reply(msg)  # type: ignore[arg-type]
            if not plain_reply and not isinstance(msg, Disconnect):
                # Only a binglide broker says this (RFC 18 clients get no
                # HEARTBEAT, XFINAL or FAILURE).
                switched = self._broker is _PLAIN
                self._broker = _BINGLIDE
                if switched:
                    return self._back_to_binglide()
        if type(msg) is Final:  # the usual reply, without the match's class tests
            rid = msg.rid
            if rid not in self._open:
                return None  # cancelled, or a duplicate: nobody waits for it
            del self._open[rid]
            return Reply(rid, msg)
        match msg:
            case Partial() | Final() | Failure():
                if msg.rid not in self._open:
                    return None  # cancelled, or a duplicate: nobody waits for it
                if not isinstance(msg, Partial):  # the reply is the last (`Reply.last`)
                    del self._open[msg.rid]
                return Reply(msg.rid, msg)
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

    def handle_timer(self, now: float) -> BrokerLost | BrokerPlain | None:
        """Queue a heartbeat if one is due; report a silent broker once.

        A broker never heard from is reported as plain (`BrokerPlain`) when
        the machine may fall back (module docstring), else as lost.
        """
        if self._liveness is None:
            return None
        beat, lost = self._liveness.tick(now)
        if beat:
            self._out.append(Heartbeat())
        if not lost or self._broker is _PLAIN:
            return None  # a plain broker never heartbeats: its silence says nothing
        if self._broker is _UNKNOWN and self._fallback:
            return self._fall_back()
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

    def _fall_back(self) -> BrokerPlain:
        self._broker = _PLAIN
        # What was sent in binglide's form went unheard: send it again, plainly.
        self._plain_queue.extend(self._open)
        self._plain_next()
        return BrokerPlain(
            "the broker answered none of binglide's extensions (no HEARTBEAT for "
            f"{self._liveness.interval * self._liveness.liveness:g} s): it is taken "  # type: ignore[union-attr]
            "for a plain MDP/0.2 broker (or none listens yet)"
        )

    def _back_to_binglide(self) -> BrokerLost:
        self._plain_queue.clear()
        self._plain_current = None
        self._plain_cancelled = False
        self._out.extend(self._open.values())
        return BrokerLost(
            "the broker speaks binglide's extensions after all; open requests are re-issued",
            reissued=True,
        )

    def _plain_next(self) -> None:
        if self._plain_current is not None or not self._plain_queue:
            return
        rid = self._plain_current = self._plain_queue.popleft()
        self._plain_cancelled = False
        msg = self._open[rid]
        self._out.append(Request(0, msg.service, msg.payload, extended=False))

    def _plain_reply(self, msg: Partial | Final) -> Reply | None:
        rid = self._plain_current
        if rid is None:
            return None  # nothing in flight: a stray reply
        last = isinstance(msg, Final)
        if last:
            self._plain_current = None
        if self._plain_cancelled:
            if last:
                self._plain_next()
            return None
        request = self._open[rid]
        if msg.service and msg.service != request.service:
            raise RemoteProtocolError(
                f"a plain reply for service {msg.service!r} while {request.service!r} was asked"
            )
        reply: Partial | Final | Failure = attrs.evolve(msg, rid=rid, service=request.service)
        if last:
            del self._open[rid]
            failure = plain_failure(reply)  # type: ignore[arg-type]
            reply = failure if failure is not None else reply
            self._plain_next()
        return Reply(rid, reply)

    def _lose(self, reason: str) -> BrokerLost | None:
        if self._lost:
            return None
        self._lost = True
        return BrokerLost(reason)
