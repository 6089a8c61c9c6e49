"""The asyncio-only speed-ups of the runtime, all in one place.

binglide runs on asyncio: pyzmq integrates with it, and a ZeroMQ socket is
waited on through the loop's reader callbacks. Everywhere else the runtime
speaks anyio. On the few paths that every message takes, some of anyio's
generic calls cost more than the work they wrap; there, and only through this
module, the runtime asks asyncio directly:

- `loop_time`: ``anyio.current_time()`` finds the backend on every call
  (sniffio, the current task), a few microseconds per message;
  `loop_clock`: the loop's own clock, for an owner that reads it often.
- `call_soon`: run a callback at the loop's next turn, without a task.
- `new_event`, `new_cancel_scope`: anyio's ``Event()`` and ``CancelScope()``
  look the backend up at every construction (sniffio, the current task),
  about as long as the rest of what a request does with them; these make
  the asyncio backend's own classes directly, as ``anyio`` itself would.
- `TaskPool`: a task per request at less than asyncio's price. anyio's
  ``start_soon`` costs about 25 µs more per task than ``asyncio.create_task``
  here (wrapping, task state, the task group's bookkeeping), more than the
  rest of an in-process round trip; the pool hands each call to a waiting
  asyncio task it keeps (a runner), cheaper again. Calls still live in a
  scope: they end before the pool does, and an error in one cancels the
  pool's body and is raised. `TaskPool.start_now` runs a call's first step
  at once: on a waiting runner, as that runner but without waking it (a call
  that ends in its first step costs the runner nothing; one that waits is
  handed to it); else through `step_now`. A call given a `PoolCall` can be cancelled
  alone, through one anyio cancel scope per runner (not one per call).
- `step_now`: run a task's step that was just scheduled now, as the task,
  instead of at the loop's next turn: what Python 3.12's eager tasks do for
  a task's first step, on 3.11 and for a waiting runner's wake-up too. A
  handler that answers without waiting then costs no turn of the loop.
- `checkpoint`: ``anyio.lowlevel.checkpoint`` without the backend look-up.
- `Waiters`: tasks waiting for a change, each on a bare future, woken at
  once; what an ``anyio.Event`` made anew for each change does, for a
  third of its cost (the wrapper, asyncio's event and its own future).
  A woken task's step runs at once (`step_now`), not at the loop's next
  turn: a handler awaiting a sub-request goes on as the answer arrives.
- `EdgeWatcher`: watch an edge-triggered file descriptor (ZeroMQ's) through
  one reader callback on the loop, which delivers what arrived at once (no
  task to wake) or wakes a waiting task's future, instead of pyzmq's
  ``zmq.asyncio`` futures, which cost as much as the rest of a hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
import types
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVarTuple, Unpack, cast

import anyio

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
    from typing import Any

__all__ = (
    "EdgeWatcher",
    "PoolCall",
    "TaskPool",
    "Waiters",
    "call_soon",
    "can_step_now",
    "checkpoint",
    "loop_clock",
    "loop_time",
    "new_cancel_scope",
    "new_event",
    "step_now",
)

Ts = TypeVarTuple("Ts")


def loop_time() -> float:
    """Return the running event loop's time in seconds (what ``anyio.current_time`` reads)."""
    return asyncio.get_running_loop().time()


def loop_clock() -> Callable[[], float]:
    """Return the running event loop's clock: what `loop_time` calls, to call it directly.

    For asyncio's own loops, whose ``time()`` is ``time.monotonic()``, that
    function itself (no Python call around it).
    """
    loop = asyncio.get_running_loop()
    if type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


def call_soon(callback: Callable[[], object]) -> None:
    """Call `callback` at the running loop's next turn (no task, no cancel scope)."""
    asyncio.get_running_loop().call_soon(callback)


async def checkpoint() -> None:
    """Let the loop run other tasks once, and raise if the task's scope is cancelled.

    What ``anyio.lowlevel.checkpoint`` does on asyncio (a bare ``sleep(0)``),
    without looking the backend up.
    """
    await asyncio.sleep(0)


_event_class: Callable[[], anyio.Event] | None = None
_scope_class: Callable[[], anyio.CancelScope] | None = None


def new_event() -> anyio.Event:
    """Return a new ``anyio.Event`` (in the running loop: the backend's class, made directly)."""
    global _event_class
    if _event_class is not None:
        return _event_class()
    event = anyio.Event()
    if asyncio._get_running_loop() is not None:  # not the adapter made outside a loop
        _event_class = type(event)
    return event


