"""The broker machine with every Majordomo peer: MDP/0.1 and 0.2, 8/MMI, churn, liveness."""

from __future__ import annotations

import itertools
import json
import sys

import pytest

from binglide.core import (
    BrokerConfig,
    BrokerMachine,
    Cancel,
    Disconnect,
    Failure,
    Final,
    Heartbeat,
    IdSource,
    Outgoing,
    Partial,
    Protocol,
    Ready,
    Request,
    Waiting,
    job_id_for,
)

from ..helpers import BrokerDriver, to

V1_CLIENT, V1_WORKER = Protocol.CLIENT_01, Protocol.WORKER_01


def make(**config: object) -> BrokerDriver:
    config.setdefault("prefetch", 1)
    return BrokerDriver(BrokerMachine(BrokerConfig(**config), ids=IdSource(100)))  # type: ignore[arg-type]


def plain(service: str, *body: bytes) -> Request:
    return Request(0, service, body, extended=False)


def sent(out: list[Outgoing], peer: str) -> list[Outgoing]:
    return [o for o in out if o.peer == peer]


# -- MDP/0.1 and MDP/0.2 side by side, bridged --------------------------------------------


def test_an_mdp01_client_reaches_a_binglide_worker_and_gets_only_the_final() -> None:
    d = make()
    d.worker("w", Ready("s"))
    [req] = to(d.receive("c1", V1_CLIENT, plain("s", b"body")), "w")
    assert isinstance(req, Request)
    assert req.payload == (b"body",)  # bodies pass through untouched
    # MDP/0.1 has no PARTIAL: the client hears nothing until the FINAL.
    assert d.worker("w", Partial(req.rid, (b"p",))) == []
    [reply] = sent(d.worker("w", Final(req.rid, (b"f",))), "c1")
    assert (reply.protocol, reply.message, reply.extended) == (
        V1_CLIENT,
        Final(-1, (b"f",), "s"),
        False,
    )


def test_an_mdp01_worker_answers_an_extended_and_a_plain_client() -> None:
    d = make()
    d.receive("w1", V1_WORKER, Ready("s", extended=False))
    [req] = sent(d.client("c", Request(7, "s", (b"x",))), "w1")
    assert req.protocol is V1_WORKER
    assert not req.extended
    assert isinstance(req.message, Request)
    # Its one REPLY is the FINAL.
    [reply] = sent(d.receive("w1", V1_WORKER, Final(req.message.rid, (b"X",))), "c")
    assert (reply.protocol, reply.message) == (Protocol.CLIENT, Final(7, (b"X",), "s"))
    out = d.client("pc", plain("s", b"y"))
    [req] = sent(out, "w1")
    assert isinstance(req.message, Request)
    [reply] = sent(d.receive("w1", V1_WORKER, Final(req.message.rid, (b"Y",))), "pc")
    assert (reply.protocol, reply.extended) == (Protocol.CLIENT, False)


def test_an_mdp01_worker_gets_heartbeats_disconnects_and_no_cancel_in_its_own_version() -> None:
    d = make(heartbeat_interval=1.0)
    d.receive("w1", V1_WORKER, Ready("s", extended=False))
    d.client("c", Request(1, "s"))
    out = d.client("c", Cancel(rid=1))
    assert to(out, "w1") == []  # RFC 7 has no CANCEL: its late REPLY is dropped
    [beat] = sent(d.tick(1.0), "w1")
    assert (beat.protocol, beat.message) == (V1_WORKER, Heartbeat())
    # A worker that never said READY gets DISCONNECT in the version it spoke.
    [bye] = sent(d.receive("ghost", V1_WORKER, Heartbeat()), "ghost")
    assert (bye.protocol, bye.message) == (V1_WORKER, Disconnect())


def test_an_mdp01_ready_is_plain_whatever_it_says() -> None:
    d = make(prefetch=4, prefetch_window=None)
    d.receive("w1", V1_WORKER, Ready("s", extended=True))
    d.client("c", Request(1, "s"))
    d.client("c", Request(2, "s"))
    assert d.machine.statistics().pending == 1  # one task at a time


