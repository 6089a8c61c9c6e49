"""Broker round-trip benchmark: binglide over ZeroMQ, in-process, and a minimal MDP/0.2 baseline.

Measures tiny-request latency (sequential: median and p99) and throughput
(many requests in flight) for:

- ``zmq``: binglide's broker (default settings: the echo service's tasks are
  short, so a worker holds as many at once as fit in the broker's 4 ms
  prefetch window, at most 128), one worker and this client as three
  processes over tcp loopback (128 in flight);
- ``zmq prefetch 1``: the same with ``binglide broker --prefetch 1``, one task
  per worker at a time, as an MDP/0.2 broker dispatches;
- ``inproc``: binglide's broker, worker and client in one fresh process (100
  in flight), and in the same process a request whose handler awaits one
  sub-request, and the round trip of an ``asyncio.Queue`` ping-pong (the
  event loop's own cost, the in-process yardstick);
- ``majortomo``: majortomo (PyPI), an independent MDP/0.2 Python broker and
  worker, with a bare DEALER client keeping 128 in flight: the issue's baseline;
- ``floor``: ZeroMQ's C proxy as the broker and a bare echo worker: the same
  processes and sockets with no Python per message in the broker, what no
  MDP broker can beat here;
- ``mdp``: an independent minimal MDP/0.2 broker, worker and client written
  here with plain blocking pyzmq, as the Guide's ``mdbroker`` would be (three
  processes, tcp loopback, 128 in flight): a leaner baseline than any library;
- ``bare client`` and ``bare worker``: binglide's broker with one of its peers
  replaced by a bare blocking pyzmq loop that speaks plain MDP/0.2 with
  binglide's body and report frames (built once): the ``zmq`` figures less
  these say what binglide's client and binglide's worker add to a round trip.

Columns: ``median µs`` and ``p99 µs`` of the sequential round trips, ``seq
req/s`` (sequential requests over their total time), ``req/s`` (with 128, or
100, in flight), and the CPU time per request of the broker, worker and client
processes (``/proc/PID/stat``, all threads, over the sequential and the
pipelined requests, after a warm-up request). Each figure is the median of
``--repeat`` runs. Run::

    python -m pip install -e ".[bench]"  # majortomo, the baseline
    python bench/broker.py [--requests 2000] [--repeat 3] [--only inproc|zmq] [--pairs 40]

The last lines compare the figures with issue 13's targets.

``--pairs N`` adds a paired measure of the sequential target: N pairs of
runs, binglide's lane and majortomo's one after the other (alternately first,
so neither gains from its place), each pair's ratio of medians, then the
median of the ratios with a 95% interval (order statistics: no assumption on
how this shared machine's noise is spread). Runs seconds apart share the
machine's state, where the lanes of one ``--repeat`` run tens of seconds
apart; the interval says whether the two can be told apart at all.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from typing import TYPE_CHECKING

import anyio
import numpy as np
import zmq

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from typing import Any

    from binglide import Client, Context, Report, Task

SERVICE = b"echo"


# -- the baseline: a minimal MDP/0.2 broker, worker and client (RFC 18) ------------------


def mdp_broker(address: str, heartbeat_interval: float = 1.0) -> None:
    """Route MDP/0.2 requests to workers, least recently used first."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(address)
    idle: deque[bytes] = deque()
    workers: set[bytes] = set()
    requests: deque[tuple[bytes, list[bytes]]] = deque()
    next_heartbeat = time.monotonic() + heartbeat_interval
    while True:
        if sock.poll(round(max(0.0, next_heartbeat - time.monotonic()) * 1000)):
            sender, header, command, *rest = sock.recv_multipart()
            if header == b"MDPC02" and command == b"\x01":
                requests.append((sender, rest[1:]))
            elif header == b"MDPW02" and command == b"\x01":
                workers.add(sender)
                idle.append(sender)
            elif header == b"MDPW02" and command in (b"\x03", b"\x04"):
                client, _empty, *body = rest
                reply = b"\x02" if command == b"\x03" else b"\x03"
                sock.send_multipart([client, b"MDPC02", reply, SERVICE, *body])
                if command == b"\x04":
                    idle.append(sender)
            elif header == b"MDPW02" and command == b"\x06":
                workers.discard(sender)
            while idle and requests:
                worker = idle.popleft()
                if worker not in workers:
                    continue
                client, body = requests.popleft()
                sock.send_multipart([worker, b"MDPW02", b"\x02", client, b"", *body])
        if time.monotonic() >= next_heartbeat:
            next_heartbeat = time.monotonic() + heartbeat_interval
            for worker in workers:
                sock.send_multipart([worker, b"MDPW02", b"\x05"])


