"""The progress guarantee: waiting workers never starve the system; loops end in LoopError.

Every handler here returns 1 + the sum of its children's results, so the root's
result equals the number of nodes of the request tree: a node that ran twice,
or not at all, shows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import binglide

from .helpers import TRANSPORTS, all_transports, deployment, wait_until

Graph = dict[str, list[str]]


def tree_size(graph: Graph, service: str, budget: int) -> int:
    """The number of nodes of the tree rooted at (service, budget), computed independently."""
    if budget == 0:
        return 1
    return 1 + sum(tree_size(graph, child, budget - 1) for child in graph[service])


def make_services(
    graph: Graph, *, loop_edge: tuple[str, str] | None = None
) -> list[type[binglide.Service]]:
    """One service per node of `graph`.

    `loop_edge` (a, b) makes a's call to b call back a with a's own arguments.
    """

    async def handle(
        self: binglide.Service, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        budget, path = task.body["budget"], task.body["path"]
        calls = []
        if "back" in task.body:
            # Call back with exactly our caller's arguments: a cycle.
            calls.append(ctx.request(task.body["back"], {"budget": budget, "path": path}))
        elif budget > 0:
            for i, child in enumerate(graph[self.name]):
                if loop_edge == (self.name, child):
                    body = {"budget": budget, "path": path, "back": self.name}
                    calls.append(ctx.request(child, body))
                else:
                    calls.append(ctx.request(child, {"budget": budget - 1, "path": f"{path}/{i}"}))
        results = [0] * len(calls)

        async def collect(i: int, call: binglide.Call) -> None:
            results[i] = int((await call).array[0])

        async with anyio.create_task_group() as tg:
            for i, call in enumerate(calls):
                tg.start_soon(collect, i, call)
        yield binglide.Report(np.array([1 + sum(results)], dtype=np.int64))

    return [
        type(f"Node_{name}", (binglide.Service,), {"name": name, "handle": handle})
        for name in graph
    ]


async def run_trees(
    graph: Graph,
    roots: list[tuple[str, int]],
    *,
    pool: int,
    stack_bound: int = 8,
    max_depth: int = 32,
    loop_edge: tuple[str, str] | None = None,
    transport: str = "inproc",
) -> list[int | BaseException]:
    """Submit every root tree at once, each from its own client; return results or errors."""
    config = binglide.BrokerConfig(
        heartbeat_interval=float("inf"), stack_bound=stack_bound, max_depth=max_depth
    )
    results: list[int | BaseException] = [0] * len(roots)

    async def one(d: object, i: int, service: str, budget: int) -> None:
        assert hasattr(d, "client")
        async with d.client() as client:
            try:
                report = await client.request(service, {"budget": budget, "path": f"root{i}"})
                results[i] = int(report.array[0])
            except binglide.JobError as exc:
                results[i] = exc

    services = make_services(graph, loop_edge=loop_edge)
    async with deployment(services, workers=pool, config=config, transport=transport) as d:
        async with anyio.create_task_group() as tg:
            for i, (service, budget) in enumerate(roots):
                tg.start_soon(one, d, i, service, budget)
        stats = d.broker.statistics()
        assert (stats.pending, stats.dispatched, stats.jobs) == (0, 0, 0)
    return results


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    names = [f"s{i}" for i in range(draw(st.integers(3, 6)))]
    return {name: draw(st.lists(st.sampled_from(names), max_size=4)) for name in names}


@pytest.mark.parametrize("transport", TRANSPORTS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    graph=graphs(),
    pool=st.integers(1, 3),
    stack_bound=st.integers(1, 4),
    data=st.data(),
)
def test_every_finite_tree_completes_and_every_node_runs_once(
    transport: str, graph: Graph, pool: int, stack_bound: int, data: st.DataObject
) -> None:
    roots = data.draw(
        st.lists(
            st.tuples(st.sampled_from(sorted(graph)), st.integers(0, 3)), min_size=1, max_size=3
        )
    )
    # Keep each example small enough to run in well under a second.
    roots = [(s, b) for s, b in roots if tree_size(graph, s, b) <= 200] or [(sorted(graph)[0], 0)]

    async def main() -> list[int | BaseException]:
        with anyio.fail_after(20):
            return await run_trees(
                graph, roots, pool=pool, stack_bound=stack_bound, transport=transport
            )

    results = anyio.run(main)
    assert results == [tree_size(graph, s, b) for s, b in roots]


@pytest.mark.parametrize("transport", TRANSPORTS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(), pool=st.integers(1, 3), data=st.data())
def test_cyclic_graphs_end_in_loop_error_never_a_hang(
    transport: str, graph: Graph, pool: int, data: st.DataObject
) -> None:
    a = data.draw(st.sampled_from(sorted(graph)))
    b = data.draw(st.sampled_from(sorted(graph)))
    graph = {**graph, a: [*graph[a], b]}

    async def main() -> list[int | BaseException]:
        with anyio.fail_after(20):
            return await run_trees(
                graph, [(a, 1)], pool=pool, loop_edge=(a, b), transport=transport
            )

    [result] = anyio.run(main)
    assert isinstance(result, binglide.LoopError)
    assert result.cycle[0] == result.cycle[-1]


# -- named shapes, pools of one ----------------------------------------------------------


CHAIN = {"a": ["b"], "b": ["c"], "c": []}
DIAMOND = {"top": ["left", "right"], "left": ["bottom"], "right": ["bottom"], "bottom": []}
SPLIT = {"split": ["split", "split"]}
FANOUT = {"fan": ["leaf"] * 4, "leaf": ["leaf"] * 4}


@pytest.mark.parametrize(
    ("graph", "root", "budget"),
    [
        pytest.param(CHAIN, "a", 2, id="chain-a<-b<-c"),
        pytest.param(DIAMOND, "top", 2, id="diamond"),
        pytest.param(SPLIT, "split", 10, id="self-recursive-split-10-levels"),
        pytest.param(FANOUT, "fan", 4, id="fanout-341"),
    ],
)
@all_transports
async def test_named_shapes_with_one_worker_per_service(
    graph: Graph, root: str, budget: int, transport: str
) -> None:
    with anyio.fail_after(60):
        results = await run_trees(
            graph, [(root, budget)] * 3, pool=1, stack_bound=2, transport=transport
        )
    assert results == [tree_size(graph, root, budget)] * 3


@all_transports
async def test_a_fanout_of_hundreds_with_one_worker(transport: str) -> None:
    graph = {"hub": ["leaf"] * 300, "leaf": []}

    with anyio.fail_after(30):
        [result] = await run_trees(graph, [("hub", 1)], pool=1, transport=transport)
    assert result == 301


@all_transports
async def test_a_tree_deeper_than_the_bound_is_refused(transport: str) -> None:
    with anyio.fail_after(10):
        [result] = await run_trees(
            CHAIN | {"c": ["a"]}, [("a", 12)], pool=1, max_depth=5, transport=transport
        )
    assert isinstance(result, binglide.LoopError)
    assert "deeper than 5" in str(result)


class Blocker(binglide.Service):
    """Stacks a chain ``depth`` deep on one worker; the deepest blocks until cancelled."""

    name = "blocker"
    cancelled: list[int] = []  # noqa: RUF012 - shared on purpose between the test and the worker
    started: list[int] = []  # noqa: RUF012

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        depth = task.body["depth"]
        Blocker.started.append(depth)
        try:
            if depth == 0:
                await anyio.sleep_forever()
            await ctx.request("blocker", {"depth": depth - 1})
            yield binglide.Report(None)
        except anyio.get_cancelled_exc_class():
            Blocker.cancelled.append(depth)
            raise


@all_transports
async def test_cancellation_reaches_tasks_stacked_on_a_waiting_worker(transport: str) -> None:
    Blocker.cancelled, Blocker.started = [], []
    config = binglide.BrokerConfig(heartbeat_interval=float("inf"), stack_bound=3)
    with anyio.fail_after(10):
        async with (
            deployment([Blocker], workers=1, config=config, transport=transport) as d,
            d.client() as client,
        ):
            call = client.request("blocker", {"depth": 5})
            await wait_until(lambda: 0 in Blocker.started)
            assert d.workers[0].statistics().tasks == 6  # all stacked on the one worker
            assert d.broker.statistics().overflows >= 3
            call.cancel()
            await wait_until(lambda: len(Blocker.cancelled) == 6)
            await wait_until(lambda: d.workers[0].statistics().tasks == 0)
    assert sorted(Blocker.cancelled) == [0, 1, 2, 3, 4, 5]


@all_transports
async def test_a_loop_names_each_requests_own_entry_root_first(transport: str) -> None:
    # The root's entry is computed only where it is read (in one process, by
    # the handler's first sub-request): the cycle must still name the exact
    # digests of the root's and the sub-request's payloads, in order.
    from binglide.core import request_digest
    from binglide.payload import encode_body

    root = {"budget": 1, "path": "root0"}
    back = {"budget": 1, "path": "root0", "back": "a"}
    with anyio.fail_after(10):
        [result] = await run_trees(
            {"a": ["b"], "b": []}, [("a", 1)], pool=1, loop_edge=("a", "b"), transport=transport
        )
    assert isinstance(result, binglide.LoopError)
    a = request_digest("a", encode_body(root))
    assert result.cycle == (a, request_digest("b", encode_body(back)), a)


@all_transports
async def test_only_a_broker_of_workers_in_its_process_lets_them_digest_root_tasks(
    transport: str,
) -> None:
    # Over ZeroMQ the worker hop is encoded, which reads the ancestry anyway:
    # the lazy form would only add its own cost there.
    with anyio.fail_after(10):
        async with deployment(make_services({"a": []}), transport=transport) as d:
            assert d.broker.machine.lazy_ancestry is (transport == "inproc")
