"""The messages peers exchange, named after the MDP/0.2 commands.

The same messages stand for MDP/0.1 (7/MDP) commands: its REPLY is a `Final`
(an MDP/0.1 worker answers each request exactly once).

These are plain values: no logic, no encoding. They are immutable by
convention (nothing assigns to a message's fields after it is made; mypy
checks the types, the tests the values): each has a hand-written
``__init__`` of plain slot assignments, which makes one in about a quarter of
the time attrs' frozen ``__init__`` takes (it sets each field through
``object.__setattr__``), and a request makes six. They stay attrs classes
(equality by class and fields, hashing, ``repr``, `attrs.evolve`). `binglide.core.frames` turns
them into ZeroMQ frames and back, and the machines consume and produce them.

The same class serves both hops of a request: a `Request` from a client to the
broker carries the client's request id; the `Request` the broker sends on to a
worker carries the broker's task id. Replies (`Partial`, `Final`, `Failure`)
always carry the request id of the hop they answer.

``payload`` is opaque to the core: a tuple of frames (a self-describing header
and raw array buffers, see `binglide.payload`), passed through without copies.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

__all__ = (
    "Cancel",
    "Disconnect",
    "Failure",
    "Final",
    "Frame",
    "Heartbeat",
    "Message",
    "Partial",
    "Ready",
    "Request",
    "Waiting",
)

#: One frame of a payload. Buffers (memoryview, numpy data) pass through as they are.
Frame: TypeAlias = bytes | memoryview


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class Ready:
    """A worker announces the service it serves (MDP/0.2 READY).

    Attributes:
        service: the service name.
        extended: the worker speaks binglide's extensions (job ids,
            cancellation, waiting) and may take several tasks while it waits.
    """

    service: str
    extended: bool = True

    def __init__(self, service: str, extended: bool = True) -> None:
        self.service = service
        self.extended = extended


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class Request:
    """Ask for one task (MDP/0.2 REQUEST, with binglide's additions).

    Attributes:
        rid: the sender's number for this request (client hop), or the
            broker's task id (worker hop).
        service: the service asked.
        payload: the body frames, opaque to the broker.
        job: the job id; empty from a real client (the broker sets it).
        ancestry: ``service/digest`` of every ancestor, root first, and on the
            worker hop the task itself last: what loop detection compares.
        parent: on a sub-request, the broker's task id of the task that issues
            it (so cancelling that task reaches this one); 0 for none.
        timeout: seconds the request may wait in the broker's queue before it
            fails with `ServiceUnavailable`; None for the broker's default.
        extended: whether it travels in binglide's extended form (XREQUEST,
            with a request id) rather than as a plain MDP REQUEST, whose
            sender has no request ids (`rid` is then 0).
    """

    rid: int
    service: str
    payload: tuple[Frame, ...] = ()
    job: str = ""
    ancestry: tuple[str, ...] = ()
    parent: int = 0
    timeout: float | None = None
    extended: bool = True

    def __init__(
        self,
        rid: int,
        service: str,
        payload: tuple[Frame, ...] = (),
        job: str = "",
        ancestry: tuple[str, ...] = (),
        parent: int = 0,
        timeout: float | None = None,
        extended: bool = True,
    ) -> None:
        self.rid = rid
        self.service = service
        self.payload = payload
        self.job = job
        self.ancestry = ancestry
        self.parent = parent
        self.timeout = timeout
        self.extended = extended


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class Partial:
    """An intermediate report for request `rid` (MDP/0.2 PARTIAL)."""

    rid: int
    payload: tuple[Frame, ...] = ()
    service: str = ""

    def __init__(self, rid: int, payload: tuple[Frame, ...] = (), service: str = "") -> None:
        self.rid = rid
        self.payload = payload
        self.service = service


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class Final:
    """The last report for request `rid` (MDP/0.2 FINAL)."""

    rid: int
    payload: tuple[Frame, ...] = ()
    service: str = ""

    def __init__(self, rid: int, payload: tuple[Frame, ...] = (), service: str = "") -> None:
        self.rid = rid
        self.payload = payload
        self.service = service


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class Failure:
    """Request `rid` ended without a result (binglide extension).

    Attributes:
        rid: the request it answers.
        kind: the `binglide.errors.JobError` ``kind`` (``request``,
            ``unavailable``, ``loop``, ``failed``, ``cancelled``).
        message: what happened and what to do, for a person.
        remote_type: for ``failed``, the type of the exception the handler raised.
        cycle: for ``loop``, the repeated chain of ``service/digest``.
        service: the service that was asked.
    """

    rid: int
    kind: str
    message: str
    remote_type: str = ""
    cycle: tuple[str, ...] = ()
    service: str = ""

    def __init__(
        self,
        rid: int,
        kind: str,
        message: str,
        remote_type: str = "",
        cycle: tuple[str, ...] = (),
        service: str = "",
    ) -> None:
        self.rid = rid
        self.kind = kind
        self.message = message
        self.remote_type = remote_type
        self.cycle = cycle
        self.service = service


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class Cancel:
    """Cancel work (binglide extension).

    From a real client: ``rid`` names its request and ``job`` is empty (the
    broker computes the job id). From a worker about its own sub-request:
    ``rid`` names that sub-request. From the broker to a worker: ``job`` names
    the job, and ``rid`` a single task (0 means every task of the job).
    """

    job: str = ""
    rid: int = 0

    def __init__(self, job: str = "", rid: int = 0) -> None:
        self.job = job
        self.rid = rid


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class Waiting:
    """A worker's task starts (True) or stops (False) waiting on sub-requests.

    While every task of a worker waits, the broker may give it another task:
    this is how a waiting worker never holds its service hostage.
    """

    rid: int
    waiting: bool

    def __init__(self, rid: int, waiting: bool) -> None:
        self.rid = rid
        self.waiting = waiting


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class Heartbeat:
    """I am alive (MDP/0.2 HEARTBEAT).

    Attributes:
        instance: from the broker to a client only (a binglide extension: MDP/0.2
            clients have no heartbeats), the broker's instance id, so that a
            client notices a restarted broker even when the restart is quicker
            than its liveness bound, and re-issues its open requests.
    """

    instance: str = ""

    def __init__(self, instance: str = "") -> None:
        self.instance = instance


@attrs.define(init=False, unsafe_hash=True)  # slotted; __init__ by hand
class Disconnect:
    """I am leaving, or you are not welcome (MDP/0.2 DISCONNECT)."""


Message: TypeAlias = (
    Ready | Request | Partial | Final | Failure | Cancel | Waiting | Heartbeat | Disconnect
)