def _ready_worker(address: str) -> zmq.Socket[bytes]:
    """A DEALER connected to the broker at `address` that has sent READY for ``echo``."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(address)
    sock.send_multipart([b"MDPW02", b"\x01", SERVICE])
    return sock


def mdp_worker(address: str) -> None:
    """Serve ``echo``: reply with the request body."""
    sock = _ready_worker(address)
    while True:
        _header, command, *rest = sock.recv_multipart()
        if command == b"\x02":
            client, empty, *body = rest
            sock.send_multipart([b"MDPW02", b"\x04", client, empty, *body])


def mdp_client(
    address: str,
    requests: int,
    in_flight: int,
    majortomo: bool = False,
    mark: Callable[[], None] = lambda: None,
    body: bytes = b'{"n":1}',
) -> tuple[list[float], float]:
    """Return the round-trip times (sequential) and the throughput (in flight).

    ``majortomo`` speaks majortomo's dialect (see below) instead of RFC 18's;
    `mark` is called once the first request came back (the processes are up);
    `body` is the request's one body frame.
    """
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.rcvtimeo = 30_000  # a broker or worker that died fails the run instead of hanging it
    sock.connect(address)
    if majortomo:
        request = [b"", b"MDPC02", b"\x02", SERVICE, body]
    else:
        request = [b"MDPC02", b"\x01", SERVICE, body]
    sock.send_multipart(request)  # warm up: the worker is registered
    sock.recv_multipart()
    mark()
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        sock.send_multipart(request)
        sock.recv_multipart()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    sent = done = 0
    while sent < min(in_flight, requests):
        sock.send_multipart(request)
        sent += 1
    while done < requests:
        sock.recv_multipart()
        done += 1
        if sent < requests:
            sock.send_multipart(request)
            sent += 1
    rate = requests / (time.perf_counter() - start)
    sock.close(linger=0)
    ctx.term()
    return times, rate


# -- the baseline: majortomo, an independent MDP/0.2 Python broker (PyPI) ---------
#
# majortomo (Shoppimon) implements 18/MDP with the broker, worker and client classes of the
# Guide's design. Its dialect differs from RFC 18 in two ways: peers keep MDP/0.1's leading
# empty frame, and a client's REQUEST carries the worker command code 0x02 (FINAL 0x04
# back). This client (a bare DEALER that keeps 128 requests in flight, which majortomo's
# one-at-a-time Client cannot) speaks that dialect (``mdp_client(..., majortomo=True)``).


def mt_broker(address: str) -> None:
    from majortomo.broker import Broker

    Broker(bind=address, heartbeat_interval=1.0, heartbeat_timeout=10.0).run()


def mt_worker(address: str) -> None:
    from majortomo.worker import Worker

    worker = Worker(address, SERVICE, heartbeat_interval=1.0, heartbeat_timeout=10.0)
    worker.connect()
    while True:
        client, body = worker.wait_for_request()
        worker.send_reply_final(client, body)


# -- the floor: what these sockets allow at all -----------------------------------------------
#
# The same three processes and tcp loopback, with no Python per message in the middle: the
# broker is ZeroMQ's own C proxy (ROUTER in front, DEALER behind) and the worker echoes
# each message back. No MDP broker can route a request faster over these sockets on this
# machine; the sequential round trip here is ZeroMQ's I/O threads and the kernel.


def floor_broker(address: str) -> None:
    ctx = zmq.Context()
    front = ctx.socket(zmq.ROUTER)
    front.bind(address)
    back = ctx.socket(zmq.DEALER)
    back.bind(floor_backend(address))
    zmq.proxy(front, back)


def floor_worker(address: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(floor_backend(address))
    while True:
        sock.send_multipart(sock.recv_multipart())


def floor_backend(address: str) -> str:
    host, port = address.rsplit(":", 1)
    return f"{host}:{int(port) + 1}"


# -- binglide's broker with a bare peer: what binglide's client and worker each add ---------


def bare_client(
    address: str, requests: int, in_flight: int, mark: Callable[[], None] = lambda: None
) -> tuple[list[float], float]:
    """`mdp_client` sending plain MDP/0.2 REQUESTs whose body is binglide's ``{"n": 1}``."""
    from binglide.payload import encode_body

    (body,) = encode_body({"n": 1})
    return mdp_client(address, requests, in_flight, mark=mark, body=bytes(body))


