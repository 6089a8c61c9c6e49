"""A handler's first step runs as its request is delivered.

A worker runs each task's first step at once, on a task of its own
(`TaskPool.start_now`): in one process as the request is sent, so that a
handler that answers without waiting costs no turn of the event loop; over
ZeroMQ in the socket's callback. What a caller sees must not change for it:
the reports it iterates, the checkpoint an ``await`` of a call is, a wait on
a sub-request whose answer comes while the worker says it waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus

from binglide import Context, Report, Service, Task
from binglide._aio import can_step_now
from binglide.core import Final, Message, PeerId, Protocol, Request
from binglide.errors import TransportClosed
from binglide.payload import encode_body
from binglide.transports import PeerTransport
from binglide.transports.base import PeerHandler
from binglide.worker import Worker

from .helpers import Echo, deployment


async def test_a_handler_that_answers_at_once_has_answered_when_the_request_returns() -> None:
    if not can_step_now():
        pytest.skip("this Python keeps the running task where step_now cannot swap it")
    with anyio.fail_after(5):
        async with deployment([Echo]) as d, d.client() as client:
            await client.request("echo", {"x": 1, "parts": 0})  # the worker is known
            call = client.request("echo", {"x": 2, "parts": 0})
            assert call.done()
            assert (await call).array.tolist() == [2]


async def test_awaiting_a_call_answered_already_is_still_a_checkpoint() -> None:
    with anyio.fail_after(5):
        async with deployment([Echo]) as d, d.client() as client:
            await client.request("echo", {"x": 1, "parts": 0})
            call = client.request("echo", {"x": 2, "parts": 0})
            assert call.done()
            with anyio.CancelScope() as scope:
                scope.cancel()
                await call  # cancelled here, though the answer is there
            assert scope.cancelled_caught

            others_ran = 0

            async def other() -> None:
                nonlocal others_ran
                while True:
                    others_ran += 1
                    await anyio.lowlevel.checkpoint()

            async with anyio.create_task_group() as tg:
                tg.start_soon(other)
                for _ in range(5):
                    await client.request("echo", {"x": 3, "parts": 0})
                assert others_ran >= 4  # the loop of calls let it run
                tg.cancel_scope.cancel()


async def test_a_caller_that_only_awaits_keeps_the_latest_partial_and_the_final_report() -> None:
    with anyio.fail_after(5):
        async with deployment([Echo]) as d, d.client() as client:
            await client.request("echo", {"x": 1, "parts": 0})
            call = client.request("echo", {"x": 5, "parts": 3})  # 3 partials, then the final
            assert call.done()
            report = await call
            # The partials that came as the request was sent are let go once
            # the caller awaits the final report, as if each had replaced the
            # one before (what a caller that awaits had kept before).
            kept = [r async for r in call]
            assert [r.completion for r in kept] == [0.75, 1.0]
            assert kept[-1] is report


class _CallbackPeer(PeerTransport):
    """A worker's end whose messages arrive from a loop callback, as a ZeroMQ socket's do."""

    identity = PeerId("callback-peer")

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.handler: PeerHandler | None = None
        self._closed = anyio.Event()

    def send_nowait(self, protocol: Protocol, message: Message) -> None:
        self.sent.append(message)

    async def send(self, protocol: Protocol, message: Message) -> None:
        self.sent.append(message)

    async def deliver_to(
        self, handler: PeerHandler, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self.handler = handler
        task_status.started()
        await self._closed.wait()
        raise TransportClosed("closed")

    async def aclose(self) -> None:
        self._closed.set()


async def test_a_worker_off_the_in_process_transport_runs_a_first_step_in_the_delivery() -> None:
    # Over ZeroMQ a request arrives in the socket's reader callback, with no
    # task running: the handler's first step runs there, as a task of its own.
    if not can_step_now():
        pytest.skip("this Python keeps the running task where step_now cannot swap it")
    steps: list[asyncio.Task[Any] | None] = []

    class Recorder(Service):
        name = "recorder"

        async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
            steps.append(asyncio.current_task())
            yield Report(None)

    peer = _CallbackPeer()
    assert not peer.in_process
    worker = Worker(Recorder(), peer)
    seen: list[tuple[int, bool]] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(worker.serve)
            assert peer.handler is not None
            handler = peer.handler
            delivered = anyio.Event()

            def deliver() -> None:
                request = Request(7, "recorder", encode_body({}), job="j-1")
                handler(Protocol.WORKER, request)
                seen.append((len(steps), isinstance(peer.sent[-1], Final)))
                delivered.set()

            asyncio.get_running_loop().call_soon(deliver)
            await delivered.wait()
            tg.cancel_scope.cancel()
    assert seen == [(1, True)]  # the first step ran, and answered, before the callback ended
    [task] = steps
    assert task is not None  # as a task of its own (a runner), not as nobody
    assert task is not asyncio.current_task()
