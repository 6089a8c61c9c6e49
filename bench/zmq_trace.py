"""Where a sequential ZeroMQ round trip's time goes, thread by thread (Linux tracefs).

A sequential echo through broker and worker passes a dozen threads in turn:
each process's main thread and its ZeroMQ I/O thread, each woken by the one
before. On 2 cores its latency is the sum of their run times, of the waits
between a wake-up and the run it asks for, and of the time no thread of the
round trip runs at all (a core waking from idle). Medians of whole round
trips (bench/broker.py) cannot tell these apart, and move by a third between
runs on this shared machine; the scheduler's own trace can. This bench traces
``sched_switch`` and ``sched_wakeup`` over `--requests` sequential round trips
of one lane, after a warm-up, and prints per round trip (medians):

- each thread's run time (``client``, ``broker``, ``worker``; ``main`` is the
  Python thread, ``io`` ZeroMQ's I/O thread);
- how often a main thread was preempted (left the CPU runnable): with its
  I/O thread ``SCHED_OTHER`` a send hands the CPU over at once, and what the
  sender does after it no longer delays the message;
- the time none of the round trip's threads ran.

Lanes: ``binglide`` (binglide's broker, worker and client), ``majortomo``
(its broker and worker, a bare blocking client: bench/broker.py's yardstick),
``bare`` (binglide's broker, bench/broker.py's bare blocking worker and
client). It needs root (tracefs at /sys/kernel/tracing, mounted if it is
not), and leaves tracefs as it found it (its events, its buffer size; the
trace emptied). Run::

    sudo python bench/zmq_trace.py [--lane binglide] [--requests 300]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import broker as lanes  # bench/broker.py: its roles, free_address, spawn

if TYPE_CHECKING:
    from collections.abc import Iterator

TRACING = Path("/sys/kernel/tracing")
#: lane: (broker role, worker role) of bench/broker.py
LANES = {
    "binglide": ("binglide-broker", "binglide-worker"),
    "majortomo": ("mt-broker", "mt-worker"),
    "bare": ("binglide-broker", "bare-worker"),
}
MARK = "round trip"
_EVENT = re.compile(r"^\s*.+?-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(\w+):\s+(.*)$")
_SWITCH = re.compile(r"prev_pid=(\d+) .*prev_state=(\S+) ==> .*next_pid=(\d+)")


def _write(name: str, text: str) -> None:
    (TRACING / name).write_text(text)


def ensure_tracefs() -> None:
    """Mount tracefs if needed; exit with a clear message where it cannot be had."""
    if not (TRACING / "trace_marker").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], check=False)
    if not os.access(TRACING / "trace_marker", os.W_OK):
        sys.exit(f"zmq_trace: needs root and tracefs at {TRACING} (not writable here)")


def threads_of(pid: int, role: str) -> dict[int, str]:
    """Thread id -> ``role:main`` / ``role:io`` for process `pid`'s Python and I/O threads."""
    names = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{pid}/task/{entry}/comm").read_text().strip()
            if int(entry) == pid:
                names[pid] = f"{role}:main"
            elif comm.startswith("ZMQbg/IO"):
                names[int(entry)] = f"{role}:io"
    return names


@contextlib.contextmanager
def tracefs_restored() -> Iterator[None]:
    """Leave tracefs as found: its events and buffer size back, the trace emptied.

    The scheduler's events stay enabled otherwise (recorded by nothing while
    ``tracing_on`` is 0, but enabled for whoever traces next), and the
    buffer keeps its 32 MiB a CPU.
    """
    events = (TRACING / "set_event").read_text()
    # "7 (expanded: 1408)" until a trace first needs the buffer: 1408 is its size.
    size = (TRACING / "buffer_size_kb").read_text().replace(")", "").split()[-1]
    try:
        yield
    finally:
        _write("tracing_on", "0")
        _write("set_event", events)
        _write("trace", "")
        _write("buffer_size_kb", size)