def bare_worker(address: str) -> None:
    """Serve ``echo`` as a plain MDP/0.2 worker: binglide's report frames, built once."""
    from binglide import Report
    from binglide.payload import encode_report

    report = [bytes(f) for f in encode_report(Report(np.array([1], dtype=np.int64)))]
    sock = _ready_worker(address)
    while True:
        _header, command, *rest = sock.recv_multipart()
        if command == b"\x02":  # REQUEST: tid, empty, body
            sock.send_multipart([b"MDPW02", b"\x04", rest[0], b"", *report])
        elif command == b"\x05":  # the broker's heartbeat: answer, or be dropped
            sock.send_multipart([b"MDPW02", b"\x05"])


# -- binglide ------------------------------------------------------------------------------


def echo_service() -> type:
    from binglide import Report, Service

    class Echo(Service):
        name = "echo"

        async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
            yield Report(np.array([task.body["n"]], dtype=np.int64))

    return Echo


async def binglide_measure(
    client: object, requests: int, in_flight: int
) -> tuple[list[float], float]:
    from binglide import Client

    assert isinstance(client, Client)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        await client.request("echo", {"n": 1})
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    await echo_lanes(client, requests, in_flight)
    return times, requests / (time.perf_counter() - start)


async def echo_lanes(client: Client, requests: int, in_flight: int) -> None:
    """Make `requests` echo requests from `in_flight` tasks at once."""
    remaining = requests

    async def lane() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await client.request("echo", {"n": 1})

    async with anyio.create_task_group() as tg:
        for _ in range(in_flight):
            tg.start_soon(lane)


async def binglide_zmq(
    address: str, requests: int, in_flight: int, mark: Callable[[], None]
) -> tuple[list[float], float]:
    from binglide.connect import connect_remote

    async with connect_remote(address, heartbeat_interval=1.0) as client:
        await client.request("echo", {"n": 1})  # warm up: the worker is registered
        mark()
        return await binglide_measure(client, requests, in_flight)


def binglide_zmq_client(
    address: str, requests: int, in_flight: int, mark: Callable[[], None] = lambda: None
) -> tuple[list[float], float]:
    return anyio.run(binglide_zmq, address, requests, in_flight, mark)


def caller_service() -> type:
    """A service whose handler awaits one ``echo`` sub-request, then answers."""
    from binglide import Report, Service

    class Caller(Service):
        name = "caller"

        async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
            echoed = await ctx.request("echo", task.body)
            yield Report(echoed.array + 1)

    return Caller


