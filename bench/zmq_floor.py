"""How fast a sequential ZeroMQ request can be with asyncio peers: the floors under issue 13.

Issue 13 asks binglide's sequential round trip over ZeroMQ (broker, worker and
client as three processes on tcp loopback) to be no slower than majortomo's,
whose client in bench/broker.py is a bare blocking pyzmq loop and whose worker
is a blocking Python loop. binglide's client is an asyncio library and its
worker runs coroutines (a worker is a client and awaits sub-requests), so
both ends wait in an event loop, not in a blocking receive. This bench
measures what that alone costs, with no binglide code at all, against the
same broker:

- ``floor``: ZeroMQ's C proxy as the broker, a bare blocking echo worker and a
  bare blocking client (bench/broker.py's floor lane): no Python per message
  in the broker, the least Python at the ends;
- ``floor, asyncio client``: the same with the leanest asyncio client
  (`asyncio_client`: the socket's descriptor in the loop's selector, one
  future a request, no library);
- ``floor, asyncio worker``: the same with the leanest asyncio worker
  (`asyncio_worker`: the descriptor's callback receives, runs the handler
  coroutine's one step at once, sends the reply);
- ``floor, asyncio client and worker``: both;
- ``majortomo`` and ``majortomo, asyncio client``: majortomo's broker and
  worker (PyPI, the issue's yardstick) with either client;
- ``binglide``: binglide's broker, worker and client, and ``binglide broker,
  bare peers``: its broker with bench/broker.py's bare blocking client and
  worker.

Every lane makes ``--requests`` sequential echoes after a warm-up; the lanes
run interleaved ``--repeat`` times and each figure is the median of the runs'
medians. The last lines derive, from differences within each repeat, what
the leanest asyncio client and worker add to the floor, and how much a
broker could then spend routing (beyond ZeroMQ's C proxy) and still match
majortomo: if that budget is at or below zero, no broker written in any
language meets the target with asyncio ends on this machine. They also split
binglide's round trip into its broker's share (over the floor, with bare
peers) and its client's and worker's (over bare peers). Run::

    python -m pip install -e ".[bench]"  # majortomo
    python bench/zmq_floor.py [--requests 3000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import broker as lanes  # bench/broker.py: its roles, free_address

if TYPE_CHECKING:
    from collections.abc import Callable

# A request and its reply as bench/broker.py's lanes send them (one small body frame).
_BODY = b'{"n":1}'


def _request(dialect: str) -> list[bytes]:
    """The request's frames for a broker of `dialect` (``mdp``, ``majortomo``, ``floor``)."""
    if dialect == "majortomo":  # majortomo keeps MDP/0.1's empty frame and code 0x02
        return [b"", b"MDPC02", b"\x02", lanes.SERVICE, _BODY]
    return [b"MDPC02", b"\x01", lanes.SERVICE, _BODY]


def blocking_client(address: str, requests: int, dialect: str) -> list[float]:
    """Sequential round trips of a bare blocking DEALER (bench/broker.py's `mdp_client`).

    That client also runs `requests` more with one in flight, which are not
    used here.
    """
    return lanes.mdp_client(address, requests, 1, majortomo=dialect == "majortomo")[0]


async def _asyncio_round_trips(address: str, requests: int, dialect: str) -> list[float]:
    loop = asyncio.get_running_loop()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(address)
    pending: collections.deque[asyncio.Future[list[bytes]]] = collections.deque()
    poll_in = [(sock, zmq.POLLIN)]

    def readable() -> None:
        # ZeroMQ's descriptor is edge-triggered: drain while ZMQ_EVENTS says
        # POLLIN (a zero-timeout zmq_poll reads it, the cheapest way).
        while zmq.zmq_poll(poll_in, 0):
            frames = sock.recv_multipart(zmq.NOBLOCK)
            pending.popleft().set_result(frames)

    fd = sock.fileno()
    loop.add_reader(fd, readable)
    request = _request(dialect)
    times = []
    try:
        # One timeout for the run (a dead broker or worker fails it instead of
        # hanging it), not a timer a request.
        async with asyncio.timeout(30 + requests / 100):
            for i in range(-200, requests):
                start = time.perf_counter()
                future = loop.create_future()
                pending.append(future)
                sock.send_multipart(request)
                readable()  # a send can consume the descriptor's edge: look now
                await future
                if i >= 0:
                    times.append(time.perf_counter() - start)
    finally:
        loop.remove_reader(fd)
        sock.close(linger=0)
        ctx.term()
    return times


def asyncio_client(address: str, requests: int, dialect: str) -> list[float]:
    """Sequential round trips of the leanest asyncio client: no library, one future a request."""
    return asyncio.run(_asyncio_round_trips(address, requests, dialect))


async def _echo(frames: list[bytes]) -> list[bytes]:
    """The handler: a coroutine, as a worker that can await sub-requests runs."""
    return frames


