"""Cancellation reaches every task of a job, at every depth, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import numpy as np
import pytest

import binglide

from .helpers import Echo, all_transports, deployment, wait_until


class Recorder:
    """What the blocking handlers saw, shared by the test and the workers."""

    started: dict[int, int]
    cancelled: dict[int, int]

    @classmethod
    def reset(cls) -> None:
        cls.started = {}
        cls.cancelled = {}


class Level(binglide.Service):
    """Level ``d`` issues ``fanout`` sub-requests to level ``d + 1``; the last level blocks."""

    name = "level"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        depth, path = task.body["depth"], task.body["path"]
        Recorder.started[depth] = Recorder.started.get(depth, 0) + 1
        try:
            yield binglide.Report(None, completion=0.0)
            if depth == 2:
                await anyio.sleep_forever()
            calls = [
                ctx.request("level", {"depth": depth + 1, "path": f"{path}.{i}"}) for i in range(2)
            ]
            async with anyio.create_task_group() as tg:
                for call in calls:
                    tg.start_soon(call.wait)
            yield binglide.Report(np.zeros(1))
        except anyio.get_cancelled_exc_class():
            Recorder.cancelled[depth] = Recorder.cancelled.get(depth, 0) + 1
            raise


def _idle(stats: binglide.core.BrokerStatistics) -> bool:
    return stats.pending == 0 and stats.dispatched == 0 and stats.jobs == 0


@pytest.mark.parametrize("mode", list(binglide.CancelMode))
@all_transports
async def test_cancel_reaches_every_level_and_spares_other_clients(
    mode: binglide.CancelMode, transport: str
) -> None:
    Recorder.reset()
    config = binglide.BrokerConfig(heartbeat_interval=float("inf"), cancel_mode=mode)
    with anyio.fail_after(10):
        # 1 + 2 + 4 tasks; one worker per service would also do (the stack),
        # but give room so every level really runs at once.
        async with deployment(
            [Level, Echo], transport=transport, workers={"level": 4, "echo": 1}, config=config
        ) as d:
            async with d.client("alice") as alice, d.client("bob") as bob:
                call = alice.request("level", {"depth": 0, "path": "r"})
                await wait_until(lambda: Recorder.started.get(2, 0) == 4)
                stats = d.broker.statistics()
                assert stats.dispatched == 7
                assert d.broker.machine.workers_of_job(call.job)

                call.cancel()
                other = bob.request("echo", {"x": 1, "parts": 0})
                with pytest.raises(binglide.JobCancelled):
                    await call
                await wait_until(lambda: sum(Recorder.cancelled.values()) == 7)
                assert Recorder.cancelled == {0: 1, 1: 2, 2: 4}
                assert (await other).array.tolist() == [1]
                await wait_until(lambda: _idle(d.broker.statistics()))
                stats = d.broker.statistics()
                assert stats.cancelled == 7
                assert all(w.statistics().tasks == 0 for w in d.workers)


@all_transports
async def test_no_report_reaches_the_caller_after_cancel(transport: str) -> None:
    Recorder.reset()
    with anyio.fail_after(5):
        async with deployment([Level], transport=transport) as d, d.client() as client:
            call = client.request("level", {"depth": 2, "path": "r"})
            seen = []
            with pytest.raises(binglide.JobCancelled):
                async for report in call:
                    seen.append(report)
                    call.cancel()
            # The iteration ends with the cancellation, not with more reports.
    assert len(seen) == 1
    assert not seen[0].final


@all_transports
async def test_iterating_a_cancelled_call_raises(transport: str) -> None:
    Recorder.reset()
    with anyio.fail_after(5):
        async with deployment([Level], transport=transport) as d, d.client() as client:
            call = client.request("level", {"depth": 2, "path": "r"})
            await wait_until(lambda: Recorder.started.get(2, 0) == 1)
            call.cancel()
            call.cancel()  # idempotent
            with pytest.raises(binglide.JobCancelled):
                async for _ in call:
                    pass


@all_transports
async def test_closing_a_client_cancels_its_open_jobs(transport: str) -> None:
    Recorder.reset()
    with anyio.fail_after(5):
        async with deployment([Level], transport=transport, workers=2) as d:
            async with d.client() as client:
                client.request("level", {"depth": 1, "path": "r"})
                await wait_until(lambda: Recorder.started.get(2, 0) == 2)
            await wait_until(lambda: sum(Recorder.cancelled.values()) == 3)
            await wait_until(lambda: _idle(d.broker.statistics()))


@all_transports
async def test_a_handler_cancelling_its_sub_request_cancels_only_that_branch(
    transport: str,
) -> None:
    class Picky(binglide.Service):
        name = "picky"

        async def handle(
            self, task: binglide.Task, ctx: binglide.Context
        ) -> AsyncIterator[binglide.Report]:
            slow = ctx.request("level", {"depth": 2, "path": "slow"})
            fast = ctx.request("echo", {"x": 9, "parts": 0})
            result = await fast
            await wait_until(lambda: Recorder.started.get(2, 0) == 1)
            slow.cancel()
            with pytest.raises(binglide.JobCancelled):
                await slow
            yield binglide.Report(result.array)

    Recorder.reset()
    with anyio.fail_after(5):
        async with (
            deployment([Picky, Level, Echo], transport=transport) as d,
            d.client() as client,
        ):
            assert (await client.request("picky", {})).array.tolist() == [9]
            await wait_until(lambda: Recorder.cancelled.get(2, 0) == 1)
            await wait_until(lambda: _idle(d.broker.statistics()))


@all_transports
async def test_the_sub_requests_a_handler_leaves_open_are_cancelled_when_it_ends(
    transport: str,
) -> None:
    # Its task's open sub-requests are cancelled as it ends (the worker keeps
    # them from the first one on): the blocked one below is, and the broker
    # and the worker hold nothing of it after.
    class Forgetful(binglide.Service):
        name = "forgetful"

        async def handle(
            self, task: binglide.Task, ctx: binglide.Context
        ) -> AsyncIterator[binglide.Report]:
            ctx.request("level", {"depth": 2, "path": "left"})
            answered = await ctx.request("echo", {"x": 3, "parts": 0})
            await wait_until(lambda: Recorder.started.get(2, 0) == 1)
            yield binglide.Report(answered.array)

    Recorder.reset()
    with anyio.fail_after(5):
        async with (
            deployment([Forgetful, Level, Echo], transport=transport) as d,
            d.client() as client,
        ):
            assert (await client.request("forgetful", {})).array.tolist() == [3]
            await wait_until(lambda: Recorder.cancelled.get(2, 0) == 1)
            await wait_until(lambda: _idle(d.broker.statistics()))
            # The worker closed it too (the broker cancels a task's children
            # as the task ends, whatever the worker does; its call is the
            # worker's to close).
            [forgetful] = [w for w in d.workers if w.service.name == "forgetful"]
            assert forgetful._requester.open_calls == 0


@all_transports
async def test_a_client_closed_by_a_cancellation_still_cancels_its_jobs(transport: str) -> None:
    Recorder.reset()
    with anyio.fail_after(10):
        async with deployment([Level], transport=transport) as d:
            with anyio.CancelScope() as scope:
                async with d.client() as client:
                    client.request("level", {"depth": 2, "path": "r"})
                    await wait_until(lambda: Recorder.started.get(2, 0) == 1)
                    scope.cancel()  # as Ctrl-C or a timeout around the client would
                    await anyio.sleep_forever()
            # The client's CANCEL went out although it closed under cancellation.
            await wait_until(lambda: Recorder.cancelled.get(2, 0) == 1)
            await wait_until(lambda: _idle(d.broker.statistics()))
