"""Task states: the transition table, and the one function that moves a task."""

from __future__ import annotations

import itertools

import pytest

from binglide.core import JobId, PeerId, Protocol, TaskState
from binglide.core.tasks import ENDED, TRANSITIONS, Task, advance
from binglide.errors import LocalProtocolError


def task(state: TaskState) -> Task:
    t = Task(7, PeerId("c"), 1, Protocol.CLIENT, True, "s", JobId("1:c1"), (), (), 0, 10.0)
    t.state = state
    return t


ALLOWED = [(old, new) for old, moves in TRANSITIONS.items() for new in moves]
REFUSED = [
    (old, new)
    for old, new in itertools.product(TaskState, repeat=2)
    if new not in TRANSITIONS[old]
]


def test_the_table_covers_every_state_and_a_task_life() -> None:
    assert set(TRANSITIONS) == set(TaskState)
    assert {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED} == ENDED
    # The lives the broker gives a task: queued, held, re-queued, ended.
    t = task(TaskState.PENDING)
    for state in (TaskState.DISPATCHED, TaskState.PENDING, TaskState.DISPATCHED):
        advance(t, state)
    assert advance(t, TaskState.COMPLETED) is TaskState.DISPATCHED
    assert t.state is TaskState.COMPLETED


@pytest.mark.parametrize(("old", "new"), ALLOWED)
def test_allowed_transitions(old: TaskState, new: TaskState) -> None:
    t = task(old)
    assert advance(t, new) is old
    assert t.state is new


@pytest.mark.parametrize(("old", "new"), REFUSED)
def test_illegal_transitions_are_refused_and_change_nothing(
    old: TaskState, new: TaskState
) -> None:
    t = task(old)
    with pytest.raises(LocalProtocolError, match=f"cannot go from {old.name} to {new.name}"):
        advance(t, new)
    assert t.state is old


def test_refused_moves_include_the_ones_a_bug_would_make() -> None:
    # A queued task cannot complete, and an ended one cannot come back.
    assert (TaskState.PENDING, TaskState.COMPLETED) in REFUSED
    for end in ENDED:
        assert (end, TaskState.PENDING) in REFUSED
        assert (end, TaskState.DISPATCHED) in REFUSED
