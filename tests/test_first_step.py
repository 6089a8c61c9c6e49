"""In one process a handler's first step runs as its request is sent.

A worker over the in-process transport runs each task's first step at once,
on a task of its own (`TaskPool.start_now`), so that a handler that answers
without waiting costs no turn of the event loop. What a caller sees must not change for it: the
reports it iterates, the checkpoint an ``await`` of a call is, a wait on a
sub-request whose answer comes while the worker says it waits.
"""

from __future__ import annotations

import anyio
import pytest

from binglide._aio import can_step_now

from .helpers import Echo, deployment


async def test_a_handler_that_answers_at_once_has_answered_when_the_request_returns() -> None:
    if not can_step_now():
        pytest.skip("this Python keeps the running task where step_now cannot swap it")
    with anyio.fail_after(5):
        async with deployment([Echo]) as d, d.client() as client:
            await client.request("echo", {"x": 1, "parts": 0})  # the worker is known
            call = client.request("echo", {"x": 2, "parts": 0})
            assert call.done()
            assert (await call).array.tolist() == [2]


async def test_awaiting_a_call_answered_already_is_still_a_checkpoint() -> None:
    with anyio.fail_after(5):
        async with deployment([Echo]) as d, d.client() as client:
            await client.request("echo", {"x": 1, "parts": 0})
            call = client.request("echo", {"x": 2, "parts": 0})
            assert call.done()
            with anyio.CancelScope() as scope:
                scope.cancel()
                await call  # cancelled here, though the answer is there
            assert scope.cancelled_caught

            others_ran = 0

            async def other() -> None:
                nonlocal others_ran
                while True:
                    others_ran += 1
                    await anyio.lowlevel.checkpoint()

            async with anyio.create_task_group() as tg:
                tg.start_soon(other)
                for _ in range(5):
                    await client.request("echo", {"x": 3, "parts": 0})
                assert others_ran >= 4  # the loop of calls let it run
                tg.cancel_scope.cancel()


async def test_a_caller_that_only_awaits_keeps_the_latest_partial_and_the_final_report() -> None:
    with anyio.fail_after(5):
        async with deployment([Echo]) as d, d.client() as client:
            await client.request("echo", {"x": 1, "parts": 0})
            call = client.request("echo", {"x": 5, "parts": 3})  # 3 partials, then the final
            assert call.done()
            report = await call
            # The partials that came as the request was sent are let go once
            # the caller awaits the final report, as if each had replaced the
            # one before (what a caller that awaits had kept before).
            kept = [r async for r in call]
            assert [r.completion for r in kept] == [0.75, 1.0]
            assert kept[-1] is report
