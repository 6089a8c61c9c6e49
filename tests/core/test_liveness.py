"""A broker that never answered is told apart from one that stopped answering."""

from __future__ import annotations

from binglide.core import BrokerLost, ClientMachine, Heartbeat, WorkerLost, WorkerMachine


def test_a_client_says_no_broker_answered_until_one_did() -> None:
    m = ClientMachine(heartbeat_interval=1.0)
    m.handle_timer(0.0)
    lost = m.handle_timer(3.0)
    assert isinstance(lost, BrokerLost)
    assert lost.reason == "no broker has answered yet"


def test_a_client_says_the_broker_stopped_answering_once_it_had() -> None:
    m = ClientMachine(heartbeat_interval=1.0)
    m.handle_timer(0.0)
    m.receive(Heartbeat("b"), 0.5)
    assert m.handle_timer(3.0) is None
    lost = m.handle_timer(3.5)
    assert isinstance(lost, BrokerLost)
    assert lost.reason == "the broker stopped answering heartbeats"


def test_a_worker_says_which_too() -> None:
    never = WorkerMachine("s", heartbeat_interval=1.0)
    never.handle_timer(0.0)
    lost = never.handle_timer(3.0)
    assert isinstance(lost, WorkerLost)
    assert lost.reason == "no broker has answered yet"
    # Counting starts again: still nobody, still the same words.
    again = never.handle_timer(6.0)
    assert isinstance(again, WorkerLost)
    assert again.reason == "no broker has answered yet"

    heard = WorkerMachine("s", heartbeat_interval=1.0)
    heard.handle_timer(0.0)
    heard.receive(Heartbeat(), 1.0)
    lost = heard.handle_timer(4.0)
    assert isinstance(lost, WorkerLost)
    assert lost.reason == "the broker stopped answering heartbeats"
