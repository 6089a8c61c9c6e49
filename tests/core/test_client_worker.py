"""The client and worker machines, fed by hand (no I/O)."""

from __future__ import annotations

import pytest

from binglide.core import (
    BrokerLost,
    Cancel,
    ClientMachine,
    Disconnect,
    Failure,
    Final,
    Heartbeat,
    IdSource,
    Partial,
    Ready,
    Reply,
    Request,
    TaskCancelled,
    TaskStarted,
    Waiting,
    WorkerLost,
    WorkerMachine,
)
from binglide.errors import LocalProtocolError, RemoteProtocolError


def test_client_routes_replies_and_closes_on_final() -> None:
    m = ClientMachine(ids=IdSource(5))
    assert m.request("s", (b"x",)) == 5
    assert m.outgoing() == [Request(5, "s", (b"x",))]
    assert m.receive(Partial(5, (b"p",))) == Reply(5, Partial(5, (b"p",)))
    assert m.receive(Final(5)) == Reply(5, Final(5))
    assert m.open_requests == ()
    assert m.receive(Final(5)) is None  # a duplicate goes nowhere


def test_client_cancel_closes_at_once_and_drops_later_reports() -> None:
    m = ClientMachine()
    rid = m.request("s")
    m.outgoing()
    assert m.cancel(rid)
    assert m.outgoing() == [Cancel(rid=rid)]
    assert m.receive(Partial(rid)) is None
    assert m.receive(Failure(rid, "cancelled", "x")) is None
    assert not m.cancel(rid)


def test_client_heartbeats_and_notices_a_silent_broker_once() -> None:
    m = ClientMachine(heartbeat_interval=1.0)
    assert m.handle_timer(0.0) is None
    assert m.outgoing() == [Heartbeat()]
    assert m.handle_timer(0.5) is None
    assert m.outgoing() == []
    assert isinstance(m.handle_timer(3.0), BrokerLost)
    m.outgoing()
    assert m.handle_timer(3.1) is None  # reported once


def test_client_resends_open_requests_after_the_broker_returns() -> None:
    m = ClientMachine()
    rid = m.request("s", (b"x",))
    m.outgoing()
    assert isinstance(m.receive(Disconnect()), BrokerLost)
    m.resend_open()
    assert m.outgoing() == [Request(rid, "s", (b"x",))]


def test_client_refuses_bad_use_and_bad_messages() -> None:
    m = ClientMachine()
    with pytest.raises(LocalProtocolError):
        m.request("")
    with pytest.raises(RemoteProtocolError):
        m.receive(Ready("s"))


def test_worker_announces_itself_and_runs_tasks() -> None:
    w = WorkerMachine("s")
    assert w.outgoing() == [Ready("s")]
    events = w.receive(Request(9, "s", (b"b",), "1:c1", ("s/x",)))
    assert events == [TaskStarted(9, "1:c1", ("s/x",), (b"b",))]  # type: ignore[arg-type]
    assert w.report(9, (b"p",), final=False)
    w.waiting(9, True)
    w.waiting(9, True)  # no change, no message
    w.waiting(9, False)
    assert w.report(9, (b"f",), final=True)
    assert w.outgoing() == [
        Partial(9, (b"p",)),
        Waiting(9, True),
        Waiting(9, False),
        Final(9, (b"f",)),
    ]
    assert not w.report(9, (b"again",), final=True)


def test_worker_filters_cancellations_by_job() -> None:
    w = WorkerMachine("s")
    w.receive(Request(1, "s", (), "1:a1"))
    w.receive(Request(2, "s", (), "1:a1"))
    w.receive(Request(3, "s", (), "1:b1"))
    assert w.receive(Cancel("1:zz", 0)) == []
    assert w.receive(Cancel("1:a1", 2)) == [TaskCancelled(2)]
    assert w.receive(Cancel("1:a1", 0)) == [TaskCancelled(1)]
    assert set(w.tasks) == {3}
    assert not w.fail(1, "failed", "too late")


def test_worker_refuses_a_reused_task_id() -> None:
    w = WorkerMachine("s")
    w.receive(Request(1, "s"))
    with pytest.raises(RemoteProtocolError):
        w.receive(Request(1, "s"))
    with pytest.raises(RemoteProtocolError):
        w.receive(Final(1))


def test_worker_registers_again_when_the_broker_is_lost() -> None:
    w = WorkerMachine("s", heartbeat_interval=1.0)
    w.outgoing()
    w.receive(Request(1, "s"))
    assert w.handle_timer(0.0) is None
    assert isinstance(w.handle_timer(3.0), WorkerLost)
    assert w.tasks == {}
    assert Ready("s") in w.outgoing()


def test_client_reissues_open_requests_when_the_broker_instance_changes() -> None:
    m = ClientMachine()
    rid = m.request("s", (b"x",))
    m.outgoing()
    assert m.receive(Heartbeat("first")) is None
    assert m.receive(Heartbeat("first")) is None
    assert m.outgoing() == []
    lost = m.receive(Heartbeat("second"))  # restarted faster than the liveness bound
    assert isinstance(lost, BrokerLost)
    assert lost.reissued
    assert m.outgoing() == [Request(rid, "s", (b"x",))]
    assert m.receive(Heartbeat("second")) is None
