"""The broker machine's own cost per request, no sockets: binglide.core.BrokerMachine alone.

`bench/broker.py` times whole round trips over ZeroMQ, where the machine is a
fraction of the broker process's CPU and the machine's noise drowns small
changes. This bench feeds the machine messages directly (as the broker loops
do, without decoding) and times what it costs per request, in µs of this
process's CPU time (so that other processes on a shared machine add no
time, only cache misses):

- ``sequential``: one extended client, two extended workers; a request, its
  dispatch, its FINAL, one at a time;
- ``sequential, turns``: the same, each message taken with the end of its
  turn, as the in-process runtime takes it (``BrokerMachine.step``; in a
  tree without it, ``receive`` then ``settle``);
- ``pipelined``: 128 requests in flight, tasks of 0.1 ms (so workers prefetch);
- ``pipelined, turns``: the same, the next deadline asked after each message,
  as a runtime's turn asks it (requests queue: the deadline heap is busy);
- ``plain``: a plain MDP/0.2 client and worker, one at a time;
- ``sub-request``: each task issues a sub-request to another service and
  ends when it is answered (two tasks per request).

``--churn`` measures memory instead (tracemalloc, bytes still allocated
after the churn, and the peak during it): 10^5 requests from one client to
unique service names nobody serves (one a millisecond, each waiting its 1 s
service timeout), and 10^5 plain client identities with one request each,
answered at once.

``--callgrind`` counts instructions instead, under valgrind's callgrind
(deterministic: the load of a shared machine changes nothing): per request,
a run of ``--requests`` requests less a run of none, for each scenario.

With ``--baseline-src DIR`` it also runs another copy of binglide's source
(``git archive`` of a commit) in child processes, interleaved round by round
with the current one, and prints the ratios (current / baseline; under 1 is
faster). Each figure is the best of ``--repeat`` rounds (the noise of a
shared machine only ever adds time; the median is printed too). Run::

    git archive COMMIT src | tar -x -C /tmp/base
    python bench/broker_machine.py --baseline-src /tmp/base/src --repeat 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

SRC = Path(__file__).resolve().parent.parent / "src"


def scenarios(requests: int) -> dict[str, Callable[[], float]]:
    """Return the scenarios: each runs `requests` requests and returns µs per request."""
    from binglide.core import (
        BrokerConfig,
        BrokerMachine,
        Final,
        IdSource,
        PeerId,
        Protocol,
        Ready,
        Request,
    )

    client_hop, worker_hop = Protocol.CLIENT, Protocol.WORKER
    inf = float("inf")
    plain_request = _plain_request_factory()

    def machine(**config: object) -> BrokerMachine:
        cfg = BrokerConfig(heartbeat_interval=inf, **config)  # type: ignore[arg-type]
        return BrokerMachine(cfg, ids=IdSource(1))

    def dispatched(out: list) -> list[tuple[PeerId, int]]:  # type: ignore[type-arg]
        return [(o.peer, o.message.rid) for o in out if isinstance(o.message, Request)]

    def sequential() -> float:
        m = machine()
        w1, w2, c = PeerId("w1"), PeerId("w2"), PeerId("c")
        m.receive(w1, worker_hop, Ready("s"), 0.0)
        m.receive(w2, worker_hop, Ready("s"), 0.0)
        m.outgoing()
        payload = (b'{"v":1}',)
        start = time.process_time()
        for rid in range(1, requests + 1):
            m.receive(c, client_hop, Request(rid, "s", payload), 0.0)
            [(worker, tid)] = dispatched(m.outgoing())
            m.receive(worker, worker_hop, Final(tid, payload), 0.0)
            m.outgoing()
        return (time.process_time() - start) / max(requests, 1) * 1e6

    def sequential_turns() -> float:
        # `sequential`, each message taken with its turn's end, as the
        # in-process runtime takes it: `step` (receive and settle in one
        # call), or, in a tree before it, `receive` then `settle`.
        m = machine()
        step = getattr(m, "step", None)
        if step is None:

            def step(peer: PeerId, protocol: Protocol, msg: object, now: float) -> tuple:  # type: ignore[type-arg]
                m.receive(peer, protocol, msg, now)  # type: ignore[arg-type]
                return m.settle(now)

        w1, w2, c = PeerId("w1"), PeerId("w2"), PeerId("c")
        step(w1, worker_hop, Ready("s"), 0.0)
        step(w2, worker_hop, Ready("s"), 0.0)
        payload = (b'{"v":1}',)
        start = time.process_time()
        for rid in range(1, requests + 1):
            out, _, _ = step(c, client_hop, Request(rid, "s", payload), 0.0)
            [(worker, tid)] = dispatched(out)
            step(worker, worker_hop, Final(tid, payload), 0.0)
        return (time.process_time() - start) / max(requests, 1) * 1e6

    def pipelined(*, turns: bool = False) -> float:
        m = machine()
        # With `turns`, the deadline is asked after each message, as a
        # runtime's `turn` does (the machine keeps it, or works it out).
        deadline = m.next_deadline if turns else lambda: None
        workers = [PeerId("w1"), PeerId("w2")]
        c = PeerId("c")
        for w in workers:
            m.receive(w, worker_hop, Ready("s"), 0.0)
        m.outgoing()
        held: dict[PeerId, list[int]] = {w: [] for w in workers}
        now = 0.0
        sent = 0
        done = 0
        start = time.process_time()
        while done < requests:
            while sent < requests and sent - done < 128:
                sent += 1
                m.receive(c, client_hop, Request(sent, "s"), now)
                deadline()
                for w, tid in dispatched(m.outgoing()):
                    held[w].append(tid)
            for w in workers:
                if held[w]:
                    now += 0.0001  # a 0.1 ms task: short, prefetched
                    m.receive(w, worker_hop, Final(held[w].pop(0)), now)
                    deadline()
                    done += 1
                    for w2, tid in dispatched(m.outgoing()):
                        held[w2].append(tid)
        return (time.process_time() - start) / max(requests, 1) * 1e6

    def plain() -> float:
        m = machine()
        w, c = PeerId("pw"), PeerId("pc")
        m.receive(w, worker_hop, Ready("s", extended=False), 0.0)
        m.outgoing()
        start = time.process_time()
        for _ in range(requests):
            m.receive(c, client_hop, plain_request("s", (b"body",)), 0.0)
            [(worker, tid)] = dispatched(m.outgoing())
            m.receive(worker, worker_hop, Final(tid, (b"reply",)), 0.0)
            m.outgoing()
        return (time.process_time() - start) / max(requests, 1) * 1e6

    def sub_request() -> float:
        m = machine()
        top, leaf, c = PeerId("top"), PeerId("leaf"), PeerId("c")
        m.receive(top, worker_hop, Ready("top"), 0.0)
        m.receive(leaf, worker_hop, Ready("leaf"), 0.0)
        m.outgoing()
        start = time.process_time()
        for rid in range(1, requests + 1):
            m.receive(c, client_hop, Request(rid, "top", (b"%d" % rid,)), 0.0)
            [(_, tid)] = dispatched(m.outgoing())
            out = [o.message for o in m.outgoing()]
            assert not out
            m.receive(top, client_hop, Request(1, "leaf", (b"x",), "", (), tid), 0.0)
            [(_, leaf_tid)] = dispatched(m.outgoing())
            m.receive(leaf, worker_hop, Final(leaf_tid), 0.0)
            m.outgoing()
            m.receive(top, worker_hop, Final(tid), 0.0)
            m.outgoing()
        return (time.process_time() - start) / max(requests, 1) * 1e6

    return {
        "sequential": sequential,
        "sequential, turns": sequential_turns,
        "pipelined": pipelined,
        "pipelined, turns": lambda: pipelined(turns=True),
        "plain": plain,
        "sub-request": sub_request,
    }


def _plain_request_factory() -> Callable[[str, tuple[bytes, ...]], object]:
    """A plain MDP/0.2 REQUEST, as this tree's core spells it (rid 0, or extended=False)."""
    from binglide.core import Request

    try:
        Request(0, "s", (), extended=False)  # type: ignore[call-arg, unused-ignore]
    except TypeError:  # before Request.extended: rid 0 meant plain
        return lambda service, body: Request(0, service, body)
    return lambda service, body: Request(0, service, body, extended=False)  # type: ignore[call-arg, unused-ignore]


