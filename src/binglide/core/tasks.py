"""Broker tasks: their states, the transitions allowed between them, their records.

Theory of operation
-------------------

Every request the broker accepts becomes a `Task`: one hop of a request, from
its requester (a client, or a worker issuing a sub-request) to a worker. A task
is PENDING in its service's queue, DISPATCHED once a worker holds it, and ends
COMPLETED (its FINAL was forwarded), FAILED (a failure was forwarded, or it
expired in the queue) or CANCELLED. A dispatched task whose worker died goes
back to PENDING (results are pure functions of their inputs, so a re-run is
safe). Nothing else moves a task: `TRANSITIONS` is the whole table, and
`advance` is the only function that changes a task's state; it refuses any
move the table does not list, so a bug shows where it happens instead of
leaving a task in a state nobody planned for.

An ended task leaves the broker's tables at once; its state stays ended (and
`advance` refuses to move it again), so a stale reference to it cannot bring
it back to life.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from ..errors import LocalProtocolError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .frames import Protocol
    from .ids import JobId, PeerId
    from .messages import Frame

__all__ = ("ENDED", "TRANSITIONS", "Task", "TaskState", "advance")


class TaskState(enum.Enum):
    """Where a task is in its life (see the module docstring)."""

    # Members are singletons, so identity hashing is right, and it is a C
    # call, not Enum's hash of the name in Python: the broker looks states up
    # on every message.
    __hash__ = object.__hash__

    PENDING = "pending"  # queued at its service
    DISPATCHED = "dispatched"  # held by a worker
    COMPLETED = "completed"  # its FINAL was forwarded
    FAILED = "failed"  # a failure was forwarded, or it expired in the queue
    CANCELLED = "cancelled"  # its job, or an ancestor, was cancelled


#: Every move a task may make; any other is a bug of the broker.
TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset({TaskState.DISPATCHED, TaskState.FAILED, TaskState.CANCELLED}),
    TaskState.DISPATCHED: frozenset(
        {TaskState.PENDING, TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED}
    ),
    TaskState.COMPLETED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}

#: The states a task ends in.
ENDED = frozenset(state for state, moves in TRANSITIONS.items() if not moves)


@attrs.define(eq=False)
class Task:
    """One accepted request, as the broker tracks it.

    Attributes:
        tid: the broker's task id (what the worker hop carries).
        client: the requester's peer id.
        rid: the requester's number for the request (negative for a plain
            client's, which has none: the broker numbers them).
        client_protocol: the sub-protocol the request came in on, with its
            version (replies go back on it).
        client_extended: whether the requester speaks binglide's extensions.
        service: the service asked.
        job: the job id.
        ancestry: ``service/digest`` of every ancestor and of the task itself;
            empty for a task without ancestors (a real client's request, the
            usual one), whose ancestry, its own entry alone, the broker
            computes only as it sends the task (or lets its worker compute
            it: `BrokerMachine.lazy_ancestry`).
        payload: the body frames, passed through untouched.
        parent: the task id of the task that issued it (0: a real client's).
        deadline: when it fails if still queued.
        timeout: the request's own queue timeout, if it gave one.
        enqueued: when it was last queued.
        dispatched: when it was last dispatched.
        state: where it is in its life; changed by `advance` only.
        worker: the worker holding it, while DISPATCHED.
        children: the task ids of its live sub-requests.
    """

    tid: int
    client: PeerId
    rid: int
    client_protocol: Protocol
    client_extended: bool
    service: str
    job: JobId
    ancestry: tuple[str, ...]
    payload: tuple[Frame, ...]
    parent: int
    deadline: float
    timeout: float | None = None
    enqueued: float = 0.0
    dispatched: float = 0.0
    state: TaskState = TaskState.PENDING
    worker: PeerId | None = None
    children: set[int] = attrs.Factory(set)


def advance(task: Task, state: TaskState) -> TaskState:
    """Move `task` to `state` and return the state it left.

    Raises:
        LocalProtocolError: `TRANSITIONS` has no such move (a bug of the
            broker); the task is left as it was.
    """
    old = task.state
    if state not in TRANSITIONS[old]:
        raise LocalProtocolError(f"task {task.tid} cannot go from {old.name} to {state.name}")
    task.state = state
    return old