def new_cancel_scope() -> anyio.CancelScope:
    """Return a new ``anyio.CancelScope()`` (the backend's class, made directly)."""
    global _scope_class
    if _scope_class is not None:
        return _scope_class()
    scope = anyio.CancelScope()
    _scope_class = type(scope)
    return scope


class PoolCall:
    """A call of a `TaskPool` that can be cancelled on its own (`TaskPool.start_now`).

    Cancelling it cancels the call as an anyio cancel scope around it would:
    at its next checkpoint (or at once if it waits), respecting the shielded
    scopes inside it; a call cancelled before it started is cancelled at its
    first checkpoint. Once the call ended, `cancel` does nothing.

    Attributes:
        cancel_called: whether `cancel` was called.
    """

    __slots__ = ("_runner", "cancel_called")

    def __init__(self) -> None:
        self.cancel_called = False
        #: The runner running the call now (None: not started, or ended).
        self._runner: _Runner | None = None

    def cancel(self) -> None:
        """Cancel the call (see the class docstring); idempotent."""
        self.cancel_called = True
        runner = self._runner
        if runner is not None and runner.scope is not None:
            runner.scope.cancel()


class _Runner:
    """A runner's own state: its cancel scope, entered once for all its calls, and its context."""

    __slots__ = ("context", "fresh", "scope")

    def __init__(self) -> None:
        self.scope: anyio.CancelScope | None = None
        #: The context the runner's task runs in (and every call on it).
        self.context = contextvars.copy_context()
        #: What it holds when a call starts (listed once for the runner's life).
        self.fresh = list(self.context.items())