def churn(count: int) -> dict[str, float]:
    """Memory under churn of service names and client identities (see the module docstring)."""
    import tracemalloc

    from binglide.core import BrokerConfig, BrokerMachine, Final, PeerId, Protocol, Ready, Request

    plain_request = _plain_request_factory()
    results: dict[str, float] = {}
    for what in ("names", "identities"):
        cfg = BrokerConfig(service_timeout=1.0, heartbeat_interval=float("inf"))
        m = BrokerMachine(cfg)
        w = PeerId("w")
        m.receive(w, Protocol.WORKER, Ready("echo", extended=False), 0.0)
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        now = 0.0
        for i in range(count):
            now = i / 1000
            if what == "names":
                m.receive(PeerId("client"), Protocol.CLIENT, Request(i + 1, f"svc-{i}"), now)
                if i % 100 == 0:
                    m.handle_timer(now)
            else:
                peer = PeerId(f"plain-{i}")
                m.receive(peer, Protocol.CLIENT, plain_request("echo", (b"x",)), now)  # type: ignore[arg-type]
                [tid] = [o.message.rid for o in m.outgoing() if isinstance(o.message, Request)]
                m.receive(w, Protocol.WORKER, Final(tid, (b"y",)), now)
            m.outgoing()
        m.handle_timer(now + 2.0)
        m.outgoing()
        after, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        stats = m.statistics()
        results[f"{what} retained MB"] = (after - before) / 1e6
        results[f"{what} peak MB"] = (peak - before) / 1e6
        results[f"{what} services left"] = len(stats.services)
        results[f"{what} clients left"] = stats.clients
    return results


