"""`Requester`: opening requests and routing the broker's replies to their calls.

A `Client` has one, and so has a `Worker` (a worker is a client too: its
handlers' sub-requests go through it). The requester drives a
`ClientMachine`, keeps the `CallState` of every open request, and posts what
the machine says to send through the function its owner gives it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .call import Call, CallState
from .core import (
    BrokerLost,
    BrokerPlain,
    ClientMachine,
    Failure,
    Final,
    JobId,
    Message,
    Partial,
    PeerId,
    Protocol,
    Reply,
)
from .errors import (
    JOB_ERRORS_BY_KIND,
    JobCancelled,
    JobError,
    JobFailed,
    LoopError,
    RemoteProtocolError,
)
from .payload import DeferredReport, decode_report, encode_body, is_repeat_last

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import numpy as np

    from .call import WaitHooks

__all__ = ("Requester", "error_from_failure")

log = logging.getLogger("binglide.client")

# Protocol's members as module names: an enum member read off its class is a
# call of `EnumType.__getattr__`'s hook on 3.11 (read at every message).
_CLIENT = Protocol.CLIENT


def error_from_failure(failure: Failure, *, job: JobId, service: str) -> JobError:
    """Return the `JobError` a ``Failure`` message stands for."""
    cls = JOB_ERRORS_BY_KIND.get(failure.kind, JobError)
    if cls is JobFailed:
        return JobFailed(
            f"the {service!r} handler raised {failure.remote_type}: {failure.message}",
            job_id=job,
            service=service,
            remote_type=failure.remote_type,
            remote_message=failure.message,
        )
    if cls is LoopError:
        return LoopError(failure.message, job_id=job, service=service, cycle=failure.cycle)
    return cls(failure.message, job_id=job, service=service)


class Requester:
    """Open requests and route their replies (see the module docstring).

    Args:
        identity: the peer's routing id (job ids of its requests derive from it).
        post: sends one message on the client hop.
        heartbeat_interval: seconds between client heartbeats (None: none).
    """

    def __init__(
        self,
        identity: PeerId,
        post: Callable[[Protocol, Message], None],
        *,
        heartbeat_interval: float | None = None,
    ) -> None:
        self._identity = identity
        self._post = post
        # A heartbeating client can tell a plain MDP/0.2 broker (silent to
        # binglide's extensions) and falls back to plain MDP (core.client).
        self._machine = ClientMachine(
            heartbeat_interval=heartbeat_interval, plain_fallback=bool(heartbeat_interval)
        )
        self._open: dict[int, CallState] = {}

    @property
    def plain_broker(self) -> bool:
        """Whether the broker is taken for a plain MDP/0.2 one (`binglide.core.client`)."""
        return self._machine.plain_broker

    @property
    def open_calls(self) -> int:
        """How many requests are open."""
        return len(self._open)

    def open(
        self,
        service: str,
        body: Mapping[str, Any] | None,
        arrays: Sequence[np.ndarray[Any, Any]],
        *,
        job: str = "",
        ancestry: tuple[str, ...] = (),
        parent: int = 0,
        timeout: float | None = None,
        on_wait: WaitHooks | None = None,
        group: set[int] | None = None,
    ) -> Call:
        """Send a request and return its `Call`.

        Args:
            service: the service asked.
            body: the JSON-able body.
            arrays: arrays sent with it.
            job: the job id (a sub-request's: its parent's); empty for a new job.
            ancestry: the ancestors, for loop detection.
            parent: the broker's task id of the task issuing it, or 0.
            timeout: seconds it may wait for a worker (None: the broker's).
            on_wait: hooks told when a task starts and stops waiting on it.
            group: a set that holds the request id while the request is open
                (a task's sub-requests, for `cancel_group`).

        Raises:
            TypeError: the body is not JSON-able.
        """
        payload = encode_body(body, arrays)
        # Positionally (job, ancestry, parent, timeout): no keywords to match.
        rid = self._machine.request(service, payload, job, ancestry, parent, timeout)
        # Positionally (its group, then its wait hooks): keywords cost a dict.
        state = CallState(rid, service, job, self._identity, self.cancel, group, on_wait)
        self._open[rid] = state
        if group is not None:
            group.add(rid)
        state.opening = True
        try:
            for msg in self._machine.outgoing():  # `flush`, inline
                self._post(_CLIENT, msg)
        finally:
            state.opening = False
        return state

    def cancel(self, rid: int) -> None:
        """Cancel open request `rid`: tell the broker, fail its call with `JobCancelled`."""
        state = self._close(rid)
        if state is None:
            return
        self._machine.cancel(rid)
        self.flush()
        state.fail(
            JobCancelled("the request was cancelled", job_id=state.job, service=state.service)
        )

    def cancel_all(self) -> None:
        """Cancel every open request."""
        for rid in list(self._open):
            self.cancel(rid)

    def cancel_group(self, group: set[int]) -> None:
        """Cancel the requests of `group` still open (a task ended: they are of no use)."""
        for rid in list(group):
            self.cancel(rid)

    def fail_all(self, reason: str) -> None:
        """Fail every open request with `JobError` (the connection is gone)."""
        for rid in list(self._open):
            state = self._close(rid)
            if state is not None:
                state.fail(JobError(reason, job_id=state.job))

    def resend_open(self) -> None:
        """Send every open request again (the broker came back)."""
        self._machine.resend_open()
        self.flush()

    def handle_timer(self, now: float) -> BrokerLost | BrokerPlain | None:
        """Send a heartbeat if one is due; report a broker that fell silent, or is a plain one."""
        lost = self._machine.handle_timer(now)
        self.flush()
        return lost

    def next_deadline(self) -> float | None:
        """Return when `handle_timer` is next due (None: never)."""
        return self._machine.next_deadline()

    def flush(self) -> None:
        """Post what the machine says to send."""
        for msg in self._machine.outgoing():
            self._post(_CLIENT, msg)

    def receive(self, msg: Message, now: float) -> BrokerLost | None:
        """Take one client-hop message from the broker; route a reply to its call.

        Returns:
            What the machine says of the broker, when it was lost or restarted.

        Raises:
            RemoteProtocolError: the broker sent something a client never gets.
        """
        outcome = self._machine.receive(msg, now)
        if type(outcome) is not Reply:  # None, or what the machine says of the broker
            return outcome  # type: ignore[return-value]
        rid = outcome.rid
        state = self._open.get(rid)
        if state is None:
            return None
        reply = outcome.message
        final = type(reply) is Final  # the usual reply, without the class tests below
        if not final:
            if isinstance(reply, Failure):
                self._close(rid)
                state.fail(error_from_failure(reply, job=state.job, service=state.service))
                return None
            final = isinstance(reply, Final)
        payload = reply.payload  # type: ignore[union-attr]  # not a Failure (above)
        if (
            final
            and type(payload) is not DeferredReport  # (whose len() would encode it)
            and len(payload) == 1  # a report has its header and data: no call for it
            and is_repeat_last(payload)
        ):
            self._close(rid)
            state.repeat_last()
            return None
        try:
            report = decode_report(payload, final=final)
        except RemoteProtocolError as exc:
            if isinstance(reply, Partial):
                log.warning("dropped a malformed report for %r: %s", state.service, exc)
                return None
            self._close(rid)
            state.fail(
                JobFailed(
                    f"the {state.service!r} service sent a malformed final report: {exc}",
                    job_id=state.job,
                    service=state.service,
                    remote_type="RemoteProtocolError",
                    remote_message=str(exc),
                )
            )
            return None
        if final:
            # `_close`, inline.
            del self._open[rid]
            if state.group is not None:
                state.group.discard(rid)
        state.deliver(report)
        return None

    def _close(self, rid: int) -> CallState | None:
        state = self._open.pop(rid, None)
        if state is not None and state.group is not None:
            state.group.discard(rid)
        return state