class TaskPool(anyio.AsyncContextManagerMixin):
    """Run short tasks on reused asyncio tasks, inside a scope like a task group's.

    Use it as ``async with TaskPool() as pool:`` and ``pool.start_soon(fn,
    *args)``. On exit, the tasks still running are cancelled and waited for
    (shielded). If a task raises (anything but its cancellation), the body of
    the ``async with`` is cancelled and the error is raised on exit, as a task
    group would, without the exception group.

    Each call runs on a *runner*: an asyncio task that, once its call ends,
    waits for the next one instead of ending. Making a task, and anyio's
    first cancel scope in it, costs more than handing a call to a waiting
    runner (bench/RESULTS.md, issue 13). Calls on one runner stay apart: a
    runner whose call left anything behind (a context variable set, a
    cancellation still counted on the task, its cancel scope cancelled through
    a `PoolCall`) ends instead of taking another call, so every call starts as
    a fresh task would (same context, nothing pending, a scope not cancelled).
    At most 64 runners wait; after a burst of calls the others end.
    """

    def __init__(self) -> None:
        self._runners: set[asyncio.Task[None]] = set()
        #: The waiting runners and their futures, the latest waiting last: a
        #: call is handed over by setting one's result (None: end).
        self._idle: list[tuple[asyncio.Task[None], asyncio.Future[_Handed | None], _Runner]] = []
        self._busy = 0
        self._error: BaseException | None = None
        self._scope: anyio.CancelScope | None = None
        self._open = False
        #: The loop of the runners if a call's first step can run as a waiting
        #: one's there (`_step_on`; looked at as the pool opens), else None.
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        """The calls running (waiting runners do not count)."""
        return self._busy

    def start_soon(
        self,
        fn: Callable[[Unpack[Ts]], Coroutine[Any, Any, None]],
        *args: *Ts,
        call: PoolCall | None = None,
    ) -> None:
        """Run ``fn(*args)`` on a runner of this pool (a waiting one, or a new one).

        With `call`, the call can be cancelled on its own (`PoolCall`).

        Raises:
            RuntimeError: the pool is not open (outside its ``async with``).
        """
        if not self._open:
            raise RuntimeError("this task pool is not open")
        self._hand(fn(*args), call)

    def start_now(
        self,
        fn: Callable[[Unpack[Ts]], Coroutine[Any, Any, None]],
        *args: *Ts,
        call: PoolCall | None = None,
    ) -> None:
        """Like `start_soon`, but run the call's first step at once, before this returns.

        The call still runs on a runner, its own asyncio task (its cancel
        scopes, its context, `asyncio.current_task`), as Python 3.12's eager
        tasks do: a call that ends without waiting costs no turn of the event
        loop, and one that waits goes on as any task does. Inside another
        call's first step, or on a loop where that cannot be done safely, the
        call starts at the next turn (as with `start_soon`).

        Raises:
            RuntimeError: the pool is not open (outside its ``async with``).
        """
        if not self._open:
            raise RuntimeError("this task pool is not open")
        coro = fn(*args)
        idle = self._idle
        if idle and not _stepping and (call is None or not call.cancel_called):
            runner, waiter, state = idle[-1]
            if not waiter.done():  # else its runner was cancelled while it waited
                idle.pop()
                if self._step_on(runner, waiter, state, coro, call):
                    return
                idle.append((runner, waiter, state))  # this loop cannot: as below
        step_now(self._hand(coro, call))

    def _step_on(
        self,
        runner: asyncio.Task[None],
        waiter: asyncio.Future[_Handed | None],
        state: _Runner,
        coro: Coroutine[Any, Any, None],
        call: PoolCall | None,
    ) -> bool:
        """Run the first step of `coro` as waiting `runner`'s, without waking it.

        What `step_now` does with a runner's step, less the hand-over (a
        future's result, the loop's handle, the runner's own frames): the
        call's step runs as the runner (the current task, the runner's
        context and cancel scope). A call that ends in it leaves the runner
        waiting as it was; one that waits is handed to the runner, which
        goes on with it (`_resumed`) as if it had run the step itself.
        Return False if this loop cannot swap its running task (nothing ran).
        """
        global _stepping
        loop = self._loop
        if loop is None or _current_tasks is None:
            return False
        outer = _current_tasks.pop(loop, None)
        _current_tasks[loop] = runner
        _stepping = True
        self._busy += 1
        if call is not None:
            call._runner = state
        handed: _Handed | None = None
        try:
            pending = state.context.run(coro.send, None)
        except StopIteration:
            pass
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
            # The runner raises it, in its task and its scope, as if it had run the step.
            handed = (_raising(exc), call)
        except BaseException as error:
            if self._error is None:
                self._error = error
                if self._scope is not None:
                    self._scope.cancel()
            self._busy -= 1
            if call is not None:
                call._runner = None
            waiter.set_result(None)  # the runner ends, as when its call fails
            return True
        else:
            # A generator-based coroutine: awaited, sent to and closed alike.
            handed = (cast("Coroutine[Any, Any, None]", _resumed(coro, pending)), call)
        finally:
            _stepping = False
            if outer is None:
                del _current_tasks[loop]
            else:
                _current_tasks[loop] = outer
        if handed is not None:
            waiter.set_result(handed)
            step_now(runner)  # it waits as its call does, before this returns
            return True
        self._busy -= 1
        if call is not None:
            call._runner = None
        if (
            (call is not None and call.cancel_called)
            or not self._open
            or runner.cancelling()
            or waiter.done()
            # No call when the context is empty and stays so (the usual case).
            or ((len(state.context) or state.fresh) and _changed(state.context, state.fresh))
        ):
            if not waiter.done():
                waiter.set_result(None)  # the next call gets a fresh task
        else:
            self._idle.append((runner, waiter, state))
        return True

    def _hand(self, coro: Coroutine[Any, Any, None], call: PoolCall | None) -> asyncio.Task[None]:
        """Hand `coro` to a runner; return that runner (its step is scheduled)."""
        self._busy += 1
        idle = self._idle
        while idle:
            runner, waiter, _state = idle.pop()
            if not waiter.done():  # else its runner was cancelled while it waited
                waiter.set_result((coro, call))
                return runner
        state = _Runner()
        runner = asyncio.get_running_loop().create_task(
            self._run(coro, call, state), context=state.context
        )
        self._runners.add(runner)
        return runner

    def _rehand(self, handed: _Handed) -> None:
        """Hand a call to another runner (its own was cancelled), or close it if the pool is."""
        if self._open:
            self._hand(*handed)
        else:
            handed[0].close()

    async def _run(
        self, coro: Coroutine[Any, Any, None], call: PoolCall | None, runner: _Runner
    ) -> None:
        me = asyncio.current_task()
        assert me is not None
        try:
            # One cancel scope for all the runner's calls (anyio's costs more
            # than the rest of a call's hand-over): a call's `PoolCall`
            # cancels it while that call runs, and the runner ends with it.
            with new_cancel_scope() as scope:
                runner.scope = scope
                while True:
                    if call is not None:
                        call._runner = runner
                        if call.cancel_called:
                            scope.cancel()  # cancelled before it started
                    try:
                        await coro
                    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                        raise  # cancelled: not an error; the loop's own exits go through
                    except BaseException as error:
                        if self._error is None:
                            self._error = error
                            if self._scope is not None:
                                self._scope.cancel()
                        return
                    finally:
                        self._busy -= 1
                        if call is not None:
                            call._runner = None
                    if (
                        # Cancelled (its scope is), yet it returned: it swallowed it.
                        (call is not None and call.cancel_called)
                        or not self._open
                        or me.cancelling()
                        or _changed(runner.context, runner.fresh)
                        or len(self._idle) >= _MAX_IDLE_RUNNERS
                    ):
                        return  # the next call gets a fresh task
                    waiter: asyncio.Future[_Handed | None] = (
                        asyncio.get_running_loop().create_future()
                    )
                    self._idle.append((me, waiter, runner))
                    try:
                        handed = await waiter
                    except asyncio.CancelledError:
                        if waiter.done() and not waiter.cancelled():
                            handed = waiter.result()
                            if handed is not None:
                                # A call was handed over just before the cancellation
                                # came: it is not this runner's to lose.
                                self._busy -= 1
                                self._rehand(handed)
                        raise
                    if handed is None:
                        return  # its call was run without it (`_step_on`), and left things behind
                    coro, call = handed
        finally:
            self._runners.discard(me)

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[TaskPool]:
        self._open = True
        # Whether the running task can be swapped (`can_step_now`), looked at
        # once, here, in a task: `start_now` may be called from a callback.
        self._loop = asyncio.get_running_loop() if can_step_now() else None
        try:
            with anyio.CancelScope() as self._scope:
                yield self
        finally:
            self._open = False
            for task in self._runners:
                task.cancel()
            with anyio.CancelScope(shield=True):
                while self._runners:
                    await asyncio.wait(set(self._runners))
        if self._error is not None:
            raise self._error


