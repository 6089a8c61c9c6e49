"""The runtime broker stops on an internal error of its machine instead of serving on."""

from __future__ import annotations

import logging

import anyio
import pytest

import binglide
from binglide.core import BrokerMachine, IdSource, Protocol, Ready, Request, Waiting


class BrokenIds(IdSource):
    """An id source that fails: an internal error while a request is handled."""

    def __call__(self) -> int:
        raise RuntimeError("the id source broke")


async def test_an_internal_error_stops_the_broker(caplog: pytest.LogCaptureFixture) -> None:
    config = binglide.BrokerConfig(heartbeat_interval=float("inf"))
    network = binglide.InprocNetwork()
    broker = binglide.Broker(network.bind(), BrokerMachine(config, ids=BrokenIds()))
    async with network.connect("w") as worker, network.connect("c") as client:
        await worker.send(Protocol.WORKER, Ready("s"))
        # An illegal message first (a client never sends WAITING; in one
        # process nothing is malformed): dropped, and the broker serves on.
        await client.send(Protocol.CLIENT, Waiting(1, True))
        await client.send(Protocol.CLIENT, Request(1, "s"))
        with anyio.fail_after(5), pytest.raises(RuntimeError, match="the id source broke"):
            await broker.serve()
    [dropped, internal] = [r for r in caplog.records if r.name == "binglide.broker"]
    assert dropped.levelno == logging.WARNING
    assert "dropped a message from peer 'c'" in dropped.getMessage()
    assert internal.levelno == logging.CRITICAL
    assert "internal error while handling a message from peer 'c'" in internal.getMessage()
