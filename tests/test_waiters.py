"""`Waiters`: what a `Call` waits on between two of its reports, woken at once."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import binglide
from binglide._aio import Waiters
from binglide.core import Message, Protocol, Waiting
from binglide.transports.inproc import InprocPeer

from .helpers import deployment

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


async def test_notify_wakes_every_task_waiting_and_only_those() -> None:
    waiters = Waiters()
    woken: list[str] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def wait(name: str) -> None:
                await waiters.wait()
                woken.append(name)

            tg.start_soon(wait, "a")
            tg.start_soon(wait, "b")
            await anyio.wait_all_tasks_blocked()
            waiters.notify()
            await anyio.wait_all_tasks_blocked()
            assert sorted(woken) == ["a", "b"]
            tg.start_soon(wait, "late")  # began after the notify: waits for the next
            await anyio.wait_all_tasks_blocked()
            assert sorted(woken) == ["a", "b"]
            waiters.notify()
    assert sorted(woken) == ["a", "b", "late"]


async def test_a_cancelled_waiter_leaves_the_others_waiting_and_nothing_behind() -> None:
    waiters = Waiters()
    woken: list[str] = []
    scopes: list[anyio.CancelScope] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def cancelled() -> None:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    await waiters.wait()
                woken.append("cancelled one")

            async def kept() -> None:
                await waiters.wait()
                woken.append("kept")

            tg.start_soon(cancelled)
            tg.start_soon(kept)
            await anyio.wait_all_tasks_blocked()
            scopes[0].cancel()
            await anyio.wait_all_tasks_blocked()
            assert woken == ["cancelled one"]  # its scope ended it; the other still waits
            assert len(waiters._futures) == 1
            waiters.notify()
    assert woken == ["cancelled one", "kept"]
    assert waiters._futures == []


async def test_notify_runs_the_woken_steps_before_it_returns() -> None:
    waiters = Waiters()
    woken: list[tuple[str, asyncio.Task[Any] | None]] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def wait(name: str) -> None:
                await waiters.wait()
                woken.append((name, asyncio.current_task()))
                with anyio.CancelScope() as scope:  # entered in the step run at once
                    scope.cancel()
                    await anyio.sleep_forever()
                woken.append((f"{name} cancelled", asyncio.current_task()))

            tg.start_soon(wait, "a")
            await anyio.wait_all_tasks_blocked()
            me = asyncio.current_task()
            waiters.notify()
            # Its step ran as itself, in notify: no turn of the loop yet.
            assert [name for name, _ in woken] == ["a"]
            assert woken[0][1] is not me
            assert asyncio.current_task() is me
            await anyio.wait_all_tasks_blocked()
            assert [name for name, _ in woken] == ["a", "a cancelled"]
            assert woken[1][1] is woken[0][1]


async def test_a_woken_step_runs_at_once_however_its_future_is_watched() -> None:
    # notify runs the task's wake-up itself; a callback added after it runs at
    # the loop's next turn, as it would; inside another woken step the future
    # is resolved as usual, and that task's step waits its turn.
    waiters = Waiters()
    seen: list[str] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def wait(name: str, watch: bool) -> None:
                if watch:
                    entry = len(waiters._futures)
                    waiting = waiters.wait()
                    step = asyncio.ensure_future(waiting)  # its own task: a second watcher
                    await anyio.wait_all_tasks_blocked()
                    future = waiters._futures[entry][0]
                    future.add_done_callback(lambda _: seen.append(f"{name} callback"))
                    await step
                else:
                    await waiters.wait()
                seen.append(name)
                inner.notify()  # inside a step run at once: this one waits its turn

            inner = Waiters()

            async def wait_inner() -> None:
                await inner.wait()
                seen.append("inner")

            tg.start_soon(wait, "plain", False)
            tg.start_soon(wait_inner)
            await anyio.wait_all_tasks_blocked()
            waiters.notify()
            assert seen == ["plain"]
            await anyio.wait_all_tasks_blocked()
            assert seen == ["plain", "inner"]
            tg.start_soon(wait, "watched", True)
            await anyio.wait_all_tasks_blocked()
            waiters.notify()
            await anyio.wait_all_tasks_blocked()
            assert seen[2:] == ["watched callback", "watched"] or seen[2:] == [
                "watched",
                "watched callback",
            ]
    assert waiters._futures == []
    assert inner._futures == []


async def test_a_handler_awaiting_a_sub_request_goes_on_as_the_answer_arrives() -> None:
    # In one process the sub-request is answered as it is sent, and the
    # handler awaiting it goes on at once: the whole request tree is
    # answered before the client's request() returns, without a loop turn.
    with anyio.fail_after(10):
        async with (
            deployment([Echo, Caller], workers={"echo": 1, "caller": 1}) as d,
            d.client() as client,
        ):
            await client.request("caller", {"n": 1})  # warm: both workers known
            call = client.request("caller", {"n": 2})
            assert call.done()
            report = await call
            assert report.array.tolist() == [3]


class Echo(binglide.Service):
    name = "echo"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        yield binglide.Report(np.array([task.body["n"]]))


class Caller(binglide.Service):
    name = "caller"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        echoed = await ctx.request(task.body.get("via", "echo"), {"n": task.body["n"]})
        yield binglide.Report(echoed.array + 1)


async def test_the_broker_hears_of_a_wait_only_if_it_outlasts_the_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A handler awaiting a sub-request answered in the same step (one
    # process, a free worker) says nothing of it; one that must wait tells
    # the broker (the progress guarantee), and that it stopped.
    said: list[bool] = []
    send = InprocPeer.send_nowait

    def spy(self: InprocPeer, protocol: Protocol, message: Message) -> None:
        if isinstance(message, Waiting):
            said.append(message.waiting)
        send(self, protocol, message)

    monkeypatch.setattr(InprocPeer, "send_nowait", spy)
    Gate.opened = anyio.Event()
    with anyio.fail_after(10):
        async with (
            deployment([Echo, Caller, Gate]) as d,
            d.client() as client,
        ):
            assert (await client.request("caller", {"n": 1})).array.tolist() == [2]
            assert said == []
            call = client.request("caller", {"n": 1, "via": "gate"})
            await anyio.wait_all_tasks_blocked()
            assert said == [True]
            Gate.opened.set()
            assert (await call).array.tolist() == [2]
            assert said == [True, False]


class Gate(binglide.Service):
    """Answers like Echo once `opened` is set."""

    name = "gate"
    opened: anyio.Event

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        await Gate.opened.wait()
        yield binglide.Report(np.array([task.body["n"]]))