def run_once(requests: int, only: str | None = None) -> dict[str, float]:
    """Run every scenario (or `only` one) once in this process; return µs per request by name."""
    return {name: fn() for name, fn in scenarios(requests).items() if only in (None, name)}


def instructions(src: str, requests: int) -> dict[str, float]:
    """Instructions per request of each scenario, counted by callgrind, on the tree `src`."""

    from common import callgrind_instructions  # the parent's only: children stay lean

    def count(scenario: str, n: int) -> int:
        argv = [sys.executable, __file__, "--child", "--requests", str(n), "--only", scenario]
        return callgrind_instructions(argv, src=src)

    names = [
        "sequential",
        "sequential, turns",
        "pipelined",
        "pipelined, turns",
        "plain",
        "sub-request",
    ]
    empty = count(names[0], 0)  # start-up and imports
    return {name: (count(name, requests) - empty) / requests for name in names}


def run_child(src: str, requests: int, *, churn: bool = False) -> dict[str, float]:
    """Run every scenario (or the churn) once in a child process on the source tree `src`."""
    env = dict(os.environ, PYTHONPATH=src)
    flags = ["--churn"] if churn else []
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--requests", str(requests), *flags],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> None:
    """Run the bench and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-src", help="another binglide src/ to compare with")
    parser.add_argument("--churn", action="store_true", help="memory under churn instead")
    parser.add_argument("--callgrind", action="store_true", help="instructions (valgrind)")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.churn:
            print(json.dumps(churn(args.requests)))
        else:
            print(json.dumps(run_once(args.requests, args.only)))
        return
    trees = {"current": str(SRC)}
    if args.baseline_src:
        trees["baseline"] = args.baseline_src
    if args.callgrind:
        count = 5000 if args.requests == 20_000 else args.requests
        print(f"instructions per request (callgrind, {count} requests less none)")
        counted = {name: instructions(src, count) for name, src in trees.items()}
        print(f"{'':<16}" + "".join(f"{name:>14}" for name in trees) + "     ratio")
        for key in counted["current"]:
            line = f"{key:<16}" + "".join(f"{counted[t][key]:>14.0f}" for t in trees)
            if args.baseline_src:
                line += f"{counted['current'][key] / counted['baseline'][key]:>9.3f}x"
            print(line)
        return
    if args.churn:
        count = 100_000 if args.requests == 20_000 else args.requests
        print(f"churn: {count} unique service names, then {count} plain client identities")
        results = {name: run_child(src, count, churn=True) for name, src in trees.items()}
        print(f"{'':<28}" + "".join(f"{name:>14}" for name in trees))
        for key in results["current"]:
            print(f"{key:<28}" + "".join(f"{results[t][key]:>14.2f}" for t in trees))
        return
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.repeat):
        for name, src in trees.items():  # interleaved: the machine's load hits both
            rounds[name].append(run_child(src, args.requests))
    names = list(rounds["current"][0])
    header = f"{'µs per request':<16}" + "".join(f"{n + ' best/median':>24}" for n in trees)
    if args.baseline_src:
        header += f"{'ratio of best':>15}"
    print(f"{args.requests} requests per round, {args.repeat} rounds")
    print(header)
    for scenario in names:
        best = {t: min(r[scenario] for r in rounds[t]) for t in trees}
        median = {t: statistics.median(r[scenario] for r in rounds[t]) for t in trees}
        line = f"{scenario:<16}" + "".join(
            f"{f'{best[t]:.2f} / {median[t]:.2f}':>24}" for t in trees
        )
        if args.baseline_src:
            line += f"{best['current'] / best['baseline']:>14.2f}x"
        print(line)


if __name__ == "__main__":
    main()
