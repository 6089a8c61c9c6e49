"""`Waiters`: what a `Call` waits on between two of its reports."""

from __future__ import annotations

import anyio

from binglide._aio import Waiters


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