async def queue_pingpong(requests: int) -> list[float]:
    """Round trips of one item through two asyncio.Queues and a task: the loop's own cost."""
    import asyncio

    there: asyncio.Queue[int] = asyncio.Queue()
    back: asyncio.Queue[int] = asyncio.Queue()

    async def echo() -> None:
        while True:
            back.put_nowait(await there.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(echo)
        times = []
        for i in range(requests):
            start = time.perf_counter()
            there.put_nowait(i)
            await back.get()
            times.append(time.perf_counter() - start)
        tg.cancel_scope.cancel()
    return times


async def binglide_inproc(
    requests: int, in_flight: int
) -> tuple[list[float], float, list[float], list[float]]:
    """The embedded default with one worker per service (one process).

    Returns the sequential echo round trips, the pipelined rate, the round
    trips of a request whose handler awaits one sub-request, and the
    asyncio.Queue ping-pong of the same process right after.
    """
    from binglide import connect

    async with connect(
        services=[echo_service(), caller_service()], workers=1, builtins=False
    ) as client:
        for _ in range(20):  # warm up: every path taken once
            await client.request("echo", {"n": 1})
            await client.request("caller", {"n": 1})
        times, rate = await binglide_measure(client, requests, in_flight)
        nested = []
        for _ in range(requests):
            start = time.perf_counter()
            await client.request("caller", {"n": 1})
            nested.append(time.perf_counter() - start)
    return times, rate, nested, await queue_pingpong(requests)


def inproc_process(requests: int) -> tuple[list[float], float, list[float], list[float]]:
    """`binglide_inproc` in a process of its own (the ``binglide-inproc`` role).

    Not in this one: after the ZeroMQ lanes had run here, its echo took 20.6
    or 28.7 µs from one run to the next, where a fresh process's took 20.6
    every time (bench/RESULTS.md, issue 13, sixteenth pass).
    """
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        "binglide-inproc",
        "--requests",
        str(requests),
    ]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    times, rate, nested, pingpong = json.loads(out)
    return times, rate, nested, pingpong


# -- driver ---------------------------------------------------------------------------------


