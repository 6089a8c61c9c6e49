"""What a `Call` keeps of its reports, for a caller that awaits it and one that iterates it.

`CallState.deliver` keeps no reports for a call nobody iterates but its
latest intermediate one and its final one; a call whose reports came while
it was being sent (`opening`: in one process a handler answers then) keeps
every one; an iterator gets, in order, what was kept, then what comes.
Checked here against a model of those rules, whatever the order of
reports, iterations and awaits.
"""

from __future__ import annotations

import anyio
import pytest

from binglide import Report
from binglide.call import CallState


def _call() -> CallState:
    return CallState(1, "svc", "job", "origin", lambda rid: None)


def _partial(n: int) -> Report:
    return Report(None, completion=n / 10, meta={"n": n})


def _final(n: int) -> Report:
    return Report(None, meta={"n": n}, final=True)


def _ns(reports: list[Report]) -> list[tuple[int, bool]]:
    return [(r.meta["n"], r.final) for r in reports]


async def _all(call: CallState) -> list[Report]:
    with anyio.fail_after(5):
        return [r async for r in call]


@pytest.mark.parametrize("partials", [0, 1, 3])
@pytest.mark.parametrize("opening", [False, True])
async def test_an_iterator_started_after_the_end_gets_what_was_kept(
    partials: int, opening: bool
) -> None:
    call = _call()
    call.opening = opening
    for n in range(1, partials + 1):
        call.deliver(_partial(n))
    call.deliver(_final(9))
    call.opening = False
    got = _ns(await _all(call))
    kept = list(range(1, partials + 1)) if opening else list(range(1, partials + 1))[-1:]
    assert got == [*((n, False) for n in kept), (9, True)]


@pytest.mark.parametrize("partials", [0, 1, 3])
async def test_an_await_then_an_iteration_of_a_call_answered_while_sent(partials: int) -> None:
    # Awaited first: the reports kept while it was sent are cut to what a
    # call nobody iterates keeps (the latest intermediate one, the final).
    call = _call()
    call.opening = True
    for n in range(1, partials + 1):
        call.deliver(_partial(n))
    call.deliver(_final(9))
    call.opening = False
    with anyio.fail_after(5):
        final = await call
    assert _ns([final]) == [(9, True)]
    got = _ns(await _all(call))
    latest = [(n, False) for n in range(1, partials + 1)][-1:]
    assert got == [*latest, (9, True)]


async def test_an_iterator_started_first_gets_every_report_as_it_comes() -> None:
    call = _call()
    got: list[Report] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def iterate() -> None:
                got.extend([r async for r in call])

            tg.start_soon(iterate)
            await anyio.wait_all_tasks_blocked()
            for n in (1, 2, 3):
                call.deliver(_partial(n))
            call.deliver(_final(9))
    assert _ns(got) == [(1, False), (2, False), (3, False), (9, True)]


async def test_a_final_report_alone_is_what_an_await_and_an_iterator_get() -> None:
    call = _call()
    call.deliver(_final(9))
    call.deliver(_partial(1))  # after the end: ignored
    with anyio.fail_after(5):
        assert _ns([await call]) == [(9, True)]
    assert _ns(await _all(call)) == [(9, True)]
    assert call.done()