#: The running task of each event loop, as asyncio's tasks enter and leave
#: it (the C tasks' own dict), or None where asyncio keeps it elsewhere.
_current_tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = getattr(
    asyncio.tasks, "_current_tasks", None
)
#: Whether a task's step is being run by `step_now` (they do not nest).
_stepping = False


def can_step_now() -> bool:
    """Whether `step_now` runs steps at once here, called from the running task.

    It does on CPython 3.11 to 3.13, whose tasks keep the running task in
    ``asyncio.tasks._current_tasks``; on a Python that keeps it elsewhere,
    or on another loop, steps wait for the loop's turn (correct, one turn
    slower).
    """
    loop = asyncio.get_running_loop()
    return (
        _current_tasks is not None
        and isinstance(loop, asyncio.BaseEventLoop)
        and _current_tasks.get(loop) is asyncio.current_task(loop)
    )


def step_now(task: asyncio.Task[Any]) -> None:
    """Run the step of `task` its loop was just asked to run now, not at the next turn.

    Call it right after what scheduled the step (the task made, or the
    future it waits on resolved): the step is then the loop's last ready
    callback. The step runs as the loop would run it: as `task` (the
    current task for its duration, the caller's restored after), in the
    task's context, its errors handled by the task. Python 3.12's eager
    tasks run a new task's first step the same way. If the step is not the
    last ready callback, or another step is being run so, or the loop is
    not asyncio's own, or this Python does not keep the running task where
    it can be swapped (`can_step_now`), nothing happens: the loop runs the
    step at its turn.
    """
    global _stepping
    if _stepping or _current_tasks is None:
        return
    loop = task.get_loop()
    if not isinstance(loop, asyncio.BaseEventLoop):
        return
    ready: deque[asyncio.Handle] = loop._ready  # type: ignore[attr-defined]
    if not ready:
        return
    handle = ready[-1]
    # `Handle.cancelled()` read as its field (a Python call less a step).
    if handle._cancelled or getattr(handle._callback, "__self__", None) is not task:  # type: ignore[attr-defined]
        return
    outer = _current_tasks.pop(loop, None)
    if asyncio.current_task(loop) is not None:
        # This Python keeps the running task elsewhere (3.14's C tasks keep it
        # in the thread's state): the step would fail to enter its task and be
        # lost. Leave it to the loop.
        if outer is not None:
            _current_tasks[loop] = outer
        return
    ready.pop()
    _stepping = True
    try:
        handle._run()
    finally:
        _stepping = False
        if outer is not None:
            _current_tasks[loop] = outer


#: A call handed to a runner: its coroutine, and its `PoolCall` if it has one.
_Handed = tuple["Coroutine[Any, Any, None]", PoolCall | None]

#: The most runners a pool keeps waiting (after a burst of calls, the others end).
_MAX_IDLE_RUNNERS = 64


