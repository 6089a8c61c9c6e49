"""`TaskPool`: the worker's tasks at asyncio's price, scoped like a task group's."""

from __future__ import annotations

import asyncio
import contextvars

import anyio
import pytest

from binglide import _aio
from binglide._aio import PoolCall, TaskPool, can_step_now


def skip_unless_steps_run_now() -> None:
    if not can_step_now():
        pytest.skip(
            "this Python keeps the running task where step_now cannot swap it:"
            " first steps wait for the loop's turn"
        )


async def test_a_failing_task_cancels_the_body_and_its_error_is_raised_on_exit() -> None:
    body_cancelled = False
    with anyio.fail_after(5):
        with pytest.raises(ValueError, match="boom"):
            async with TaskPool() as pool:

                async def fail() -> None:
                    raise ValueError("boom")

                pool.start_soon(fail)
                try:
                    await anyio.sleep_forever()
                except anyio.get_cancelled_exc_class():
                    body_cancelled = True
                    raise
    assert body_cancelled


async def test_only_the_first_error_is_raised_and_the_others_are_not_lost_in_a_group() -> None:
    with anyio.fail_after(5):
        with pytest.raises(KeyError):
            async with TaskPool() as pool:

                async def fail(exc: Exception) -> None:
                    raise exc

                pool.start_soon(fail, KeyError("first"))
                pool.start_soon(fail, ValueError("second"))
                await anyio.sleep_forever()


async def test_a_task_cancelled_on_its_own_is_no_error_and_leaves_the_pool() -> None:
    started = anyio.Event()
    with anyio.fail_after(5):
        async with TaskPool() as pool:

            async def cancelled_inside() -> None:
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await anyio.sleep_forever()
                started.set()

            async def quick() -> None:
                pass

            pool.start_soon(cancelled_inside)
            pool.start_soon(quick)
            await started.wait()
            await anyio.wait_all_tasks_blocked()
            assert len(pool) == 0  # both ended: the pool holds nothing


async def test_tasks_still_running_at_exit_are_cancelled_and_waited_for() -> None:
    ended: list[str] = []
    running = anyio.Event()
    with anyio.fail_after(5):
        async with TaskPool() as pool:

            async def forever() -> None:
                try:
                    running.set()
                    await anyio.sleep_forever()
                finally:
                    with anyio.CancelScope(shield=True):
                        await anyio.lowlevel.checkpoint()  # its cleanup may still await
                    ended.append("forever")

            pool.start_soon(forever)
            await running.wait()
    assert ended == ["forever"]
    assert len(pool) == 0


async def test_a_closed_pool_takes_no_task() -> None:
    async with TaskPool() as pool:
        pass

    async def nothing() -> None:
        pass

    coro = nothing()
    with pytest.raises(RuntimeError, match="not open"):
        pool.start_soon(lambda: coro)
    coro.close()


async def test_calls_one_after_another_reuse_one_task() -> None:
    tasks: list[asyncio.Task[object] | None] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            for _ in range(3):
                ran = anyio.Event()

                async def record(ran: anyio.Event = ran) -> None:
                    tasks.append(asyncio.current_task())
                    ran.set()

                pool.start_soon(record)
                await ran.wait()
                await anyio.wait_all_tasks_blocked()
    assert tasks[0] is not None
    assert tasks == [tasks[0]] * 3


async def test_a_context_variable_a_call_sets_is_not_seen_by_the_next() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="fresh")
    seen: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            for value in ("first", "second"):
                ran = anyio.Event()

                async def call(value: str = value, ran: anyio.Event = ran) -> None:
                    seen.append(var.get())
                    var.set(value)
                    ran.set()

                pool.start_soon(call)
                await ran.wait()
                await anyio.wait_all_tasks_blocked()
    assert seen == ["fresh", "fresh"]


async def test_a_call_after_one_cancelled_by_its_own_scope_is_not_cancelled() -> None:
    outcomes: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            first = anyio.Event()

            async def cancelled() -> None:
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await anyio.sleep_forever()
                outcomes.append("cancelled inside")
                first.set()

            pool.start_soon(cancelled)
            await first.wait()
            await anyio.wait_all_tasks_blocked()
            second = anyio.Event()

            async def checkpoints() -> None:
                for _ in range(3):
                    await anyio.lowlevel.checkpoint()
                outcomes.append("ran through")
                second.set()

            pool.start_soon(checkpoints)
            await second.wait()
    assert outcomes == ["cancelled inside", "ran through"]


