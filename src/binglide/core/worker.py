"""The worker state machine: READY, tasks, cancellations, waiting, heartbeats.

Theory of operation: a `WorkerMachine` queues READY for its service when it
starts. Each REQUEST from the broker becomes a `TaskStarted` event and an
entry in the task table, until the runtime ends it with `report(final=True)`
or `fail`. A CANCEL names a job (and optionally one task): every task of that
job held here gets a `TaskCancelled` event and leaves the table; cancellations
of jobs this worker does not hold are ignored (in broadcast mode every worker
hears every cancellation and filters by job id). Reports for tasks no longer
in the table are not sent. `waiting(tid, flag)` tells the broker when a task
starts or stops waiting on sub-requests, which lets the broker hand this
worker more work meanwhile (the progress guarantee, see core.broker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..errors import LocalProtocolError, RemoteProtocolError
from .liveness import Liveness
from .messages import (
    Cancel,
    Disconnect,
    Failure,
    Final,
    Frame,
    Heartbeat,
    Message,
    Partial,
    Ready,
    Request,
    Waiting,
)

if TYPE_CHECKING:
    from .ids import JobId

__all__ = ("TaskCancelled", "TaskStarted", "WorkerLost", "WorkerMachine")


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class TaskStarted:
    """The broker gave us task `tid`."""

    tid: int
    job: JobId
    ancestry: tuple[str, ...]
    payload: tuple[Frame, ...]

    def __init__(
        self, tid: int, job: JobId, ancestry: tuple[str, ...], payload: tuple[Frame, ...]
    ) -> None:
        # By hand, as the messages' are: attrs' frozen `__init__` sets each
        # field through `object.__setattr__`, three times the cost (one a task).
        self.tid = tid
        self.job = job
        self.ancestry = ancestry
        self.payload = payload


@attrs.frozen
class TaskCancelled:
    """Task `tid` was cancelled: stop it and send nothing more for it."""

    tid: int


@attrs.frozen
class WorkerLost:
    """The broker disconnected us or fell silent: register again."""

    reason: str


class WorkerMachine:
    """One worker's protocol state (see the module docstring)."""

    def __init__(self, service: str, *, heartbeat_interval: float | None = None):
        if not service:
            raise LocalProtocolError("a worker must serve a named service")
        self.service = service
        self._tasks: dict[int, JobId] = {}
        self._waiting: set[int] = set()
        self._out: list[Message] = [Ready(service)]
        self._liveness = Liveness(heartbeat_interval) if heartbeat_interval else None

    @property
    def tasks(self) -> dict[int, JobId]:
        """The tasks held, by task id, with their job."""
        return dict(self._tasks)

    def receive(
        self, msg: Message, now: float = 0.0
    ) -> list[TaskStarted | TaskCancelled | WorkerLost]:
        """Take one message from the broker; return what it means.

        Raises:
            RemoteProtocolError: the broker sent something a worker never gets,
                or reused a task id still held.
        """
        if isinstance(msg, Request):  # the usual message: a task
            self.start(msg, now)
            return [TaskStarted(msg.rid, msg.job, msg.ancestry, msg.payload)]  # type: ignore[arg-type]
        if self._liveness is not None:
            self._liveness.heard(now)
        match msg:
            case Cancel():
                hit = [
                    tid
                    for tid, job in self._tasks.items()
                    if job == msg.job and (msg.rid == 0 or msg.rid == tid)
                ]
                for tid in hit:
                    self._end(tid)
                return [TaskCancelled(tid) for tid in hit]
            case Heartbeat():
                return []
            case Disconnect():
                return [self._reset("the broker disconnected this worker")]
        raise RemoteProtocolError(f"a worker never gets {type(msg).__name__} from the broker")

    def start(self, msg: Request, now: float = 0.0) -> None:
        """Take a REQUEST from the broker: `receive` of it, less its event.

        Task ``msg.rid`` is held from now on; a runtime that takes its usual
        message this way reads the task's job, ancestry and payload off the
        message itself (one object a task fewer).

        Raises:
            RemoteProtocolError: the broker reused a task id still held.
        """
        if self._liveness is not None:
            self._liveness.heard(now)
        rid = msg.rid
        if rid in self._tasks:
            raise RemoteProtocolError(f"task {rid} is already held by this worker")
        # A job id is a string: `JobId` only names it (calling it, or `cast`,
        # is a Python call a task on 3.11).
        self._tasks[rid] = msg.job  # type: ignore[assignment]

    def report(self, tid: int, payload: tuple[Frame, ...], final: bool) -> bool:
        """Queue a report for task `tid`; return False if the task is gone."""
        if tid not in self._tasks:
            return False
        if final:
            self._out.append(Final(tid, payload))
            # `_end`, inline (every task ends here or in `fail`).
            del self._tasks[tid]
            self._waiting.discard(tid)
        else:
            self._out.append(Partial(tid, payload))
        return True

    def fail(
        self,
        tid: int,
        kind: str,
        message: str,
        *,
        remote_type: str = "",
        cycle: tuple[str, ...] = (),
    ) -> bool:
        """Queue a failure for task `tid`, ending it; return False if it is gone."""
        if tid not in self._tasks:
            return False
        self._out.append(Failure(tid, kind, message, remote_type, cycle))
        self._end(tid)
        return True

    def waiting(self, tid: int, flag: bool) -> None:
        """Tell the broker that task `tid` starts or stops waiting on sub-requests."""
        if tid not in self._tasks or (tid in self._waiting) == flag:
            return
        if flag:
            self._waiting.add(tid)
        else:
            self._waiting.discard(tid)
        self._out.append(Waiting(tid, flag))

    def handle_timer(self, now: float) -> WorkerLost | None:
        """Queue a heartbeat if due; report a silent broker."""
        if self._liveness is None:
            return None
        beat, lost = self._liveness.tick(now)
        if beat:
            self._out.append(Heartbeat())
        if not lost:
            return None
        if not self._liveness.answered:
            return self._reset("no broker has answered yet")
        return self._reset("the broker stopped answering heartbeats")

    def next_deadline(self) -> float | None:
        """Return when `handle_timer` should next be called."""
        return self._liveness.next_deadline() if self._liveness else None

    def disconnect(self) -> None:
        """Queue a DISCONNECT: we are leaving."""
        self._out.append(Disconnect())

    def outgoing(self) -> list[Message]:
        """Return and forget the messages to send, in order."""
        out, self._out = self._out, []
        return out

    def _end(self, tid: int) -> None:
        self._tasks.pop(tid, None)
        self._waiting.discard(tid)

    def _reset(self, reason: str) -> WorkerLost:
        # The broker forgot us: our tasks will be re-issued elsewhere, so
        # they are cancelled here, and we register again.
        self._tasks.clear()
        self._waiting.clear()
        self._out.append(Ready(self.service))
        return WorkerLost(reason)
