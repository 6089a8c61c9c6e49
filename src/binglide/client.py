"""`Client` and `Call`: sending requests and receiving their reports.

A `Client` drives a `ClientMachine` over a `PeerTransport`: a receive loop
routes every report to the `Call` of its request, and a send loop moves what
the machine queues to the transport, so that `request()` itself never blocks
and many requests can be in flight at once. Workers issue sub-requests with
the same machinery (`Requester`), so a worker is a client.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections import deque
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import anyio
import anyio.lowlevel

from ._clock import loop_time
from .analyses import AnalysisMethods
from .core import (
    BrokerLost,
    BrokerPlain,
    ClientMachine,
    Disconnect,
    Failure,
    Final,
    Frame,
    JobId,
    Message,
    Partial,
    PeerId,
    Protocol,
    decode,
    encode,
    job_id_for,
)
from .errors import (
    JOB_ERRORS_BY_KIND,
    JobCancelled,
    JobError,
    JobFailed,
    LoopError,
    RemoteProtocolError,
    TransportClosed,
    TransportError,
)
from .payload import decode_report, encode_body, is_repeat_last
from .report import Report

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping, Sequence

    import numpy as np
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .broker import Broker
    from .transports import PeerTransport

__all__ = ("Call", "Client", "Then")

log = logging.getLogger("binglide.client")

T = TypeVar("T")
U = TypeVar("U")


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


class Then(Generic[T]):
    """The awaitable that `Call.then` returns: the result of a function of a result.

    It runs once, when first awaited; awaiting it again gives the same result
    (or raises the same error). Errors of the source propagate unchanged.
    """

    def __init__(self, source: Awaitable[Any], fn: Callable[..., Any], args: tuple[Any, ...]):
        self._source = source
        self._fn = fn
        self._args = args
        self._done: anyio.Event | None = None
        self._result: Any = None
        self._error: BaseException | None = None

    async def _run(self) -> T:
        if self._done is None:
            self._done = anyio.Event()
            try:
                value = await self._source
                result = self._fn(value, *self._args)
                if inspect.isawaitable(result):
                    result = await result
                self._result = result
            except BaseException as exc:
                self._error = exc
                raise
            finally:
                self._done.set()
        else:
            await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[no-any-return]

    def __await__(self) -> Generator[Any, None, T]:
        return self._run().__await__()

    @overload
    def then(self, fn: Callable[..., Awaitable[U]], *args: Any) -> Then[U]: ...
    @overload
    def then(self, fn: Callable[..., U], *args: Any) -> Then[U]: ...
    def then(self, fn: Callable[..., Any], *args: Any) -> Then[Any]:
        """Return an awaitable of `fn` (sync or async) applied to this result."""
        return Then(self, fn, args)


class Call:
    """The handle of one request.

    ``await call`` gives the final `Report`; ``async for report in call``
    gives every report in order, the final one last; ``call.then(fn)`` chains;
    ``call.cancel()`` cancels the whole job (or, for a worker's sub-request,
    that sub-request and everything below it).

    If nobody iterates, only the latest intermediate report is kept (so a
    caller that only awaits the final report holds no stale arrays).

    Attributes:
        job: the job id of the request tree.
        service: the service asked.
    """

    def __init__(
        self,
        requester: Requester,
        rid: int,
        service: str,
        job: JobId,
        *,
        on_wait: tuple[Callable[[], None], Callable[[], None]] | None = None,
    ):
        self._requester = requester
        self._rid = rid
        self.service = service
        self.job = job
        self._on_wait = on_wait
        self._reports: deque[Report] = deque()
        self._final: Report | None = None
        self._error: JobError | None = None
        self._changed: anyio.Event | None = None
        self._iterating = False
        self._last_completion = 0.0
        self._last_report: Report | None = None

    def __repr__(self) -> str:
        state = "done" if self.done() else "open"
        return f"<Call {self.service!r} job={self.job!r} {state}>"

    def done(self) -> bool:
        """Return whether the final report or an error has arrived."""
        return self._final is not None or self._error is not None

    def cancel(self) -> None:
        """Cancel the request and everything it caused; awaiting it raises `JobCancelled`.

        Idempotent; a no-op once the call is done.
        """
        if self.done():
            return
        self._requester._cancel(self._rid)
        self._fail(
            JobCancelled("the request was cancelled", job_id=self.job, service=self.service)
        )

    @overload
    def then(self, fn: Callable[..., Awaitable[U]], *args: Any) -> Then[U]: ...
    @overload
    def then(self, fn: Callable[..., U], *args: Any) -> Then[U]: ...
    def then(self, fn: Callable[..., Any], *args: Any) -> Then[Any]:
        """Return an awaitable of ``fn(final_report, *args)``; `fn` may be sync or async."""
        return Then(self, fn, args)

    def __await__(self) -> Generator[Any, None, Report]:
        return self.wait().__await__()

    async def wait(self) -> Report:
        """Wait for the final report and return it.

        Raises:
            JobError: the request failed (its subclass says how).
        """
        while not self.done():
            await self._wait_change()
        if self._error is not None:
            raise self._error
        assert self._final is not None
        return self._final

    def __aiter__(self) -> AsyncIterator[Report]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Report]:
        self._iterating = True
        while True:
            if self._reports:
                report = self._reports.popleft()
                yield report
                if report.final:
                    return
                continue
            if self._error is not None:
                raise self._error
            await self._wait_change()

    async def _wait_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        event = self._changed
        if self._on_wait is None:
            await event.wait()
            return
        enter, leave = self._on_wait
        enter()
        try:
            await event.wait()
        finally:
            leave()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _final_from_last(self) -> Report:
        last = self._last_report
        if last is None:
            return Report(None, final=True)
        return Report(
            last.data,
            completion=last.completion,
            precision=last.precision,
            meta=last.meta,
            final=True,
        )

    def _deliver(self, report: Report) -> None:
        if self.done():
            return
        # Completion never decreases, whatever a handler reports.
        report.completion = max(report.completion, self._last_completion)
        self._last_completion = report.completion
        self._last_report = report
        if report.final:
            self._final = report
        elif not self._iterating:
            self._reports.clear()
        self._reports.append(report)
        self._notify()

    def _fail(self, error: JobError) -> None:
        if self.done():
            return
        self._error = error
        self._notify()


class Requester(AnalysisMethods):
    """What a `Client` and a `Worker` share: issuing requests and routing replies."""

    def __init__(self, identity: PeerId, *, heartbeat_interval: float | None = None) -> None:
        self._identity = identity
        # A heartbeating client can tell a plain MDP/0.2 broker (silent to
        # binglide's extensions) and falls back to plain MDP (core.client).
        self._client_machine = ClientMachine(
            heartbeat_interval=heartbeat_interval, plain_fallback=bool(heartbeat_interval)
        )
        self._broker_lost = False
        self._calls: dict[int, Call] = {}
        send, receive = anyio.create_memory_object_stream[list[Frame]](math.inf)
        self._outbox: MemoryObjectSendStream[list[Frame]] = send
        self._outbox_receive: MemoryObjectReceiveStream[list[Frame]] = receive
        #: Messages in the outbox that the send loop has not sent yet.
        self._queued = 0
        self._outbox_closed = False
        #: The transport's ``send_nowait``, when it has one (`_use_transport`).
        self._send_nowait: Callable[[Sequence[Frame]], None] | None = None

    def _use_transport(self, transport: PeerTransport) -> None:
        # A transport that can send without waiting (ZeroMQ) is sent to at
        # once, from whatever posts: no hop through the outbox and the send
        # loop's task. The outbox stays for the rest (inproc; a full socket).
        self._send_nowait = getattr(transport, "send_nowait", None)

    def _open_call(
        self,
        service: str,
        body: Mapping[str, Any] | None,
        arrays: Sequence[np.ndarray[Any, Any]],
        *,
        job: str = "",
        ancestry: tuple[str, ...] = (),
        parent: int = 0,
        timeout: float | None = None,
        on_wait: tuple[Callable[[], None], Callable[[], None]] | None = None,
    ) -> Call:
        payload = encode_body(body, arrays)
        rid = self._client_machine.request(
            service, payload, job=job, ancestry=ancestry, parent=parent, timeout=timeout
        )
        call = Call(
            self,
            rid,
            service,
            JobId(job) if job else job_id_for(self._identity, rid),
            on_wait=on_wait,
        )
        self._calls[rid] = call
        self._flush_client()
        return call

    def _cancel(self, rid: int) -> None:
        self._client_machine.cancel(rid)
        self._calls.pop(rid, None)
        self._flush_client()

    def _cancel_all_calls(self) -> None:
        for call in list(self._calls.values()):
            call.cancel()

    def _flush_client(self) -> None:
        for msg in self._client_machine.outgoing():
            self._post(encode(msg, protocol=Protocol.CLIENT, from_broker=False))

    def _post(self, frames: list[Frame]) -> None:
        if self._outbox_closed:
            return  # closing: whatever was left to say is moot
        direct = self._send_nowait
        if direct is not None and not self._queued:  # never overtake the outbox
            try:
                direct(frames)
            except anyio.WouldBlock:
                pass  # the socket is full: the send loop waits for room
            except TransportClosed:
                return
            except TransportError:
                pass  # the send loop meets it, as it would have
            else:
                return
        try:
            self._outbox.send_nowait(frames)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return
        self._queued += 1

    def _close_outbox(self) -> None:
        self._outbox_closed = True
        self._outbox.close()

    async def _send_loop(self, transport: PeerTransport) -> None:
        async for frames in self._outbox_receive:
            try:
                await transport.send(frames)
            finally:
                self._queued -= 1

    def _on_client_message(self, msg: Message) -> BrokerLost | None:
        outcome = self._client_machine.receive(msg, loop_time())
        if outcome is None or isinstance(outcome, BrokerLost):
            return outcome
        call = self._calls.get(outcome.rid)
        if call is None:
            return None
        reply = outcome.message
        if isinstance(reply, Failure):
            del self._calls[outcome.rid]
            call._fail(error_from_failure(reply, job=call.job, service=call.service))
            return None
        if isinstance(reply, Final) and is_repeat_last(reply.payload):
            del self._calls[outcome.rid]
            call._deliver(call._final_from_last())
            return None
        try:
            report = decode_report(reply.payload, final=isinstance(reply, Final))
        except RemoteProtocolError as exc:
            if isinstance(reply, Partial):
                log.warning("dropped a malformed report for %r: %s", call, exc)
                return None
            del self._calls[outcome.rid]
            call._fail(
                JobFailed(
                    f"the {call.service!r} service sent a malformed final report: {exc}",
                    job_id=call.job,
                    service=call.service,
                    remote_type="RemoteProtocolError",
                    remote_message=str(exc),
                )
            )
            return None
        if report.final:
            del self._calls[outcome.rid]
        call._deliver(report)
        return None


class Client(Requester):
    """A connection to a broker that sends requests and receives their reports.

    Use it as an async context manager (`binglide.connect` gives one)::

        async with Client(transport) as client:
            report = await client.histogram("fw.bin")
    """

    def __init__(
        self, transport: PeerTransport, *, heartbeat_interval: float | None = None
    ) -> None:
        super().__init__(transport.identity, heartbeat_interval=heartbeat_interval)
        self._heartbeat_interval = heartbeat_interval
        self._transport = transport
        self._use_transport(transport)
        self._tg: TaskGroup | None = None
        self._closed = False
        #: The embedded broker, when `binglide.connect` started one (for its statistics).
        self.broker: Broker | None = None
        self._heard = anyio.Event()
        self._plain = anyio.Event()
        self._missing: tuple[str, ...] = ()

    async def __aenter__(self) -> Client:
        self._tg = await anyio.create_task_group().__aenter__()
        self._tg.start_soon(self._send_loop, self._transport)
        self._tg.start_soon(self._receive_loop)
        if self._heartbeat_interval:
            self._tg.start_soon(self._timer_loop)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

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
            RuntimeError: the client is closed.
            TypeError: the body is not JSON-able.
        """
        if self._closed or self._tg is None:
            raise RuntimeError("the client is not open: use `async with` (or binglide.connect)")
        return self._open_call(service, body, arrays, timeout=timeout)

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

    async def _receive_loop(self) -> None:
        try:
            while True:
                frames = await self._transport.receive()
                try:
                    protocol, msg = decode(frames, from_broker=True)
                    if protocol is not Protocol.CLIENT:
                        raise RemoteProtocolError("the broker sent a worker message to a client")
                    self._heard.set()
                    if self._broker_lost:
                        # The broker answers again (restarted, or back on the
                        # network): re-issue what is still open. A broker that
                        # still knows a request refuses the duplicate id, and
                        # its own copy goes on (docs/protocol.md, failures).
                        self._broker_lost = False
                        self._client_machine.resend_open()
                        self._flush_client()
                    lost = self._on_client_message(msg)
                    if self._client_machine.plain_broker:
                        self._flush_client()  # a FINAL lets the next plain request go
                except RemoteProtocolError as exc:
                    log.warning("dropped a malformed message from the broker: %s", exc)
                    continue
                if lost is not None:
                    if lost.reissued:
                        self._missing = ()  # a binglide broker after all (core.client)
                        self._flush_client()
                    else:
                        self._broker_lost = True
                    log.warning("%s", lost.reason)
        except TransportError as exc:
            for call in list(self._calls.values()):
                call._fail(
                    JobError(f"the connection to the broker was lost: {exc}", job_id=call.job)
                )
            self._calls.clear()

    async def _timer_loop(self) -> None:
        # Client heartbeats (a binglide extension): the broker cancels the
        # jobs of a client that falls silent, and we notice a lost broker.
        machine = self._client_machine
        while True:
            lost = machine.handle_timer(loop_time())
            if isinstance(lost, BrokerPlain):
                self._missing = lost.unavailable
                self._plain.set()
                log.warning("%s; unavailable then: %s", lost.reason, "; ".join(lost.unavailable))
            elif lost is not None:
                self._broker_lost = True
                log.warning("%s; open requests are re-issued when it answers", lost.reason)
            self._flush_client()
            deadline = machine.next_deadline()
            if deadline is None:
                await anyio.sleep_forever()
                return
            await anyio.sleep(max(0.0, deadline - loop_time()))

    async def aclose(self) -> None:
        """Cancel every open request, say goodbye to the broker and close."""
        if self._closed:
            return
        self._closed = True
        self._cancel_all_calls()
        self._post(encode(Disconnect(), protocol=Protocol.CLIENT, from_broker=False))
        self._close_outbox()
        # All of this runs shielded: closing is often what a cancellation
        # (Ctrl-C, a timeout around `connect`) does, and the CANCEL and
        # DISCONNECT must still reach the broker, or its workers compute on.
        try:
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(1.0):
                    # The loops are stopped: send what is left ourselves.
                    async for frames in self._outbox_receive:
                        try:
                            await self._transport.send(frames)
                        except TransportError:
                            break
                self._outbox_receive.close()
                await self._transport.aclose()
