"""The dispatch rule, checked against a model of it under random traffic.

The broker finds the next worker of a service of many workers without
looking at every worker (a heap of the available ones, kept as their states
change), and that of a service of a few by looking at each (no heap kept).
Both ways, and a service going from one to the other as workers come and
go, are checked (`_SCAN_WORKERS`, the most workers looked at, set low and
high). This test keeps its own plain model of every worker, built only from the
messages exchanged, and checks every dispatch against the rule as the
module docstring states it: the available worker with the fewest computing
tasks, then the fewest tasks, then the least recently used; when none is
available and every worker is blocked, the least loaded (first in least
recently used order) takes it anyway.
"""

from __future__ import annotations

from unittest import mock

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binglide.core import (
    BrokerConfig,
    BrokerMachine,
    Disconnect,
    Final,
    IdSource,
    Ready,
    Request,
    Waiting,
)
from binglide.core import broker as broker_module
from binglide.core.broker import Outgoing

from ..helpers import BrokerDriver


@attrs.define
class Model:
    """What the test knows of each worker, from the messages alone."""

    depth: int
    bound: int
    extended: dict[str, bool] = attrs.Factory(dict)
    held: dict[str, set[int]] = attrs.Factory(dict)
    waiting: dict[str, set[int]] = attrs.Factory(dict)
    order: list[str] = attrs.Factory(list)  # least recently used first

    def rank(self, peer: str) -> int | None:
        held, waiting = len(self.held[peer]), len(self.waiting[peer])
        if not self.extended[peer]:
            return 0 if not held else None
        computing = held - waiting
        if computing < self.depth and waiting < self.bound:
            return computing * (1 << 32) + held
        return None

    def blocked(self, peer: str) -> bool:
        held, waiting = len(self.held[peer]), len(self.waiting[peer])
        return self.extended[peer] and held == waiting and waiting >= self.bound

    def expected(self) -> str | None:
        ranked = [(r, i, p) for i, p in enumerate(self.order) if (r := self.rank(p)) is not None]
        if ranked:
            return min(ranked)[2]
        if self.order and all(self.blocked(p) for p in self.order):
            return min(self.order, key=lambda p: len(self.held[p]))
        return None

    def dispatched(self, peer: str, tid: int) -> None:
        self.held[peer].add(tid)
        self.order.remove(peer)
        self.order.append(peer)


def check(model: Model, out: list[Outgoing]) -> None:
    for o in out:
        if isinstance(o.message, Request) and o.peer in model.held:
            assert o.peer == model.expected(), (o.peer, model)
            model.dispatched(o.peer, o.message.rid)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.integers(0, 0)),
        st.tuples(st.just("register"), st.booleans()),
        st.tuples(st.sampled_from(["final", "wait", "resume", "leave"]), st.integers(0, 1000)),
    ),
    min_size=1,
    max_size=80,
)


# 0: a heap for every service; 2: a heap from three workers on, made and
# dropped as workers come and go; 1000: never a heap.
@pytest.mark.parametrize("scan", [0, 2, broker_module._SCAN_WORKERS, 1000])
@settings(max_examples=150, deadline=None)
@given(depth=st.integers(1, 3), bound=st.integers(1, 3), operations=ops)
def test_every_dispatch_follows_the_rule(
    scan: int, depth: int, bound: int, operations: list[tuple[str, object]]
) -> None:
    with mock.patch.object(broker_module, "_SCAN_WORKERS", scan):
        check_operations(depth, bound, operations)


def check_operations(depth: int, bound: int, operations: list[tuple[str, object]]) -> None:
    """Feed `operations` to a machine and check its every dispatch against the model."""
    config = BrokerConfig(
        prefetch=depth, prefetch_window=None, stack_bound=bound, heartbeat_interval=1e9
    )
    d = BrokerDriver(BrokerMachine(config, ids=IdSource(100)))
    model = Model(depth=depth, bound=bound)
    rid = 0
    names = iter(f"w{i}" for i in range(1000))
    for op, arg in operations:
        if op == "request":
            rid += 1
            out = d.client("c", Request(rid, "s", (b"%d" % rid,)))
        elif op == "register":
            peer = next(names)
            model.extended[peer] = bool(arg)
            model.held[peer], model.waiting[peer] = set(), set()
            model.order.append(peer)
            out = d.worker(peer, Ready("s", extended=bool(arg)))
        else:
            held = sorted((p, t) for p in model.order for t in model.held[p])
            if not held:
                continue
            peer, tid = held[int(arg) % len(held)]  # type: ignore[call-overload]
            if op == "final":
                model.held[peer].discard(tid)
                model.waiting[peer].discard(tid)
                out = d.worker(peer, Final(tid, (b"done",)))
            elif op == "leave":
                del model.extended[peer], model.held[peer], model.waiting[peer]
                model.order.remove(peer)
                out = d.worker(peer, Disconnect())
            elif not model.extended[peer]:
                continue  # plain workers know no WAITING
            else:
                waiting = op == "wait"
                (model.waiting[peer].add if waiting else model.waiting[peer].discard)(tid)
                out = d.worker(peer, Waiting(tid, waiting))
        check(model, out)
        # A heap of the ready, where one is kept, counts the blocked workers
        # (what an overflow goes by) as the model does.
        svc = d.machine._services.get("s")
        if svc is not None and svc.ready is not None:
            assert svc.blocked == sum(model.blocked(p) for p in model.order)
