"""Dropped messages are logged at most once a period, with counts of the rest."""

from __future__ import annotations

import logging

import pytest

from binglide.broker import DropLog, turn
from binglide.core import BrokerConfig, BrokerMachine, Frame, PeerId
from binglide.transports.base import Incoming
from binglide.transports.zeromq import router_incoming


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "binglide.broker"]


def decoded(batch: list[tuple[str, list[Frame]]], drops: DropLog, now: float) -> list[Incoming]:
    """What the broker's ZeroMQ end makes of `batch`: what decodes; the rest told to `drops`."""

    def dropped(peer: PeerId, error: Exception) -> None:
        drops.dropped(peer, error, now)

    found = (router_incoming([peer.encode(), *frames], dropped) for peer, frames in batch)
    return [item for item in found if item is not None]


def test_a_flood_of_garbage_logs_one_line_a_period_and_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "binglide.broker")
    machine = BrokerMachine(BrokerConfig(heartbeat_interval=float("inf")))
    drops = DropLog(interval=10.0)
    # 68,000 garbage messages from 3 peers within one second.
    batch: list[tuple[str, list[Frame]]] = [
        (f"rogue-{n % 3}", [b"MDPC02", b"\x7f"]) for n in range(68_000)
    ]
    turn(machine, decoded(batch, drops, 0.5), 0.5, drops)
    assert drops.total == 68_000
    [first] = messages(caplog)
    assert first.startswith("dropped a message from peer 'rogue-0': command")
    turn(machine, [], 5.0, drops)  # within the period: nothing more said
    assert len(messages(caplog)) == 1
    turn(machine, [], 10.5, drops)  # the period is over: the count
    assert messages(caplog)[1] == (
        "dropped 67999 more messages from 3 peers in 10 s (only one a period is logged)"
    )
    # A new period: the next drop is logged at once, with its reason.
    turn(machine, decoded([("rogue-1", [b"junk"])], drops, 11.0), 11.0, drops)
    assert messages(caplog)[2].startswith("dropped a message from peer 'rogue-1'")
    assert len(messages(caplog)) == 3
    assert drops.total == 68_001


def test_a_disconnected_worker_is_logged_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    from binglide.core import Protocol, Ready

    caplog.set_level(logging.WARNING, "binglide.broker")
    machine = BrokerMachine(BrokerConfig(heartbeat_interval=float("inf")))
    ready = (PeerId("w"), Protocol.WORKER, Ready("s"))
    turn(machine, [ready, ready], 0.0, DropLog())
    [line] = messages(caplog)
    assert line == (
        "dropped a message from peer 'w': a second READY (a worker serves one service, "
        "registered once); the worker is told DISCONNECT"
    )
