"""Where a sequential ZeroMQ request's CPU goes, thread by thread, user and kernel time.

Starts bench/broker.py's binglide broker and echo worker as processes on a
loopback port, makes ``--requests`` sequential echo requests from this
process (after a warm-up), and prints, per process and thread (the Python
main thread, ZeroMQ's I/O thread), the user and system CPU a request, from
``/proc/PID/task/TID/stat``, beside the round trip. With ``--baseline-src``,
the same is measured with another binglide ``src/`` on ``PYTHONPATH`` (the
three processes alike), interleaved ``--repeat`` times.

Why (issue 13): callgrind counts a thread's user-space instructions, and the
ZeroMQ lanes' wall time did not follow them (bench/RESULTS.md, the sixth
session's end). This shows which threads and which side of the system call
the round trip's CPU is spent on. Linux only (``/proc``).

Run::

    python bench/zmq_threads.py [--requests 5000] [--repeat 3] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import anyio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import broker as lanes  # bench/broker.py: its roles, free_address and spawn

_TICK = os.sysconf("SC_CLK_TCK")
Usage = dict[str, tuple[float, float]]  # "process thread" -> (user, system) seconds


def thread_times(pid: int, process: str) -> Usage:
    """User and system CPU seconds of each thread of `pid`, keyed by "process thread-name"."""
    found: Usage = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue  # a thread that ended meanwhile
        # One name per kind of thread: the main thread, ZeroMQ's I/O thread.
        kind = "I/O" if name.startswith("ZMQbg/IO") else "main" if tid == str(pid) else name
        user, system = found.get(f"{process} {kind}", (0.0, 0.0))
        found[f"{process} {kind}"] = (
            user + int(fields[11]) / _TICK,
            system + int(fields[12]) / _TICK,
        )
    return found


def measure(requests: int) -> tuple[float, Usage]:
    """One run: µs a round trip, and CPU seconds a request by process and thread."""
    from binglide.client import Client
    from binglide.transports.zeromq import ZmqPeer

    address = lanes.free_address()
    procs = [lanes.spawn("binglide-broker", address)]
    time.sleep(0.3)  # let the broker bind before the worker connects (a bench, not a test)
    procs.append(lanes.spawn("binglide-worker", address))

    def sample() -> Usage:
        usage = thread_times(procs[0].pid, "broker")
        usage.update(thread_times(procs[1].pid, "worker"))
        usage.update(thread_times(os.getpid(), "client"))
        return usage

    async def run() -> tuple[float, Usage, Usage]:
        peer = ZmqPeer.connect(address, identity="zmq-threads")
        async with Client(peer, heartbeat_interval=1.0) as client:
            for _ in range(200):  # warm up: the worker registered, every path taken
                await client.request("echo", {"n": 1})
            before = sample()
            start = time.perf_counter()
            for _ in range(requests):
                await client.request("echo", {"n": 1})
            elapsed = time.perf_counter() - start
            return elapsed, before, sample()

    try:
        elapsed, before, after = anyio.run(run)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    per_request = {
        key: (
            (after[key][0] - before[key][0]) / requests,
            (after[key][1] - before[key][1]) / requests,
        )
        for key in after
        if key in before
    }
    return elapsed / requests * 1e6, per_request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-src", help="another binglide src/ to compare with")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one run, printed as a JSON line for the parent
        print(json.dumps(measure(args.requests)))
        return 0

    trees = {"current": os.environ.get("PYTHONPATH", "")}
    if args.baseline_src:
        trees["baseline"] = os.path.abspath(args.baseline_src)
    runs: dict[str, list[tuple[float, Usage]]] = {name: [] for name in trees}
    for _ in range(args.repeat):
        for name, path in trees.items():
            env = dict(os.environ, PYTHONPATH=path) if path else dict(os.environ)
            out = (
                subprocess.run(
                    [
                        sys.executable,
                        os.path.abspath(__file__),
                        "--child",
                        "--requests",
                        str(args.requests),
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            trip, usage = json.loads(out)
            runs[name].append((trip, {key: (u, s) for key, (u, s) in usage.items()}))
            # Each run as it ends: an interleaved pair is read side by side.
            mains = "  ".join(
                f"{key.split()[0]} {sum(usage[key]) * 1e6:.0f}"
                for key in sorted(usage)
                if key.endswith(" main")
            )
            print(
                f"{name:>8}: round trip {trip:.0f} µs; main threads' CPU µs a request: {mains}",
                flush=True,
            )

    print(f"sequential echo over ZeroMQ, {args.requests} requests, median of {args.repeat}")
    for name, results in runs.items():
        trip = statistics.median(r[0] for r in results)
        print(f"\n{name}: round trip {trip:.0f} µs")
        print(f"  {'process thread':16} {'user µs':>8} {'system µs':>10}   (a request)")
        keys = sorted(set().union(*(r[1] for r in results)))
        total = 0.0
        for key in keys:
            user = statistics.median(r[1].get(key, (0.0, 0.0))[0] for r in results) * 1e6
            system = statistics.median(r[1].get(key, (0.0, 0.0))[1] for r in results) * 1e6
            if user + system >= 1:
                total += user + system
                print(f"  {key:16} {user:8.0f} {system:10.0f}")
        print(f"  {'all threads':16} {total:19.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
