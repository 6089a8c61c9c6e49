"""The broker's short paths for the usual REQUEST and FINAL against its general rules.

`BrokerMachine` takes the usual REQUEST (a known extended client's, not a
sub-request, to a service with nothing queued and a worker ready) and the
usual FINAL (of a task without sub-requests, from its worker) on short
paths, and every other message through the general rules. Here two
machines, one with the short paths and one without, get the same random
traffic (clients of every kind, workers that register, report, wait, die
and misbehave, sub-requests, cancellations, time passing); after every
message they must have raised the same error or none, sent the same
messages, and be in the same state, every table and counter of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any
from unittest import mock

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binglide.core import (
    BrokerConfig,
    BrokerMachine,
    Cancel,
    Disconnect,
    Failure,
    Final,
    Heartbeat,
    IdSource,
    Message,
    Partial,
    PeerId,
    Protocol,
    Ready,
    Request,
    Waiting,
)
from binglide.core import broker as broker_module
from binglide.errors import RemoteProtocolError

#: Who takes part: (peer, hop protocol). Workers serve "a" (w1, w2, extended),
#: "b" (w3, plain MDP/0.2; w4, MDP/0.1); w5 registers for a service nobody asks.
CLIENTS = ["c1", "c2", "p1", "o1"]
WORKERS = ["w1", "w2", "w3", "w4", "w5"]
SERVICE = {"w1": "a", "w2": "a", "w3": "b", "w4": "b", "w5": "z"}
SERVICES = ["a", "a", "a", "b", "b", "c", "", "mmi.service"]


def _value(obj: Any) -> Any:
    """`obj` as plain data to compare: attrs instances and containers, recursively."""
    if attrs.has(type(obj)):
        return (type(obj).__name__, _value(attrs.asdict(obj, recurse=False)))
    if isinstance(obj, dict):
        return [(_value(k), _value(v)) for k, v in obj.items()]  # order counts
    if isinstance(obj, (list, tuple)):
        return [_value(v) for v in obj]
    if isinstance(obj, set):
        return sorted(obj)
    if isinstance(obj, hashlib.blake2b):  # a service's hasher: what it has taken in
        return obj.hexdigest()
    return obj


def snapshot(machine: BrokerMachine) -> Any:
    """Every field of the machine's state (not its settings, nor the switch compared)."""
    ignored = ("config", "_ids", "_take_id", "_quick", "_deadline_stale")
    state = {k: v for k, v in vars(machine).items() if k not in ignored}
    state["next id"] = machine._ids()  # draws one from each machine alike
    return _value(state)


def check_queues_wait_for_workers(machine: BrokerMachine) -> None:
    """After every message, a service with tasks queued has no worker that may take one.

    (What the short path of a REQUEST that queues relies on: it does not
    dispatch the service, which could give nothing.) No worker has an
    available verdict, and not every worker is blocked (an overflow).
    """
    for svc in machine._services.values():
        if not svc.pending:
            continue
        workers = [machine._workers[p] for p in svc.workers]
        verdicts = [machine._verdict(w, svc.depth) for w in workers]
        assert all(v < 0 for v in verdicts), (svc.name, verdicts)
        assert not workers or not all(v == broker_module._BLOCKED for v in verdicts)


def machines(**config: Any) -> tuple[BrokerMachine, BrokerMachine]:
    settings: dict[str, Any] = {"heartbeat_interval": 1.0, "liveness": 3, "stack_bound": 2}
    cfg = BrokerConfig(**{**settings, "prefetch": 3, **config})
    quick, general = BrokerMachine(cfg, ids=IdSource(1)), BrokerMachine(cfg, ids=IdSource(1))
    assert quick._quick
    general._quick = False
    return quick, general


def feed(machine: BrokerMachine, step: tuple[Any, ...]) -> tuple[Any, ...]:
    """Apply `step`; return what came of it: the error's type or None, the output."""
    error = None
    if step[0] == "tick":
        machine.handle_timer(step[1])
    else:
        _, peer, protocol, msg, now = step
        try:
            machine.receive(PeerId(peer), protocol, msg, now)
        except RemoteProtocolError as exc:
            error = type(exc)
    deadline = machine.next_deadline()
    # The deadline kept between messages is the one worked out afresh.
    machine._deadline_stale = True
    assert machine.next_deadline() == deadline
    return error, machine.outgoing(), deadline, machine.notices()


