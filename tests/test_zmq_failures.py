"""Failures the system survives, with real processes over ZeroMQ.

Heartbeats are 0.1 s here, so a dead peer is noticed in about 0.3 s.
"""

from __future__ import annotations

import os
import signal

import anyio
import pytest
import zmq
import zmq.asyncio

from binglide import BrokerConfig, ServiceUnavailable
from binglide.broker import run_broker
from binglide.connect import connect_remote
from binglide.supervisor import supervise_workers

from .zmq_helpers import (
    HB,
    child_env,
    free_tcp_address,
    ipc_address,
    markers,
    processes,
    spawn_python,
    start_broker,
    start_worker,
    stop,
    value,
    wait_markers,
)

pytestmark = pytest.mark.zmq

SLOW = "tests.zmq_services:Slow"


@pytest.fixture
def context():
    ctx = zmq.asyncio.Context()
    yield ctx
    ctx.destroy(linger=0)


def config(**changes: float) -> BrokerConfig:
    return BrokerConfig(heartbeat_interval=HB, **changes)  # type: ignore[arg-type]


async def test_worker_killed_mid_task_is_replaced_and_the_job_completes(tmp_path, context):
    """SIGKILL the worker computing a task: the broker re-issues it, the supervisor restarts."""
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            running = await tg.start(
                lambda task_status: run_broker(
                    "tcp://127.0.0.1:*", config=config(), context=context, task_status=task_status
                )
            )
            supervisor = await tg.start(
                lambda task_status: supervise_workers(
                    running.address,
                    [SLOW],
                    processes=2,
                    heartbeat_interval=HB,
                    worker_args=["--no-cache"],
                    env=child_env(),
                    task_status=task_status,
                )
            )
            async with connect_remote(
                running.address, heartbeat_interval=HB, context=context
            ) as client:
                call = client.request("slow", {"n": 21, "seconds": 1.0, "dir": str(tmp_path)})
                [victim] = await wait_markers(tmp_path, "started")
                os.kill(victim, signal.SIGKILL)
                report = await call
            assert value(report) == 42
            assert report.meta["pid"] != victim
            stats = running.broker.statistics()
            assert stats.requeued == 1
            # The supervisor started a new process in the dead one's slot.
            while supervisor.restarts < 1:  # noqa: ASYNC110 - another process's state
                await anyio.sleep(0.01)
            assert victim not in supervisor.pids().values()
            tg.cancel_scope.cancel()


async def test_stopped_worker_is_noticed_and_its_task_reissued(tmp_path, context):
    """SIGSTOP the worker computing a task (it stops answering): another one finishes it."""
    with anyio.fail_after(20), processes() as procs:
        async with anyio.create_task_group() as tg:
            running = await tg.start(
                lambda task_status: run_broker(
                    "tcp://127.0.0.1:*", config=config(), context=context, task_status=task_status
                )
            )
            procs += [start_worker(running.address, SLOW) for _ in range(2)]
            async with connect_remote(
                running.address, heartbeat_interval=HB, context=context
            ) as client:
                call = client.request("slow", {"n": 5, "seconds": 0.5, "dir": str(tmp_path)})
                [victim] = await wait_markers(tmp_path, "started")
                os.kill(victim, signal.SIGSTOP)
                report = await call
            assert value(report) == 10
            assert report.meta["pid"] != victim
            assert running.broker.statistics().requeued == 1
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("kind", ["tcp", "ipc"])
async def test_broker_killed_and_restarted(tmp_path, kind):
    """SIGKILL the broker mid-task and restart it: workers re-register, clients re-issue."""
    with anyio.fail_after(30), processes() as procs, ipc_address() as ipc:
        address = free_tcp_address() if kind == "tcp" else ipc
        broker = await start_broker(address)
        procs += [broker, start_worker(address, SLOW)]
        async with connect_remote(address, heartbeat_interval=HB) as client:
            call = client.request("slow", {"n": 8, "seconds": 0.5, "dir": str(tmp_path)})
            other = client.request("slow", {"n": 9, "seconds": 0.1, "dir": str(tmp_path)})
            await wait_markers(tmp_path, "started")
            stop(broker)
            procs.append(await start_broker(address))
            assert value(await call) == 16
            assert value(await other) == 18
            # The service works as before for new requests.
            fresh = await client.request("slow", {"n": 1, "seconds": 0, "dir": str(tmp_path)})
            assert value(fresh) == 2


async def test_vanished_client_has_its_jobs_cancelled(tmp_path, context):
    """SIGKILL a client with a job running: the broker expires it and cancels the job."""
    with anyio.fail_after(20), processes() as procs:
        async with anyio.create_task_group() as tg:
            running = await tg.start(
                lambda task_status: run_broker(
                    "tcp://127.0.0.1:*", config=config(), context=context, task_status=task_status
                )
            )
            procs.append(start_worker(running.address, "tests.zmq_services:Block"))
            client = spawn_python(
                "import anyio\n"
                "from binglide.connect import connect_remote\n"
                "async def main():\n"
                f"    async with connect_remote({running.address!r}, heartbeat_interval={HB})"
                " as c:\n"
                f"        await c.request('block', {{'dir': {str(tmp_path)!r}}})\n"
                "anyio.run(main)\n"
            )
            procs.append(client)
            await wait_markers(tmp_path, "started")
            assert running.broker.statistics().jobs == 1
            os.kill(client.pid, signal.SIGKILL)
            await wait_markers(tmp_path, "cancelled")
            stats = running.broker.statistics()
            assert (stats.jobs, stats.dispatched, stats.clients) == (0, 0, 0)
            assert stats.cancelled == 1
            tg.cancel_scope.cancel()


async def test_overload_fails_with_service_unavailable(tmp_path, context):
    """A request no worker can take before its timeout fails with ServiceUnavailable."""
    with anyio.fail_after(20), processes() as procs:
        async with anyio.create_task_group() as tg:
            running = await tg.start(
                lambda task_status: run_broker(
                    "tcp://127.0.0.1:*", config=config(), context=context, task_status=task_status
                )
            )
            procs.append(start_worker(running.address, SLOW))
            async with connect_remote(
                running.address, heartbeat_interval=HB, context=context
            ) as client:
                busy = client.request("slow", {"n": 1, "seconds": 1.0, "dir": str(tmp_path)})
                await wait_markers(tmp_path, "started")
                late = client.request(
                    "slow", {"n": 2, "seconds": 0, "dir": str(tmp_path)}, timeout=0.3
                )
                with pytest.raises(ServiceUnavailable, match="overloaded"):
                    await late
                assert value(await busy) == 2
            assert len(markers(tmp_path, "started")) == 1
            tg.cancel_scope.cancel()
