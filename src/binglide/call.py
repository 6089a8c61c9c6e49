"""`Call`, the handle of one request, and `Then`, a function of its result.

A request is one object: the `Call` its caller holds is also what the
runtime fills as the request's reports arrive (`binglide.requester.Requester`
makes a `CallState`, the subclass that adds the runtime's side: `deliver`,
`fail`, `repeat_last`). The public class has no method that only the
runtime may call; the runtime never uses the caller's methods.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import anyio
import attrs

from ._aio import Waiters
from .core import JobId, job_id_for
from .report import Report

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Generator

    from .errors import JobError

__all__ = ("Call", "CallState", "Then", "WaitHooks")

T = TypeVar("T")
U = TypeVar("U")

#: Called when a task starts and stops waiting on a sub-request (the worker
#: tells the broker, for the progress guarantee).
WaitHooks = tuple["Callable[[], None]", "Callable[[], None]"]


class _Chaining(Awaitable[Any]):
    """``then``: what a `Call` and a `Then` both offer (both are awaitable)."""

    @overload
    def then(self, fn: Callable[..., Awaitable[U]], *args: Any) -> Then[U]: ...
    @overload
    def then(self, fn: Callable[..., U], *args: Any) -> Then[U]: ...
    def then(self, fn: Callable[..., Any], *args: Any) -> Then[Any]:
        """Return an awaitable of ``fn(result, *args)`` (the final report, for a `Call`).

        `fn` may be sync or async; it runs once, when the awaitable is first awaited.
        """
        return Then(self, fn, args)


class Then(_Chaining, Generic[T]):
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


class Call(_Chaining):
    """The handle of one request.

    ``await call`` gives the final `Report`; ``async for report in call``
    gives every report in order, the final one last; ``call.then(fn)`` chains;
    ``call.cancel()`` cancels the whole job (or, for a worker's sub-request,
    that sub-request and everything below it).

    If nobody iterates, only the latest intermediate report is kept (so a
    caller that only awaits the final report holds no stale arrays).

    Calls are made by `Client.request` and `Context.request`, not directly.

    Attributes:
        service: the service asked.
    """

    __slots__ = (
        "_cancel",
        "_changed",
        "_changes",
        "_error",
        "_final",
        "_iterating",
        "_job",
        "_last",
        "_on_wait",
        "_origin",
        "_reports",
        "group",
        "opening",
        "rid",
        "service",
    )

    def __init__(
        self,
        rid: int,
        service: str,
        job: str,
        origin: str,
        cancel: Callable[[int], None],
        # Positional too: a request makes one, and a class called with
        # keywords costs twice as much (its keywords made into a dict).
        group: set[int] | None = None,
        on_wait: WaitHooks | None = None,
    ) -> None:
        #: The request id (the requester's numbering).
        self.rid = rid
        self.service = service
        #: The job id, or empty until first asked for (it is made then from
        #: `origin`, the requesting peer's identity, and `rid`).
        self._job = job
        self._origin = origin
        #: Cancels request `rid` (the requester's `cancel`).
        self._cancel = cancel
        #: The set that holds the request id while it is open (a task's sub-requests).
        self.group = group
        self._on_wait = on_wait
        #: The reports kept for an iterator (made at the first intermediate
        #: report or the first iteration: a deque's block is a malloc, and
        #: most calls are only awaited for their one final report).
        self._reports: deque[Report] | None = None
        #: The final report, once it came.
        self._final: Report | None = None
        #: The error the request ended with, if it failed.
        self._error: JobError | None = None
        #: The latest report (what a FINAL that repeats it stands for).
        self._last: Report | None = None
        #: Someone iterates the call: keep every report, not the latest.
        self._iterating = False
        #: The request is being sent: its caller has no `Call` yet, so it
        #: cannot have begun to iterate. In one process a handler's first
        #: step runs as the request is sent, and its reports arrive now:
        #: every one is kept for a caller that iterates once it has the call.
        self.opening = False
        self._changed: Waiters | None = None  # made at the first wait
        #: How many reports and ends came (to tell whether one came meanwhile).
        self._changes = 0

    def __repr__(self) -> str:
        state = "done" if self.done() else "open"
        return f"<Call {self.service!r} job={self.job!r} {state}>"

    @property
    def job(self) -> JobId:
        """The job id of the request tree."""
        job = self._job
        if not job:
            job = self._job = job_id_for(self._origin, self.rid)
        return job  # type: ignore[return-value]  # a JobId (a NewType's call is a Python call)

    def done(self) -> bool:
        """Return whether the final report or an error has arrived."""
        return self._final is not None or self._error is not None

    def cancel(self) -> None:
        """Cancel the request and everything it caused; awaiting it raises `JobCancelled`.

        Idempotent; a no-op once the call is done.
        """
        if self._final is None and self._error is None:
            self._cancel(self.rid)

    def __await__(self) -> Generator[Any, None, Report]:
        # A generator, not a coroutine: awaiting a call answered already (in
        # one process, most are) runs this frame alone, no coroutine chain.
        reports = self._reports
        if reports is not None and len(reports) > 2 and not self._iterating:
            self._forget_stale()
        if self._final is not None or self._error is not None:
            # Answered already (in one process a handler's first step runs
            # as the request is sent): still a checkpoint, as every await of
            # a call was, so that a loop of calls lets other tasks run and a
            # cancelled scope is noticed. A bare yield is what asyncio.sleep(0)
            # does: the task gives the loop one turn.
            yield
        while self._final is None:
            if self._error is not None:
                raise self._error
            if self._on_wait is None:
                # `_wait_change` without its coroutine (a caller's usual wait).
                changed = self._changed
                if changed is None:
                    changed = self._changed = Waiters()
                yield from changed.waiting()
            else:
                yield from self._wait_change().__await__()
        return self._final

    async def wait(self) -> Report:
        """Wait for the final report and return it (what ``await call`` does).

        Raises:
            JobError: the request failed (its subclass says how).
        """
        return await self

    def __aiter__(self) -> AsyncIterator[Report]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Report]:
        self._iterating = True
        reports = self._reports
        if reports is None:
            # Nothing kept yet but the final report, if it came.
            reports = self._reports = deque()
            if self._final is not None:
                reports.append(self._final)
        while True:
            if reports:
                report = reports.popleft()
                yield report
                if report.final:
                    return
                continue
            if self._error is not None:
                raise self._error
            await self._wait_change()

    def _forget_stale(self) -> None:
        """Keep what `CallState.deliver` would have kept had nobody been iterating all along.

        The reports kept while the request was sent (`opening`) are more:
        the latest intermediate one, and the final one, stay.
        """
        reports = self._reports
        assert reports is not None  # more than two kept
        while len(reports) > 2 or (len(reports) == 2 and not reports[-1].final):
            reports.popleft()

    async def _wait_change(self) -> None:
        """Wait for the next report or the end (telling the wait hooks, if any)."""
        changed = self._changed
        if changed is None:
            changed = self._changed = Waiters()
        if self._on_wait is None:
            await changed.wait()
            return
        enter, leave = self._on_wait
        changes = self._changes
        enter()
        try:
            # Telling the broker the task waits may get the answer at once
            # (in one process the sub-request's handler runs then): wait only
            # if nothing came meanwhile.
            if self._changes == changes:
                await changed.wait()
        finally:
            leave()

    def _notify(self) -> None:
        self._changes += 1
        if self._changed is not None:
            self._changed.notify()


class CallState(Call):
    """A `Call` as the runtime sees it: what fills it as its replies arrive."""

    __slots__ = ()

    def deliver(self, report: Report) -> None:
        """Take a report (the final one ends the request); ignored once done."""
        if self._final is not None or self._error is not None:  # done
            return
        last = self._last
        if last is not None and report.completion < last.completion:
            # Completion never decreases, whatever a handler reports.
            report = attrs.evolve(report, completion=last.completion)
        self._last = report
        reports = self._reports
        if report.final:
            self._final = report
            if reports is not None:  # else `_iterate` starts from the final one
                reports.append(report)
        else:
            if reports is None:
                reports = self._reports = deque()
            elif not self._iterating and not self.opening:
                reports.clear()  # nobody iterates: keep no stale arrays
            reports.append(report)
        # `_notify`, inline (every report comes here).
        self._changes += 1
        if self._changed is not None:
            self._changed.notify()

    def repeat_last(self) -> None:
        """End the request with the latest report as the final one (a FINAL that says so)."""
        last = self._last
        self.deliver(Report(None, final=True) if last is None else attrs.evolve(last, final=True))

    def fail(self, error: JobError) -> None:
        """End the request with `error`; ignored once done."""
        if self._final is not None or self._error is not None:
            return
        self._error = error
        self._notify()
