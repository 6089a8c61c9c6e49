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

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TypeAlias, overload

import attrs

if TYPE_CHECKING:
    import hashlib

__all__ = (
    "Cancel",
    "Disconnect",
    "Failure",
    "Final",
    "Frame",
    "Heartbeat",
    "LazyAncestry",
    "Message",
    "Partial",
    "Ready",
    "Request",
    "Waiting",
    "ancestry_entry",
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
            A tuple, except on the worker hop of a task without ancestors
            from the broker: a `LazyAncestry`, equal to the tuple.
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
    ancestry: Sequence[str] = ()
    parent: int = 0
    timeout: float | None = None
    extended: bool = True

    def __init__(
        self,
        rid: int,
        service: str,
        payload: tuple[Frame, ...] = (),
        job: str = "",
        ancestry: Sequence[str] = (),
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


class LazyAncestry(Sequence[str]):
    """A root task's ancestry on its worker hop: its own entry alone, computed when first read.

    The broker sends a task without ancestors (a real client's request, the
    usual one) with this as its `Request.ancestry`: a read-only sequence that
    is ``(ancestry_entry(service, hasher.copy(), payload),)`` in every way
    a reader can tell (items, iteration, ``in``, equality with that tuple and
    its hash, ``repr``, so the request's too). Only a reader pays for the
    digest (in one process, a handler's first sub-request; over ZeroMQ, the
    encoding of the hop), once; the task that makes no sub-request does not.

    Args:
        service: the service asked.
        payload: the body frames.
        hasher: a blake2b of ``digest_size=8`` that has taken in
            ``service.encode()`` and nothing else; never updated (copied).
    """

    __slots__ = ("_hasher", "_payload", "_service", "_value")

    def __init__(self, service: str, payload: tuple[Frame, ...], hasher: hashlib.blake2b) -> None:
        self._service = service
        self._payload = payload
        self._hasher = hasher
        self._value: tuple[str, ...] | None = None

    @property
    def value(self) -> tuple[str, ...]:
        """The ancestry as a tuple (computed at the first read, then kept)."""
        value = self._value
        if value is None:
            entry = ancestry_entry(self._service, self._hasher.copy(), self._payload)
            value = self._value = (entry,)
        return value

    def __len__(self) -> int:
        return 1  # (known without the digest)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return self.value[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.value)

    def __contains__(self, item: object) -> bool:
        return item in self.value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyAncestry):
            other = other.value
        return self.value == other  # (a tuple's rules: never equal to a list)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


def ancestry_entry(service: str, hasher: hashlib.blake2b, payload: tuple[Frame, ...]) -> str:
    """A request's ancestry entry, ``service/digest`` (`binglide.core.request_digest`).

    `hasher` has taken in ``service.encode()`` (and nothing else); this
    updates it with the payload's frames, each after its length.
    """
    lengths = _LENGTHS
    for frame in payload:
        n = len(frame)
        hasher.update(lengths[n] if n < 256 else b"%d:" % n)
        hasher.update(frame)
    return f"{service}/{hasher.hexdigest()}"


#: What `ancestry_entry` takes in before a frame of each small length (no format a frame).
_LENGTHS = tuple(b"%d:" % n for n in range(256))


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