# -- 8/MMI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [Protocol.CLIENT, V1_CLIENT])
def test_mmi_service_answers_200_or_404_at_once(protocol: Protocol) -> None:
    d = make()
    d.worker("w", Ready("echo"))
    for name, code in ((b"echo", b"200"), (b"nosuch", b"404"), (b"\xff", b"404")):
        [out] = sent(d.receive("c", protocol, plain("mmi.service", name)), "c")
        assert out.protocol is protocol
        assert isinstance(out.message, Final)
        assert (out.message.payload, out.message.service) == ((code,), "mmi.service")
    [reply] = to(d.client("x", Request(5, "mmi.service", (b"echo",))), "x")
    assert reply == Final(5, (b"200",), "mmi.service")
    # Answered by the broker: no task, no client record, no queue.
    stats = d.machine.statistics()
    assert (stats.pending, stats.jobs, stats.clients) == (0, 0, 0)
    assert [s.name for s in stats.services] == ["echo"]


def test_mmi_services_lists_the_registered_services_and_their_workers() -> None:
    d = make()
    d.worker("w1", Ready("echo"))
    d.worker("w2", Ready("echo"))
    d.receive("w3", V1_WORKER, Ready("upper", extended=False))
    d.client("c", Request(1, "queued-only"))  # no worker: not listed
    [reply] = to(d.client("c", Request(2, "mmi.services")), "c")
    assert isinstance(reply, Final)
    assert json.loads(bytes(reply.payload[0])) == {"echo": 2, "upper": 1}


def test_other_mmi_services_answer_501_and_a_worker_may_not_take_mmi_names() -> None:
    d = make()
    [reply] = to(d.client("c", plain("mmi.nosuch")), "c")
    assert reply == Final(-1, (b"501",), "mmi.nosuch")
    [bye] = to(d.worker("w", Ready("mmi.service")), "w")
    assert bye == Disconnect()
    stats = d.machine.statistics()
    assert (stats.workers, stats.disconnected) == (0, 1)
    [reply] = to(d.client("c", plain("mmi.service", b"mmi.service")), "c")
    assert isinstance(reply, Final)
    assert reply.payload == (b"404",)


# -- DISCONNECT for unexpected commands (RFC 7 and 18) ------------------------------------


def test_a_second_ready_gets_disconnect_and_the_tasks_go_elsewhere() -> None:
    d = make()
    d.worker("w", Ready("s"))
    d.worker("w2", Ready("s"))
    d.client("c", Request(1, "s"))  # 100 on w
    out = d.worker("w", Ready("s"))
    assert to(out, "w") == [Disconnect()]
    [req] = to(out, "w2")  # re-issued at once to the other worker
    assert isinstance(req, Request)
    assert req.rid == 100
    stats = d.machine.statistics()
    assert (stats.workers, stats.requeued, stats.disconnected) == (1, 1, 1)
    # Nothing more goes to it, and what it says now is answered by DISCONNECT.
    assert to(d.worker("w", Final(100)), "w") == [Disconnect()]
    assert to(d.tick(100.0), "w") == []


@pytest.mark.parametrize("msg", [Waiting(100, True), Failure(100, "failed", "x")])
def test_a_plain_worker_sending_binglide_commands_is_disconnected(msg: object) -> None:
    d = make()
    d.worker("pw", Ready("s", extended=False))
    d.client("c", Request(1, "s"))
    assert to(d.worker("pw", msg), "pw") == [Disconnect()]  # type: ignore[arg-type]
    assert d.machine.statistics().workers == 0


def test_a_worker_switching_protocol_version_is_disconnected() -> None:
    d = make()
    d.worker("w", Ready("s", extended=False))
    [bye] = sent(d.receive("w", V1_WORKER, Heartbeat()), "w")
    assert (bye.protocol, bye.message) == (V1_WORKER, Disconnect())
    assert d.machine.statistics().workers == 0


