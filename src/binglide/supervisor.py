"""Worker processes: start them, watch them, restart the ones that die.

``binglide worker --processes N`` runs `supervise_workers`: N processes per
service, each running ``python -m binglide worker ADDRESS SPEC``. A process
that exits while the supervisor runs is started again; when the supervisor
is cancelled it asks every process to stop (SIGTERM: the worker says
DISCONNECT, so the broker re-issues its tasks at once) and kills those that
have not stopped after a grace period.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import anyio
import attrs

from .connect import resolve_service
from .worker import DEFAULT_HEARTBEAT_INTERVAL

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from anyio.abc import Process, TaskStatus

__all__ = ("WorkerSupervisor", "supervise_workers")

log = logging.getLogger("binglide.supervisor")


@attrs.define
class WorkerSupervisor:
    """The worker processes `supervise_workers` keeps alive.

    Attributes:
        processes: the live processes, by slot (spec, number).
        restarts: how many processes were restarted.
    """

    processes: dict[tuple[str, int], Process] = attrs.Factory(dict)
    restarts: int = 0

    def pids(self) -> dict[tuple[str, int], int]:
        """Return the process id in each slot."""
        return {slot: p.pid for slot, p in self.processes.items()}


def worker_command(
    address: str, spec: str, *, heartbeat_interval: float | None, args: Sequence[str]
) -> list[str]:
    """Return the command line of one worker process serving `spec` to `address`."""
    command = [sys.executable, "-m", "binglide", "worker", address, spec]
    command += ["--heartbeat-interval", str(heartbeat_interval or 0)]
    return [*command, *args]


async def supervise_workers(
    address: str,
    service_specs: Sequence[str],
    *,
    processes: int = 1,
    heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
    worker_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    restart_delay: float = 0.2,
    task_status: TaskStatus[WorkerSupervisor] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run `processes` worker processes per service spec; restart the ones that die.

    Args:
        address: the broker's endpoint.
        service_specs: built-in names or ``module:Class`` (see
            `binglide.connect.resolve_service`).
        processes: processes per spec.
        heartbeat_interval: the workers' heartbeat interval.
        worker_args: extra command-line arguments for each worker (``--root``,
            ``--cache-dir``, ``--curve-dir``...; see ``binglide worker --help``).
        env: the environment of the processes (default: this one's).
        restart_delay: seconds before a dead process is started again.
        task_status: receives the `WorkerSupervisor`.

    Raises:
        ValueError: `processes` is less than 1, or a spec names no service.
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1, not {processes}")
    for spec in service_specs:
        resolve_service(spec)  # fail here, not in every child, on a bad name
    state = WorkerSupervisor()

    async def keep(slot: tuple[str, int], *, task_status: TaskStatus[None]) -> None:
        command = worker_command(
            address, slot[0], heartbeat_interval=heartbeat_interval, args=worker_args
        )
        started = False
        while True:
            process = await anyio.open_process(
                command, stdin=subprocess.DEVNULL, stdout=None, stderr=None, env=env
            )
            state.processes[slot] = process
            if not started:
                started = True
                task_status.started()
            try:
                code = await process.wait()
            finally:
                with anyio.CancelScope(shield=True):
                    await _stop(process)
            log.warning("worker %s:%d exited with %s; restarting", slot[0], slot[1], code)
            state.restarts += 1
            await anyio.sleep(restart_delay)

    async with anyio.create_task_group() as tg:
        for spec in service_specs:
            for n in range(processes):
                await tg.start(keep, (spec, n))
        task_status.started(state)


async def _stop(process: Process, grace: float = 3.0) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(grace):
            await process.wait()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    await process.aclose()
