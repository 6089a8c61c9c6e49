"""The broker state machine: queues, dispatch, reports, cancellation, liveness.

Theory of operation
-------------------

`BrokerMachine` is sans-IO: the runtime feeds it decoded messages with
`receive(peer, protocol, message, now)` and timer ticks with
`handle_timer(now)`, and sends whatever `outgoing()` returns. It never reads a
clock, never sleeps, never touches a socket.

Peers. A peer speaking a client protocol (``MDPC02``, or MDP/0.1's
``MDPC01``) is a *client*; one speaking a worker protocol (``MDPW02`` or
``MDPW01``) that sent READY is a *worker* of exactly one service. A worker
process also acts as a client over the same peer id when it issues
sub-requests: the two roles are tracked separately. Every peer is answered in
the protocol version it spoke, and any client reaches any worker (bodies pass
untouched): an MDP/0.1 client gets only the FINAL (RFC 7 has one reply), an
MDP/0.1 worker's REPLY is the FINAL. A peer is *extended* if it speaks
binglide's additions (an XREQUEST, a READY tagged ``binglide/1``), else
*plain*. Services named ``mmi.*`` are the broker's own (8/MMI): it answers
them at once, and disconnects a worker that would register one.

What the broker keeps is bounded by what is alive: a service is forgotten
when it has no worker and no queued task, a plain client when it has no
request in flight (plain MDP clients never say goodbye; binglide's clients
say DISCONNECT, or heartbeat and expire when they fall silent).

Tasks. Every request accepted becomes a task with a broker task id (``tid``).
A task is PENDING in its service's queue, then DISPATCHED to a worker, then
ends COMPLETED, FAILED or CANCELLED and leaves the tables (`binglide.core.tasks`
holds the states and the only function that moves a task between them). Tasks
record their job id, their ancestry (for loop detection), their parent task
(for sub-requests) and their children (for the cancel cascade).

Rules. What the broker decides lives in one place each, the "rules" section
of `BrokerMachine`:

- *validation* (``_check_client``, ``_check_worker``): whether a message is
  allowed at all; an illegal one raises `RemoteProtocolError` before anything
  changes;
- *admission* (``_refusal``, its rules in order): whether a valid request
  becomes a task or is answered at once with a failure; the first rule that
  refuses it answers;
- *dispatch* (``_verdict``): which worker of a service takes its
  next task (table below).

Short paths. The usual REQUEST (a known extended client's, or a worker's
sub-request of a task it holds) and the usual FINAL (of a task without
sub-requests) skip the calls of the rules above: `BrokerMachine.receive`
first offers them to ``_quick_request`` and ``_quick_final``, which check
conditions under which every validation and admission rule passes (changing
nothing if one does not hold: the message then goes through the rules) and
make exactly the changes and output the rules would make.

Fair dispatch. Each service queues its pending tasks per *origin*: the real
client that started the job (recovered from the job id), served round-robin,
so a client with 1,000 queued chunks does not starve a client with one.

Progress guarantee. An extended worker reports with WAITING when a task
starts or stops waiting on sub-requests. A worker is *available* when none of
its tasks computes (every task waits) and fewer than ``stack_bound`` of them
wait: a waiting worker keeps taking tasks, newest on top, so it never holds
its service hostage.

Prefetch. An extended worker also holds several *computing* tasks of a
service whose tasks are short: as many as fit in ``prefetch_window`` seconds
(4 ms by default) of the service's smoothed task time, at most ``prefetch``
(128). So a stream of small tasks keeps a worker busy without a broker round
trip between two tasks (its next task is already there when one ends), and a
task given to a busy worker waits behind about ``prefetch_window`` of work at
most. Long tasks (analysis chunks, tasks that wait on sub-requests) get a
depth of one: they go one at a time, so that a free worker always gets the
next one. A service whose tasks were never timed counts as long. FINALs
that one turn reads together (a worker's burst) share the time since the
first of their tasks started (`_task_time`): a burst never times its tasks
at zero, so the window, not ``prefetch``, bounds the depth of any service
whose tasks take more than ``prefetch_window / prefetch`` (31 µs). Prefetched
tasks do not count against ``stack_bound``, which bounds the waiting stack.

Overflow. When a service has pending tasks and every one of its workers is
waiting at its bound (none computing, none available), the broker gives the
task to the least loaded of them anyway (an *overflow*): the bound limits
memory in the common case but never blocks a finite request tree. Plain
MDP/0.2 workers take one task at a time.

Loops. A request whose ``service/digest`` (digest of its payload) appears in
its ancestry repeats an ancestor and is refused with a ``loop`` failure naming
the cycle; so is one whose ancestry is ``max_depth`` long.

Cancellation. A client's CANCEL of its own request cancels the whole job; a
worker's CANCEL of its sub-request cancels that task and its descendants.
Pending tasks are dropped; workers are told with CANCEL: in BROADCAST mode
every worker hears each job cancellation and filters by job id (the mandatory
mode of binglide's protocol); in TARGETED mode only the workers holding tasks
of the job do. The requester of the cancelled request gets a ``cancelled``
failure; nothing else of the job reaches anyone afterwards (late reports of
removed tasks are dropped).

Liveness. Extended workers and heartbeating clients expire after ``liveness``
heartbeat intervals of silence; plain workers after ``liveness`` times the
longer of the interval and ``plain_heartbeat_interval`` (they cannot be told
the broker's interval, and many beat every 2.5 s as the guide's examples
do). A client's first HEARTBEAT is answered at once. A dead worker's tasks are re-queued at the
front (results are pure functions of their inputs, so a re-run is safe) and
the sub-requests it had issued are cancelled. A dead or disconnected client's
requests are cancelled. A pending task past its queue deadline fails with
``unavailable``.

Dispatch rules, for one worker of the service:

====================  ==========================================  ===========
worker                holds                                       verdict
====================  ==========================================  ===========
plain MDP             no task                                     available
plain MDP             a task                                      busy
extended              fewer than the prefetch depth computing,    available
                      fewer than ``stack_bound`` waiting
extended              none computing, ``stack_bound`` waiting     blocked
extended              anything else                               busy
====================  ==========================================  ===========

The available worker with the fewest computing tasks, then the fewest tasks,
then the least recently used, takes the task. When none is available and
every worker is blocked, the least loaded takes it anyway (an overflow).

Errors. An illegal message raises `RemoteProtocolError` and changes nothing:
every check runs before the first change. Any other exception is a bug of
the broker: it *poisons* the machine (as h11 does), which then refuses every
later call with `LocalProtocolError` rather than serve on from a state
nobody planned for; the runtime stops, and clients and workers carry on
with a restarted broker (they re-issue and re-register).
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import json
import math
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, NamedTuple

import attrs

from ..errors import LocalProtocolError, RemoteProtocolError
from .frames import WORKER_PROTOCOLS, Protocol
from .ids import IdSource, JobId, PeerId, job_id_for, job_prefix, origin_of
from .messages import (
    Cancel,
    Disconnect,
    Failure,
    Final,
    Frame,
    Heartbeat,
    LazyAncestry,
    Message,
    Partial,
    Ready,
    Request,
    Waiting,
    ancestry_entry,
)
from .tasks import Task, TaskState, advance

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = (
    "BrokerConfig",
    "BrokerMachine",
    "BrokerStatistics",
    "CancelMode",
    "Outgoing",
    "ServiceStatistics",
    "TaskState",
    "request_digest",
)


class CancelMode(enum.Enum):
    """How the broker tells workers that a job is cancelled."""

    BROADCAST = "broadcast"  # every worker hears it and filters by job id
    TARGETED = "targeted"  # only the workers holding tasks of the job


@attrs.frozen
class BrokerConfig:
    """The broker's knobs.

    Attributes:
        heartbeat_interval: seconds between heartbeats to each peer, and
            between the heartbeats the broker expects from binglide's own
            peers (extended workers, heartbeating clients).
        liveness: heartbeat intervals of silence after which a peer is dead.
        plain_heartbeat_interval: seconds between the heartbeats the broker
            expects from plain MDP workers (MDP/0.1 and MDP/0.2, without
            binglide's extensions): they are dead after `liveness` times the
            longer of this and `heartbeat_interval`. The default, 2.5 s, is
            the interval of the ZeroMQ guide's Majordomo examples, which many
            MDP peers keep; binglide's own peers are still declared dead after
            `liveness` times `heartbeat_interval` (3 s by default).
        service_timeout: seconds a request waits for a service that has no
            worker (unknown, or every worker gone) before it fails.
        queue_timeout: seconds a client's request (without its own timeout)
            may wait in the queue while the service's workers are all busy;
            None: as long as it takes. Sub-requests never expire while their
            service has workers: their parent is waiting for them, and the
            progress guarantee serves them.
        max_depth: the deepest request tree accepted.
        stack_bound: waiting tasks an extended worker holds before it is only
            given more to keep the system making progress (see the module
            docstring).
        prefetch: the most computing tasks an extended worker may hold at
            once (at least 1; 1 turns prefetch off). Several at once hide
            the broker round trip between small tasks from a pipelining
            client, at the price of coarser load balancing (a task may wait
            behind others on a busy worker while another worker frees up),
            which `prefetch_window` bounds. Plain MDP/0.2 workers always take
            one task at a time.
        prefetch_window: seconds of work a worker may have queued: the
            prefetch depth of a service is ``prefetch_window / task time``
            (between 1 and `prefetch`), the task time being a moving average
            over its recent tasks, each timed from its dispatch (or the end
            of the worker's previous task, if later) to its end. None: the
            depth is `prefetch` whatever the task time.
        max_queued: pending tasks per service before new ones are refused.
        cancel_mode: how workers hear of cancelled jobs.
    """

    heartbeat_interval: float = 1.0
    liveness: int = 3
    plain_heartbeat_interval: float = 2.5
    service_timeout: float = 10.0
    queue_timeout: float | None = None
    max_depth: int = 32
    stack_bound: int = 8
    prefetch: int = attrs.field(default=128, validator=attrs.validators.ge(1))
    prefetch_window: float | None = 0.004
    max_queued: int = 1_000_000
    cancel_mode: CancelMode = CancelMode.BROADCAST


class Outgoing(NamedTuple):
    """One message for the runtime to encode and send.

    A named tuple (immutable, like an attrs frozen class, and made in a
    quarter of the time: the broker makes two or more a request).
    """

    peer: PeerId
    protocol: Protocol
    message: Message
    extended: bool = True


#: Makes an `Outgoing` from its four fields, without the Python call of the
#: named tuple's ``__new__`` (the broker makes two a request).
_outgoing = tuple.__new__


@attrs.frozen
class ServiceStatistics:
    """A snapshot of one service.

    Attributes:
        name: the service.
        workers: workers registered.
        pending: tasks queued.
        dispatched: tasks held by workers.
        waiting: of those, tasks waiting on sub-requests.
        task_time: the smoothed service time of its tasks in seconds (what
            prefetch goes by), None before the first one ends.
    """

    name: str
    workers: int
    pending: int
    dispatched: int
    waiting: int
    task_time: float | None = None


@attrs.frozen
class BrokerStatistics:
    """A snapshot of the broker (see `BrokerMachine.statistics`).

    Attributes:
        workers: registered workers.
        clients: known clients (a plain one only while it has a request in
            flight: plain clients never say goodbye).
        pending: tasks queued, all services.
        dispatched: tasks held by workers, all services.
        jobs: jobs with at least one task alive.
        completed: tasks that ended with a FINAL.
        failed: tasks that ended with a failure (cancellations excluded).
        cancelled: tasks cancelled.
        requeued: tasks re-issued after their worker died.
        overflows: tasks given to a worker past its stack bound.
        services: per-service snapshots, sorted by name.
        disconnected: workers the broker disconnected for a command it did
            not expect (a second READY, a reserved ``mmi.*`` service, a
            binglide command from a plain worker; RFC 7/18 and 8).
    """

    workers: int
    clients: int
    pending: int
    dispatched: int
    jobs: int
    completed: int
    failed: int
    cancelled: int
    requeued: int
    overflows: int
    services: tuple[ServiceStatistics, ...]
    disconnected: int = 0


def request_digest(service: str, payload: tuple[Frame, ...]) -> str:
    """Return ``service/digest``: what loop detection compares.

    Two requests with the same service and the same payload bytes (bodies are
    canonical JSON) are the same question.
    """
    return ancestry_entry(service, _service_hasher(service), payload)


def _service_hasher(service: str) -> hashlib.blake2b:
    """A `request_digest` hasher with `service` taken in (kept per service, copied a request).

    A copy costs two thirds of a new hasher (callgrind: ~1,900 against
    ~2,900 instructions), and the name is taken in once.
    """
    return hashlib.blake2b(service.encode(), digest_size=8)


@attrs.define(eq=False)
class _Worker:
    peer: PeerId
    service: str
    protocol: Protocol
    extended: bool
    silence: float  # seconds of silence after which it is dead
    expiry: float
    tasks: set[int] = attrs.Factory(set)
    waiting: set[int] = attrs.Factory(set)
    last_done: float = float("-inf")  # when its last task ended
    # The tasks that ended at `last_done` (in one turn: a burst of FINALs
    # read together), when the first of them started, and what the burst
    # averages from: its service's task time before it, and how much of that
    # is left after the burst's samples so far (`_task_time`).
    done_together: int = 0
    together_since: float = float("-inf")
    burst_base: float = 0.0
    burst_decay: float = 0.0
    # Dispatch bookkeeping: when it was last given a task (or registered),
    # in its service's order; and, while its service keeps a heap of the
    # ready (`_Service.ready`), its verdict for the state it is in and the
    # state's version (`BrokerMachine._refresh`).
    verdict: int = -1
    version: int = 0
    lru: int = 0


@attrs.define(eq=False)
class _Client:
    peer: PeerId
    requests: dict[int, int]  # client rid -> tid
    # Plain: only plain REQUESTs seen, so forgotten as soon as it has no
    # request in flight (plain MDP clients never say goodbye; binglide's say
    # DISCONNECT, or heartbeat and expire).
    plain: bool
    expiry: float | None = None  # None: does not heartbeat
    # `job_prefix(peer)`: its requests' job ids are this and the rid.
    jobs: str = attrs.field(
        default=attrs.Factory(lambda self: job_prefix(self.peer), takes_self=True)
    )


@attrs.define(eq=False)
class _Service:
    name: str
    depth: int  # its prefetch depth (`BrokerMachine._prefetch`), kept with task_time
    hasher: hashlib.blake2b  # `_service_hasher(name)`, copied for each request's entry
    workers: dict[PeerId, None] = attrs.Factory(dict)  # insertion order = dispatch order
    queues: OrderedDict[str, deque[int]] = attrs.Factory(OrderedDict)
    pending: int = 0
    task_time: float | None = None  # smoothed service time, seconds
    # For a service of more than `_SCAN_WORKERS` workers, the available ones
    # as (rank, lru, version, peer), lazy: an entry whose version is not its
    # worker's any more is dropped when it comes up, so the next worker is
    # found without looking at every worker. None for a service of a few
    # workers (the usual case: one): `_pick_worker` looks at each of them,
    # which costs less than keeping a heap at every change of their states.
    ready: list[tuple[int, int, int, PeerId]] | None = None
    blocked: int = 0  # workers whose verdict is _BLOCKED, while `ready` is kept
    clock: int = 0  # counts dispatches and registrations: the workers' lru


@attrs.frozen
class _Refusal:
    """An admission rule's answer: the request fails at once with this."""

    kind: str
    message: str
    cycle: tuple[str, ...] = ()


#: Dispatch verdicts of `BrokerMachine._verdict` besides a rank: the worker may take nothing now...
_BUSY = -1
#: ...or it computes nothing and waits at its stack bound (an overflow may go to it).
_BLOCKED = -2
#: Ranks order by computing tasks first, then by tasks held.
_PER_COMPUTING = 1 << 32
#: The most workers a service has for `_pick_worker` to look at each of them
#: (no heap of the ready kept): a look at a worker costs about what a heap
#: entry made and dropped does, and a worker's state changes twice a task.
_SCAN_WORKERS = 4


#: Members the short paths use: an enum's member read through its class is a
#: metaclass lookup (~70 ns on 3.11), a module global is not.
_CLIENT = Protocol.CLIENT
_PENDING = TaskState.PENDING
_DISPATCHED = TaskState.DISPATCHED
_COMPLETED = TaskState.COMPLETED

#: What each hop may carry to the broker besides REQUEST (client) and READY (worker).
_CLIENT_COMMANDS = frozenset({Cancel, Heartbeat, Disconnect})
_WORKER_COMMANDS = frozenset({Heartbeat, Disconnect, Partial, Final, Failure, Waiting})
#: Worker commands that only binglide's extended workers send.
_EXTENDED_WORKER_COMMANDS = frozenset({Failure, Waiting})
#: The names that 8/MMI reserves for the broker's own services.
MMI_PREFIX = "mmi."


class BrokerMachine:
    """The broker's state machine (see the module docstring)."""

    def __init__(
        self,
        config: BrokerConfig | None = None,
        *,
        ids: IdSource | None = None,
        instance: str = "",
    ):
        self.config = config or BrokerConfig()
        self._ids = ids or IdSource()
        self._take_id = self._ids.taker()  # what ``self._ids()`` does, without its frame
        # Told to heartbeating clients: a new one means a restarted broker
        # (the runtime draws it at random; the core has no randomness).
        self._instance = instance
        self._out: list[Outgoing] = []
        self._tasks: dict[int, Task] = {}
        self._jobs: dict[JobId, set[int]] = {}
        self._workers: dict[PeerId, _Worker] = {}
        self._clients: dict[PeerId, _Client] = {}
        self._services: dict[str, _Service] = {}
        # The peers that heartbeat, oldest news first: per length of silence
        # allowed, the order they were last heard in is the order they expire
        # in (time only moves on), so the next expiry is the first of each.
        self._worker_expiry: dict[float, OrderedDict[PeerId, None]] = {}
        self._client_expiry: OrderedDict[PeerId, None] = OrderedDict()
        # (deadline, tid) of pending tasks, lazy: an entry stays when its task
        # leaves the queue, and is dropped when it comes up, or when the stale
        # ones outnumber the live ones (`_enqueue`), which bounds the heap.
        self._deadlines: list[tuple[float, int]] = []
        self._queued = 0  # tasks PENDING, every service
        self._next_heartbeat: float | None = None
        # What `next_deadline` last said, kept until something it reads may
        # have changed (`_deadline_stale`): in one process, where nobody
        # heartbeats and nothing queues, that is never after a REQUEST or a
        # FINAL, and the runtime asks after every message.
        self._deadline: float | None = None
        self._deadline_stale = True
        self._ended = dict.fromkeys(
            (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED), 0
        )
        self._requeued = self._overflows = self._disconnected = 0
        cfg = self.config
        # Per-peer liveness: binglide's own peers beat every heartbeat_interval,
        # plain MDP peers maybe only every plain_heartbeat_interval.
        self._silence = cfg.heartbeat_interval * cfg.liveness
        self._plain_silence = max(cfg.heartbeat_interval, cfg.plain_heartbeat_interval) * (
            cfg.liveness
        )
        # Plain clients have no request ids: the broker numbers their requests
        # (negative, so they never clash with real ones; never reused, so a
        # forgotten client's job ids stay unique).
        self._plain_rids = 0
        # Whether a worker that holds nothing may take a task (`_verdict`:
        # always, unless the stack bound is 0, which blocks an idle extended one).
        self._idle_available = cfg.stack_bound > 0
        # What peers did wrong that was handled rather than refused (a
        # DISCONNECT sent): for the runtime's log, which the core has none of.
        self._notices: list[tuple[PeerId, str]] = []
        # The internal error that broke the machine, if one did (module docstring).
        self._error: BaseException | None = None
        # Whether the short paths of the usual REQUEST and FINAL are taken
        # (`_quick_request`, `_quick_final`); tests turn them off to compare
        # with the general rules.
        self._quick = True
        #: Whether a task without ancestors goes to its worker with a
        #: `LazyAncestry` (its digest made only if the worker reads it) rather
        #: than the tuple: for workers in the same process, which read it only
        #: at a handler's first sub-request. (A worker hop that is encoded
        #: reads it anyway: there the lazy form is only its own cost; but a
        #: plain worker's, which carries none, always gets the lazy form.)
        #: The in-process runtime turns it on.
        self.lazy_ancestry = False

    # -- inputs ---------------------------------------------------------------

    def receive(self, peer: PeerId, protocol: Protocol, msg: Message, now: float) -> None:
        """Take one message from `peer`.

        Raises:
            RemoteProtocolError: the message is not allowed now; nothing changed.
            LocalProtocolError: an earlier internal error broke the machine.
        """
        if self._error is not None:
            self._check_usable()
        kind = type(msg)
        if (kind is Final or kind is Request) and self._quick:
            # Most of the traffic: a short path, or False having changed nothing.
            try:
                if kind is Final:
                    if self._quick_final(peer, protocol, msg, now):  # type: ignore[arg-type]
                        return
                elif self._quick_request(peer, protocol, msg, now):  # type: ignore[arg-type]
                    return
            except BaseException as exc:
                self._poison(exc)
                raise
        self._receive_general(peer, protocol, msg, now)

    def step(
        self, peer: PeerId, protocol: Protocol, msg: Message, now: float
    ) -> tuple[list[Outgoing], float | None, list[tuple[PeerId, str]]]:
        """Take one message from `peer` and end the turn: `receive`, then `settle`.

        One call for a turn of one message (in one process, every turn):
        the usual REQUEST and FINAL go to their short paths from here, and a
        turn with no timer due and nothing to tell returns without `settle`'s
        call.

        Returns:
            What `settle` returns.

        Raises:
            RemoteProtocolError: the message is not allowed now; nothing
                changed, and the turn was not settled (call `settle`).
            LocalProtocolError: an earlier internal error broke the machine.
        """
        if self._error is not None:
            self._check_usable()
        kind = type(msg)
        try:
            if kind is Final and self._quick:
                done = self._quick_final(peer, protocol, msg, now)  # type: ignore[arg-type]
            elif kind is Request and self._quick:
                done = self._quick_request(peer, protocol, msg, now)  # type: ignore[arg-type]
            else:
                done = False
        except BaseException as exc:
            self._poison(exc)
            raise
        if not done:
            self._receive_general(peer, protocol, msg, now)
        deadline = self._deadline
        if self._deadline_stale or self._notices or (deadline is not None and deadline <= now):
            return self.settle(now)
        out = self._out  # `settle`, when it has nothing to do but this
        self._out = []
        return out, deadline, self._notices

    def _receive_general(self, peer: PeerId, protocol: Protocol, msg: Message, now: float) -> None:
        """`receive` by the general rules (no short path)."""
        worker_hop = protocol in WORKER_PROTOCOLS
        if worker_hop:
            self._check_worker(msg)
            parent = None
        else:
            parent = self._check_client(peer, msg)
        # Valid: from here on, an exception is a bug of the broker.
        try:
            if self._next_heartbeat is None:
                self._next_heartbeat = now + self.config.heartbeat_interval
                self._deadline_stale = True
            if worker_hop:
                self._receive_worker(peer, protocol, msg, now)
            else:
                self._receive_client(peer, protocol, msg, parent, now)
        except BaseException as exc:
            self._poison(exc)
            raise

    def handle_timer(self, now: float) -> None:
        """Do what is due at `now`: expire peers and queued tasks, send heartbeats.

        Raises:
            LocalProtocolError: an earlier internal error broke the machine.
        """
        self._check_usable()
        self._deadline_stale = True
        try:
            self._handle_timer(now)
        except BaseException as exc:
            self._poison(exc)
            raise

    def next_deadline(self) -> float | None:
        """Return when `handle_timer` should next be called (None: nothing to time).

        Raises:
            LocalProtocolError: an earlier internal error broke the machine.
        """
        if self._error is not None:
            self._check_usable()
        if not self._deadline_stale:
            return self._deadline
        # The earliest of a few queue heads, no list.
        best = math.inf
        workers = self._workers
        for queue in self._worker_expiry.values():
            if queue:
                expiry = workers[next(iter(queue))].expiry
                if expiry < best:
                    best = expiry
        if self._client_expiry:
            expiry_or_none = self._clients[next(iter(self._client_expiry))].expiry
            assert expiry_or_none is not None
            if expiry_or_none < best:
                best = expiry_or_none
        deadlines = self._deadlines
        if deadlines:
            tasks = self._tasks
            while deadlines and deadlines[0][1] not in tasks:
                heapq.heappop(deadlines)
            if deadlines and deadlines[0][0] < best:
                best = deadlines[0][0]
        heartbeat = self._next_heartbeat
        if heartbeat is not None and (workers or best != math.inf) and heartbeat < best:
            best = heartbeat
        self._deadline = deadline = None if best == math.inf else best
        self._deadline_stale = False
        return deadline

    def settle(self, now: float) -> tuple[list[Outgoing], float | None, list[tuple[PeerId, str]]]:
        """End a turn at `now`: what `next_deadline`, `handle_timer`, `outgoing` and `notices` do.

        Runs the timers if they are due at `now`, then returns and forgets
        the messages to send and the notices, with the next deadline: one
        call where a runtime's turn made three to five (in one process a
        turn is one message, and nothing is due).

        Returns:
            The messages to send, in order; when `handle_timer` is next due
            (None: nothing to time); the notices (`notices`).

        Raises:
            LocalProtocolError: an earlier internal error broke the machine.
        """
        if self._error is not None:
            self._check_usable()
        deadline = self._deadline if not self._deadline_stale else self.next_deadline()
        if deadline is not None and deadline <= now:
            self.handle_timer(now)
            deadline = self.next_deadline()
        out, self._out = self._out, []
        notices = self._notices
        if notices:
            self._notices = []
        return out, deadline, notices

    def outgoing(self) -> list[Outgoing]:
        """Return and forget the messages to send, in order.

        Raises:
            LocalProtocolError: an earlier internal error broke the machine.
        """
        if self._error is not None:
            self._check_usable()
        out, self._out = self._out, []
        return out

    def notices(self) -> list[tuple[PeerId, str]]:
        """Return and forget what peers did wrong that the machine handled, for a log.

        Each entry is a peer and what happened, for a person: a worker
        disconnected for an unexpected command, say. (Messages refused with
        `RemoteProtocolError` are not here: the caller saw those raise.)

        Raises:
            LocalProtocolError: an earlier internal error broke the machine.
        """
        if self._error is not None:
            self._check_usable()
        notices = self._notices
        if not notices:
            return []  # the usual turn: keep the list, make a new empty one
        self._notices = []
        return notices

    def _check_usable(self) -> None:
        if self._error is not None:
            raise LocalProtocolError(
                "the broker machine is broken by an earlier internal error "
                f"({type(self._error).__name__}: {self._error}); start a new one"
            ) from self._error

    def _poison(self, exc: BaseException) -> None:
        self._error = exc

    # -- inspection -------------------------------------------------------------

    def statistics(self) -> BrokerStatistics:
        """Return a snapshot of queues, tasks, jobs and counters.

        Raises:
            LocalProtocolError: an earlier internal error broke the machine.
        """
        self._check_usable()
        per_service = []
        for name in sorted(self._services):
            svc = self._services[name]
            workers = [self._workers[p] for p in svc.workers]
            per_service.append(
                ServiceStatistics(
                    name=name,
                    workers=len(workers),
                    pending=svc.pending,
                    dispatched=sum(len(w.tasks) for w in workers),
                    waiting=sum(len(w.waiting) for w in workers),
                    task_time=svc.task_time,
                )
            )
        return BrokerStatistics(
            workers=len(self._workers),
            clients=len(self._clients),
            pending=sum(s.pending for s in per_service),
            dispatched=sum(s.dispatched for s in per_service),
            jobs=len(self._jobs),
            completed=self._ended[TaskState.COMPLETED],
            failed=self._ended[TaskState.FAILED],
            cancelled=self._ended[TaskState.CANCELLED],
            requeued=self._requeued,
            overflows=self._overflows,
            services=tuple(per_service),
            disconnected=self._disconnected,
        )

    def jobs_of_worker(self, peer: PeerId) -> set[JobId]:
        """Return the jobs whose tasks `peer` holds (which worker works on which job).

        Raises:
            LocalProtocolError: an earlier internal error broke the machine.
        """
        self._check_usable()
        worker = self._workers.get(peer)
        if worker is None:
            return set()
        return {self._tasks[tid].job for tid in worker.tasks}

    def workers_of_job(self, job: JobId) -> set[PeerId]:
        """Return the workers holding tasks of `job`.

        Raises:
            LocalProtocolError: an earlier internal error broke the machine.
        """
        self._check_usable()
        return {
            t.worker
            for tid in self._jobs.get(job, ())
            if (t := self._tasks[tid]).worker is not None
        }

    # -- rules: validation ------------------------------------------------------------
    # Each check raises RemoteProtocolError for a message that is not allowed
    # now, and changes nothing: it runs before the message is handled.

    def _check_client(self, peer: PeerId, msg: Message) -> Task | None:
        """Validate a message on the client hop; return a sub-request's parent task."""
        kind = type(msg)  # messages are final classes: their type says what they are
        if kind is not Request:
            if kind not in _CLIENT_COMMANDS:
                raise RemoteProtocolError(f"a client may not send {kind.__name__} to the broker")
            return None
        assert isinstance(msg, Request)
        known = self._clients.get(peer)
        if known is not None and msg.extended and msg.rid in known.requests:
            raise RemoteProtocolError(f"request id {msg.rid} is already in use by this client")
        if not msg.service:
            raise RemoteProtocolError("a request must name a service")
        if not msg.parent:
            return None
        parent = self._tasks.get(msg.parent)
        if parent is not None and parent.worker != peer:
            raise RemoteProtocolError(
                f"task {msg.parent} is not held by this peer; it cannot be a parent"
            )
        if parent is not None and msg.job and msg.job != parent.job:
            raise RemoteProtocolError("a sub-request must carry its parent's job id")
        return parent

    def _check_worker(self, msg: Message) -> None:
        """Validate a message on the worker hop.

        A valid command the broker does not expect from this worker now (a
        second READY, say) is not invalid: RFC 7 and 18 answer it with
        DISCONNECT (``_unexpected``).
        """
        kind = type(msg)
        if kind is Ready:
            assert isinstance(msg, Ready)
            if not msg.service:
                raise RemoteProtocolError("READY must name a service")
        elif kind not in _WORKER_COMMANDS:
            raise RemoteProtocolError(f"a worker may not send {kind.__name__}")

    def _unexpected(self, worker: _Worker | None, protocol: Protocol, msg: Message) -> str | None:
        """Why a valid worker command is unexpected now, or None (RFC 7/18: DISCONNECT).

        `worker` is the sender's registration, if it has one.
        """
        if isinstance(msg, Ready):
            if worker is not None:
                return "a second READY (a worker serves one service, registered once)"
            if msg.service.startswith(MMI_PREFIX):
                return f"READY for {msg.service!r}: mmi.* names are the broker's own (RFC 8)"
            return None
        if worker is None:
            # Nothing is expected from a worker that is not registered, but its
            # DISCONNECT (RFC 18: "at any time, including before READY").
            return None if isinstance(msg, Disconnect) else "a command before READY"
        if protocol is not worker.protocol:
            said, registered = protocol.value.decode(), worker.protocol.value.decode()
            return f"a {said} command from a worker registered with {registered}"
        if not worker.extended and type(msg) in _EXTENDED_WORKER_COMMANDS:
            return f"{type(msg).__name__}, a binglide command, from a plain MDP worker"
        return None

    # -- rules: admission ---------------------------------------------------------------

    def _refusal(self, msg: Request, parent: Task | None, entry: str) -> _Refusal | None:
        """Admission: why a valid request is refused at once, or None to accept it.

        The rules, in order; the first that a request breaks answers it.
        `entry` is the request's own ancestry entry (`request_digest`), or ""
        for a request without ancestors when the depth bound is above 0 (no
        rule reads it then).
        (``mmi.*`` requests never get here: the broker answers them itself.)
        """
        # 0. An extended request numbered 0: the number means "none" (a CANCEL
        #    of rid 0 names a job), so nothing could ever refer to it.
        if msg.extended and msg.rid == 0:
            return _Refusal(
                "request",
                "request id 0 is reserved (a CANCEL with rid 0 names a job): "
                "number requests from 1",
            )
        # 1. Its parent is gone: cancelled or finished while this was in flight.
        if msg.parent and parent is None:
            return _Refusal("cancelled", "the parent task is gone")
        # 2. It repeats one of its ancestors: a loop.
        if entry in msg.ancestry:
            cycle = (*msg.ancestry[msg.ancestry.index(entry) :], entry)
            return _Refusal(
                "loop", "the request repeats one of its ancestors: " + " -> ".join(cycle), cycle
            )
        # 3. Its tree is too deep.
        if len(msg.ancestry) >= self.config.max_depth:
            return _Refusal(
                "loop",
                f"the request tree is deeper than {self.config.max_depth} levels",
                (*msg.ancestry, entry),
            )
        # 4. Its service's queue is full.
        svc = self._services.get(msg.service)
        if svc is not None and svc.pending >= self.config.max_queued:
            return _Refusal(
                "unavailable",
                f"service {msg.service!r} is overloaded ({svc.pending} requests queued); "
                "retry later or start more workers",
            )
        return None

    # -- rules: the broker's own services (8/MMI) ----------------------------------------

    def _mmi(self, msg: Request) -> tuple[Frame, ...]:
        """Answer a request for an ``mmi.*`` service (RFC 8, and binglide's mmi.services)."""
        if msg.service == "mmi.service":
            # The body names a service: "200" if a worker serves it, else "404".
            name = _name(msg.payload[0]) if msg.payload else None
            svc = self._services.get(name) if name else None
            return (b"200",) if svc is not None and svc.workers else (b"404",)
        if msg.service == "mmi.services":
            # binglide's extension: every service a worker serves, with its
            # count of workers, as one canonical JSON object.
            counts = {n: len(svc.workers) for n, svc in self._services.items() if svc.workers}
            return (json.dumps(counts, sort_keys=True, separators=(",", ":")).encode(),)
        return (b"501",)  # RFC 8: any other mmi.* service is not implemented

    # -- rules: dispatch ------------------------------------------------------------------

    def _prefetch(self, task_time: float | None) -> int:
        """The computing tasks one worker of a service may hold (module docstring).

        `task_time` is the service's smoothed task time; the depth is kept
        with it (`_Service.depth`), not worked out at every dispatch.
        """
        cfg = self.config
        if cfg.prefetch_window is None:
            return cfg.prefetch
        if task_time is None:
            return 1
        if task_time * cfg.prefetch >= cfg.prefetch_window:
            return max(1, int(cfg.prefetch_window / task_time))
        return cfg.prefetch

    def _service(self, name: str) -> _Service:
        svc = self._services.get(name)
        if svc is None:
            svc = self._services[name] = _Service(
                name, depth=self._prefetch(None), hasher=_service_hasher(name)
            )
        return svc

    def _pick_worker(self, svc: _Service) -> _Worker | None:
        """The worker of `svc` that takes its next task, if any may (`_verdict`).

        The available worker of the lowest rank, then the least recently
        used: the first of the lowest rank in `svc.workers`' order for a
        service of a few workers, else the top of `svc.ready` once the stale
        entries are gone.
        """
        ready = svc.ready
        workers = self._workers
        if ready is None:
            # The rule of `_verdict`, worker by worker, in LRU order (ranks
            # tie only between workers of different lru: the first wins).
            best = None
            best_rank = 0
            blocked = 0
            depth = svc.depth
            bound = self.config.stack_bound
            for peer in svc.workers:
                worker = workers[peer]
                held = len(worker.tasks)
                if not worker.extended:
                    if held:
                        continue
                    rank = 0
                else:
                    waiting = len(worker.waiting)
                    computing = held - waiting
                    if computing >= depth or waiting >= bound:
                        blocked += not computing
                        continue
                    rank = computing * _PER_COMPUTING + held
                if not rank:
                    return worker  # idle: nobody ranks before it
                if best is None or rank < best_rank:
                    best = worker
                    best_rank = rank
            if best is not None:
                return best
        else:
            while ready:
                _, _, version, peer = ready[0]
                top = workers.get(peer)
                if top is not None and top.version == version:
                    return top
                heapq.heappop(ready)
            blocked = svc.blocked
        if svc.workers and blocked == len(svc.workers):
            # Every worker waits at its bound and none computes: without one
            # more task somewhere the tree could never finish (module docstring).
            self._overflows += 1
            return min((workers[p] for p in svc.workers), key=lambda w: len(w.tasks))
        return None

    def _verdict(self, worker: _Worker, depth: int) -> int:
        """The dispatch rule for `worker` now, its service's prefetch depth being `depth`.

        A rank if the worker may take a task now (>= 0, lowest first:
        computing tasks, then tasks held, so the least computing, then the
        least loaded, worker takes the next task), `_BUSY` or `_BLOCKED`
        (the module docstring's table). `_pick_worker` applies the same rule
        inline to a service of a few workers.
        """
        held = len(worker.tasks)
        if not worker.extended:
            return 0 if not held else _BUSY  # plain MDP: one task at a time
        waiting = len(worker.waiting)
        computing = held - waiting
        # The stack bound is for waiting tasks, the prefetch depth for
        # computing ones (with a depth of 1: while none computes).
        if computing < depth and waiting < self.config.stack_bound:
            return computing * _PER_COMPUTING + held
        return _BLOCKED if not computing else _BUSY

    def _refresh(self, worker: _Worker) -> None:
        """Take note of `worker`'s new state: its verdict, and its place among the ready.

        Only a service that keeps a heap of the ready (`_Service.ready`)
        needs it: for a few workers, `_pick_worker` looks at each.
        """
        svc = self._services[worker.service]
        ready = svc.ready
        if ready is None:
            return
        verdict = self._verdict(worker, svc.depth)
        old = worker.verdict
        if verdict == _BLOCKED or old == _BLOCKED:
            svc.blocked += (verdict == _BLOCKED) - (old == _BLOCKED)
        worker.verdict = verdict
        worker.version += 1
        if verdict >= 0:
            heapq.heappush(ready, (verdict, worker.lru, worker.version, worker.peer))
            if len(ready) > 64 + 4 * len(svc.workers):
                # Mostly stale: keep the current entries (amortised O(1) a change).
                workers = self._workers
                svc.ready = ready = [
                    e for e in ready if (w := workers.get(e[3])) is not None and w.version == e[2]
                ]
                heapq.heapify(ready)

    def _keep_ready(self, svc: _Service) -> None:
        """Keep a heap of the ready workers of `svc` if it has many, else none.

        Called as a worker registers or leaves: the heap is made afresh from
        every worker's verdict when the service grows past `_SCAN_WORKERS`,
        and dropped when it shrinks back.
        """
        many = len(svc.workers) > _SCAN_WORKERS
        if many == (svc.ready is not None):
            return
        svc.blocked = 0
        if not many:
            svc.ready = None
            return
        ready = []
        for peer in svc.workers:
            worker = self._workers[peer]
            worker.verdict = verdict = self._verdict(worker, svc.depth)
            worker.version += 1
            if verdict >= 0:
                ready.append((verdict, worker.lru, worker.version, peer))
            svc.blocked += verdict == _BLOCKED
        heapq.heapify(ready)
        svc.ready = ready

    def _heard_worker(self, worker: _Worker, now: float, *, new: bool = False) -> None:
        expiry = now + worker.silence
        if new:
            queue = self._worker_expiry.get(worker.silence)
            if queue is None:
                queue = self._worker_expiry[worker.silence] = OrderedDict()
            queue[worker.peer] = None  # a registered worker is in its queue until dropped
            self._deadline_stale = True
        elif expiry != worker.expiry:  # (never in one process, where it is inf)
            # Its queue stays in expiry order: an unchanged expiry keeps its place.
            self._worker_expiry[worker.silence].move_to_end(worker.peer)
            self._moved_expiry(worker.expiry, expiry)
        else:
            return
        worker.expiry = expiry

    def _heard_client(self, client: _Client, now: float) -> None:
        expiry = now + self._silence
        old = client.expiry
        if old is None:
            self._deadline_stale = True
            self._client_expiry[client.peer] = None
        else:
            self._client_expiry.move_to_end(client.peer)
            self._moved_expiry(old, expiry)
        client.expiry = expiry

    def _moved_expiry(self, old: float, new: float) -> None:
        """Take note that a peer's expiry moved from `old` to `new` (for `next_deadline`).

        The deadline kept is still the earliest of all if neither is at or
        before it: the peer's expiry was not it, and does not become it (the
        usual case: a peer heard well before it expires, the next heartbeat
        due first). Else it is worked out afresh when asked.
        """
        deadline = self._deadline
        if deadline is None or old <= deadline or new <= deadline:
            self._deadline_stale = True

    # -- the short paths ----------------------------------------------------------
    # The usual REQUEST (a known extended client's, or a worker's sub-request
    # of a task it holds, to a service that has a worker or a queue) and the
    # usual FINAL (of a task without sub-requests, from the worker holding
    # it) are most of the traffic. Each short path checks that its message is
    # one of those, changing nothing, and then does what the general rules
    # would do (the same changes, the same output, in the same order) with a
    # fraction of the calls; any other message goes to the general rules.
    # Their conditions make the validation and admission rules pass by
    # construction: a known client's new request id, not 0; a service that
    # exists (services are made only for valid names, never ``mmi.*``); a
    # parent, if any, alive, held by the sender and of the same job; an
    # ancestry shorter than the bound without the request's own entry (no
    # loop); room in the queue. tests/core/test_quick_paths.py feeds random
    # traffic to a machine with them and one without and compares every
    # output and the whole state after each message.

    def _quick_request(self, peer: PeerId, protocol: Protocol, msg: Request, now: float) -> bool:
        """Handle the usual REQUEST (see above); False, having changed nothing, if not one."""
        if protocol is not _CLIENT or not msg.extended:
            return False
        client = self._clients.get(peer)
        rid = msg.rid
        if client is None or not rid or rid in client.requests or self._next_heartbeat is None:
            return False
        parent = None
        if msg.parent:
            parent = self._tasks.get(msg.parent)
            if parent is None or parent.worker != peer or (msg.job and msg.job != parent.job):
                return False
        cfg = self.config
        service = msg.service
        svc = self._services.get(service)
        if svc is None or svc.pending >= cfg.max_queued or len(msg.ancestry) >= cfg.max_depth:
            return False
        payload = msg.payload
        ancestors = msg.ancestry
        if ancestors:  # a sub-request: its entry now, for loop detection
            entry = ancestry_entry(service, svc.hasher.copy(), payload)  # `request_digest`
            if entry in ancestors:
                return False  # a loop
            ancestry: tuple[str, ...] = (*ancestors, entry)
        else:  # a root's, its entry alone, is computed when it is sent (`lazy_ancestry`)
            ancestry = ()
        # The message is a usual one: from here on, what `_receive_client`,
        # `_on_request` and (for a task given at once) `_assign` do for it.
        expiry = client.expiry
        if expiry is not None:  # `_heard_client`, without its calls
            self._client_expiry.move_to_end(peer)
            heard = now + self._silence
            deadline = self._deadline  # `_moved_expiry`
            if deadline is None or expiry <= deadline or heard <= deadline:
                self._deadline_stale = True
            client.expiry = heard
        tid = self._take_id()
        # (A sub-request's job as it came: a NewType's call is a Python call.)
        if msg.job:
            job: JobId = msg.job  # type: ignore[assignment]
            origin = None  # `_enqueue` reads it from the job id, if it must
        else:
            job = client.jobs + str(rid)  # type: ignore[assignment]  # `job_id_for`
            origin = peer  # what `origin_of` reads from it
        # Nothing queued before it: the fair queue would hand it to the worker
        # `_pick_worker` names, so it goes there at once (as in `_on_request`).
        # (The pick reads only the service's workers, which the new task's
        # records below do not change: it is made in its final state.)
        worker = None
        if not svc.pending:
            if svc.ready is None:
                for first in svc.workers:
                    # The least recently used, if idle, is `_pick_worker`'s
                    # choice (rank 0, first in LRU order), unless an idle
                    # worker is blocked (a stack bound of 0).
                    worker = self._workers[first]
                    if worker.tasks or not self._idle_available:
                        worker = None
                    break
            if worker is None:
                worker = self._pick_worker(svc)
        if worker is None:
            holder = None
            state, dispatched = _PENDING, 0.0
        else:  # DISPATCHED from PENDING, as `advance` would
            holder = worker.peer
            state, dispatched = _DISPATCHED, now
        timeout = msg.timeout
        task = Task(
            tid,
            peer,
            rid,
            protocol,
            True,
            service,
            job,
            ancestry,
            payload,
            msg.parent,
            now + (timeout if timeout is not None else cfg.service_timeout),
            timeout,
            now,
            dispatched,
            state,
            holder,
        )
        client.plain = False
        self._tasks[tid] = task
        tids = self._jobs.get(job)
        if tids is None:
            self._jobs[job] = {tid}
        else:
            tids.add(tid)
        client.requests[rid] = tid
        if parent is not None:
            parent.children.add(tid)
        if worker is None:
            # Queued. `_on_request` would `_dispatch` the service now, which
            # would give nothing: no worker may take a task, as the pick just
            # said, or as every turn leaves a service with a queue (each
            # change that may free a worker of it dispatches its queue).
            self._enqueue(task, front=False, origin=origin)
            return True
        # Given at once.
        holder = worker.peer
        order = svc.workers
        del order[holder]
        order[holder] = None
        svc.clock += 1
        worker.lru = svc.clock
        worker.tasks.add(tid)
        if svc.ready is not None:  # (a service of many workers: `_refresh`)
            self._refresh(worker)
        self._out.append(
            _outgoing(
                Outgoing,
                (
                    holder,
                    worker.protocol,
                    Request(
                        tid,
                        service,
                        payload,
                        job,
                        ancestry
                        or (
                            LazyAncestry(service, payload, svc.hasher)
                            if self.lazy_ancestry or not worker.extended  # (see `_assign`)
                            else (ancestry_entry(service, svc.hasher.copy(), payload),)
                        ),
                    ),
                    worker.extended,
                ),
            )
        )
        return True

    def _quick_final(self, peer: PeerId, protocol: Protocol, msg: Final, now: float) -> bool:
        """Handle the usual FINAL (see above); False, having changed nothing, if not one."""
        worker = self._workers.get(peer)
        if worker is None or protocol is not worker.protocol or self._next_heartbeat is None:
            return False
        tasks = self._tasks
        task = tasks.get(msg.rid)
        if task is None or task.worker != peer or task.children:
            return False
        # The message is the usual one: from here on, what `_receive_worker`,
        # `_on_report` and `_end` do for it (the task is DISPATCHED: it has a
        # worker).
        expiry = now + worker.silence
        if expiry != worker.expiry:  # `_heard_worker` (never in one process: inf)
            self._worker_expiry[worker.silence].move_to_end(peer)
            deadline = self._deadline  # `_moved_expiry`, without its call
            if deadline is None or expiry <= deadline or worker.expiry <= deadline:
                self._deadline_stale = True
            worker.expiry = expiry
        requester = task.client
        client = self._clients.get(requester)
        svc = self._services[worker.service]
        # `_time_task`, without its call while the prefetch depth stays (the
        # average's rule lives in `_task_time` alone).
        task_time = svc.task_time = _task_time(worker, task, svc.task_time, now)
        cfg = self.config
        window = cfg.prefetch_window
        if window is None or task_time * cfg.prefetch < window:
            depth = cfg.prefetch  # `_prefetch`, without its call in the usual cases
        else:
            depth = self._prefetch(task_time)  # the window's rule lives there alone
        if depth != svc.depth:
            self._keep_depth(svc)
        tid = task.tid
        task.state = _COMPLETED
        deadlines = self._deadlines
        if deadlines and deadlines[0][1] == tid:  # (see `_end`)
            self._deadline_stale = True
        self._ended[_COMPLETED] += 1
        del tasks[tid]
        job = task.job
        tids = self._jobs.get(job)
        if tids is not None:
            tids.discard(tid)
            if not tids:
                del self._jobs[job]
        rid = task.rid
        if client is not None and client.requests.get(rid) == tid:
            del client.requests[rid]
            if client.plain and not client.requests:
                del self._clients[requester]
        if task.parent:
            parent = tasks.get(task.parent)
            if parent is not None:
                parent.children.discard(tid)
        worker.tasks.discard(tid)
        if worker.waiting:
            worker.waiting.discard(tid)
        if svc.ready is not None:
            self._refresh(worker)
        task.worker = None
        if client is not None:
            reply = Final(rid, msg.payload, task.service)
            self._out.append(
                _outgoing(Outgoing, (requester, task.client_protocol, reply, task.client_extended))
            )
        if svc.pending:
            self._dispatch(worker.service, now)
        return True

    # -- client protocol ----------------------------------------------------------

    def _receive_client(
        self, peer: PeerId, protocol: Protocol, msg: Message, parent: Task | None, now: float
    ) -> None:
        client = self._clients.get(peer)
        if client is not None and client.expiry is not None:
            self._heard_client(client, now)
        match msg:
            case Request():
                self._on_request(peer, protocol, msg, parent, now)
            case Cancel():
                self._on_cancel(peer, msg, now)
            case Heartbeat():
                # A heartbeating client (binglide's extension): heard from
                # until it falls silent, whether or not it has requests.
                if client is None:
                    client = self._clients[peer] = _Client(peer, {}, plain=False)
                client.plain = False
                if client.expiry is None:
                    # Its first: answered at once, so that it knows without
                    # waiting that this broker speaks binglide's protocol
                    # (and which instance it is).
                    self._send(peer, Protocol.CLIENT, Heartbeat(self._instance), True)
                self._heard_client(client, now)
            case Disconnect():
                if client is not None:
                    self._drop_client(peer, now)

    def _on_request(
        self, peer: PeerId, protocol: Protocol, msg: Request, parent: Task | None, now: float
    ) -> None:
        extended = msg.extended
        if extended:
            rid = msg.rid
        else:
            self._plain_rids -= 1
            rid = self._plain_rids
        answer: Message | None = None
        if msg.service.startswith(MMI_PREFIX):
            answer = Final(rid, self._mmi(msg), msg.service)
        else:
            # A root request's own entry is read by no admission rule (it has
            # no ancestor to repeat, and a depth to pass only under a bound
            # of 0), and its task's is made when the task is sent: none here.
            entry = (
                request_digest(msg.service, msg.payload)
                if msg.ancestry or self.config.max_depth <= 0
                else ""
            )
            refusal = self._refusal(msg, parent, entry)
            if refusal is not None:
                answer = Failure(
                    rid, refusal.kind, refusal.message, "", refusal.cycle, msg.service
                )
        if answer is not None:
            # Answered at once: no task, no record of the client.
            self._send(peer, protocol, answer, extended)
            return
        timeout = msg.timeout if msg.timeout is not None else self.config.service_timeout
        task = Task(
            tid=self._ids(),
            client=peer,
            rid=rid,
            client_protocol=protocol,
            client_extended=extended,
            service=msg.service,
            job=JobId(msg.job) if msg.job else job_id_for(peer, rid),
            # (A root's, its entry alone, is computed when it is sent: `_assign`.)
            ancestry=(*msg.ancestry, entry) if msg.ancestry else (),
            payload=msg.payload,
            parent=parent.tid if parent is not None else 0,
            deadline=now + timeout,
            timeout=msg.timeout,
            enqueued=now,
        )
        client = self._clients.get(peer)
        if client is None:
            client = self._clients[peer] = _Client(peer, {}, plain=not extended)
        elif extended:
            client.plain = False
        tid = task.tid
        self._tasks[tid] = task
        tids = self._jobs.get(task.job)
        if tids is None:
            self._jobs[task.job] = {tid}
        else:
            tids.add(tid)
        client.requests[rid] = tid
        if parent is not None:
            parent.children.add(tid)
        svc = self._services.get(task.service)
        if svc is not None and not svc.pending:
            # Nothing queued before it: the fair queue would hand this very
            # task to the worker `_pick_worker` names, so give it at once
            # (no queue entry, no deadline to watch: it never waits).
            worker = self._pick_worker(svc)
            if worker is not None:
                self._assign(svc, worker, task, now)
                return
        self._enqueue(task, front=False)
        self._dispatch(task.service, now)

    def _on_cancel(self, peer: PeerId, msg: Cancel, now: float) -> None:
        client = self._clients.get(peer)
        if client is None:
            return  # nothing of this peer's is alive: cancelling is idempotent
        if msg.rid:
            tid = client.requests.get(msg.rid)
            if tid is None:
                return  # already finished
            task = self._tasks[tid]
            if task.parent:
                self._cancel_subtree(task, now, notify_requester=True)
            else:
                self._cancel_job(task.job, now, root=task)
        elif msg.job:
            job = JobId(msg.job)
            roots = [
                self._tasks[t] for t in self._jobs.get(job, ()) if self._tasks[t].client == peer
            ]
            if origin_of(job) != peer or not roots:
                return  # only the client that started a job may cancel it by id
            self._cancel_job(job, now, root=next((t for t in roots if not t.parent), roots[0]))

    # -- worker protocol ------------------------------------------------------------

    def _receive_worker(self, peer: PeerId, protocol: Protocol, msg: Message, now: float) -> None:
        worker = self._workers.get(peer)
        kind = type(msg)
        if (
            worker is None
            or kind is Ready
            or protocol is not worker.protocol
            or (not worker.extended and kind in _EXTENDED_WORKER_COMMANDS)
        ):
            # Not the usual command from a registered worker: the rule decides.
            why = self._unexpected(worker, protocol, msg)
            if why is not None:
                # RFC 7 and 18: a valid but unexpected command gets DISCONNECT,
                # and then nothing more (its tasks go to other workers).
                self._send(peer, protocol, Disconnect(), True)
                if worker is not None:
                    self._drop_worker(peer, now)
                self._disconnected += 1
                self._notices.append((peer, f"{why}; the worker is told DISCONNECT"))
                return
            if isinstance(msg, Ready):
                self._register_worker(peer, protocol, msg, now)
                return
            if worker is None:
                return  # a DISCONNECT from a worker that is not registered
        self._heard_worker(worker, now)
        match msg:
            case Disconnect():
                self._drop_worker(peer, now)
            case Partial() | Final() | Failure():
                self._on_report(worker, msg, now)
            case Waiting():
                if msg.rid in worker.tasks:
                    if msg.waiting:
                        worker.waiting.add(msg.rid)
                    else:
                        worker.waiting.discard(msg.rid)
                    self._refresh(worker)
                    self._dispatch(worker.service, now)

    def _register_worker(self, peer: PeerId, protocol: Protocol, msg: Ready, now: float) -> None:
        # An MDP/0.1 worker is plain whatever it sends: RFC 7 has no extensions.
        extended = msg.extended and protocol is Protocol.WORKER
        silence = self._silence if extended else self._plain_silence
        worker = _Worker(peer, msg.service, protocol, extended, silence, now + silence)
        self._workers[peer] = worker
        self._heard_worker(worker, now, new=True)
        svc = self._service(msg.service)
        svc.workers[peer] = None
        svc.clock += 1
        worker.lru = svc.clock
        if svc.ready is None:
            self._keep_ready(svc)  # a heap of the ready once it has many workers
        else:
            self._refresh(worker)
        self._dispatch(msg.service, now)

    def _on_report(self, worker: _Worker, msg: Partial | Final | Failure, now: float) -> None:
        task = self._tasks.get(msg.rid)
        if task is None or task.worker != worker.peer:
            return  # a late report of a cancelled or re-issued task: drop it
        known = task.client in self._clients
        if isinstance(msg, Partial):
            if known:
                reply = Partial(task.rid, msg.payload, task.service)
                self._send(task.client, task.client_protocol, reply, task.client_extended)
            return
        self._time_task(worker, task, self._services[worker.service], now)
        if isinstance(msg, Final):
            reply_msg: Message = Final(task.rid, msg.payload, task.service)
            end = TaskState.COMPLETED
        else:
            reply_msg = Failure(
                task.rid, msg.kind, msg.message, msg.remote_type, msg.cycle, task.service
            )
            end = TaskState.FAILED
        if task.children:
            # Sub-requests the handler left behind are of no use to anyone now.
            for child in [self._tasks[c] for c in task.children if c in self._tasks]:
                self._cancel_subtree(child, now, notify_requester=False)
        self._end(task, end)
        if known:
            self._send(task.client, task.client_protocol, reply_msg, task.client_extended)
        if self._services[worker.service].pending:  # the usual case: nothing queued
            self._dispatch(worker.service, now)

    def _time_task(self, worker: _Worker, task: Task, svc: _Service, now: float) -> None:
        svc.task_time = _task_time(worker, task, svc.task_time, now)
        self._keep_depth(svc)

    def _keep_depth(self, svc: _Service) -> None:
        """Set the prefetch depth of `svc` from its task time (`_prefetch`)."""
        depth = self._prefetch(svc.task_time)
        if depth != svc.depth:
            svc.depth = depth
            if svc.ready is not None:
                for peer in svc.workers:  # their verdicts depend on it
                    self._refresh(self._workers[peer])

    # -- dispatch -----------------------------------------------------------------

    def _enqueue(self, task: Task, *, front: bool, origin: str | None = None) -> None:
        """Queue `task` at its service, behind the others of its `origin` (`origin_of` its job)."""
        svc = self._services.get(task.service) or self._service(task.service)
        if origin is None:
            origin = origin_of(task.job)
        queue = svc.queues.get(origin)
        if queue is None:
            queue = svc.queues[origin] = deque()
        if front:
            queue.appendleft(task.tid)
            svc.queues.move_to_end(origin, last=False)
        else:
            queue.append(task.tid)
        svc.pending += 1
        self._queued += 1
        deadlines = self._deadlines
        heapq.heappush(deadlines, (task.deadline, task.tid))
        kept = self._deadline
        if kept is None:
            self._deadline_stale = True  # the heartbeat may count now (`next_deadline`)
        elif task.deadline < kept:
            # The earliest of all is the new entry (the kept deadline was the
            # earliest of the rest), or the deadline is stale anyway.
            self._deadline = task.deadline
        if len(deadlines) > 64 + 2 * self._queued:
            # Mostly stale: keep the live entries (amortised O(1) a task).
            tasks = self._tasks
            self._deadlines = deadlines = [
                (d, tid)
                for d, tid in deadlines
                if (t := tasks.get(tid)) is not None and t.state is TaskState.PENDING
            ]
            heapq.heapify(deadlines)
            # (`next_deadline` counts a dispatched task's entry until it ends.)
            self._deadline_stale = True

    def _pop(self, svc: _Service) -> Task | None:
        while svc.queues:
            origin, queue = next(iter(svc.queues.items()))
            while queue:
                task = self._tasks.get(queue.popleft())
                if task is not None and task.state is TaskState.PENDING:
                    svc.pending -= 1
                    self._queued -= 1
                    # Round-robin: this origin goes to the back of the line.
                    if queue:
                        svc.queues.move_to_end(origin)
                    else:
                        del svc.queues[origin]
                    return task
            del svc.queues[origin]
        return None

    def _dispatch(self, service: str, now: float) -> None:
        svc = self._services.get(service)
        if svc is None:
            return
        while svc.pending:
            worker = self._pick_worker(svc)
            if worker is None:
                return
            task = self._pop(svc)
            if task is None:
                return
            self._assign(svc, worker, task, now)

    def _assign(self, svc: _Service, worker: _Worker, task: Task, now: float) -> None:
        """Give `task` (of `svc`) to `worker` (`_pick_worker`'s choice) and send it."""
        peer = worker.peer
        # Least recently used first next time.
        workers = svc.workers
        del workers[peer]
        workers[peer] = None
        svc.clock += 1
        worker.lru = svc.clock
        # `advance`, without its call: a task given here is PENDING (`_pop`
        # returns only those, `_on_request` makes them).
        assert task.state is _PENDING
        task.state = _DISPATCHED
        task.worker = peer
        task.dispatched = now
        worker.tasks.add(task.tid)
        if svc.ready is not None:
            self._refresh(worker)
        ancestry: Sequence[str] = task.ancestry
        if not ancestry:  # a root's: its entry alone (`lazy_ancestry`)
            # A plain worker's REQUEST carries no ancestry: nothing reads it.
            if self.lazy_ancestry or not worker.extended:
                ancestry = LazyAncestry(task.service, task.payload, svc.hasher)
            else:
                ancestry = (ancestry_entry(task.service, svc.hasher.copy(), task.payload),)
        msg = Request(task.tid, task.service, task.payload, task.job, ancestry)
        if worker.extended:
            self._out.append(_outgoing(Outgoing, (peer, worker.protocol, msg, True)))
        else:
            self._send(peer, worker.protocol, msg, False)

    # -- endings ----------------------------------------------------------------------

    def _end(self, task: Task, state: TaskState) -> None:
        """End `task` in `state` and forget it everywhere.

        A plain requester is forgotten with its last task in flight, and a
        service with its last queued task if no worker serves it: the
        broker's state is bounded by what is alive, whatever the churn of
        client identities and service names.
        """
        was = advance(task, state)
        deadlines = self._deadlines
        if deadlines and deadlines[0][1] == task.tid:
            # Its entry (made while, or since, it was queued) heads the heap:
            # the deadline kept may be it. An entry further down leaves the
            # kept deadline as it is (the head is live, or the deadline stale).
            self._deadline_stale = True
        self._ended[state] += 1
        self._tasks.pop(task.tid, None)
        tids = self._jobs.get(task.job)
        if tids is not None:
            tids.discard(task.tid)
            if not tids:
                del self._jobs[task.job]
        client = self._clients.get(task.client)
        if client is not None and client.requests.get(task.rid) == task.tid:
            del client.requests[task.rid]
            if client.plain and not client.requests:
                del self._clients[task.client]
        if task.parent:
            parent = self._tasks.get(task.parent)
            if parent is not None:
                parent.children.discard(task.tid)
        if was is TaskState.PENDING:
            svc = self._services[task.service]
            svc.pending -= 1  # its tid stays in the deque and is skipped at pop
            self._queued -= 1
            self._forget_if_idle(svc)
        elif task.worker is not None:
            worker = self._workers.get(task.worker)
            if worker is not None:
                worker.tasks.discard(task.tid)
                worker.waiting.discard(task.tid)
                self._refresh(worker)
        task.worker = None

    def _forget_if_idle(self, svc: _Service) -> None:
        # Once only: a worker dropped with a request of its own queued at its
        # own service forgets the service when that request is cancelled
        # (`_drop_client`), before `_drop_worker` looks again.
        if not svc.pending and not svc.workers and self._services.get(svc.name) is svc:
            del self._services[svc.name]

    def _subtree(self, task: Task) -> list[Task]:
        found, stack = [], [task]
        while stack:
            t = stack.pop()
            found.append(t)
            stack.extend(self._tasks[c] for c in t.children if c in self._tasks)
        return found

    def _cancel_subtree(self, task: Task, now: float, *, notify_requester: bool) -> None:
        # Whether the requester is there to hear it: decided before the
        # endings, which may forget it.
        notify = notify_requester and task.client in self._clients
        services = set()
        for t in self._subtree(task):
            if t.state is TaskState.DISPATCHED and t.worker is not None:
                worker = self._workers.get(t.worker)
                if worker is not None:
                    self._send(t.worker, worker.protocol, Cancel(t.job, t.tid), worker.extended)
                    services.add(worker.service)
            self._end(t, TaskState.CANCELLED)
        if notify:
            self._reply(task, _cancelled(task))
        for service in services:
            self._dispatch(service, now)

    def _cancel_job(self, job: JobId, now: float, *, root: Task) -> None:
        notify = root.client in self._clients
        tasks = [self._tasks[tid] for tid in self._jobs.get(job, ())]
        holders = {t.worker for t in tasks if t.worker is not None}
        services = {self._workers[p].service for p in holders if p in self._workers}
        for t in tasks:
            self._end(t, TaskState.CANCELLED)
        if self.config.cancel_mode is CancelMode.BROADCAST:
            targets = list(self._workers.values())
        else:
            targets = [self._workers[p] for p in holders if p in self._workers]
        for worker in targets:
            self._send(worker.peer, worker.protocol, Cancel(job, 0), worker.extended)
        if notify:
            self._reply(root, _cancelled(root))
        for service in services:
            self._dispatch(service, now)

    # -- timers -------------------------------------------------------------------------

    def _handle_timer(self, now: float) -> None:
        for queue in list(self._worker_expiry.values()):
            while queue and self._workers[peer := next(iter(queue))].expiry <= now:
                self._drop_worker(peer, now)
        queue = self._client_expiry
        while queue:
            expiry = self._clients[peer := next(iter(queue))].expiry
            if expiry is None or expiry > now:
                break
            self._drop_client(peer, now)
        while self._deadlines and self._deadlines[0][0] <= now:
            _, tid = heapq.heappop(self._deadlines)
            task = self._tasks.get(tid)
            if task is not None and task.state is TaskState.PENDING and task.deadline <= now:
                if self._expires(task, now):
                    self._expire(task)
                else:
                    # Its service has workers, busy ones: look again later.
                    task.deadline = now + self.config.service_timeout
                    heapq.heappush(self._deadlines, (task.deadline, task.tid))
        if self._next_heartbeat is not None and self._next_heartbeat <= now:
            self._next_heartbeat = now + self.config.heartbeat_interval
            for worker in self._workers.values():
                self._send(worker.peer, worker.protocol, Heartbeat(), worker.extended)
            beat = Heartbeat(self._instance)
            for client in self._clients.values():
                if client.expiry is not None:
                    self._send(client.peer, Protocol.CLIENT, beat, True)

    def _expires(self, task: Task, now: float) -> bool:
        """Whether a pending task past its deadline fails now (see BrokerConfig)."""
        svc = self._services.get(task.service)
        if task.timeout is not None or svc is None or not svc.workers:
            return True
        limit = self.config.queue_timeout
        return not task.parent and limit is not None and now >= task.enqueued + limit

    def _expire(self, task: Task) -> None:
        svc = self._services.get(task.service)
        if svc is None or not svc.workers:
            why = (
                f"no worker of service {task.service!r} is registered; check the name or "
                "start a worker for it"
            )
        else:
            why = (
                f"no worker of service {task.service!r} became free before the deadline; "
                "the service is overloaded: retry later, give a longer timeout or add workers"
            )
        known = task.client in self._clients
        self._end(task, TaskState.FAILED)
        if known:
            self._reply(task, Failure(task.rid, "unavailable", why, "", (), task.service))

    def _drop_worker(self, peer: PeerId, now: float) -> None:
        self._deadline_stale = True
        worker = self._workers.pop(peer)
        svc = self._services[worker.service]
        del svc.workers[peer]
        if svc.ready is not None:
            svc.blocked -= worker.verdict == _BLOCKED
            self._keep_ready(svc)  # none kept once it has a few workers
        self._worker_expiry[worker.silence].pop(peer, None)
        # Its tasks go back to the front of their queues; the sub-requests it
        # issued for them die with it (the re-run issues them again).
        for tid in sorted(worker.tasks, reverse=True):
            task = self._tasks[tid]
            for child in [self._tasks[c] for c in task.children if c in self._tasks]:
                self._cancel_subtree(child, now, notify_requester=False)
            advance(task, TaskState.PENDING)
            task.worker = None
            task.deadline = max(task.deadline, now + self.config.service_timeout)
            task.enqueued = now
            self._enqueue(task, front=True)
            self._requeued += 1
        if peer in self._clients:
            self._drop_client(peer, now)
        self._dispatch(worker.service, now)
        self._forget_if_idle(svc)

    def _drop_client(self, peer: PeerId, now: float) -> None:
        self._deadline_stale = True
        client = self._clients.pop(peer)
        self._client_expiry.pop(peer, None)
        for tid in list(client.requests.values()):
            task = self._tasks.get(tid)
            if task is None:
                continue
            if task.parent:
                self._cancel_subtree(task, now, notify_requester=False)
            else:
                self._cancel_job(task.job, now, root=task)

    # -- output --------------------------------------------------------------------------

    def _send(self, peer: PeerId, protocol: Protocol, msg: Message, extended: bool) -> None:
        if not extended:
            if type(msg) is Cancel:
                # A plain MDP worker knows no CANCEL (RFC 7 and 18 have none):
                # it finishes the task, and its late reply is dropped.
                return
            if type(msg) is Partial and protocol is Protocol.CLIENT_01:
                return  # an MDP/0.1 client gets one REPLY: the FINAL
        self._out.append(_outgoing(Outgoing, (peer, protocol, msg, extended)))

    def _reply(self, task: Task, msg: Message) -> None:
        """Send `msg` to the requester of `task`, in the form it asked in."""
        self._send(task.client, task.client_protocol, msg, task.client_extended)


def _task_time(worker: _Worker, task: Task, task_time: float | None, now: float) -> float:
    """Its service's task time, `task_time`, once `task` (ending at `now` on `worker`) counts.

    A moving average that a quarter of each task's time moves: one long task
    cuts the prefetch depth at once (it lifts the average), a few short ones
    restore it. A task's time runs from its dispatch, or from the end of the
    worker's previous task if that came later (a prefetched task waits its
    turn on the worker; that wait is not its own time).

    Tasks that end at the same time (a burst of FINALs that one turn reads:
    the worker sent them while the broker was busy) share the time since the
    first of them started, T: once the k-th of them counts, the average is
    what k samples of T/k each make of the average before the burst. It is
    worked out again from that at each, not moved by T, T/2, ..., T/k in
    turn: those samples were each too long but the last, and over a burst
    of 34 (128 tasks in flight, bench/broker.py) they held the average at
    2.3 times the worker's time a task, and the depth at 40% of the
    window's (bench/RESULTS.md, issue 13, fourteenth pass). A burst of
    another worker's FINALs read between two of these is overwritten by the
    next: the average stays a mean of positive times.
    """
    if now == worker.last_done:
        k = worker.done_together = worker.done_together + 1
        decay = worker.burst_decay = worker.burst_decay * 0.75
        return decay * worker.burst_base + (1.0 - decay) * (now - worker.together_since) / k
    start = task.dispatched
    if worker.last_done > start:
        start = worker.last_done
    worker.last_done = now
    if start > now:
        start = now
    worker.done_together = 1
    worker.together_since = start
    sample = now - start
    if task_time is None:
        worker.burst_decay = 0.0  # nothing to average with: the burst's own mean
        return sample
    worker.burst_base = task_time
    worker.burst_decay = 0.75
    return task_time + (sample - task_time) / 4


def _cancelled(task: Task) -> Failure:
    return Failure(task.rid, "cancelled", "the job was cancelled", "", (), task.service)


def _name(frame: Frame) -> str | None:
    """The text of a frame naming a service, or None if it is not UTF-8."""
    try:
        return bytes(frame).decode()
    except UnicodeDecodeError:
        return None