@contextlib.contextmanager
def lane_processes(lane: str) -> Iterator[tuple[str, list[int]]]:
    """Start `lane`'s broker and worker; yield the address and their pids; stop them."""
    broker_role, worker_role = LANES[lane]
    address = lanes.free_address()
    procs = [lanes.spawn(broker_role, address)]
    try:
        time.sleep(0.3)  # let the broker bind before the worker connects (a bench, not a test)
        procs.append(lanes.spawn(worker_role, address))
        yield address, [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def traced_round_trips(lane: str, address: str, pids: list[int], requests: int) -> dict[int, str]:
    """Make `requests` traced sequential echoes (after a warm-up); return the threads' names."""
    names: dict[int, str] = {}

    def name_threads() -> None:
        for pid, role in zip(pids, ("broker", "worker"), strict=True):
            names.update(threads_of(pid, role))
        names.update(threads_of(os.getpid(), "client"))

    _write("tracing_on", "0")
    _write("trace", "")
    _write("buffer_size_kb", "32768")
    _write("set_event", "sched:sched_switch\nsched:sched_wakeup\n")
    marker = (TRACING / "trace_marker").open("w", buffering=1)
    try:
        if lane == "binglide":
            import anyio

            from binglide.connect import connect_remote

            async def run() -> None:
                async with connect_remote(address, heartbeat_interval=1.0) as client:
                    for _ in range(1000):
                        await client.request("echo", {"n": 1})
                    name_threads()
                    _write("tracing_on", "1")
                    for _ in range(requests):
                        marker.write(f"{MARK}\n")
                        await client.request("echo", {"n": 1})
                    marker.write(f"{MARK}\n")
                    _write("tracing_on", "0")

            anyio.run(run)
        else:
            from binglide.payload import encode_body

            sock = zmq.Context.instance().socket(zmq.DEALER)
            sock.connect(address)
            if lane == "majortomo":
                request = [b"", b"MDPC02", b"\x02", lanes.SERVICE, b'{"n":1}']
            else:
                (body,) = encode_body({"n": 1})
                request = [b"MDPC02", b"\x01", lanes.SERVICE, bytes(body)]
            for _ in range(1000):
                sock.send_multipart(request)
                sock.recv_multipart()
            name_threads()
            _write("tracing_on", "1")
            for _ in range(requests):
                marker.write(f"{MARK}\n")
                sock.send_multipart(request)
                sock.recv_multipart()
            marker.write(f"{MARK}\n")
            _write("tracing_on", "0")
            sock.close(linger=0)
    finally:
        _write("tracing_on", "0")
        marker.close()
    return names


def analyse(text: str, names: dict[int, str]) -> dict[str, float]:
    """Medians per round trip: run time of each thread, preemptions, time none ran."""
    per_trip: list[collections.Counter[str]] = []
    trip: collections.Counter[str] | None = None
    on_cpu: dict[int, tuple[int, float]] = {}  # cpu -> (thread, since)
    last = None
    for line in text.splitlines():
        m = _EVENT.match(line)
        if m is None:
            continue
        cpu, ts, kind, rest = int(m[2]), float(m[3]) * 1e6, m[4], m[5]
        if (
            trip is not None
            and last is not None
            and not any(tid in names for tid, _ in on_cpu.values())
        ):
            trip["none ran"] += ts - last
        last = ts
        if kind == "tracing_mark_write" and MARK in rest:
            if trip is not None:
                trip["round trip"] = ts - trip.pop("start")
                per_trip.append(trip)
            trip = collections.Counter({"start": ts, "none ran": 0})
        elif kind == "sched_switch":
            sw = _SWITCH.search(rest)
            if sw is None:
                continue
            prev, state, nxt = int(sw[1]), sw[2], int(sw[3])
            running = on_cpu.pop(cpu, None)
            if trip is not None and running is not None and running[0] == prev in names:
                trip[names[prev]] += ts - running[1]
                if state.startswith("R") and names[prev].endswith(":main"):
                    trip["preempted " + names[prev]] += 1
            on_cpu[cpu] = (nxt, ts)
    per_trip = per_trip[5:]  # the first after tracing starts find threads mid-run
    keys = sorted({k for t in per_trip for k in t})
    return {k: statistics.median(t.get(k, 0) for t in per_trip) for k in keys}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lane", choices=[*LANES, "all"], default="all")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    ensure_tracefs()
    with tracefs_restored():
        for lane in LANES if args.lane == "all" else [args.lane]:
            with lane_processes(lane) as (address, pids):
                names = traced_round_trips(lane, address, pids, args.requests)
            figures = analyse((TRACING / "trace").read_text(), names)
            print(
                f"{lane}: {args.requests} sequential round trips traced;"
                " medians per round trip (µs)"
            )
            for key, value in figures.items():
                unit = "" if key.startswith("preempted") else " µs"
                print(f"  {key:28} {value:8.1f}{unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
