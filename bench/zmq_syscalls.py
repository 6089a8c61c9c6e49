"""System calls a ZeroMQ request makes, per process and thread (strace).

Starts bench/broker.py's binglide broker and echo worker and a binglide
client as processes on a loopback port; once the client has warmed up,
attaches ``strace -f`` to all three, lets the client make ``--requests``
echo requests (one at a time, or ``--in-flight`` at once), and prints each
thread's system calls a request (the Python main thread and ZeroMQ's I/O
thread of each process), by name.
With ``--baseline-src``, the same with another binglide ``src/`` on
``PYTHONPATH`` (the three processes alike), interleaved ``--repeat`` times.

Why (issue 13): libzmq makes system calls the Python side does not show.
Reading ZMQ_EVENTS (and so a zero-timeout ``zmq_poll``) processes the
socket's command mailbox: a ``poll`` of its eventfd and a ``getpid`` (the
fork check), more when a command is there; a blocking ``zmq_poll`` looks
once with a zero timeout before it waits; a send that flushes wakes the
I/O thread (``getpid`` and an eventfd ``write``). Each costs ~1-2 µs here,
a round trip crosses six threads, and which of binglide's calls make them
is found by counting. strace slows every system call: read the counts, not
the times (the sends' command processing, throttled to once a millisecond
by libzmq, shows more often under strace than without). Linux only, needs
``strace``.

Run::

    python bench/zmq_syscalls.py [--requests 2000] [--in-flight 1] [--repeat 1]
        [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import broker as lanes  # bench/broker.py: its roles, free_address and spawn

_BENCH = os.path.dirname(os.path.abspath(__file__))  # where the client imports echo_lanes from

#: The client: warms up, says "ready", waits for a line, makes the requests,
#: says "done", waits for a line (so that strace detaches from a live process).
CLIENT = """
import sys
import anyio
from binglide.connect import connect_remote

sys.path.insert(0, sys.argv[4])
from broker import echo_lanes  # bench/broker.py's pipelined lanes

async def main() -> None:
    async with connect_remote(sys.argv[1], heartbeat_interval=1.0) as client:
        for _ in range(200):
            await client.request("echo", {"n": 1})
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        await echo_lanes(client, int(sys.argv[2]), int(sys.argv[3]))
        print("done", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)

anyio.run(main)
"""

Counts = dict[str, dict[str, float]]  # "process thread" -> system call -> calls a request


def thread_kind(pid: int, tid: int) -> str:
    """The kind of thread `tid` of `pid` is: main, I/O (ZeroMQ's) or its name."""
    if tid == pid:
        return "main"
    try:
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            name = f.read().strip()
    except OSError:
        return "other"
    return "I/O" if name.startswith("ZMQbg/IO") else name


def measure(requests: int, in_flight: int) -> Counts:
    """One run: the system calls a request of each process's threads."""
    address = lanes.free_address()
    procs: dict[str, subprocess.Popen[Any]] = {"broker": lanes.spawn("binglide-broker", address)}
    time.sleep(0.3)  # let the broker bind before the worker connects (a bench, not a test)
    procs["worker"] = lanes.spawn("binglide-worker", address)
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, address, str(requests), str(in_flight), _BENCH],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    procs["client"] = client
    assert client.stdin is not None
    assert client.stdout is not None
    counts: Counts = {}
    with tempfile.TemporaryDirectory(prefix="binglide-strace-") as tmp:
        tracers: list[subprocess.Popen[bytes]] = []
        try:
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError("the client did not start")
            kinds: dict[tuple[str, int], str] = {}
            for name, proc in procs.items():
                for tid in os.listdir(f"/proc/{proc.pid}/task"):
                    kinds[name, int(tid)] = thread_kind(proc.pid, int(tid))
                tracers.append(
                    subprocess.Popen(
                        ["strace", "-f", "-o", f"{tmp}/{name}", "-p", str(proc.pid)],
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(1.0)  # strace attached to every thread
            client.stdin.write("go\n")
            client.stdin.flush()
            if client.stdout.readline().strip() != "done":
                raise RuntimeError("the client failed")
        finally:
            for tracer in tracers:
                tracer.send_signal(signal.SIGINT)
            for tracer in tracers:
                tracer.wait()
            if client.poll() is None:
                client.stdin.write("end\n")
                client.stdin.flush()
            client.wait()
            for proc in procs.values():
                proc.kill()
                proc.wait()
        call = re.compile(r"(\d+)\s+(?:<\.\.\. )?(\w+)[( ]")
        for name in procs:
            by_thread: dict[str, collections.Counter[str]] = {}
            with open(f"{tmp}/{name}") as f:
                for line in f:
                    found = call.match(line)
                    if found is None or "resumed>" in line:
                        continue  # an interrupted call is counted where it began
                    kind = kinds.get((name, int(found.group(1))), "other")
                    by_thread.setdefault(kind, collections.Counter())[found.group(2)] += 1
            for kind, calls in by_thread.items():
                counts[f"{name} {kind}"] = {k: v / requests for k, v in calls.items()}
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--in-flight", type=int, default=1, help="requests at once (1: sequential)"
    )
    parser.add_argument("--baseline-src", help="another binglide src/ to compare with")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if shutil.which("strace") is None:
        print("zmq_syscalls.py needs strace (apt-get install strace)", file=sys.stderr)
        return 1
    if args.child:  # one run, printed as a JSON line for the parent
        print(json.dumps(measure(args.requests, args.in_flight)))
        return 0

    trees = {"current": os.environ.get("PYTHONPATH", "")}
    if args.baseline_src:
        trees["baseline"] = os.path.abspath(args.baseline_src)
    runs: dict[str, list[Counts]] = {name: [] for name in trees}
    for _ in range(args.repeat):
        for name, path in trees.items():
            env = dict(os.environ, PYTHONPATH=path) if path else dict(os.environ)
            out = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child",
                    "--requests",
                    str(args.requests),
                    "--in-flight",
                    str(args.in_flight),
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            counts: Counts = json.loads(out.splitlines()[-1])
            runs[name].append(counts)
            mains = "  ".join(
                f"{key.split()[0]} {sum(counts[key].values()):.1f}"
                for key in sorted(counts)
                if key.endswith(" main")
            )
            print(f"{name:>8}: system calls a request, main threads: {mains}", flush=True)

    print(
        f"\necho over ZeroMQ, {args.requests} requests, {args.in_flight} at once,"
        f" medians of {args.repeat}"
    )
    for name, results in runs.items():
        print(f"\n{name}:")
        for key in sorted(set().union(*results)):
            names = sorted(set().union(*(r.get(key, {}) for r in results)))
            per = {n: sorted(r.get(key, {}).get(n, 0.0) for r in results) for n in names}
            medians = {n: v[len(v) // 2] for n, v in per.items()}
            total = sum(medians.values())
            if total < 0.1:
                continue  # a thread with nothing a request (the reaper, asyncio's)
            top = ", ".join(
                f"{n} {c:.2f}"
                for n, c in sorted(medians.items(), key=lambda x: -x[1])
                if c >= 0.05
            )
            print(f"  {key:14} {total:6.2f}  ({top})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