def asyncio_worker(address: str) -> None:
    """Echo behind the C proxy from an event loop: receive, step the handler once, reply."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.connect(lanes.floor_backend(address))
        poll_in = [(sock, zmq.POLLIN)]

        def readable() -> None:
            while zmq.zmq_poll(poll_in, 0):
                coro = _echo(sock.recv_multipart(zmq.NOBLOCK))
                try:
                    coro.send(None)
                except StopIteration as done:
                    sock.send_multipart(done.value)

        loop.add_reader(sock.fileno(), readable)
        readable()
        await asyncio.Event().wait()  # until killed

    asyncio.run(serve())


def binglide_client(address: str, requests: int, dialect: str) -> list[float]:
    """Sequential round trips of binglide's client (`connect_remote`)."""
    import anyio

    from binglide.connect import connect_remote

    async def run() -> list[float]:
        times = []
        async with connect_remote(address, heartbeat_interval=1.0) as client:
            for i in range(-200, requests):
                start = time.perf_counter()
                await client.request("echo", {"n": 1})
                if i >= 0:
                    times.append(time.perf_counter() - start)
        return times

    return anyio.run(run)


def bare_client(address: str, requests: int, dialect: str) -> list[float]:
    """A blocking client whose body is binglide's encoded ``{"n": 1}`` (bench/broker.py's)."""
    return lanes.bare_client(address, requests, 1)[0]


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args])


# lane: (broker process, worker process, client, dialect); a process is (script, role)
LANES: dict[str, tuple[str, tuple[str, str], Callable[[str, int, str], list[float]], str]] = {
    "floor": ("floor-broker", ("broker", "floor-worker"), blocking_client, "floor"),
    "floor, asyncio client": (
        "floor-broker",
        ("broker", "floor-worker"),
        asyncio_client,
        "floor",
    ),
    "floor, asyncio worker": (
        "floor-broker",
        ("floor", "asyncio-worker"),
        blocking_client,
        "floor",
    ),
    "floor, asyncio client and worker": (
        "floor-broker",
        ("floor", "asyncio-worker"),
        asyncio_client,
        "floor",
    ),
    "majortomo": ("mt-broker", ("broker", "mt-worker"), blocking_client, "majortomo"),
    "majortomo, asyncio client": (
        "mt-broker",
        ("broker", "mt-worker"),
        asyncio_client,
        "majortomo",
    ),
    "binglide": ("binglide-broker", ("broker", "binglide-worker"), binglide_client, "mdp"),
    "binglide broker, bare peers": (
        "binglide-broker",
        ("broker", "bare-worker"),
        bare_client,
        "mdp",
    ),
}


def run_lane(name: str, requests: int) -> float:
    """One run of lane `name`: the median round trip in µs."""
    broker_role, (script, worker_role), client, dialect = LANES[name]
    address = lanes.free_address(pair=broker_role == "floor-broker")
    procs = [lanes.spawn(broker_role, address)]
    time.sleep(0.3)  # let the broker bind before the worker connects (a bench, not a test)
    if script == "broker":
        procs.append(lanes.spawn(worker_role, address))
    else:
        procs.append(_spawn(worker_role, address))
    try:
        times = client(address, requests, dialect)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    return float(np.median(times)) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", default="bench")
    parser.add_argument("address", nargs="?")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if args.role == "asyncio-worker":
        asyncio_worker(args.address)
        return 0

    runs: dict[str, list[float]] = {name: [] for name in LANES}
    for _ in range(args.repeat):
        for name in LANES:
            runs[name].append(run_lane(name, args.requests))
    med = {name: statistics.median(values) for name, values in runs.items()}
    print(f"{args.requests} sequential echoes per run, median of {args.repeat} interleaved runs")
    print(f"{'lane':36} {'median µs':>10}   runs")
    for name, values in runs.items():
        print(f"{name:36} {med[name]:10.0f}   {' '.join(f'{v:.0f}' for v in values)}")
    # The differences are taken within each repeat (its lanes ran within
    # seconds of each other), then their median: the machine's state moves
    # between repeats more than these differences.

    def over(lane: str, base: str) -> float:
        return statistics.median(a - b for a, b in zip(runs[lane], runs[base], strict=True))

    client = over("floor, asyncio client", "floor")
    worker = over("floor, asyncio worker", "floor")
    both = over("floor, asyncio client and worker", "floor")
    print(f"the leanest asyncio client adds {client:.0f} µs to a blocking one, ", end="")
    print(f"the leanest asyncio worker {worker:.0f} µs (both: {both:.0f})")
    print(f"majortomo's broker and worker add {over('majortomo', 'floor'):.0f} µs to the floor")
    budget = over("majortomo", "floor, asyncio client and worker")
    print(
        f"a broker's routing budget to match majortomo with asyncio ends: {budget:.0f} µs "
        "beyond ZeroMQ's C proxy"
    )
    bare = over("binglide broker, bare peers", "floor")
    peers = over("binglide", "binglide broker, bare peers")
    print(
        f"binglide's broker with bare peers adds {bare:.0f} µs to the floor; binglide's "
        f"client and worker add {peers:.0f} µs to bare peers (the leanest asyncio ones: "
        f"{both:.0f})"
    )
    pairs = zip(runs["majortomo"], runs["binglide"], strict=True)
    ratio = statistics.median(m / b for m, b in pairs)
    print(f"majortomo / binglide, sequential (issue 13's target >= 1.0): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
