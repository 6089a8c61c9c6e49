"""Helpers for the ZeroMQ tests: addresses, child processes, marker files, I/O threads.

Real sockets only on 127.0.0.1 or ipc:// (never another address).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import numpy as np
import zmq

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from binglide import Report

REPO = Path(__file__).resolve().parent.parent
#: Heartbeats in tests: short, so failures are noticed in a fraction of a second.
HB = 0.1


def free_tcp_address() -> str:
    """Return ``tcp://127.0.0.1:PORT`` with a port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@contextlib.contextmanager
def ipc_address() -> Iterator[str]:
    """Yield an ``ipc://`` address in a short temporary directory (paths are limited)."""
    with tempfile.TemporaryDirectory(prefix="bg", dir="/tmp") as d:
        yield f"ipc://{d}/broker.sock"


def child_env() -> dict[str, str]:
    """Return the environment for child processes: the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def spawn(args: Sequence[str], *, stdout: int | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m binglide ARGS...``."""
    return subprocess.Popen(
        [sys.executable, "-m", "binglide", *args],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
    )


def spawn_python(code: str) -> subprocess.Popen[bytes]:
    """Start ``python -c CODE`` with the repository importable."""
    return subprocess.Popen(
        [sys.executable, "-c", code], env=child_env(), stdin=subprocess.DEVNULL
    )


async def start_broker(address: str, *extra: str) -> subprocess.Popen[bytes]:
    """Start a broker process on `address` with test heartbeats; wait until it listens."""
    proc = spawn(
        ["broker", address, "--heartbeat-interval", str(HB), *extra], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await anyio.to_thread.run_sync(proc.stdout.readline)
    assert line.startswith(b"listening on "), line
    return proc


def start_worker(address: str, spec: str, *extra: str) -> subprocess.Popen[bytes]:
    """Start a worker process serving `spec` with test heartbeats."""
    return spawn(["worker", address, spec, "--heartbeat-interval", str(HB), "--no-cache", *extra])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill `proc` (continuing it first if stopped) and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Collect processes; kill and reap all of them on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            stop(proc)


def markers(directory: Path, what: str) -> list[int]:
    """Return the pids of the ``what`` markers in `directory`, oldest first."""
    # Leave out the temporary files before looking at them: a writer renames
    # its .tmp file into place at any moment, and a stat of it then fails.
    done = [p for p in directory.glob(f"{what}-*") if not p.name.endswith(".tmp")]
    found = sorted(done, key=lambda p: p.stat().st_mtime_ns)
    return [int(p.name.split("-")[1]) for p in found]


async def wait_markers(directory: Path, what: str, count: int = 1) -> list[int]:
    """Wait until `count` ``what`` markers exist (the caller bounds the wait)."""
    # Another process writes the files: no Event can cross that boundary.
    while len(found := markers(directory, what)) < count:  # noqa: ASYNC110
        await anyio.sleep(0.01)
    return found


def value(report: Report) -> int:
    """Return the single number a test service answered."""
    assert isinstance(report.data, np.ndarray)
    return int(report.data.reshape(-1)[0])


def array(report: Report) -> np.ndarray:
    """Return the array a report carries."""
    assert isinstance(report.data, np.ndarray)
    return report.data


def io_thread_policies(pid: int | str = "self") -> dict[int, int]:
    """ZeroMQ I/O threads of process `pid` (default: this one): thread id -> scheduling policy."""
    found = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{entry}/comm") as f:
                name = f.read().strip()
            if name.startswith("ZMQbg/IO"):
                found[int(entry)] = os.sched_getscheduler(int(entry))
        except OSError:
            continue  # a thread that ended meanwhile
    return found


def run_io_thread(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    """Pass a message through `ctx`'s I/O thread (TCP on loopback, which it carries).

    A context's I/O thread names itself and applies its scheduling policy
    when it starts running, after the first socket returns: once a message
    went through it, it has surely started.
    """
    server, client = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client.connect(f"tcp://127.0.0.1:{port}")
        client.send(b"ping")
        assert server.poll(10_000), "no message through the I/O thread in 10 s"
        assert server.recv() == b"ping"
    finally:
        server.close(linger=0)
        client.close(linger=0)