def free_address(pair: bool = False) -> str:
    """A free loopback port (with `pair`, the port after it is free too)."""
    while True:
        with socket.socket() as s, socket.socket() as t:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            try:
                if pair:
                    t.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return f"tcp://127.0.0.1:{port}"


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid`, all its threads (ZeroMQ's included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_processes(
    broker_args: list[str],
    worker_args: list[str],
    measure: Callable[..., tuple[list[float], float]],
) -> tuple[list[float], float, tuple[float, float, float]]:
    """Run `measure(mark=...)` against a broker and a worker process.

    Returns its times and rate, and the CPU seconds the broker, the worker and
    this client spent from `mark` (called by `measure` after its warm-up) on.
    """
    procs = [spawn(*broker_args)]
    time.sleep(0.3)  # let the broker bind before the worker connects (a bench, not a test)
    procs.append(spawn(*worker_args))
    start: list[float] = []

    def mark() -> None:
        start.extend([cpu_seconds(procs[0].pid), cpu_seconds(procs[1].pid), time.process_time()])

    try:
        times, rate = measure(mark=mark)
        end = (cpu_seconds(procs[0].pid), cpu_seconds(procs[1].pid), time.process_time())
        used = (end[0] - start[0], end[1] - start[1], end[2] - start[2])
        return times, rate, used
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


Summary = tuple[float, float, float, float, float, float, float]


def summary(
    times: list[float], rate: float, cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> Summary:
    """Median and p99 µs, sequential and pipelined req/s, and CPU µs per request.

    The CPU is that of the broker, the worker and the client over the
    sequential and the pipelined requests together (zero when not measured).
    """
    us = np.array(times) * 1e6
    broker, worker, client = (c / (2 * len(times)) * 1e6 for c in cpu)
    median, p99 = float(np.median(us)), float(np.percentile(us, 99))
    return median, p99, len(times) / sum(times), rate, broker, worker, client


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free interval for the median of `values` (None: too few of them).

    The sign test's: the median lies below the k-th smallest value, or above
    the k-th largest, with probability P(Binomial(n, 1/2) < k) each; k is the
    largest that keeps both within ``(1 - confidence) / 2``.
    """
    xs = sorted(values)
    n = len(xs)
    tail = (1 - confidence) / 2
    below = 0.0
    k = 0
    while k < n and below + math.comb(n, k) / 2**n <= tail:
        below += math.comb(n, k) / 2**n
        k += 1
    return (xs[k - 1], xs[n - k]) if k else None


#: A deployment over ZeroMQ: its broker role and arguments, its worker role,
#: its client, and whether its broker needs two ports.
Deployment = tuple[list[str], str, "Callable[..., Any]", bool]


def run_deployment(
    deployment: Deployment, requests: int
) -> tuple[list[float], float, tuple[float, float, float]]:
    """One run of `deployment` (a fresh broker and worker): `run_processes`' figures."""
    broker, worker, client, pair = deployment
    address = free_address(pair=pair)
    measure = functools.partial(client, address, requests, 128)
    return run_processes([broker[0], address, *broker[1:]], [worker, address], measure)


def paired_sequential(
    deployments: dict[str, Deployment], requests: int, pairs: int
) -> list[float]:
    """majortomo / binglide sequential medians, of `pairs` pairs of adjacent runs."""
    ratios = []
    for i in range(pairs):
        medians = {}
        for name in ("zmq", "majortomo") if i % 2 == 0 else ("majortomo", "zmq"):
            times, _, _ = run_deployment(deployments[name], requests)
            medians[name] = statistics.median(times)
        ratios.append(medians["majortomo"] / medians["zmq"])
        print(f"pair {i + 1}/{pairs}: majortomo / binglide {ratios[-1]:.3f}", file=sys.stderr)
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", default="bench")
    parser.add_argument("address", nargs="?")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prefetch", type=int, help="(binglide-broker role) its prefetch")
    parser.add_argument(
        "--pairs", type=int, default=0, help="paired runs of the sequential target (see above)"
    )
    parser.add_argument(
        "--only", choices=("all", "inproc", "zmq"), default="all", help="which deployments to run"
    )
    args = parser.parse_args(argv)
    plain_roles: dict[str, Callable[[str], None]] = {
        "mdp-broker": mdp_broker,
        "mdp-worker": mdp_worker,
        "mt-broker": mt_broker,
        "mt-worker": mt_worker,
        "floor-broker": floor_broker,
        "floor-worker": floor_worker,
        "bare-worker": bare_worker,
    }
    if args.role in plain_roles:
        plain_roles[args.role](args.address)
        return 0
    if args.role == "binglide-broker":
        from binglide.cli.main import main

        extra = [] if args.prefetch is None else ["--prefetch", str(args.prefetch)]
        return main(["broker", args.address, "--heartbeat-interval", "1.0", *extra])
    if args.role == "binglide-client":  # one echo at a time (requests_callgrind.py's zmq-worker)
        binglide_zmq_client(args.address, args.requests, 1)
        return 0
    if args.role == "binglide-inproc":
        print(json.dumps(anyio.run(binglide_inproc, args.requests, 100)))
        return 0
    if args.role == "binglide-worker":
        from binglide.worker import run_worker

        anyio.run(lambda: run_worker(args.address, echo_service(), heartbeat_interval=1.0))
        return 0

    n = args.requests
    names = [
        "zmq",
        "prefetch",
        "bare-client",
        "bare-worker",
        "inproc",
        "mdp",
        "majortomo",
        "floor",
    ]
    if args.only == "inproc":
        names = ["inproc"]
    elif args.only == "zmq":
        names.remove("inproc")
    results: dict[str, list[Summary]] = {name: [] for name in names}
    nested: list[float] = []  # medians (µs) of the in-process request with a sub-request
    queue: list[float] = []  # medians (µs) of the asyncio.Queue ping-pong
    deployments: dict[str, Deployment] = {
        "mdp": (["mdp-broker"], "mdp-worker", mdp_client, False),
        "floor": (["floor-broker"], "floor-worker", mdp_client, True),
        "majortomo": (
            ["mt-broker"],
            "mt-worker",
            functools.partial(mdp_client, majortomo=True),
            False,
        ),
        "zmq": (["binglide-broker"], "binglide-worker", binglide_zmq_client, False),
        "prefetch": (
            ["binglide-broker", "--prefetch", "1"],
            "binglide-worker",
            binglide_zmq_client,
            False,
        ),
        "bare-client": (["binglide-broker"], "binglide-worker", bare_client, False),
        "bare-worker": (["binglide-broker"], "bare-worker", bare_client, False),
    }
    for _ in range(args.repeat):
        for name, deployment in deployments.items():
            if name in names:
                results[name].append(summary(*run_deployment(deployment, n)))
        if "inproc" in names:
            times, rate, sub, pingpong = inproc_process(n)
            results["inproc"].append(summary(times, rate))
            nested.append(float(np.median(sub)) * 1e6)
            queue.append(float(np.median(pingpong)) * 1e6)

    paired = (
        paired_sequential(deployments, n, args.pairs)
        if args.pairs and args.only != "inproc"
        else []
    )

    med = {
        name: tuple(statistics.median(r[i] for r in runs) for i in range(7))
        for name, runs in results.items()
    }
    print(f"{n} tiny requests per run, median of {args.repeat} runs")
    print(
        f"{'':32} {'median µs':>10} {'p99 µs':>10} {'seq req/s':>10} {'req/s':>10}"
        f"   CPU µs/request broker / worker / client"
    )
    labels = {
        "zmq": "binglide zmq (3 procs, 128)",
        "prefetch": "  broker --prefetch 1",
        "bare-client": "  bare client",
        "bare-worker": "  bare client, bare worker",
        "inproc": "binglide inproc (1 proc, 100)",
        "mdp": "minimal MDP/0.2 (3 procs, 128)",
        "majortomo": "majortomo MDP/0.2 (3 procs, 128)",
        "floor": "floor: C proxy (3 procs, 128)",
    }
    for name, (median, p99, seq, rate, *cpu) in med.items():
        used = " / ".join(f"{c:.0f}" for c in cpu) if any(cpu) else "-"
        print(f"{labels[name]:32} {median:10.0f} {p99:10.0f} {seq:10.0f} {rate:10.0f}   {used}")
    for base_name in ("majortomo", "mdp"):
        if base_name not in med:
            continue
        base = med[base_name]
        for name in names:
            if name in ("mdp", "majortomo") or (name == "floor" and base_name == "mdp"):
                continue
            m = med[name]
            print(
                f"{name} / {base_name}: latency x{m[0] / base[0]:.2f} "
                f"(p99 x{m[1] / base[1]:.2f}), sequential throughput x{m[2] / base[2]:.2f}, "
                f"pipelined x{m[3] / base[3]:.2f}"
            )
    if {"zmq", "bare-client", "bare-worker"} <= med.keys():
        client_adds = med["zmq"][0] - med["bare-client"][0]
        worker_adds = med["bare-client"][0] - med["bare-worker"][0]
        print(
            f"sequential round trip: binglide's client adds {client_adds:.0f} µs to a bare "
            f"client's, binglide's worker {worker_adds:.0f} µs to a bare worker's"
        )
    print("targets (issue 13):")
    if "inproc" in med:
        echo, pingpong, sub = med["inproc"][0], statistics.median(queue), statistics.median(nested)
        targets = [
            (
                "in-process echo / asyncio.Queue ping-pong",
                echo / pingpong,
                "<= 3.5",
                echo / pingpong <= 3.5,
            ),
            (
                "in-process pipelined req/s",
                med["inproc"][3],
                ">= 25000",
                med["inproc"][3] >= 25_000,
            ),
            ("in-process request awaiting a sub-request µs", sub, "< 150", sub < 150),
        ]
        print(
            f"  (ping-pong {pingpong:.1f} µs, echo {echo:.1f} µs, with a sub-request {sub:.1f} µs)"
        )
    else:
        targets = []
    if "zmq" in med and "majortomo" in med:
        zmq_m, mt = med["zmq"], med["majortomo"]
        targets += [
            (
                "zmq sequential latency, majortomo / binglide",
                mt[0] / zmq_m[0],
                ">= 1.0",
                mt[0] >= zmq_m[0],
            ),
            (
                "zmq pipelined, binglide / majortomo",
                zmq_m[3] / mt[3],
                ">= 4.0",
                zmq_m[3] >= 4 * mt[3],
            ),
        ]
    if paired:
        ratio = statistics.median(paired)
        interval = median_interval(paired)
        said = f", 95% interval {interval[0]:.3f}-{interval[1]:.3f}" if interval else ""
        faster = sum(r >= 1.0 for r in paired)
        print(f"  (paired: {len(paired)} pairs, binglide as fast or faster in {faster}{said})")
        targets.append(
            (
                "zmq sequential, paired, majortomo / binglide",
                ratio,
                ">= 1.0",
                ratio >= 1.0,
            )
        )
    for what, value, goal, met in targets:
        print(f"  {what:48} {value:10.2f}  (target {goal}: {'met' if met else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