def step(
    draw: st.DrawFn, now: float, held: dict[str, list[int]], ancestry: dict[int, Sequence[str]]
) -> tuple[Any, ...]:
    """One step: a message from a client or a worker, or a timer tick.

    `held` is what each worker was given (task ids), so that most reports
    answer a task their sender holds and most sub-requests name one as their
    parent, with its `ancestry` (as a worker does).
    """
    kinds = ["request"] * 5 + ["report"] * 5 + ["worker", "client", "client", "tick"]
    kind = draw(st.sampled_from(kinds))
    if kind == "tick":
        return ("tick", now)
    if kind == "request":
        peer = draw(st.sampled_from([*CLIENTS, "w1", "w1", "w2", "w3"]))  # and sub-requests
        service = draw(st.sampled_from(SERVICES))
        payload = (draw(st.sampled_from([b"x", b"y", b"{}"])),)
        # p1 speaks plain MDP/0.2 and sometimes binglide's form (so a plain
        # client becomes an extended one); o1 speaks MDP/0.1.
        if peer == "o1" or (peer == "p1" and draw(st.integers(0, 2))):
            msg: Message = Request(0, service, payload, extended=False)
        else:
            rid = draw(st.integers(0, 8))
            mine = held.get(peer, [])[-2:]
            sub = draw(st.integers(0, 3)) < (2 if mine else 1)
            parent = draw(st.sampled_from([*mine, *mine, *mine, 0, 77])) if sub else 0
            lineage = draw(
                st.sampled_from([ancestry.get(parent, ()), ("a/1",), ("x/2", "y/3"), ("a/1",) * 3])
            )
            lineage = lineage if sub else ()
            job = draw(st.sampled_from(["", "", "", "9:elsewhere1"]))
            timeout = draw(st.sampled_from([None, None, 0.5]))
            msg = Request(rid, service, payload, job, lineage, parent, timeout)
        protocol = Protocol.CLIENT_01 if peer == "o1" else Protocol.CLIENT
        return ("msg", peer, protocol, msg, now)
    if kind == "client":
        peer = draw(st.sampled_from([*CLIENTS, "w1", "w2"]))
        protocol = Protocol.CLIENT_01 if peer == "o1" else Protocol.CLIENT
        cancel = Cancel(rid=draw(st.integers(1, 8)))
        choices: list[Message] = [Heartbeat(), cancel, cancel, Disconnect()]
        msg = draw(st.sampled_from(choices))
        return ("msg", peer, protocol, msg, now)
    peer = draw(st.sampled_from(WORKERS))
    protocol = Protocol.WORKER_01 if peer == "w4" else Protocol.WORKER
    if draw(st.integers(0, 40)) == 0:  # the wrong version: unexpected, DISCONNECT
        protocol = Protocol.WORKER_01 if protocol is Protocol.WORKER else Protocol.WORKER
    extended = peer in ("w1", "w2", "w5")
    if kind == "worker":
        ready = Ready(SERVICE[peer], extended)
        choices = [ready, ready, Heartbeat(), Heartbeat(), Disconnect()]
        msg = draw(st.sampled_from(choices))
        return ("msg", peer, protocol, msg, now)
    tid = draw(st.sampled_from(held.get(peer, [])[:3]) if held.get(peer) else st.integers(1, 20))
    if draw(st.integers(0, 9)) == 0:
        tid = draw(st.integers(1, 20))  # anyone's, or nobody's
    reports: list[Message] = [
        Final(tid, (b"r",)),
        Final(tid, (b"r",)),
        Final(tid, (b"r",)),
        Partial(tid, (b"p",)),
        Failure(tid, "failed", "boom", "ValueError"),
        Waiting(tid, True),
        Waiting(tid, False),
    ]
    msg = draw(st.sampled_from(reports))
    return ("msg", peer, protocol, msg, now)


# A service of a few workers has no heap of the ready (the usual case), one
# of many has one (`_SCAN_WORKERS`: 0 makes one for every service).
@pytest.mark.parametrize("scan", [broker_module._SCAN_WORKERS, 0])
@settings(max_examples=150, deadline=None)
@given(
    st.data(),
    st.sampled_from(
        [
            {},
            {"prefetch_window": None},
            {"max_depth": 2},
            {"max_depth": 0},
            {"max_queued": 2},
            {"stack_bound": 0},  # an idle extended worker is blocked
        ]
    ),
)
def test_the_short_paths_do_what_the_general_rules_do(
    scan: int, data: st.DataObject, config: dict[str, Any]
) -> None:
    with mock.patch.object(broker_module, "_SCAN_WORKERS", scan):
        compare_under_random_traffic(data, config)


def compare_under_random_traffic(data: st.DataObject, config: dict[str, Any]) -> None:
    """Feed the same random traffic to a machine with short paths and one without."""
    quick, general = machines(**config)
    held: dict[str, list[int]] = {}
    ancestry: dict[int, Sequence[str]] = {}
    now = 0.0
    steps: list[tuple[Any, ...]] = [
        ("msg", "w1", Protocol.WORKER, Ready("a"), now),
        ("msg", "w2", Protocol.WORKER, Ready("a"), now),
        ("msg", "w3", Protocol.WORKER, Ready("b", extended=False), now),
        ("msg", "c1", Protocol.CLIENT, Heartbeat(), now),
        ("msg", "w1", Protocol.CLIENT, Heartbeat(), now),  # a client as well
        ("msg", "w2", Protocol.CLIENT, Heartbeat(), now),
        ("msg", "c2", Protocol.CLIENT, Request(99, "c"), now),
    ]
    for prelude in steps:
        assert feed(quick, prelude) == feed(general, prelude)
    for _ in range(data.draw(st.integers(1, 60))):
        now += data.draw(st.sampled_from([0.0, 0.0, 0.0, 0.001, 0.3, 2.0]))
        steps.append(data.draw(st.composite(step)(now, held, ancestry)))
        done = feed(quick, steps[-1])
        assert done == feed(general, steps[-1]), steps
        assert snapshot(quick) == snapshot(general), steps
        check_queues_wait_for_workers(general)
        for out in done[1]:
            if isinstance(out.message, Request) and out.peer in SERVICE:
                held.setdefault(out.peer, []).append(out.message.rid)
                ancestry[out.message.rid] = out.message.ancestry
        for peer, tids in held.items():
            tids[:] = [t for t in tids if t in quick._tasks and quick._tasks[t].worker == peer]