def test_a_disconnect_from_an_unknown_worker_is_quietly_taken() -> None:
    d = make()
    assert d.worker("ghost", Disconnect()) == []
    assert d.machine.statistics().disconnected == 0


# -- rid 0 ------------------------------------------------------------------------------------


def test_an_extended_request_numbered_zero_is_refused_at_once() -> None:
    d = make()
    d.worker("w", Ready("s"))
    [failure] = to(d.client("c", Request(0, "s", (b"x",))), "c")
    assert isinstance(failure, Failure)
    assert (failure.rid, failure.kind, failure.service) == (0, "request", "s")
    assert "request id 0 is reserved" in failure.message
    stats = d.machine.statistics()
    assert (stats.pending, stats.dispatched, stats.clients) == (0, 0, 0)


# -- per-peer liveness ------------------------------------------------------------------------


def test_plain_peers_beating_every_2_5_s_live_while_binglide_peers_die_after_3_s() -> None:
    d = make()  # the defaults: 1 s x 3 for binglide's peers, 2.5 s x 3 for plain ones
    d.worker("ext", Ready("s"))
    d.worker("plain", Ready("s", extended=False))
    d.receive("v1", V1_WORKER, Ready("s", extended=False))
    for t in (2.5, 5.0, 7.5, 10.0):
        d.tick(t - 0.01)
        d.now = t
        d.worker("plain", Heartbeat())
        d.receive("v1", V1_WORKER, Heartbeat())
    [svc] = d.machine.statistics().services
    assert svc.workers == 2  # the extended one, silent since 0, died at 3 s
    d.tick(17.5)  # 7.5 s of silence
    assert d.machine.statistics().workers == 0


def test_a_plain_peer_is_never_given_less_time_than_binglide_peers() -> None:
    d = make(heartbeat_interval=5.0, plain_heartbeat_interval=2.5, liveness=3)
    d.worker("plain", Ready("s", extended=False))
    d.tick(14.9)
    assert d.machine.statistics().workers == 1
    d.tick(15.0)
    assert d.machine.statistics().workers == 0


# -- bounded state under churn -------------------------------------------------------------


def test_a_service_nobody_serves_is_forgotten_with_its_last_request() -> None:
    d = make(service_timeout=1.0)
    d.client("c", Request(1, "typo"))
    assert [s.name for s in d.machine.statistics().services] == ["typo"]
    d.tick(1.0)
    stats = d.machine.statistics()
    assert (stats.services, stats.clients, stats.failed) == (
        (),
        1,
        1,
    )  # the binglide client stays until DISCONNECT


def test_a_service_is_forgotten_when_its_last_worker_leaves_with_nothing_queued() -> None:
    d = make()
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s"))
    d.worker("w", Disconnect())  # its task goes back to the queue: the service stays
    assert [s.pending for s in d.machine.statistics().services] == [1]
    d.client("c", Cancel(rid=1))
    assert d.machine.statistics().services == ()
    d.worker("w2", Ready("t"))
    d.worker("w2", Disconnect())
    assert d.machine.statistics().services == ()


def test_a_client_without_heartbeats_is_forgotten_when_nothing_is_in_flight() -> None:
    d = make()
    d.worker("w", Ready("s", extended=False))
    out = d.client("pc", plain("s", b"a"))
    [req] = to(out, "w")
    assert d.machine.statistics().clients == 1
    assert isinstance(req, Request)
    d.worker("w", Final(req.rid, (b"A",)))
    assert d.machine.statistics().clients == 0
    # Its job ids never repeat: the broker numbers plain requests once and for all.
    d.client("pc", plain("s", b"b"))
    assert d.machine.workers_of_job(job_id_for("pc", -1)) == set()
    assert d.machine.workers_of_job(job_id_for("pc", -2)) == {"w"}


