"""The broker machine, driven message by message: no sockets, no event loop, no clock."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable

import pytest

from binglide.core import (
    BrokerConfig,
    BrokerMachine,
    Cancel,
    CancelMode,
    Disconnect,
    Failure,
    Final,
    Heartbeat,
    IdSource,
    Partial,
    PeerId,
    Protocol,
    Ready,
    Request,
    Waiting,
    encode,
    job_id_for,
    request_digest,
)
from binglide.core.broker import Outgoing
from binglide.core.messages import LazyAncestry
from binglide.errors import LocalProtocolError, RemoteProtocolError

from ..helpers import BrokerDriver, to


def make(**config: object) -> BrokerDriver:
    # The driver's clock stands still, so every task takes 0 s and would count
    # as short (prefetched): the tests of other rules dispatch one at a time.
    config.setdefault("prefetch", 1)
    return BrokerDriver(BrokerMachine(BrokerConfig(**config), ids=IdSource(100)))  # type: ignore[arg-type]


def test_request_waits_for_a_worker_then_is_dispatched_with_its_job_id() -> None:
    d = make()
    assert d.client("c", Request(1, "hist", (b"body",))) == []
    assert d.machine.statistics().pending == 1
    out = d.worker("w", Ready("hist"))
    [req] = to(out, "w")
    assert req == Request(
        100, "hist", (b"body",), job_id_for("c", 1), (request_digest("hist", (b"body",)),)
    )
    stats = d.machine.statistics()
    assert (stats.pending, stats.dispatched, stats.jobs) == (0, 1, 1)
    assert d.machine.workers_of_job(job_id_for("c", 1)) == {"w"}
    assert d.machine.jobs_of_worker(PeerId("w")) == {job_id_for("c", 1)}


def test_reports_are_forwarded_in_order_and_final_frees_the_worker() -> None:
    d = make()
    d.worker("w", Ready("hist"))
    d.client("c", Request(1, "hist"))
    d.client("c", Request(2, "hist"))  # queued: the worker is busy
    assert to(d.worker("w", Partial(100, (b"p1",))), "c") == [Partial(1, (b"p1",), "hist")]
    out = d.worker("w", Final(100, (b"f",)))
    assert to(out, "c") == [Final(1, (b"f",), "hist")]
    assert [m.rid for m in to(out, "w") if isinstance(m, Request)] == [101]
    # A late report of a finished task goes nowhere.
    assert d.worker("w", Partial(100, (b"late",))) == []


def test_fair_dispatch_across_clients() -> None:
    d = make()
    for rid in range(1, 1001):
        d.client("greedy", Request(rid, "hist", (b"%d" % rid,)))
    d.client("modest", Request(1, "hist", (b"mine",)))
    d.worker("w", Ready("hist"))  # takes greedy's first
    out = d.worker("w", Final(100))
    [nxt] = [m for m in to(out, "w") if isinstance(m, Request)]
    assert nxt.payload == (b"mine",)  # not behind the other 999


def test_worker_failure_is_forwarded_and_the_worker_serves_on() -> None:
    d = make()
    d.worker("w", Ready("hist"))
    d.client("c", Request(1, "hist"))
    out = d.worker("w", Failure(100, "failed", "boom", "ValueError"))
    assert to(out, "c") == [Failure(1, "failed", "boom", "ValueError", (), "hist")]
    d.client("c", Request(2, "hist"))
    assert d.machine.statistics().dispatched == 1


@pytest.mark.parametrize("mode", list(CancelMode))
def test_client_cancel_drops_queued_tasks_and_tells_workers(mode: CancelMode) -> None:
    d = make(cancel_mode=mode)
    d.worker("w1", Ready("agg"))
    d.worker("w2", Ready("chunk"))
    d.worker("bystander", Ready("other"))
    d.client("c", Request(1, "agg"))  # tid 100 on w1
    job = job_id_for("c", 1)
    d.client("w1", Request(1, "chunk", (b"a",), job, (), 100))  # tid 101 on w2
    d.client("w1", Request(2, "chunk", (b"b",), job, (), 100))  # tid 102 queued
    assert d.machine.statistics().pending == 1
    out = d.client("c", Cancel(rid=1))
    assert to(out, "c") == [Failure(1, "cancelled", "the job was cancelled", "", (), "agg")]
    told = {o.peer for o in out if isinstance(o.message, Cancel)}
    if mode is CancelMode.BROADCAST:
        assert told == {"w1", "w2", "bystander"}
    else:
        assert told == {"w1", "w2"}
    assert all(o.message == Cancel(job, 0) for o in out if isinstance(o.message, Cancel))
    stats = d.machine.statistics()
    assert (stats.pending, stats.dispatched, stats.jobs, stats.cancelled) == (0, 0, 0, 3)
    # Late reports of the cancelled job reach nobody.
    assert d.worker("w2", Final(101, (b"late",))) == []
    assert d.worker("w1", Partial(100, (b"late",))) == []


def test_worker_cancels_one_sub_request_and_its_subtree_only() -> None:
    d = make()
    d.worker("w1", Ready("agg"))
    d.worker("w2", Ready("mid"))
    d.worker("w3", Ready("leaf"))
    d.client("c", Request(1, "agg"))  # 100 on w1
    job = job_id_for("c", 1)
    d.client("w1", Request(1, "mid", (b"m",), job, (), 100))  # 101 on w2
    d.client("w2", Request(1, "leaf", (b"l",), job, (), 101))  # 102 on w3
    out = d.client("w1", Cancel(rid=1))
    assert to(out, "w1") == [Failure(1, "cancelled", "the job was cancelled", "", (), "mid")]
    assert to(out, "w2") == [Cancel(job, 101)]
    assert to(out, "w3") == [Cancel(job, 102)]
    assert to(out, "c") == []
    assert d.machine.statistics().dispatched == 1  # the root goes on


def documented_entry(service: str, payload: tuple[bytes, ...]) -> str:
    """docs/protocol.md section 6, written out: BLAKE2b-64 of the name, then length:frame each."""
    data = service.encode() + b"".join(str(len(f)).encode() + b":" + f for f in payload)
    return f"{service}/{hashlib.blake2b(data, digest_size=8).hexdigest()}"


@pytest.mark.parametrize(
    "payload",
    [
        (),
        (b"",),
        (b"x",),
        (b"x" * 255,),
        (b"y" * 256,),
        (b"z" * 70_000,),
        (b"{}", b"a" * 300, b""),
    ],
)
def test_the_ancestry_entry_is_the_documented_digest(payload: tuple[bytes, ...]) -> None:
    assert request_digest("sv\u00e9", payload) == documented_entry("sv\u00e9", payload)
    # The usual request (its client known, a worker ready: the short path)
    # carries the same entry to its worker, and a second one too (the
    # service's hasher is copied, never updated in place).
    d = make()
    d.worker("w", Ready("sv\u00e9"))
    d.client("c", Heartbeat())
    for rid in (1, 2):
        [req] = to(d.client("c", Request(rid, "sv\u00e9", payload)), "w")
        assert isinstance(req, Request)
        assert req.ancestry == (documented_entry("sv\u00e9", payload),)
        d.worker("w", Final(req.rid, (b"done",)))


@pytest.mark.parametrize("lazy", [False, True])
def test_a_root_tasks_ancestry_is_its_entry_on_every_way_to_a_worker(lazy: bool) -> None:
    # A root request's entry is computed as it is sent, or (lazy: in one
    # process) only where its worker hop's ancestry is read: queued then
    # given (`_assign`), given at once (the short path), and given again
    # after its worker died, each carries the documented entry, whatever
    # order they are read in (the service's hasher is copied).
    d = make(heartbeat_interval=1.0, liveness=3)
    d.machine.lazy_ancestry = lazy
    d.client("c", Heartbeat())
    payloads = [(b"{}", b"first"), (b"{}", b"second" * 50), ()]
    d.client("c", Request(1, "s", payloads[0]))  # 100, queued: no worker yet
    [queued] = to(d.worker("w1", Ready("s")), "w1")
    d.worker("w2", Ready("s"))
    [at_once] = to(d.client("c", Request(2, "s", payloads[1])), "w2")
    d.worker("w3", Ready("s"))
    [third] = to(d.client("c", Request(3, "s", payloads[2])), "w3")
    d.worker("w2", Heartbeat())
    d.worker("w3", Heartbeat())
    d.now = 2.0
    d.client("c", Heartbeat())
    d.worker("w2", Heartbeat())
    d.worker("w3", Heartbeat())
    d.tick(3.0)  # w1 silent since 0: dead, its task queued again
    [again] = to(d.worker("w4", Ready("s")), "w4")
    sent = [third, again, at_once, queued]  # read out of order
    expected = [payloads[2], payloads[0], payloads[1], payloads[0]]
    for req, payload in zip(sent, expected, strict=True):
        assert isinstance(req, Request)
        assert isinstance(req.ancestry, LazyAncestry if lazy else tuple)
        assert req.payload == payload
        eager = Request(req.rid, "s", payload, req.job, (documented_entry("s", payload),))
        assert req.ancestry == eager.ancestry
        assert (req, hash(req), repr(req)) == (eager, hash(eager), repr(eager))
    # Its sub-request carries it on: the loop back to it is refused, naming it.
    assert isinstance(at_once, Request)
    entry = documented_entry("s", payloads[1])
    out = d.client("w2", Request(1, "s", payloads[1], at_once.job, at_once.ancestry, at_once.rid))
    [failure] = to(out, "w2")
    assert isinstance(failure, Failure)
    assert (failure.kind, failure.cycle) == ("loop", (entry, entry))


@pytest.mark.parametrize("client_extended", [False, True])
def test_a_root_task_for_a_plain_worker_is_never_digested(
    client_extended: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plain MDP worker's REQUEST carries no ancestry, and a root request's
    # own entry is read by no admission rule: nothing digests its payload,
    # sent over the wire or not (from a plain client: the general rules;
    # from an extended one: the short path). Read, its ancestry is still the
    # documented entry.
    import binglide.core.broker as broker_module
    import binglide.core.messages as messages_module

    digests: list[str] = []

    def counted(service: str, hasher: hashlib.blake2b, payload: tuple[bytes, ...]) -> str:
        digests.append(service)
        return messages_module_entry(service, hasher, payload)

    messages_module_entry = messages_module.ancestry_entry
    monkeypatch.setattr(broker_module, "ancestry_entry", counted)
    monkeypatch.setattr(messages_module, "ancestry_entry", counted)
    d = make()
    d.worker("w", Ready("s", extended=False))
    if client_extended:
        d.client("c", Heartbeat())
    payload = (b'{"n":1}',)
    request = Request(1 if client_extended else 0, "s", payload, extended=client_extended)
    [req] = to(d.client("c", request), "w")
    assert isinstance(req, Request)
    frames = encode(req, protocol=Protocol.WORKER, from_broker=True, extended=False)
    assert frames == [b"MDPW02", b"\x02", b"100", b"", *payload]
    assert digests == []
    assert req.ancestry == (documented_entry("s", payload),)  # read: made now, once
    assert digests == ["s"]


def test_a_root_request_past_a_depth_bound_of_0_names_its_own_entry() -> None:
    d = make(max_depth=0)
    [failure] = to(d.client("c", Request(0, "s", (b"x",), extended=False)), "c")
    assert isinstance(failure, Failure)
    assert (failure.kind, failure.cycle) == ("loop", (documented_entry("s", (b"x",)),))


def test_loop_is_refused_with_the_cycle() -> None:
    d = make()
    entry = request_digest("svc", (b"same",))
    out = d.client("w", Request(1, "svc", (b"same",), "1:c1", ("root/0", entry, "other/1")))
    [failure] = to(out, "w")
    assert isinstance(failure, Failure)
    assert failure.kind == "loop"
    assert failure.cycle == (entry, "other/1", entry)
    assert d.machine.statistics().pending == 0


def test_too_deep_is_refused() -> None:
    d = make(max_depth=3)
    out = d.client("w", Request(1, "svc", (b"x",), "1:c1", ("a/1", "b/2", "c/3")))
    [failure] = to(out, "w")
    assert isinstance(failure, Failure)
    assert failure.kind == "loop"
    assert "deeper than 3" in failure.message


def test_unknown_service_fails_after_its_deadline() -> None:
    d = make(service_timeout=5.0)
    d.client("c", Request(1, "nope"))
    d.client("c", Request(2, "nope", timeout=1.0))
    assert d.machine.next_deadline() == 1.0
    assert d.tick(0.5) == []
    [f2] = to(d.tick(1.0), "c")
    assert isinstance(f2, Failure)
    assert (f2.rid, f2.kind) == (2, "unavailable")
    assert "no worker of service 'nope' is registered" in f2.message
    [f1] = to(d.tick(5.0), "c")
    assert isinstance(f1, Failure)
    assert f1.rid == 1
    assert d.machine.statistics().pending == 0


def test_overload_is_refused_at_once() -> None:
    d = make(max_queued=2)
    d.client("c", Request(1, "s"))
    d.client("c", Request(2, "s"))
    [f] = to(d.client("c", Request(3, "s")), "c")
    assert isinstance(f, Failure)
    assert f.kind == "unavailable"
    assert "overloaded" in f.message


def test_dead_worker_tasks_are_requeued_and_its_sub_requests_cancelled() -> None:
    d = make(heartbeat_interval=1.0, liveness=3)
    d.worker("w1", Ready("agg"))
    d.worker("w2", Ready("leaf"))
    d.client("c", Request(1, "agg"))  # 100 on w1
    job = job_id_for("c", 1)
    d.client("w1", Request(1, "leaf", (b"l",), job, (), 100))  # 101 on w2
    d.worker("w2", Heartbeat())
    d.now = 2.0
    d.worker("w2", Heartbeat())
    out = d.tick(3.0)  # w1 silent since 0: dead
    assert to(out, "w2")[:1] == [Cancel(job, 101)]
    stats = d.machine.statistics()
    assert (stats.workers, stats.pending, stats.requeued) == (1, 1, 1)
    out = d.worker("w3", Ready("agg"))
    [req] = to(out, "w3")
    assert isinstance(req, Request)
    assert req.rid == 100


def test_waiting_worker_takes_another_task() -> None:
    d = make(stack_bound=2)
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s", (b"1",)))  # 100
    d.client("c", Request(2, "s", (b"2",)))  # queued
    out = d.worker("w", Waiting(100, True))
    assert [m.rid for m in to(out, "w") if isinstance(m, Request)] == [101]
    assert d.machine.statistics().services[0].waiting == 1


def test_overflow_when_every_worker_waits_at_its_bound() -> None:
    d = make(stack_bound=1)
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s", (b"1",)))  # 100 on w
    d.client("w", Request(1, "s", (b"2",), job_id_for("c", 1), (), 100))  # queued
    out = d.worker("w", Waiting(100, True))
    assert [m.rid for m in to(out, "w") if isinstance(m, Request)] == [101]
    assert d.machine.statistics().overflows == 1


def test_prefetch_one_gives_a_computing_worker_nothing_more() -> None:
    d = make()
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s", (b"1",)))  # 100 on w
    assert d.client("c", Request(2, "s", (b"2",))) == []  # queued: w computes
    assert d.machine.statistics().pending == 1


def test_prefetch_lets_a_worker_hold_that_many_computing_tasks() -> None:
    d = make(prefetch=3, prefetch_window=None)
    d.worker("w", Ready("s"))
    for i in range(1, 6):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    stats = d.machine.statistics()
    assert (stats.dispatched, stats.pending) == (3, 2)
    # One ends: the next goes to the worker at once, in the same step.
    out = d.worker("w", Final(100, (b"f",)))
    assert to(out, "c") == [Final(1, (b"f",), "s")]
    assert [m.rid for m in to(out, "w") if isinstance(m, Request)] == [103]
    # A waiting task does not count against the prefetch.
    out = d.worker("w", Waiting(101, True))
    assert [m.rid for m in to(out, "w") if isinstance(m, Request)] == [104]
    assert d.machine.statistics().pending == 0


def test_prefetch_spreads_tasks_over_the_least_busy_workers_first() -> None:
    d = make(prefetch=2, prefetch_window=None)
    d.worker("w1", Ready("s"))
    d.worker("w2", Ready("s"))
    out = []
    for i in range(1, 5):
        out += d.client("c", Request(i, "s", (b"%d" % i,)))
    assert [len(to(out, w)) for w in ("w1", "w2")] == [2, 2]
    assert d.client("c", Request(5, "s", (b"5",))) == []  # both at their prefetch


def test_prefetch_bounds_computing_tasks_and_the_stack_bound_waiting_ones() -> None:
    d = make(prefetch=4, prefetch_window=None, stack_bound=2)
    d.worker("w", Ready("s"))
    for i in range(1, 7):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    stats = d.machine.statistics()
    assert (stats.dispatched, stats.pending) == (4, 2)
    # A task that waits frees a computing place...
    assert dispatched_rids(d.worker("w", Waiting(100, True)), "w") == [104]
    # ...until the waiting stack is at its bound: nothing more while any computes.
    assert dispatched_rids(d.worker("w", Waiting(101, True)), "w") == []
    for tid in (102, 103):
        assert dispatched_rids(d.worker("w", Final(tid)), "w") == []
    # The last computing one ends: every task waits at the bound, none
    # computes, and the overflow still serves the queue.
    assert dispatched_rids(d.worker("w", Final(104)), "w") == [105]
    assert d.machine.statistics().overflows == 1


def test_prefetch_leaves_plain_workers_at_one_task() -> None:
    d = make(prefetch=4, prefetch_window=None)
    d.worker("pw", Ready("s", extended=False))
    d.client("c", Request(1, "s", (b"1",)))
    d.client("c", Request(2, "s", (b"2",)))
    assert d.machine.statistics().pending == 1


def dispatched_rids(out: list[Outgoing], worker: str) -> list[int]:
    return [m.rid for m in to(out, worker) if isinstance(m, Request)]


def test_adaptive_prefetch_starts_at_one_task_until_the_service_is_timed() -> None:
    d = make(prefetch=3, prefetch_window=0.004)
    d.worker("w", Ready("s"))
    for i in range(1, 6):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    assert d.machine.statistics().dispatched == 1  # never timed: counts as long
    assert d.machine.statistics().services[0].task_time is None
    d.now = 0.001  # a 1 ms task: short
    out = d.worker("w", Final(100))
    assert dispatched_rids(out, "w") == [101, 102, 103]
    [svc] = d.machine.statistics().services
    assert svc.task_time == pytest.approx(0.001)
    assert (svc.dispatched, svc.pending) == (3, 1)


def test_adaptive_prefetch_stops_after_a_long_task_and_resumes_after_short_ones() -> None:
    d = make(prefetch=2, prefetch_window=0.004)
    d.worker("w", Ready("s"))
    for i in range(1, 20):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    tid = 100
    d.now = 0.001
    assert dispatched_rids(d.worker("w", Final(tid)), "w") == [101, 102]
    # A 50 ms task (the worker's previous one ended at 1 ms): long from now on.
    d.now = 0.051
    assert dispatched_rids(d.worker("w", Final(101)), "w") == []  # 102 computes: wait
    d.now = 0.052
    out = d.worker("w", Final(102))
    assert dispatched_rids(out, "w") == [103]  # one at a time
    # Short tasks bring the average back under the threshold.
    tids = [103]
    while True:
        d.now += 0.0005
        out = d.worker("w", Final(tids.pop()))
        tids.extend(dispatched_rids(out, "w"))
        if len(tids) > 1:
            break
        assert len(tids) == 1
    task_time = d.machine.statistics().services[0].task_time
    assert task_time is not None
    assert task_time < 0.002


def test_adaptive_prefetch_times_a_task_from_the_end_of_the_one_before_it() -> None:
    # Three prefetched 1.5 ms tasks end at 1.5, 3 and 4.5 ms: each took 1.5 ms
    # of the worker, not the 3 or 4.5 ms since its dispatch (prefetch stays on).
    d = make(prefetch=3, prefetch_window=0.006)
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s", (b"1",)))
    d.now = 0.0015
    d.worker("w", Final(100))  # timed: short
    for i in range(2, 5):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    assert d.machine.statistics().dispatched == 3
    for k, tid in enumerate((101, 102, 103), start=2):
        d.now = 0.0015 * k
        d.worker("w", Final(tid))
    assert d.machine.statistics().services[0].task_time == pytest.approx(0.0015)
    d.client("c", Request(5, "s", (b"5",)))
    d.client("c", Request(6, "s", (b"6",)))
    assert d.machine.statistics().dispatched == 2  # still prefetching


def test_prefetch_depth_is_the_window_over_the_task_time() -> None:
    d = make(prefetch=32, prefetch_window=0.004)
    d.worker("w", Ready("s"))
    for i in range(1, 41):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    d.now = 0.001  # a 1 ms task, a 4 ms window: four at a time
    held = deque(dispatched_rids(d.worker("w", Final(100)), "w"))
    assert list(held) == [101, 102, 103, 104]
    # Tasks four times shorter: the depth follows the moving average up.
    for _ in range(12):
        d.now += 0.00025
        held.extend(dispatched_rids(d.worker("w", Final(held.popleft())), "w"))
    [svc] = d.machine.statistics().services
    assert svc.task_time is not None
    assert svc.task_time < 0.0003
    assert svc.dispatched == len(held) == int(0.004 / svc.task_time) > 12


def test_a_burst_of_finals_read_in_one_turn_shares_the_time_since_the_first_started() -> None:
    # Eight prefetched 0.5 ms tasks end one after another while the broker is
    # busy: it reads their FINALs in one turn, at one time. Together they took
    # 4 ms: each is timed at a share of it, so the depth stays within the
    # 4 ms window (8 tasks of 0.5 ms), not at the bound of 128 that samples of
    # 0 s after the first would give it.
    d = make(prefetch=128, prefetch_window=0.004)
    d.worker("w", Ready("s"))
    for i in range(1, 60):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    d.now = 0.0005
    held = dispatched_rids(d.worker("w", Final(100)), "w")
    assert held == list(range(101, 109))  # 0.5 ms tasks, a 4 ms window: 8 at a time
    d.now = 0.0045
    for tid in held:
        d.worker("w", Final(tid))
    [svc] = d.machine.statistics().services
    assert svc.task_time is not None
    assert svc.task_time >= 0.0005
    assert svc.dispatched <= 8


def ewma_of(start: float | None, samples: list[float]) -> float:
    """The moving average the broker keeps (a quarter of each sample), worked out plainly."""
    average = start
    for sample in samples:
        average = sample if average is None else 0.75 * average + 0.25 * sample
    assert average is not None
    return average


@pytest.mark.parametrize(("before", "burst", "took"), [(0.0005, 8, 0.004), (0.0005, 4, 0.004)])
def test_a_burst_moves_the_task_time_as_k_tasks_of_its_share_each(
    before: float, burst: int, took: float
) -> None:
    # `burst` FINALs read in one turn, `took` seconds after the first of their
    # tasks started: each took took/burst of the worker. The task time is
    # what that many samples of took/burst make of it, not what samples of
    # took, took/2, ..., took/burst would (those held it at 0.84 ms, not 0.5,
    # for eight tasks of 0.5 ms, and the depth at half the window's).
    d = make(prefetch=128, prefetch_window=0.004)
    d.worker("w", Ready("s"))
    for i in range(1, 60):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    d.now = before
    held = dispatched_rids(d.worker("w", Final(100)), "w")
    assert len(held) == int(0.004 / before)
    d.now = before + took
    for tid in held[:burst]:
        d.worker("w", Final(tid))
    [svc] = d.machine.statistics().services
    expected = ewma_of(before, [took / burst] * burst)
    assert svc.task_time == pytest.approx(expected)
    assert svc.dispatched == int(0.004 / expected)


def test_a_first_burst_times_each_of_its_tasks_at_its_share() -> None:
    # Never timed before: the burst's own mean, whatever its size.
    d = make(prefetch=1, prefetch_window=None)
    d.worker("w", Ready("s"))
    for i in range(1, 4):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    d.now = 0.003
    for tid in (100, 101, 102):  # (prefetch 1 and no window: one at a time)
        d.worker("w", Final(tid))
    [svc] = d.machine.statistics().services
    # The first task ran from its dispatch at 0 s; the others were
    # dispatched as each ended, at the same 3 ms: they took nothing.
    assert svc.task_time == pytest.approx(ewma_of(None, [0.003 / 3] * 3))


def test_bursts_of_two_workers_read_in_one_turn_keep_the_task_time_a_mean_of_theirs() -> None:
    # Two workers' bursts of FINALs come in one turn, interleaved: each
    # worker's four tasks took 1 ms each. Each burst is worked out from the
    # task time when it began, which the other's first FINAL had lifted: the
    # average stays within the times involved (never negative, never past
    # the longest time a burst took) and ends nearer the tasks' 1 ms than
    # the samples T, T/2, ..., T/k of each would have left it.
    d = make(prefetch=128, prefetch_window=0.004)
    d.worker("a", Ready("s"))
    d.worker("b", Ready("s"))
    for i in range(1, 120):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    d.now = 0.001  # both first tasks took 1 ms: four at a time each
    out = d.worker("a", Final(100)) + d.worker("b", Final(101))
    a_held, b_held = dispatched_rids(out, "a"), dispatched_rids(out, "b")
    assert len(a_held) == len(b_held) == 4
    d.now = 0.005
    times = []
    for a_tid, b_tid in zip(a_held, b_held, strict=True):
        for peer, tid in (("a", a_tid), ("b", b_tid)):
            d.worker(peer, Final(tid))
            [svc] = d.machine.statistics().services
            assert svc.task_time is not None
            times.append(svc.task_time)
    assert all(0.001 <= t <= 0.004 for t in times)
    per_sample = ewma_of(0.001, [0.004 / k for k in (1, 1, 2, 2, 3, 3, 4, 4)])
    assert abs(times[-1] - 0.001) < abs(per_sample - 0.001)


def test_the_default_prefetch_bound_holds_a_window_of_tiny_tasks() -> None:
    # 10 µs tasks: a 4 ms window is 400 of them; the default bound, 128, holds.
    d = BrokerDriver(BrokerMachine(BrokerConfig(), ids=IdSource(100)))
    d.worker("w", Ready("s"))
    for i in range(1, 200):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    d.now = 0.00001
    d.worker("w", Final(100))
    assert d.machine.statistics().dispatched == 128


def test_prefetch_one_turns_prefetch_off_whatever_the_task_time() -> None:
    d = make(prefetch=1, prefetch_window=0.004)
    d.worker("w", Ready("s"))
    for i in range(1, 4):
        d.client("c", Request(i, "s", (b"%d" % i,)))
    d.now = 0.0001
    assert dispatched_rids(d.worker("w", Final(100)), "w") == [101]


def test_prefetch_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BrokerConfig(prefetch=0)


def test_plain_worker_takes_one_task_at_a_time_and_plain_client_gets_plain_replies() -> None:
    d = make()
    d.worker("pw", Ready("s", extended=False))
    d.client("pc", Request(0, "s", (b"a",), extended=False))
    d.client("pc", Request(0, "s", (b"b",), extended=False))
    assert d.machine.statistics().pending == 1
    out = d.worker("pw", Final(100, (b"A",)))
    [reply] = [o for o in out if o.peer == "pc"]
    assert not reply.extended
    assert reply.message == Final(-1, (b"A",), "s")


def test_client_disconnect_cancels_its_jobs() -> None:
    d = make()
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s"))
    out = d.client("c", Disconnect())
    assert to(out, "w") == [Cancel(job_id_for("c", 1), 0)]
    assert d.machine.statistics().jobs == 0


def test_silent_heartbeating_client_is_dropped() -> None:
    d = make(heartbeat_interval=1.0, liveness=2)
    d.worker("w", Ready("s"))
    d.client("c", Heartbeat())
    d.client("c", Request(1, "s"))
    d.now = 1.5
    d.worker("w", Heartbeat())
    out = d.tick(2.0)
    assert Cancel(job_id_for("c", 1), 0) in to(out, "w")
    assert d.machine.statistics().clients == 0


def test_heartbeats_go_to_workers_every_interval() -> None:
    d = make(heartbeat_interval=1.0, liveness=3)
    d.worker("w", Ready("s"))
    assert d.machine.next_deadline() == 1.0
    assert to(d.tick(1.0), "w") == [Heartbeat()]
    d.worker("w", Heartbeat())
    assert to(d.tick(1.5), "w") == []


def test_a_worker_that_leaves_with_a_request_to_its_own_service_queued() -> None:
    # The worker is the only one of "b", and also a client of "b": its task
    # goes back to the queue, its own request is cancelled with it as a
    # client, and the service, idle, is forgotten once (not twice: the
    # second time was a KeyError that broke the machine).
    d = make()
    d.worker("w", Ready("b"))
    [request] = to(d.client("w", Request(1, "b", (b"x",))), "w")
    assert isinstance(request, Request)
    assert d.worker("w", Disconnect()) == []
    stats = d.machine.statistics()
    assert (stats.workers, stats.clients, stats.jobs, stats.services) == (0, 0, 0, ())
    assert stats.cancelled == 1
    d.worker("w2", Ready("b"))  # the machine serves on
    [again] = to(d.client("c", Request(1, "b")), "w2")
    assert isinstance(again, Request)


def test_unknown_worker_gets_disconnect() -> None:
    d = make()
    assert to(d.worker("ghost", Final(5)), "ghost") == [Disconnect()]


ILLEGAL = [
    ("client", "c", Request(1, "s")),  # rid 1 already open
    ("client", "c", Request(2, "")),  # no service
    ("client", "x", Request(1, "s", (), "", (), 100)),  # parent not held by x
    ("client", "w", Request(1, "s", (), "9:otherjob1", (), 100)),  # wrong job for parent
    ("client", "c", Waiting(100, True)),  # a worker message on the client hop
    ("client", "c", Ready("s")),
    ("client", "c", Partial(1)),
    ("client", "c", Final(1)),
    ("client", "c", Failure(1, "failed", "x")),
    ("worker", "w", Request(5, "s")),  # a client message on the worker hop
    ("worker", "w", Cancel("1:c1", 0)),
    ("worker", "new", Ready("")),
]


@pytest.mark.parametrize(("hop", "peer", "msg"), ILLEGAL)
def test_illegal_messages_raise_and_change_nothing(hop: str, peer: str, msg: object) -> None:
    d = make()
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s"))
    before = d.machine.statistics()
    with pytest.raises(RemoteProtocolError):
        getattr(d, hop)(peer, msg)
    assert d.machine.statistics() == before
    assert d.machine.outgoing() == []


@pytest.mark.parametrize(("hop", "peer", "msg"), ILLEGAL)
def test_illegal_messages_are_no_sign_of_life(hop: str, peer: str, msg: object) -> None:
    # The sender's liveness, the timers and what follows are as if the
    # message never came: it changed nothing that statistics() does not show.
    d = make(heartbeat_interval=1.0, liveness=3)
    d.worker("w", Ready("s"))
    d.client("c", Heartbeat())
    d.client("c", Request(1, "s"))
    d.client("x", Heartbeat())
    deadline = d.machine.next_deadline()
    d.now = 2.0
    with pytest.raises(RemoteProtocolError):
        getattr(d, hop)(peer, msg)
    assert d.machine.next_deadline() == deadline
    d.tick(3.0)  # everyone silent since 0 expires, the illegal sender too
    stats = d.machine.statistics()
    assert (stats.workers, stats.clients, stats.jobs, stats.cancelled) == (0, 0, 0, 1)


def test_an_illegal_first_message_starts_no_timer() -> None:
    d = make(heartbeat_interval=1.0)
    with pytest.raises(RemoteProtocolError):
        d.worker("w", Ready(""))
    assert d.machine.next_deadline() is None
    d.now = 5.0
    d.worker("w", Ready("s"))
    assert d.machine.next_deadline() == 6.0  # the first heartbeat: from the first valid message


class BrokenIds(IdSource):
    """An id source that fails: an internal error in the middle of handling a request."""

    def __call__(self) -> int:
        raise RuntimeError("the id source broke")


def test_an_internal_error_poisons_the_machine() -> None:
    d = BrokerDriver(BrokerMachine(BrokerConfig(heartbeat_interval=1.0), ids=BrokenIds()))
    d.worker("w", Ready("s"))
    with pytest.raises(RuntimeError, match="the id source broke"):
        d.client("c", Request(1, "s"))
    # Every later call refuses, naming the first error, rather than serve on
    # from a state nobody planned for.
    calls: list[Callable[[], object]] = [
        lambda: d.client("c", Request(2, "s")),
        lambda: d.worker("w", Heartbeat()),
        lambda: d.worker("w2", Ready("s")),
        lambda: d.tick(5.0),
        d.machine.next_deadline,
        d.machine.outgoing,
        d.machine.statistics,
        lambda: d.machine.jobs_of_worker(PeerId("w")),
        lambda: d.machine.workers_of_job(job_id_for("c", 1)),
        lambda: d.machine.step(PeerId("w"), Protocol.WORKER, Heartbeat(), 5.0),
        lambda: d.machine.settle(5.0),
    ]
    for call in calls:
        with pytest.raises(
            LocalProtocolError, match="broken by an earlier internal error"
        ) as info:
            call()
        assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("client", ["new", "known"])  # the general rules; the short path
def test_an_internal_error_in_a_step_poisons_the_machine(client: str) -> None:
    machine = BrokerMachine(BrokerConfig(heartbeat_interval=1.0), ids=BrokenIds())
    machine.step(PeerId("w"), Protocol.WORKER, Ready("s"), 0.0)
    if client == "known":
        machine.step(PeerId("c"), Protocol.CLIENT, Heartbeat(), 0.0)
    with pytest.raises(RuntimeError, match="the id source broke"):
        machine.step(PeerId("c"), Protocol.CLIENT, Request(1, "s"), 0.0)
    with pytest.raises(LocalProtocolError, match="broken by an earlier internal error"):
        machine.step(PeerId("c"), Protocol.CLIENT, Request(2, "s"), 0.0)


def test_a_remote_protocol_error_does_not_poison_the_machine() -> None:
    d = make()
    with pytest.raises(RemoteProtocolError):
        d.worker("w", Ready(""))
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s"))
    assert d.machine.statistics().dispatched == 1


def test_queued_requests_wait_for_busy_workers_but_not_for_absent_ones() -> None:
    d = make(service_timeout=1.0, queue_timeout=5.0, heartbeat_interval=1000.0)
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s", (b"1",)))  # dispatched: w is busy from now on
    d.client("c", Request(2, "s", (b"2",)))  # a client's request, no timeout of its own
    d.client("w", Request(1, "s", (b"3",), job_id_for("c", 1), (), 100))  # a sub-request
    d.client("c", Request(3, "s", (b"4",), timeout=2.0))  # its own timeout applies
    assert to(d.tick(1.0), "c") == []
    [f3] = to(d.tick(2.0), "c")
    assert isinstance(f3, Failure)
    assert f3.rid == 3
    assert "became free" in f3.message
    assert to(d.tick(4.0), "c") == []
    [f2] = to(d.tick(5.0), "c")  # the queue timeout
    assert isinstance(f2, Failure)
    assert f2.rid == 2
    d.tick(60.0)
    assert d.machine.statistics().pending == 1  # the sub-request still waits for w


def test_without_a_queue_timeout_a_busy_service_keeps_requests() -> None:
    d = make(service_timeout=1.0, heartbeat_interval=1000.0)
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s", (b"1",)))
    d.client("c", Request(2, "s", (b"2",)))
    for t in range(1, 100):
        assert not [m for m in to(d.tick(float(t)), "c") if isinstance(m, Failure)]
    assert d.machine.statistics().pending == 1


def test_heartbeats_tell_clients_the_broker_instance() -> None:
    d = BrokerDriver(BrokerMachine(BrokerConfig(heartbeat_interval=1.0), instance="abc"))
    d.client("c", Heartbeat())
    assert to(d.tick(1.0), "c") == [Heartbeat("abc")]