def _changed(
    now: contextvars.Context, fresh: list[tuple[contextvars.ContextVar[Any], Any]]
) -> bool:
    """Whether context `now` differs from `fresh`, its items as a call began (a call set one)."""
    if len(now) != len(fresh):
        return True
    # A loop, not any() over a generator: no generator frame made and resumed a call.
    for var, value in fresh:  # noqa: SIM110
        if now.get(var, _MISSING) is not value:
            return True
    return False


_MISSING = object()


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, None], pending: Any) -> Generator[Any, Any, None]:
    """Go on with `coro`, whose first step (run outside its runner, `_step_on`) yielded `pending`.

    Run by the runner: it waits on what the step waits on, as the task that
    ran the step would, then steps `coro` itself (what it throws in goes to
    `coro`: its cancellation, say).
    """
    while True:
        try:
            yield pending
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                pending = coro.throw(exc)
            except StopIteration:
                return
            continue
        break
    yield from coro


async def _raising(exc: BaseException) -> None:
    """Raise `exc` (what a call's first step raised, for its runner to raise as its own)."""
    raise exc


class Waiters:
    """Tasks waiting for the next change of something, each on a future of its own.

    `wait` returns at the next `notify` after it began (or raises when its
    task is cancelled: a cancelled waiter leaves the others waiting).
    `notify` runs each woken task's step at once, before it returns
    (`step_now`), where it can: the task goes on as the change happens,
    not a turn of the loop later. What called `notify` goes on after.
    """

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: list[tuple[asyncio.Future[None], asyncio.Task[Any] | None]] = []

    def waiting(self) -> Generator[Any, None, None]:
        """Wait for the next `notify` (``await waiters.wait()``; ``yield from`` this).

        A generator, marked as a coroutine (`wait` is this function): a
        generator-based awaitable (`Call.__await__`, every caller's wait)
        yields from it with no coroutine object and wrapper around it.
        """
        # The loop looked up once: on Python 3.11 each lookup (current_task's
        # too, given no loop) checks the process id, a getpid system call.
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        futures = self._futures
        # The task from asyncio's own dict where it keeps it (a Python call
        # less than `asyncio.current_task` on 3.11, a wait each); where it is
        # kept elsewhere this finds none, and `notify` only resolves the future.
        task = (
            _current_tasks.get(loop) if _current_tasks is not None else asyncio.current_task(loop)
        )
        entry = (future, task)
        futures.append(entry)
        try:
            yield from future
        finally:
            if not future.done() or future.cancelled():
                # Cancelled: no notify took it out.
                with contextlib.suppress(ValueError):
                    futures.remove(entry)

    if TYPE_CHECKING:

        def wait(self) -> Awaitable[None]:
            """Wait for the next `notify`."""

    else:
        wait = types.coroutine(waiting)

    def notify(self) -> None:
        """Wake every task waiting now (running their steps at once where it can)."""
        futures = self._futures
        if futures:
            self._futures = []
            for future, task in futures:
                if not future.done():
                    if task is not None and _wake_now(future, task):
                        continue
                    future.set_result(None)
                    if task is not None:
                        step_now(task)


def _wake_now(future: asyncio.Future[None], task: asyncio.Task[Any]) -> bool:
    """Resolve `future` and run the step of `task`, waiting on it alone, now; or do nothing.

    What ``future.set_result(None)`` then `step_now` do, without the loop's
    handle between them (``call_soon``, its `Handle` and their checks: five
    Python calls a wake-up on 3.11): the task's wake-up callback is taken
    off the future and run here, in its context, as the task (any other
    callback of the future runs at the loop's next turn, as it would).
    Return False (nothing done) where `step_now` would not run the step, or
    when the task's is not the future's first callback.
    """
    global _stepping, _swap_known
    if _stepping or _current_tasks is None:
        return False
    callbacks = future._callbacks  # [(callback, context)], or None
    if not callbacks:
        return False
    wake_up, context = callbacks[0]  # the first: it runs first either way
    if getattr(wake_up, "__self__", None) is not task:
        return False
    loop = task.get_loop()
    if not isinstance(loop, asyncio.BaseEventLoop):
        return False
    outer = _current_tasks.pop(loop, None)
    if not _swap_known:
        # As `step_now` checks: does this Python keep the running task here?
        if asyncio.current_task(loop) is not None:
            if outer is not None:
                _current_tasks[loop] = outer
            return False
        _swap_known = True
    future.remove_done_callback(wake_up)
    future.set_result(None)
    _stepping = True
    try:
        context.run(wake_up, future)
    finally:
        _stepping = False
        if outer is not None:
            _current_tasks[loop] = outer
    return True


