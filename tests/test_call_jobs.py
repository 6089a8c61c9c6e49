"""A call's job id: the one the broker gives the request tree, made only when asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import anyio
import numpy as np
import pytest

import binglide
from binglide.core import job_id_for

from .helpers import deployment

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class _Parent(binglide.Service):
    """Asks `_Child` once, and says which job ids it saw."""

    name = "parent"
    seen: ClassVar[list[str]] = []

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        call = ctx.request("child", {})
        _Parent.seen.extend([task.job, ctx.job, call.job])
        await call
        yield binglide.Report(np.zeros(1))


class _Child(binglide.Service):
    name = "child"
    seen: ClassVar[list[str]] = []

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        _Child.seen.append(task.job)
        if task.body.get("fail"):
            raise binglide.RequestError("refused")
        yield binglide.Report(None)


@pytest.mark.parametrize("transport", ["inproc", "zmq-ipc"])
async def test_a_calls_job_id_is_the_brokers(transport: str) -> None:
    _Parent.seen.clear()
    _Child.seen.clear()
    with anyio.fail_after(20):
        async with deployment([_Parent, _Child], transport=transport) as d:
            async with d.client("client-a") as client:
                first = client.request("parent", {})
                await first
                second = client.request("child", {"fail": True})
                with pytest.raises(binglide.RequestError) as refused:
                    await second
    # The client's requests are numbered 1, 2, ... (its identity is its own).
    assert first.job == job_id_for("client-a", 1)
    assert second.job == job_id_for("client-a", 2)
    assert refused.value.job_id == second.job
    # The handler, its context and its sub-request all see the root's job id.
    assert _Parent.seen == [first.job] * 3
    assert _Child.seen == [first.job, second.job]
    assert repr(first) == f"<Call 'parent' job={first.job!r} done>"
