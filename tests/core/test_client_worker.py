"""The client and worker machines, fed by hand (no I/O)."""

from __future__ import annotations

import pytest

from binglide.core import (
    BrokerLost,
    BrokerPlain,
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


def test_a_worker_machine_starts_a_task_as_receive_does_without_its_event() -> None:
    # `start` is `receive` of a REQUEST less the `TaskStarted`: the task is
    # held (reports for it go out, a second REQUEST of its id is refused, a
    # CANCEL of its job reaches it), and the broker was heard.
    w = WorkerMachine("s", heartbeat_interval=1.0)
    assert w.handle_timer(0.0) is None  # silent from 3.0 on
    w.outgoing()
    w.start(Request(9, "s", (b"b",), "1:c1", ("s/x",)), 0.0)
    assert w.tasks == {9: "1:c1"}
    with pytest.raises(RemoteProtocolError, match="already held"):
        w.start(Request(9, "s", (b"b",), "1:c1"), 0.0)
    with pytest.raises(RemoteProtocolError, match="already held"):
        w.receive(Request(9, "s", (b"b",), "1:c1"), 0.0)
    w.start(Request(10, "s", (), "1:c1"), 2.5)  # heard at 2.5: alive until 2.5 + 3 s
    assert w.handle_timer(5.0) is None  # (unheard, it would have been lost at 3.0)
    assert w.receive(Cancel(job="1:c1", rid=10)) == [TaskCancelled(10)]
    assert w.report(9, (b"f",), True)
    assert w.outgoing()[-1] == Final(9, (b"f",))
    assert w.tasks == {}


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


# -- through a plain MDP/0.2 broker ---------------------------------------------------------


def plain_final(service: str, *body: bytes) -> Final:
    """A FINAL as a plain MDP/0.2 broker sends it: no request id."""
    return Final(0, body, service)


def requests(m: ClientMachine) -> list[object]:
    """What `m` sends, heartbeats left out."""
    return [msg for msg in m.outgoing() if not isinstance(msg, Heartbeat)]


def fallen_back() -> tuple[ClientMachine, list[int]]:
    m = ClientMachine(heartbeat_interval=1.0, plain_fallback=True)
    rids = [m.request("a", (b"1",)), m.request("b", (b"2",), timeout=5.0)]
    m.handle_timer(0.0)
    m.outgoing()  # the XREQUESTs and a HEARTBEAT, which a plain broker drops
    outcome = m.handle_timer(3.0)
    assert isinstance(outcome, BrokerPlain)
    assert "plain MDP/0.2" in outcome.reason
    assert "cancellation does not reach workers" in outcome.unavailable[0]
    assert m.plain_broker
    return m, rids


def test_a_silent_broker_is_taken_for_plain_and_requests_go_one_at_a_time() -> None:
    m, (a, b) = fallen_back()
    assert requests(m) == [Request(0, "a", (b"1",), extended=False)]
    assert m.receive(Partial(0, (b"p",), "a")) == Reply(a, Partial(a, (b"p",), "a"))
    assert m.receive(plain_final("a", b"f")) == Reply(a, Final(a, (b"f",), "a"))
    # Only now the next one goes.
    assert requests(m) == [Request(0, "b", (b"2",), extended=False)]
    c = m.request("c")
    assert requests(m) == []  # behind b
    assert m.receive(plain_final("b")) == Reply(b, Final(b, (), "b"))
    assert requests(m) == [Request(0, "c", extended=False)]
    assert m.open_requests == (c,)
    # A plain broker never heartbeats: its silence is no loss.
    assert m.handle_timer(100.0) is None


def test_through_a_plain_broker_a_cancel_stays_local() -> None:
    m, (a, b) = fallen_back()
    m.outgoing()
    c = m.request("c")
    assert m.cancel(c)  # not sent yet: dropped
    assert m.cancel(a)  # in flight: nothing to send, its replies are dropped
    assert requests(m) == []
    assert m.receive(Partial(0, (b"p",), "a")) is None
    assert m.receive(plain_final("a")) is None
    assert requests(m) == [Request(0, "b", (b"2",), extended=False)]
    assert m.open_requests == (b,)


def test_through_a_plain_broker_a_marked_final_is_a_failure() -> None:
    m, (a, _) = fallen_back()
    body = b'{"kind":"unavailable","message":"no worker","remote_type":"","cycle":[]}'
    outcome = m.receive(plain_final("a", b"binglide-error", body))
    assert outcome == Reply(a, Failure(a, "unavailable", "no worker", "", (), "a"))


def test_a_plain_reply_for_another_service_is_refused() -> None:
    m, _ = fallen_back()
    with pytest.raises(RemoteProtocolError, match="for service 'other'"):
        m.receive(plain_final("other"))


def test_a_binglide_broker_heard_at_last_switches_back_and_reissues() -> None:
    m, (a, b) = fallen_back()
    m.outgoing()
    lost = m.receive(Heartbeat("abc"))
    assert isinstance(lost, BrokerLost)
    assert lost.reissued
    assert not m.plain_broker
    assert requests(m) == [Request(a, "a", (b"1",)), Request(b, "b", (b"2",), timeout=5.0)]
    assert m.cancel(a)
    assert requests(m) == [Cancel(rid=a)]


def test_a_broker_that_answered_once_is_lost_not_plain() -> None:
    m = ClientMachine(heartbeat_interval=1.0, plain_fallback=True)
    m.handle_timer(0.0)
    m.receive(Heartbeat("abc"), 0.5)
    assert isinstance(m.handle_timer(3.5), BrokerLost)
    assert not m.plain_broker