#: Whether taking a loop's entry out of `_current_tasks` was seen to leave it
#: with no running task (`_wake_now` checks once, as `step_now` every time).
_swap_known = False


class EdgeWatcher:
    """Watch readiness bits behind an edge-triggered file descriptor.

    ZeroMQ's file descriptor signals that the socket's events *may* have
    changed, and reading them re-arms it. Two ways to use it:

    - `wait`: a task waits for a bit (a send waiting for room). It reads the
      events right before it waits, in the same step, so no change slips in.
    - `deliver`: a callback drains what is ready (a receiving end). The loop
      calls it from the descriptor's reader callback, with no task to wake:
      a message costs one loop step, not two.

    An operation that may have consumed the descriptor's signal (a ZeroMQ
    send) calls `check` afterwards, unless it runs inside the callback, and
    the callback must leave nothing ready behind it, its own sends included
    (it looks at the events once more before it returns, or calls
    `check` or `schedule` when it stops early).

    Args:
        fd: the descriptor to watch.
        events: reads the current readiness bits (``ZMQ_EVENTS``); may raise,
            and what it raises reaches the waiter.
    """

    def __init__(self, fd: int, events: Callable[[], int]) -> None:
        self._fd = fd
        self._events = events
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._callback: tuple[int, Callable[[], None]] | None = None
        #: Whether the callback runs on a signal without the events read first.
        self._eager = False
        self._scheduled = False
        self._closed = False

    def _watch(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            loop.add_reader(self._fd, self._signalled)
            self._loop = loop
        return loop

    def _read(self) -> int:
        try:
            return self._events()
        except Exception:
            return -1  # every bit: let the waiters and the callback meet the error

    def _signalled(self) -> None:
        callback = self._callback
        if self._eager and callback is not None and not self._waiters:
            # An eager callback reads what is there itself (see `deliver`):
            # a read of the events first would cost a second look a signal.
            callback[1]()
            return
        events = self._read()
        self._wake(events)
        callback = self._callback
        if callback is not None and events & callback[0]:
            callback[1]()

    @property
    def waiting(self) -> bool:
        """Whether a task waits (in `wait`) for the events."""
        return bool(self._waiters)

    def check(self) -> None:
        """Read the events again: wake the waiters, schedule the callback, as they call for."""
        if not self._waiters and self._callback is None:
            return
        events = self._read()
        self._wake(events)
        callback = self._callback
        if callback is not None and events & callback[0]:
            self.schedule()

    def schedule(self) -> None:
        """Look at the events at the loop's next turn (once, however often asked).

        The callback is called then if they have its bits, as when the
        descriptor signals.
        """
        if self._scheduled or self._loop is None or self._callback is None:
            return
        self._scheduled = True
        self._loop.call_soon(self._scheduled_call)

    def _scheduled_call(self) -> None:
        self._scheduled = False
        if not self._closed:
            self._signalled()  # as if the descriptor had signalled

    def _wake(self, events: int) -> None:
        for mask, waiter in self._waiters:
            if events & mask and not waiter.done():
                waiter.set_result(None)

    async def wait(self, mask: int) -> None:
        """Return once the events have a bit of `mask`, or the watcher is closed."""
        loop = self._watch()
        if self._closed or self._events() & mask:
            return
        entry = (mask, loop.create_future())
        self._waiters.append(entry)
        try:
            await entry[1]
        finally:
            self._waiters.remove(entry)

    def deliver(
        self, mask: int, callback: Callable[[], None] | None, *, eager: bool = False
    ) -> None:
        """Call `callback` whenever the events have a bit of `mask` (None: stop).

        The events are looked at the next turn too: what arrived before is
        not signalled again.

        With `eager`, the callback is called on every signal of the
        descriptor (and at the next turn) without the events read first,
        unless a task waits: it must find out itself whether anything is
        ready, cope with nothing (a signal that was not for it), and leave
        the descriptor armed (read the events, or fail a read that processes
        them, before it returns).
        """
        self._callback = None if callback is None else (mask, callback)
        self._eager = eager
        if callback is not None:
            self._watch()
            self.schedule()

    def close(self) -> None:
        """Stop watching the descriptor, release every waiter, drop the callback."""
        self._closed = True
        self._callback = None
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._loop = None
        for _mask, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