def test_a_plain_client_is_still_answered_when_its_last_request_expires() -> None:
    d = make(service_timeout=1.0)
    d.client("pc", plain("nosuch"))
    [out] = sent(d.tick(1.0), "pc")
    assert isinstance(out.message, Failure)
    assert (out.message.kind, out.extended) == ("unavailable", False)
    assert d.machine.statistics().clients == 0


def test_binglide_clients_are_remembered_until_they_say_goodbye() -> None:
    d = make()
    d.worker("w", Ready("s"))
    d.client("c", Request(1, "s"))
    assert to(d.client("c", Cancel(rid=1)), "c") == [
        Failure(1, "cancelled", "the job was cancelled", "", (), "s")
    ]
    assert d.machine.statistics().clients == 1
    d.client("c", Disconnect())
    assert d.machine.statistics().clients == 0


def test_a_heartbeating_client_is_remembered_until_it_falls_silent() -> None:
    d = make(heartbeat_interval=1.0)
    d.client("c", Heartbeat())
    assert d.machine.statistics().clients == 1
    d.tick(3.0)
    assert d.machine.statistics().clients == 0


CHURN = 100_000
RIDS = itertools.count(1)


def churn(d: BrokerDriver, count: int) -> int:
    """Run `count` unique service names nobody serves, `count` plain client identities.

    A request a millisecond from one binglide client to a new name (each
    waits its 1 s service timeout, so about a thousand wait at any time), and
    a plain client per request to a served service, answered at once.
    Returns the most memory blocks (`sys.getallocatedblocks`) seen at a
    timer tick.
    """
    peak = 0
    for i in range(count):
        d.now = i / 1000
        d.client("client", Request(next(RIDS), f"service-{i}"))
        [req] = to(d.client(f"plain-{i}", plain("echo", b"x")), "w")
        assert isinstance(req, Request)
        d.worker("w", Final(req.rid, (b"y",)))
        if i % 100 == 0:
            d.tick(d.now)
            peak = max(peak, sys.getallocatedblocks())
    d.tick(d.now + 1.0)
    d.machine.outgoing()
    return peak


def test_memory_is_bounded_under_churn_of_service_names_and_client_identities() -> None:
    # Memory blocks (pymalloc's count: no tracing overhead), before and after
    # 10^5 of each; bench/broker_machine.py --churn gives the bytes.
    d = make(service_timeout=1.0, heartbeat_interval=float("inf"))
    d.worker("w", Ready("echo", extended=False))
    churn(d, 2000)  # warm up: tables at their working size, first-time caches
    before = sys.getallocatedblocks()
    peak = churn(d, CHURN)
    after = sys.getallocatedblocks()
    stats = d.machine.statistics()
    assert (stats.clients, stats.jobs, stats.pending, len(stats.services)) == (1, 0, 0, 1)
    assert (stats.failed, stats.completed) == (CHURN + 2000, CHURN + 2000)
    # Nothing retained (a record per name or per identity would be several
    # blocks each: hundreds of thousands), and the peak is what is alive at
    # once (about a thousand waiting requests), not what went through.
    assert after - before < 2_000, after - before
    assert peak - before < 100_000, peak - before


def test_a_first_client_heartbeat_is_answered_at_once() -> None:
    # So that a binglide client knows at once it is not behind a plain broker.
    d = BrokerDriver(BrokerMachine(BrokerConfig(heartbeat_interval=1.0), instance="abc"))
    assert to(d.client("c", Heartbeat()), "c") == [Heartbeat("abc")]
    assert to(d.client("c", Heartbeat()), "c") == []


def test_what_was_handled_is_noticed_for_the_log() -> None:
    d = make()
    d.worker("w", Ready("s"))
    d.worker("w", Ready("s"))
    d.worker("x", Ready("mmi.mine"))
    assert d.machine.notices() == [
        (
            "w",
            "a second READY (a worker serves one service, registered once); "
            "the worker is told DISCONNECT",
        ),
        (
            "x",
            "READY for 'mmi.mine': mmi.* names are the broker's own (RFC 8); "
            "the worker is told DISCONNECT",
        ),
    ]
    assert d.machine.notices() == []
