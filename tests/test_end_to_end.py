"""The real Broker, Client and Workers over the in-process transport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import numpy as np
import pytest

import binglide

from .helpers import Boom, Echo, TreeSum, all_transports, deployment


@all_transports
async def test_progressive_reports_arrive_in_order_final_last(transport: str) -> None:
    with anyio.fail_after(5):
        async with deployment([Echo], transport=transport) as d, d.client() as client:
            reports = [r async for r in client.request("echo", {"x": 7, "parts": 4})]
    assert [r.final for r in reports] == [False] * 4 + [True]
    completions = [r.completion for r in reports]
    assert completions == sorted(completions)
    assert [len(r.data) for r in reports[:-1]] == [1, 2, 3, 4]  # type: ignore[arg-type]
    assert reports[-1].array.tolist() == [7]
    assert reports[-1].meta == {"x": 7}


@all_transports
async def test_many_clients_at_once(transport: str) -> None:
    results: dict[int, int] = {}

    async def one(d: object, i: int) -> None:
        assert hasattr(d, "client")
        async with d.client() as client:
            report = await client.request("echo", {"x": i, "parts": 1})
            results[i] = int(report.array[0])

    with anyio.fail_after(10):
        async with (
            deployment([Echo], transport=transport, workers=2) as d,
            anyio.create_task_group() as tg,
        ):
            for i in range(20):
                tg.start_soon(one, d, i)
    assert results == {i: i for i in range(20)}


@all_transports
async def test_then_chains_sync_and_async_functions(transport: str) -> None:
    async def double(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return 2 * x

    with anyio.fail_after(5):
        async with deployment([Echo], transport=transport) as d, d.client() as client:
            chained = client.request("echo", {"x": 5}).then(lambda r: int(r.array[0])).then(double)
            assert await chained == 10
            assert await chained == 10  # a chain runs once; awaiting again gives its result
            with pytest.raises(ZeroDivisionError):
                await client.request("echo", {"x": 0}).then(lambda r: 1 // int(r.array[0]))


@all_transports
async def test_handler_errors_reach_the_caller_and_the_worker_serves_on(transport: str) -> None:
    with anyio.fail_after(5):
        async with deployment([Boom, Echo], transport=transport) as d, d.client() as client:
            with pytest.raises(binglide.JobFailed) as info:
                await client.request("boom", {"kind": "crash"})
            assert info.value.remote_type == "ZeroDivisionError"
            assert info.value.remote_message == "division by zero in the handler"
            with pytest.raises(binglide.RequestError, match="bad input: fix it"):
                await client.request("boom", {"kind": "request"})
            # A failure propagates through then-chains untouched.
            with pytest.raises(binglide.JobFailed):
                await client.request("boom", {}).then(lambda r: r)
            # The same worker still serves.
            assert d.workers[0].statistics().failed == 3
            with pytest.raises(binglide.JobFailed):
                await client.request("boom", {})


@all_transports
async def test_unknown_service_fails_after_the_deadline_not_a_hang(transport: str) -> None:
    with anyio.fail_after(5):
        async with deployment([Echo], transport=transport) as d, d.client() as client:
            with pytest.raises(binglide.ServiceUnavailable, match="no worker of service 'nope'"):
                await client.request("nope", {}, timeout=0.2)


@all_transports
async def test_arrays_travel_with_requests_and_reports(transport: str) -> None:
    class Twice(binglide.Service):
        name = "twice"

        async def handle(
            self, task: binglide.Task, ctx: binglide.Context
        ) -> AsyncIterator[binglide.Report]:
            (a, b) = task.arrays
            yield binglide.Report({"a": a * 2, "b": b[::-1].copy()}, meta={"n": task.body["n"]})

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.array([1, 2, 3], dtype=np.uint64)
    with anyio.fail_after(5):
        async with deployment([Twice], transport=transport) as d, d.client() as client:
            report = await client.request("twice", {"n": 1}, a, b)
    assert isinstance(report.data, dict)
    np.testing.assert_array_equal(report.data["a"], a * 2)
    assert report.data["a"].dtype == np.float32
    np.testing.assert_array_equal(report.data["b"], b[::-1])


@all_transports
async def test_recursive_tree_with_one_worker_completes(transport: str) -> None:
    with anyio.fail_after(10):
        async with (
            deployment([TreeSum], transport=transport, workers=1) as d,
            d.client() as client,
        ):
            report = await client.request("treesum", {"n": 200})
    assert report.array.tolist() == [200]


@all_transports
async def test_workers_are_clients_of_other_services(transport: str) -> None:
    class Caller(binglide.Service):
        name = "caller"

        async def handle(
            self, task: binglide.Task, ctx: binglide.Context
        ) -> AsyncIterator[binglide.Report]:
            echoed = await ctx.request("echo", {"x": task.body["x"], "parts": 0})
            assert echoed.final
            yield binglide.Report(echoed.array + 1)

    with anyio.fail_after(5):
        async with deployment([Caller, Echo], transport=transport) as d, d.client() as client:
            assert (await client.request("caller", {"x": 41})).array.tolist() == [42]


async def test_connect_embedded_with_extra_services() -> None:
    with anyio.fail_after(10):
        async with binglide.connect(services=[Echo], builtins=False, workers=2) as client:
            assert (await client.request("echo", {"x": 3})).array.tolist() == [3]
    with pytest.raises(ValueError, match="at least 1"):
        async with binglide.connect(services=[Echo], builtins=False, workers=0):
            pass


@all_transports
async def test_a_report_held_by_a_slow_handler_goes_out_and_the_final_repeats_it(
    transport: str,
) -> None:
    release = anyio.Event()

    class Slow(binglide.Service):
        name = "slow"

        async def handle(
            self, task: binglide.Task, ctx: binglide.Context
        ) -> AsyncIterator[binglide.Report]:
            yield binglide.Report(np.array([1, 2, 3]), completion=0.5, meta={"k": 1})
            await release.wait()  # the handler ends long after its last report

    with anyio.fail_after(5):
        async with deployment([Slow], transport=transport) as d, d.client() as client:
            call = client.request("slow", {})
            reports = []
            async for report in call:
                reports.append(report)
                release.set()  # only once the report reached us
    assert [r.final for r in reports] == [False, True]
    assert reports[1].array.tolist() == [1, 2, 3]
    assert reports[1].meta == {"k": 1}
    assert reports[1].completion == 0.5


@all_transports
async def test_a_handler_that_yields_nothing_gives_an_empty_final_report(transport: str) -> None:
    class Quiet(binglide.Service):
        name = "quiet"

        async def handle(
            self, task: binglide.Task, ctx: binglide.Context
        ) -> AsyncIterator[binglide.Report]:
            return
            yield  # an async generator that yields nothing

    with anyio.fail_after(5):
        async with deployment([Quiet], transport=transport) as d, d.client() as client:
            report = await client.request("quiet", {})
    assert report.final
    assert report.data is None


async def test_an_error_in_the_connect_body_escapes_as_itself() -> None:
    with anyio.fail_after(10), pytest.raises(binglide.ServiceUnavailable):
        async with binglide.connect(services=[Echo], builtins=False, workers=1) as client:
            await client.request("nope", {}, timeout=0.1)


@all_transports
async def test_a_complete_report_held_by_a_handler_that_waits_goes_out_idle_or_busy(
    transport: str,
) -> None:
    # A complete report is held (it may be the final one) until the handler
    # ends or report_interval passes. The worker looks for old ones once an
    # interval while reports come, and waits to be woken when none came for
    # an interval: both ways the held report must go out.
    releases: list[anyio.Event] = []

    class Holder(binglide.Service):
        name = "holder"

        async def handle(
            self, task: binglide.Task, ctx: binglide.Context
        ) -> AsyncIterator[binglide.Report]:
            yield binglide.Report(np.array([task.body["x"]]))
            if task.body["wait"]:
                await releases[-1].wait()

    async def held_report_goes_out(client: binglide.Client, x: int) -> None:
        releases.append(anyio.Event())
        reports = []
        async for report in client.request("holder", {"x": x, "wait": True}):
            reports.append(report)
            releases[-1].set()  # only once the held report reached us
        assert [(r.final, r.array.tolist()) for r in reports] == [(False, [x]), (True, [x])]

    with anyio.fail_after(10):
        async with deployment([Holder], transport=transport) as d, d.client() as client:
            await held_report_goes_out(client, 1)  # the worker's first report
            for i in range(20):  # reports come and go within a step
                await client.request("holder", {"x": i, "wait": False})
            await held_report_goes_out(client, 2)