def test_the_usual_request_and_final_take_the_short_paths(monkeypatch: Any) -> None:
    # The comparison above means something only if the short paths run: they
    # do for the usual messages, and the general rules do not.
    quick, _ = machines()
    taken: list[str] = []
    for name in ("_quick_request", "_quick_final"):
        original = getattr(quick, name)

        def spy(*args: Any, _original: Any = original, _name: str = name) -> bool:
            done: bool = _original(*args)
            if done:
                taken.append(_name)
            return done

        monkeypatch.setattr(quick, name, spy)
    general_rules = ["_on_request", "_on_report"]
    for name in general_rules:
        monkeypatch.setattr(quick, name, lambda *a, _n=name: pytest.fail(f"{_n} ran"))
    quick.receive(PeerId("w"), Protocol.WORKER, Ready("s"), 0.0)
    quick.receive(PeerId("c"), Protocol.CLIENT, Heartbeat(), 0.0)
    assert [o.message for o in quick.outgoing()] == [Heartbeat("")]
    for rid in (1, 2):
        quick.receive(PeerId("c"), Protocol.CLIENT, Request(rid, "s", (b"x",)), 0.1)
        [out] = quick.outgoing()
        assert isinstance(out.message, Request)
        quick.receive(PeerId("w"), Protocol.WORKER, Final(out.message.rid, (b"y",)), 0.2)
        [reply] = quick.outgoing()
        assert reply.message == Final(rid, (b"y",), "s")
    assert taken == ["_quick_request", "_quick_final"] * 2


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_settle_and_step_do_what_the_calls_of_a_turn_do(data: st.DataObject) -> None:
    # `settle` is one call for what a runtime's turn asked in four: the
    # deadline, the timers if due, the output and the notices. Under random
    # traffic (ticks left to the turn: timers run when due), a machine
    # settled after each message and one asked call by call stay alike.
    # `step` is `receive` then `settle` in one call (what the in-process
    # runtime takes a message with): a third machine takes each message so.
    one, calls = machines()
    stepped, _ = machines()
    calls._quick = one._quick = True
    held: dict[str, list[int]] = {}
    ancestry: dict[int, Sequence[str]] = {}
    now = 0.0
    steps: list[tuple[Any, ...]] = [
        ("msg", "w1", Protocol.WORKER, Ready("a"), now),
        ("msg", "w3", Protocol.WORKER, Ready("b", extended=False), now),
        ("msg", "c1", Protocol.CLIENT, Heartbeat(), now),
        ("msg", "w1", Protocol.CLIENT, Heartbeat(), now),
    ]
    for _ in range(data.draw(st.integers(1, 60))):
        now += data.draw(st.sampled_from([0.0, 0.0, 0.001, 0.3, 2.0, 5.0]))
        steps.append(data.draw(st.composite(step)(now, held, ancestry)))
    for kind, *rest in steps:
        now = rest[-1]
        results: list[tuple[Any, ...]] = []
        for machine in (one, calls, stepped):
            error = None
            if machine is stepped and kind == "msg":
                try:
                    results.append((None, *stepped.step(PeerId(rest[0]), rest[1], rest[2], now)))
                except RemoteProtocolError as exc:
                    # Refused, nothing changed, nothing settled: the caller settles.
                    results.append((type(exc), *stepped.settle(now)))
                continue
            if machine is stepped:
                results.append((None, *stepped.settle(now)))
                continue
            if kind == "msg":
                try:
                    machine.receive(PeerId(rest[0]), rest[1], rest[2], now)
                except RemoteProtocolError as exc:
                    error = type(exc)
            if machine is one:
                results.append((error, *one.settle(now)))
                continue
            deadline = calls.next_deadline()
            if deadline is not None and deadline <= now:
                calls.handle_timer(now)
                deadline = calls.next_deadline()
            results.append((error, calls.outgoing(), deadline, calls.notices()))
        assert results[0] == results[1] == results[2], steps
        assert snapshot(one) == snapshot(calls) == snapshot(stepped), steps
        for out in results[0][1]:
            if isinstance(out.message, Request) and out.peer in SERVICE:
                held.setdefault(out.peer, []).append(out.message.rid)
                ancestry[out.message.rid] = out.message.ancestry
        for peer, tids in held.items():
            tids[:] = [t for t in tids if t in one._tasks and one._tasks[t].worker == peer]
