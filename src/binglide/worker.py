"""`Worker`: hosts one `Service`, runs its tasks, and is a client too.

The worker drives a `WorkerMachine` (its tasks) and has a `Requester` (its
handlers' sub-requests) over one transport. Each task runs in a task of its
own (a runner of the worker's `TaskPool`) and can be cancelled on its own; a
CANCEL from the broker for the task's job cancels it, as a cancel scope around
it would: whatever the handler awaits (sub-requests included).
While a handler awaits a sub-request, the worker tells the broker the task is
waiting, so that it can take other tasks meanwhile (the progress guarantee).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ._aio import PoolCall, TaskPool, loop_clock, loop_time, new_event
from ._groups import leaves
from .core import (
    BrokerLost,
    Disconnect,
    Message,
    Protocol,
    Request,
    TaskCancelled,
    TaskStarted,
    WorkerLost,
    WorkerMachine,
)
from .errors import (
    JobError,
    JobFailed,
    LoopError,
    RemoteProtocolError,
    TransportError,
)
from .outbox import Outbox
from .payload import REPEAT_LAST, decode_body, defer_report, encode_report
from .report import Report, Task
from .requester import Requester
from .service import Context, Service, Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    import zmq
    from anyio.abc import TaskStatus

    from .call import WaitHooks
    from .core import JobId
    from .transports import PeerTransport
    from .transports.zeromq import CurveClientKeys

__all__ = ("DEFAULT_HEARTBEAT_INTERVAL", "Worker", "WorkerStatistics", "run_worker")

#: Seconds between a networked peer's heartbeats when nothing else is said:
#: the broker's default (MDP/0.2 peers and their broker must agree).
DEFAULT_HEARTBEAT_INTERVAL = 1.0

log = logging.getLogger("binglide.worker")

# Protocol's members as module names: an enum member read off its class is a
# call of `EnumType.__getattr__`'s hook on 3.11 (read at every message).
_WORKER = Protocol.WORKER
_CLIENT = Protocol.CLIENT


@attrs.frozen
class WorkerStatistics:
    """A snapshot of a worker.

    Attributes:
        service: the service it hosts.
        tasks: tasks it holds now.
        waiting: of those, tasks waiting on sub-requests.
        completed: tasks that ended with a final report.
        failed: tasks that ended with an error.
        cancelled: tasks cancelled.
    """

    service: str
    tasks: int
    waiting: int
    completed: int
    failed: int
    cancelled: int


class Worker:
    """Serve one `Service` over a transport.

    Args:
        service: the service to host (an instance).
        transport: the worker's end of a transport to the broker.
        settings: roots, cache and hints shared by the deployment's workers.
        heartbeat_interval: seconds between heartbeats (None: none, in-process).

    Raises:
        ValueError: the service has no name.
    """

    def __init__(
        self,
        service: Service,
        transport: PeerTransport,
        *,
        settings: Settings | None = None,
        heartbeat_interval: float | None = None,
    ) -> None:
        if not service.name:
            raise ValueError(f"{type(service).__name__} has no name")
        self.service = service
        self.settings = settings or Settings()
        self._transport = transport
        self._outbox: Outbox[Protocol, Message] = Outbox(transport.send_nowait, transport.send)
        # The worker's own sub-requests: a worker is a client too.
        self._requester = Requester(transport.identity, self._outbox.post)
        self._machine = WorkerMachine(service.name, heartbeat_interval=heartbeat_interval)
        #: Whether the machine keeps time (for liveness: heartbeats on).
        self._timed = heartbeat_interval is not None
        #: How a report becomes its payload: in one process, its frames are
        #: made only if something reads them as frames (a socket would).
        self._payload = defer_report if transport.in_process else encode_report
        #: The current run of each task held.
        self._runs: dict[int, _Run] = {}
        self._counts: Counter[str] = Counter()
        self._held = _HeldReports(self.settings.report_interval)
        #: The event loop's clock (`loop_time`; the loop's own once serving).
        self._clock: Callable[[], float] = loop_time
        self._pool: TaskPool | None = None
        self._registered = anyio.Event()
        #: Whether `_registered` is set (a plain flag: read at every message).
        self._spoken_to = False

    def statistics(self) -> WorkerStatistics:
        """Return a snapshot of this worker's tasks and counters."""
        return WorkerStatistics(
            service=self.service.name,
            tasks=len(self._machine.tasks),
            waiting=sum(1 for run in self._runs.values() if run.waits),
            completed=self._counts["completed"],
            failed=self._counts["failed"],
            cancelled=self._counts["cancelled"],
        )

    async def wait_registered(self) -> None:
        """Wait until the broker has spoken to this worker (a heartbeat or a task).

        The broker only speaks to workers it registered: once this returns,
        the broker knows this worker and its service.
        """
        await self._registered.wait()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Register with the broker and serve until cancelled or the transport closes."""
        try:
            async with anyio.create_task_group() as tg, TaskPool() as pool:
                self._pool = pool
                self._clock = loop_clock()
                tg.start_soon(self._outbox.run)
                tg.start_soon(self._held.run)
                tg.start_soon(self._timer_loop)
                self._flush()  # READY
                task_status.started()
                with contextlib.suppress(TransportError):
                    await self._transport.deliver_to(self._on_message)
                tg.cancel_scope.cancel()
        finally:
            # Say goodbye so that the broker re-issues our tasks at once and
            # cancels the sub-requests we issued (MDP/0.2 DISCONNECT).
            self._pool = None
            self._outbox.post(_WORKER, Disconnect())
            with anyio.move_on_after(1.0, shield=True):
                with contextlib.suppress(TransportError):
                    await self._outbox.drain()
                await self._transport.aclose()

    # -- messages and timers ---------------------------------------------------------

    def _on_message(self, protocol: Protocol, msg: Message) -> None:
        if not self._spoken_to:
            self._spoken_to = True
            self._registered.set()  # the broker speaks only to workers it knows
        events: list[TaskStarted | TaskCancelled | WorkerLost] | None = None
        try:
            if protocol is _CLIENT:
                # Its requester has no heartbeats: the time means nothing to it.
                lost = self._requester.receive(msg, 0.0)
                if isinstance(lost, BrokerLost):
                    log.warning("%s", lost.reason)
                return
            if type(msg) is Request:
                # The usual message, a task: the machine holds it, and the run
                # reads it off the message (no `TaskStarted` made for it).
                self._machine.start(msg, self._clock() if self._timed else 0.0)
            else:
                events = self._machine.receive(msg, self._clock() if self._timed else 0.0)
        except RemoteProtocolError as exc:
            log.warning("dropped a malformed message from the broker: %s", exc)
            return
        if events is None:
            self._start(msg)  # type: ignore[arg-type]  # a Request
        else:
            for event in events:
                if type(event) is TaskStarted:
                    self._start(event)
                else:
                    self._on_event(event)
        for out in self._machine.outgoing():  # `_flush`, inline
            self._outbox.post(_WORKER, out)

    def _start(self, started: Request | TaskStarted) -> None:
        """Run the task the broker gave (its first step at once)."""
        pool = self._pool
        if pool is None:
            return  # closing: our DISCONNECT makes the broker re-issue it
        tid = started.rid if type(started) is Request else started.tid  # type: ignore[union-attr]
        run = self._runs[tid] = _Run(self, tid)
        # The handler's first step runs at once (as the task's own,
        # `TaskPool.start_now`): in one process the request came in its
        # sender's step, and answering in it saves the round trip's loop
        # turns; over ZeroMQ it runs in the socket's callback, with no task
        # to wake (bench/RESULTS.md, issue 13, ninth pass).
        pool.start_now(self._run, started, run, call=run)

    async def _timer_loop(self) -> None:
        # Tick first: the machine has no deadline until its first tick, and
        # heartbeats must flow while handlers compute in threads.
        while True:
            lost = self._machine.handle_timer(loop_time())
            if lost is not None:
                self._on_event(lost)
            self._flush()
            deadline = self._machine.next_deadline()
            if deadline is None:
                await anyio.sleep_forever()
                return
            await anyio.sleep(max(0.0, deadline - loop_time()))

    def _on_event(self, event: TaskStarted | TaskCancelled | WorkerLost) -> None:
        # A task started is met in `_on_message` (the only place one comes from).
        match event:
            case TaskCancelled():
                running = self._runs.get(event.tid)
                if running is not None:
                    running.cancel()
            case WorkerLost():
                log.warning("%s; registering again", event.reason)
                for run in self._runs.values():
                    run.cancel()

    def _flush(self) -> None:
        for msg in self._machine.outgoing():
            self._outbox.post(_WORKER, msg)

    # -- tasks ------------------------------------------------------------------------

    async def _run(self, started: Request | TaskStarted, run: _Run) -> None:
        # One coroutine a task (every step of the handler goes through it).
        tid = run.tid
        try:
            try:
                body, arrays = decode_body(started.payload)
            except RemoteProtocolError as exc:
                self._fail(tid, "request", f"the request body is not binglide's format: {exc}")
                return
            job: JobId = started.job  # type: ignore[assignment]  # a Request's: a str
            task = Task(self.service.name, body, arrays, job, started.payload)
            # Positionally (requester, tid, job, started, settings,
            # sub_request_hooks): a class called with keywords costs twice as much.
            # (The context reads the ancestry at the first sub-request, if any:
            # the broker computes a root task's only when it is read.)
            ctx = Context(self._requester, tid, job, started, self.settings, run.sub_request_hooks)
            # The last report a handler yields is the final one: the run holds
            # each complete one until it knows (a caller must not wait on a slow
            # handler for a report it already has; the FINAL then says so).
            try:
                try:
                    async for report in self.service.handle(task, ctx):
                        if not isinstance(report, Report):
                            raise TypeError(
                                f"handlers yield Report objects, not {type(report).__name__}"
                            )
                        run.hold(report)
                except ExceptionGroup as group:
                    # A handler awaiting sub-requests in a task group gets their
                    # errors grouped; the caller wants the sub-request's error.
                    raise _first_job_error(group) or group from None
            except JobError as exc:
                run.drop()
                # A sub-request failed, or the handler refused its input.
                kind = exc.kind
                remote_type = exc.remote_type if isinstance(exc, JobFailed) else type(exc).__name__
                cycle = exc.cycle if isinstance(exc, LoopError) else ()
                self._fail(tid, kind, exc.message, remote_type=remote_type, cycle=cycle)
                return
            except Exception as exc:
                run.drop()
                log.exception("the %r handler raised", self.service.name)
                name = f"{type(exc).__module__}.{type(exc).__qualname__}"
                self._fail(tid, "failed", str(exc), remote_type=name.removeprefix("builtins."))
                return
            except BaseException as exc:
                run.drop()
                if run.cancel_called and isinstance(exc, anyio.get_cancelled_exc_class()):
                    self._counts["cancelled"] += 1
                raise  # a cancellation: to the runner's scope, which ends with it
            run.finish()
        finally:
            if run.sub_requests:
                # Whatever the handler left running is of no use once it ended.
                self._requester.cancel_group(run.sub_requests)
            if self._runs.get(tid) is run:  # not a later run of the same task
                del self._runs[tid]
            # Nothing to flush: what the run said went out as it said it
            # (`_report`, `_fail`), and a task cancelled locally (we are
            # shutting down) says nothing more: our DISCONNECT makes the
            # broker re-issue it.

    def _report(self, tid: int, report: Report | None, final: bool) -> None:
        if report is None:
            payload = REPEAT_LAST
        else:
            try:
                payload = self._payload(report)
            except TypeError as exc:
                self._fail(tid, "failed", str(exc), remote_type="TypeError")
                return
        machine = self._machine
        if machine.report(tid, payload, final) and final:  # positional: no keyword to match
            self._counts["completed"] += 1
        for msg in machine.outgoing():  # `_flush`, inline (every report comes here)
            self._outbox.post(_WORKER, msg)

    def _fail(self, tid: int, kind: str, message: str, **extra: Any) -> None:
        if self._machine.fail(tid, kind, message, **extra):
            self._counts["failed"] += 1
        self._flush()


class _Run(PoolCall):
    """One run of a task: all the worker keeps of it, in one object.

    Its cancellation (it is the task pool's handle of its call), how many of
    its awaits wait on sub-requests (the wait hooks its `Context` calls), its
    open sub-requests, and its reports: the
    last one held until it is known not to be final. A report with work
    left (completion < 1) goes out at once as a PARTIAL; a complete one is
    held until the handler ends (then it is the FINAL) or yields again, or
    for ``report_interval`` at most (`_HeldReports`).

    The broker may give this worker a task again (it thought the worker
    dead, and took it back) while the previous run still unwinds its
    cancellation: each run keeps its own, and the older one never touches
    the newer one's.
    """

    __slots__ = ("_held", "_sent_any", "_worker", "since", "sub_requests", "tid", "waits")

    def __init__(self, worker: Worker, tid: int) -> None:
        # `PoolCall.__init__`, inline (a run is made per task; calling it
        # counted 1.005x an echo, bench/RESULTS.md, issue 13, tenth pass):
        # every field of it (tests/test_worker_runs.py checks none is missed).
        self.cancel_called = False
        self._runner = None
        self._worker = worker
        self.tid = tid
        self.waits = 0
        #: Its open sub-requests (made at the first: most tasks issue none).
        self.sub_requests: set[int] | None = None
        self._held: Report | None = None
        #: When the held report was yielded.
        self.since = 0.0
        self._sent_any = False

    # -- waiting on sub-requests (the progress guarantee) ------------------------------

    def sub_request_hooks(self) -> tuple[WaitHooks, set[int]]:
        """What the task's sub-requests need (its `Context` asks at the first).

        The hooks they call as the task starts and stops waiting on them,
        and the set that holds the open ones (cancelled when the task ends).
        """
        group = self.sub_requests
        if group is None:
            group = self.sub_requests = set()
        return (self._enter_wait, self._leave_wait), group

    def _enter_wait(self) -> None:
        self.waits += 1
        if self.waits == 1:
            # Told once what is being delivered now is (at once over ZeroMQ):
            # in one process the sub-request is often answered in the same
            # step, and then the broker need not hear of a wait at all.
            self._worker._transport.call_when_delivered(self._announce_wait)

    def _announce_wait(self) -> None:
        worker = self._worker
        if self.waits and worker._runs.get(self.tid) is self:
            worker._machine.waiting(self.tid, True)
            worker._flush()

    def _leave_wait(self) -> None:
        self.waits -= 1
        worker = self._worker
        if self.waits == 0 and worker._runs.get(self.tid) is self:
            worker._machine.waiting(self.tid, False)  # nothing if it was never announced
            worker._flush()

    # -- reports ------------------------------------------------------------------------

    def hold(self, report: Report) -> None:
        """Take the handler's latest report (sending the one held before it)."""
        if self._held is not None:
            self.send_held()
        self._held = report
        if report.completion < 1.0:
            # Work is left, so this cannot be the final answer: send it now
            # (the first estimate of a job is the one a viewer waits for).
            self.send_held()
            return
        worker = self._worker
        self.since = worker._clock()
        # Watched by the worker's `_HeldReports` (written here: most tasks hold
        # a report, their final one, and a call a report counts; both ways the
        # watcher can be, looking or parked, are tested end to end:
        # tests/test_end_to_end.py, a complete report held ... idle or busy).
        held = worker._held
        held.entries[self.tid] = self
        held.added += 1
        parked = held.parked
        if parked is not None:
            held.parked = None
            parked.set()

    def finish(self) -> None:
        """The handler ended: send the final report."""
        worker = self._worker
        worker._held.entries.pop(self.tid, None)  # `_HeldReports.discard`, inline
        if self._held is not None:
            worker._report(self.tid, self._held, True)
        elif self._sent_any:
            worker._report(self.tid, None, True)
        else:
            worker._report(self.tid, Report(None), True)
        self._held = None

    def drop(self) -> None:
        """The handler failed or was cancelled: send nothing more."""
        self._worker._held.discard(self)
        self._held = None

    def send_held(self) -> None:
        """Send the held report as a PARTIAL (it was held long enough, or a newer came)."""
        self._worker._held.discard(self)
        held, self._held = self._held, None
        if held is not None:
            self._worker._report(self.tid, held, False)
            self._sent_any = True


def _first_job_error(group: BaseExceptionGroup[BaseException]) -> JobError | None:
    """Return the first `JobError` among the leaves of `group`, if any."""
    return next((exc for exc in leaves(group) if isinstance(exc, JobError)), None)


class _HeldReports:
    """The reports every task of a worker holds, and the loop that lets old ones go.

    One loop per worker (`run`) sends the reports held longer than
    ``report_interval`` as PARTIALs: no task or timer per report. Most
    handlers yield one complete report and end in the same step of the event
    loop, so a report is mostly let go as soon as it is held: while reports
    come, the loop looks once an interval (a report held meanwhile is seen in
    time: it cannot be older than that), and only when none came for a whole
    interval does it wait to be woken by the next.
    """

    def __init__(self, interval: float) -> None:
        self._interval = interval
        #: The runs watched, by task id (`_Run.hold` and `finish` write it directly).
        self.entries: dict[int, _Run] = {}
        #: Set by `_Run.hold` when `run` waits for a report (none came for an interval).
        self.parked: anyio.Event | None = None
        #: How many reports were held so far (did any come while `run` slept?).
        self.added = 0

    def discard(self, entry: _Run) -> None:
        """Stop watching `entry` (it let its report go)."""
        self.entries.pop(entry.tid, None)

    async def run(self) -> None:
        """Send every report held longer than the interval as a PARTIAL, forever."""
        interval = self._interval
        entries = self.entries
        while True:
            if not entries:
                added = self.added
                if interval > 0:
                    await anyio.sleep(interval)
                    if entries or self.added != added:
                        continue  # reports still come: look again in an interval
                self.parked = parked = new_event()
                await parked.wait()
                continue
            oldest = min(h.since for h in entries.values())
            await anyio.sleep(max(0.0, oldest + interval - loop_time()))
            now = loop_time()
            for held in list(entries.values()):
                if now - held.since >= interval:
                    held.send_held()


async def run_worker(
    address: str,
    service_cls: type[Service],
    *,
    settings: Settings | None = None,
    heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
    curve: CurveClientKeys | None = None,
    identity: str | None = None,
    context: zmq.Context[Any] | None = None,
    task_status: TaskStatus[Worker] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `service_cls` to the broker at `address` over ZeroMQ until cancelled.

    The worker registers (READY), heartbeats while its handlers compute (they
    run kernels in threads), and registers again when the broker restarts.

    Args:
        address: the broker's endpoint.
        service_cls: the `Service` to host.
        settings: roots, cache and hints shared by the deployment's workers.
        heartbeat_interval: seconds between heartbeats; must match the broker's.
        curve: CURVE keys, needed when the broker uses CURVE.
        identity: the routing id (default: a fresh unique one).
        context: the ZeroMQ context.
        task_status: receives the `Worker` once it serves.

    Raises:
        TransportBroken: ZeroMQ refused the address.
    """
    from .transports.zeromq import ZmqPeer, new_identity

    peer = ZmqPeer.connect(
        address,
        identity=identity or new_identity(f"w-{service_cls.name}"),
        curve=curve,
        context=context,
        adaptive_io=True,  # a worker's lone reply leaves at once (`iothreads`)
    )
    worker = Worker(service_cls(), peer, settings=settings, heartbeat_interval=heartbeat_interval)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        task_status.started(worker)