async def test_a_call_handed_to_a_runner_cancelled_before_it_woke_still_runs() -> None:
    ran = anyio.Event()
    with anyio.fail_after(5):
        async with TaskPool() as pool:

            async def nothing() -> None:
                pass

            pool.start_soon(nothing)
            await anyio.wait_all_tasks_blocked()
            [runner] = pool._runners  # waiting for its next call

            async def call() -> None:
                ran.set()

            pool.start_soon(call)  # handed to the runner, which has not woken yet
            runner.cancel()
            await ran.wait()
            await anyio.wait_all_tasks_blocked()
            assert len(pool) == 0


async def test_after_a_burst_of_calls_only_a_bounded_number_of_runners_wait() -> None:
    release = anyio.Event()
    with anyio.fail_after(5):
        async with TaskPool() as pool:

            async def held() -> None:
                await release.wait()

            for _ in range(200):
                pool.start_soon(held)
            await anyio.wait_all_tasks_blocked()
            assert len(pool) == 200
            release.set()
            await anyio.wait_all_tasks_blocked()
            assert len(pool) == 0
            assert 1 <= len(pool._runners) <= 64


async def test_start_now_runs_the_first_step_at_once_as_a_task_of_its_own() -> None:
    skip_unless_steps_run_now()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    steps: list[str] = []
    resume = anyio.Event()
    caller = asyncio.current_task()
    with anyio.fail_after(5):
        async with TaskPool() as pool:

            async def call() -> None:
                me = asyncio.current_task()
                assert me is not None
                assert me is not caller
                var.set("set by the call")
                # A scope entered in the first step and left after a wait:
                # it is bound to the call's task, not to the caller's.
                with anyio.CancelScope():
                    steps.append("first step")
                    await resume.wait()
                assert asyncio.current_task() is me
                steps.append("second step")

            pool.start_now(call)
            assert steps == ["first step"]  # before start_now returned
            assert asyncio.current_task() is caller  # given back
            assert var.get() == "unset"  # the call ran in a context of its own
            assert len(pool) == 1
            resume.set()
            await anyio.wait_all_tasks_blocked()
            assert steps == ["first step", "second step"]
            assert len(pool) == 0


async def test_start_now_on_a_waiting_runner_runs_the_call_at_once() -> None:
    skip_unless_steps_run_now()
    ran: list[int] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:

            async def call(i: int) -> None:
                ran.append(i)

            pool.start_now(call, 1)
            await anyio.wait_all_tasks_blocked()
            [runner] = pool._runners  # waiting for its next call
            pool.start_now(call, 2)
            assert ran == [1, 2]
            assert pool._runners == {runner}  # the same runner took it
            assert len(pool) == 0


async def test_start_now_inside_a_first_step_starts_the_inner_call_at_the_next_turn() -> None:
    skip_unless_steps_run_now()
    order: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:

            async def inner() -> None:
                order.append("inner")

            async def outer() -> None:
                pool.start_now(inner)  # not nested in this step
                order.append("outer")

            pool.start_now(outer)
            assert order == ["outer"]
            await anyio.wait_all_tasks_blocked()
            assert order == ["outer", "inner"]


async def test_a_call_started_now_that_fails_cancels_the_body() -> None:
    with anyio.fail_after(5):
        with pytest.raises(ValueError, match="at once"):
            async with TaskPool() as pool:

                async def fail() -> None:
                    raise ValueError("at once")

                pool.start_now(fail)
                await anyio.sleep_forever()


async def test_start_now_where_the_running_task_cannot_be_swapped_waits_for_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As on Python 3.14, whose C tasks keep the running task in the thread's
    # state: a dict asyncio does not read. Running the step anyway would fail
    # to enter its task, and the call would be lost.
    monkeypatch.setattr(_aio, "_current_tasks", {})
    assert not can_step_now()
    ran: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:

            async def call() -> None:
                ran.append("call")

            pool.start_now(call)
            assert ran == []  # not at once: at the loop's next turn
            await anyio.wait_all_tasks_blocked()
            assert ran == ["call"]
            assert len(pool) == 0


async def test_a_pool_call_cancels_its_call_alone_and_its_shielded_cleanup_runs() -> None:
    outcomes: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            started, cleaned = anyio.Event(), anyio.Event()
            other_go = anyio.Event()

            async def victim() -> None:
                try:
                    started.set()
                    await anyio.sleep_forever()
                finally:
                    with anyio.CancelScope(shield=True):
                        await anyio.lowlevel.checkpoint()  # not cancelled: shielded
                        outcomes.append("victim cleaned up")
                    cleaned.set()

            async def bystander() -> None:
                await other_go.wait()
                outcomes.append("bystander ran through")

            call = PoolCall()
            pool.start_soon(victim, call=call)
            pool.start_soon(bystander, call=PoolCall())
            await started.wait()
            call.cancel()
            await cleaned.wait()
            other_go.set()
            await anyio.wait_all_tasks_blocked()
            assert len(pool) == 0
    assert outcomes == ["victim cleaned up", "bystander ran through"]


async def test_a_pool_call_cancelled_before_it_started_is_cancelled_at_its_first_checkpoint() -> (
    None
):
    reached: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:

            async def call() -> None:
                try:
                    reached.append("first step")
                    await anyio.lowlevel.checkpoint()
                    reached.append("after the checkpoint")
                finally:
                    reached.append("finally")

            handle = PoolCall()
            pool.start_soon(call, call=handle)  # on a new runner, not started yet
            handle.cancel()
            await anyio.wait_all_tasks_blocked()
            assert len(pool) == 0
    assert reached == ["first step", "finally"]


async def test_a_pool_call_cancelled_after_it_ended_cancels_nothing_later() -> None:
    outcomes: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:

            async def quick() -> None:
                outcomes.append("quick")

            handle = PoolCall()
            pool.start_soon(quick, call=handle)
            await anyio.wait_all_tasks_blocked()
            [runner] = pool._runners  # waiting for its next call

            async def later() -> None:
                for _ in range(3):
                    await anyio.lowlevel.checkpoint()
                outcomes.append("later ran through")

            pool.start_soon(later, call=PoolCall())  # the same runner takes it
            handle.cancel()  # the old call's handle: the runner's new call is not its
            await anyio.wait_all_tasks_blocked()
            assert pool._runners == {runner}
    assert outcomes == ["quick", "later ran through"]


async def test_the_runner_of_a_cancelled_call_ends_and_the_next_call_runs_on_a_new_one() -> None:
    outcomes: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            started = anyio.Event()

            async def victim() -> None:
                started.set()
                await anyio.sleep_forever()

            handle = PoolCall()
            pool.start_soon(victim, call=handle)
            await started.wait()
            [first] = pool._runners
            handle.cancel()
            await anyio.wait_all_tasks_blocked()
            assert pool._runners == set()  # its scope was cancelled: it ended

            async def next_call() -> None:
                for _ in range(3):
                    await anyio.lowlevel.checkpoint()
                outcomes.append("next ran through")

            pool.start_soon(next_call, call=PoolCall())
            await anyio.wait_all_tasks_blocked()
            assert first not in pool._runners
    assert outcomes == ["next ran through"]


async def _warm_runner(pool: TaskPool) -> asyncio.Task[None]:
    """Run a call to its end and return its runner, now waiting for the next call."""

    async def quick() -> None:
        pass

    pool.start_soon(quick)
    await anyio.wait_all_tasks_blocked()
    [runner] = pool._runners
    return runner


async def test_start_now_on_a_waiting_runner_runs_a_step_that_ends_without_waking_it() -> None:
    skip_unless_steps_run_now()
    seen: list[object] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            runner = await _warm_runner(pool)
            [(_, waiter, _)] = pool._idle

            async def call() -> None:
                seen.append(asyncio.current_task())

            pool.start_now(call)
            assert seen == [runner]  # run as the runner, before start_now returned
            # Still waiting on the same future: the call did not go through it.
            assert pool._idle == [(runner, waiter, pool._idle[0][2])]
            assert not waiter.done()
            assert len(pool) == 0
            pool.start_now(call)
            assert seen == [runner, runner]


async def test_a_variable_set_in_a_first_step_on_a_waiting_runner_is_not_seen_by_the_next() -> (
    None
):
    skip_unless_steps_run_now()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            runner = await _warm_runner(pool)

            async def setter() -> None:
                var.set("set")

            async def reader() -> None:
                seen.append(var.get())

            pool.start_now(setter)
            assert var.get() == "unset"  # not the caller's context either
            await anyio.wait_all_tasks_blocked()
            assert runner not in pool._runners  # it ended: its context changed
            pool.start_now(reader)
            await anyio.wait_all_tasks_blocked()
    assert seen == ["unset"]


async def test_a_first_step_on_a_waiting_runner_that_waits_goes_on_in_that_runner() -> None:
    skip_unless_steps_run_now()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    steps: list[tuple[str, object, str]] = []
    resume = anyio.Event()
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            runner = await _warm_runner(pool)

            async def call() -> None:
                var.set("set in the first step")
                with anyio.CancelScope():  # entered before the wait, left after it
                    steps.append(("first", asyncio.current_task(), var.get()))
                    await resume.wait()
                    steps.append(("second", asyncio.current_task(), var.get()))

            pool.start_now(call)
            assert [s[0] for s in steps] == ["first"]
            assert len(pool) == 1
            resume.set()
            await anyio.wait_all_tasks_blocked()
            assert len(pool) == 0
    assert steps == [
        ("first", runner, "set in the first step"),
        ("second", runner, "set in the first step"),
    ]


async def test_a_pool_call_cancels_a_call_that_waits_after_a_first_step_on_a_waiting_runner() -> (
    None
):
    skip_unless_steps_run_now()
    outcomes: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            runner = await _warm_runner(pool)

            async def victim() -> None:
                try:
                    await anyio.sleep_forever()
                finally:
                    with anyio.CancelScope(shield=True):
                        await anyio.lowlevel.checkpoint()  # not cancelled: shielded
                        outcomes.append("cleaned up")

            handle = PoolCall()
            pool.start_now(victim, call=handle)
            assert pool._runners == {runner}  # the waiting runner took it
            handle.cancel()
            await anyio.wait_all_tasks_blocked()
            assert len(pool) == 0
            assert pool._runners == set()  # its scope was cancelled: it ended
    assert outcomes == ["cleaned up"]


async def test_a_call_that_fails_in_a_first_step_on_a_waiting_runner_cancels_the_body() -> None:
    skip_unless_steps_run_now()
    with anyio.fail_after(5):
        with pytest.raises(ValueError, match="at once"):
            async with TaskPool() as pool:
                await _warm_runner(pool)

                async def fail() -> None:
                    raise ValueError("at once")

                pool.start_now(fail)
                await anyio.sleep_forever()


async def test_a_cancellation_raised_in_a_first_step_on_a_waiting_runner_is_no_error() -> None:
    skip_unless_steps_run_now()
    ran: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            runner = await _warm_runner(pool)

            async def cancelled() -> None:
                raise asyncio.CancelledError

            async def after() -> None:
                ran.append("after")

            pool.start_now(cancelled)
            # Its runner raised it, in its own task, before start_now returned.
            assert runner.cancelled()
            assert len(pool) == 0
            await anyio.wait_all_tasks_blocked()
            pool.start_now(after)
    assert ran == ["after"]


async def test_a_call_waiting_after_a_first_step_on_a_waiting_runner_is_cancelled_at_exit() -> (
    None
):
    skip_unless_steps_run_now()
    outcomes: list[str] = []
    with anyio.fail_after(5):
        async with TaskPool() as pool:
            await _warm_runner(pool)

            async def held() -> None:
                try:
                    await anyio.sleep_forever()
                except anyio.get_cancelled_exc_class():
                    outcomes.append("cancelled")
                    raise

            pool.start_now(held)
            await anyio.wait_all_tasks_blocked()
    assert outcomes == ["cancelled"]


async def test_loop_clock_reads_what_the_loop_time_reads() -> None:
    loop = asyncio.get_running_loop()
    clock = _aio.loop_clock()
    before = loop.time()
    now = clock()
    assert before <= now <= loop.time()


def test_loop_clock_of_a_loop_with_a_clock_of_its_own_is_that_clock() -> None:
    class ShiftedLoop(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return super().time() + 1000.0

    async def read() -> tuple[float, float]:
        return _aio.loop_clock()(), asyncio.get_running_loop().time()

    loop = ShiftedLoop()
    try:
        clocked, timed = loop.run_until_complete(read())
    finally:
        loop.close()
    assert timed - 1.0 < clocked <= timed
