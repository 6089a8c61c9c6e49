"""Instructions per in-process request, counted by callgrind (issue 13).

Wall times on a shared 2-core machine move by 2x between runs of the same
code; instruction counts do not. This bench runs the embedded default (one
worker per service, `bench/broker.py`'s echo and caller services) under
valgrind's callgrind and prints the instructions per request of:

- ``echo``: one request at a time to a service that answers at once;
- ``caller``: one request at a time to a service whose handler awaits one
  sub-request (to the echo service) before it answers;
- ``pipelined``: echo requests from 100 tasks at once;
- ``pingpong``: the yardstick, an asyncio.Queue ping-pong round trip;
- ``zmq-client``: one echo at a time over ZeroMQ (ipc://), counting the
  client's process (`connect_remote`; the broker and the worker run as
  plain processes beside it, not counted);
- ``zmq-worker``: the same requests, counting the worker's process
  (`run_worker`; the broker and the client beside it);
- ``zmq-broker``: the same requests, counting the broker's process
  (``binglide broker``'s blocking loop; the worker and the client beside it).

Only the main thread is counted (the Python code's): not ZeroMQ's I/O
thread, nor the thread numpy starts, whose counts move with the timing.

Each figure is (a run of ``--requests`` requests less a run of
``--warm-up`` requests) / their difference, so that start-up, imports and
the first requests' warm-up cancel out. With ``--baseline-src DIR`` (the
``src`` of another commit, from ``git archive COMMIT src | tar -x -C DIR``)
it counts that tree too and prints the ratios. Run::

    python bench/requests_callgrind.py --baseline-src /tmp/base/src
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import anyio
import anyio.abc

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
SCENARIOS = ("echo", "caller", "pipelined", "pingpong", "zmq-client", "zmq-worker", "zmq-broker")


async def run_scenario(scenario: str, requests: int) -> None:
    """Make `requests` requests of `scenario` in this process (the child's work)."""
    sys.path.insert(0, str(BENCH))
    import broker as bench_broker  # bench/broker.py: the services and the ping-pong

    from binglide import connect

    if scenario == "pingpong":
        await bench_broker.queue_pingpong(requests)
        return
    if scenario.startswith("zmq-"):
        await run_zmq_scenario(scenario, requests)
        return
    services = [bench_broker.echo_service(), bench_broker.caller_service()]
    async with connect(services=services, workers=1, builtins=False) as client:
        for _ in range(20):  # every path taken once before the counted runs differ
            await client.request("echo", {"n": 1})
            await client.request("caller", {"n": 1})
        if scenario in ("echo", "caller"):
            for _ in range(requests):
                await client.request(scenario, {"n": 1})
            return
        await bench_broker.echo_lanes(client, requests, 100)


def _role(address: str, role: str, *extra: str) -> list[str]:
    """The argv of a plain (uncounted) process of `bench/broker.py`."""
    return [sys.executable, str(BENCH / "broker.py"), role, address, *extra]


async def run_zmq_scenario(scenario: str, requests: int) -> None:
    """`requests` sequential echoes over ZeroMQ, this process the client or the worker."""
    import subprocess
    import tempfile

    sys.path.insert(0, str(BENCH))
    import broker as bench_broker

    async def start(*argv: str) -> anyio.abc.Process:
        return await anyio.open_process(argv, stdout=subprocess.DEVNULL, stderr=None)

    with tempfile.TemporaryDirectory(prefix="binglide-callgrind-") as tmp:
        address = f"ipc://{tmp}/broker"
        others = [await start(*_role(address, "binglide-broker"))]
        try:
            if scenario == "zmq-client":
                others.append(await start(*_role(address, "binglide-worker")))
                from binglide.connect import connect_remote

                async with connect_remote(address, heartbeat_interval=1.0) as client:
                    for _ in range(20):  # the worker registered, every path taken once
                        await client.request("echo", {"n": 1})
                    for _ in range(requests):
                        await client.request("echo", {"n": 1})
                return
            from binglide.worker import run_worker

            # As many warm-up requests as the zmq-client scenario makes.
            client_argv = [*_role(address, "binglide-client"), "--requests", str(requests + 20)]
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    lambda: run_worker(
                        address, bench_broker.echo_service(), heartbeat_interval=1.0
                    )
                )
                await (await start(*client_argv)).wait()
                tg.cancel_scope.cancel()
        finally:
            for process in others:
                process.terminate()
                await process.wait()


def run_zmq_broker(requests: int) -> None:
    """`requests` sequential echoes over ZeroMQ, this process the broker.

    The broker is ``binglide broker`` (its blocking loop, in the main thread,
    as `bench/broker.py` runs it); a thread runs the client as a plain
    process and, once it is done, stops the broker as SIGTERM does.
    """
    import signal
    import subprocess
    import tempfile
    import threading

    from binglide.cli.main import main as cli

    with tempfile.TemporaryDirectory(prefix="binglide-callgrind-") as tmp:
        address = f"ipc://{tmp}/broker"
        worker = subprocess.Popen(_role(address, "binglide-worker"), stdout=subprocess.DEVNULL)

        def client() -> None:
            # As many warm-up requests as the other zmq scenarios make.
            argv = [*_role(address, "binglide-client"), "--requests", str(requests + 20)]
            try:
                subprocess.run(argv, stdout=subprocess.DEVNULL, check=False)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # the broker's exit, as `binglide broker`'s

        threading.Thread(target=client, daemon=True).start()
        try:
            cli(["broker", address, "--heartbeat-interval", "1.0"])
        finally:
            worker.terminate()
            worker.wait()


def collected(src: str, scenario: str, requests: int) -> int:
    """The instructions callgrind counted for a child process's main thread."""
    argv = [sys.executable, __file__, "--child", scenario, "--requests", str(requests)]
    return main_thread_instructions(argv, src=src)


def main_thread_instructions(argv: list[str], *, src: str) -> int:
    """The instructions of the main thread of `argv` only (the Python code's).

    Over ZeroMQ, the I/O thread's count, and that of the threads asyncio
    starts to watch the child processes, move by 10% and more from run to
    run with the timing of the three processes; the main thread's do not.
    In one process too, a thread numpy starts at its import counts 3M to 9M
    instructions from run to run (its wait spins for as long as the machine
    lets it), which moved the in-process figures by up to 8% when the whole
    process was counted.
    """
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="binglide-callgrind-") as tmp:
        out = f"{tmp}/callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
                *argv,
            ],
            env=dict(os.environ, PYTHONPATH=src),
            check=True,
            capture_output=True,
        )
        [main] = Path(tmp).glob("callgrind.out-01")
        [line] = [x for x in main.read_text().splitlines() if x.startswith("summary:")]
        return int(line.split()[-1])


def per_request(src: str, scenario: str, warm_up: int, requests: int) -> float:
    """Instructions per request of `scenario` on the source tree `src`."""
    low = collected(src, scenario, warm_up)
    high = collected(src, scenario, requests)
    return (high - low) / (requests - warm_up)


def main() -> None:
    """Count, and print the figures (and the ratios to a baseline)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--warm-up", type=int, default=500)
    parser.add_argument("--baseline-src", help="another binglide src/ to compare with")
    parser.add_argument("--only", choices=SCENARIOS, help="one scenario")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "zmq-broker":  # a blocking loop, not an event loop's
        run_zmq_broker(args.requests)
        return
    if args.child:
        anyio.run(run_scenario, args.child, args.requests)
        return
    if args.requests <= args.warm_up:
        parser.error("--requests must be more than --warm-up")
    # A count is (a long run less a short one): start-up cancels out only if
    # it is the same in both. Randomised string hashing moves the start-up
    # (imports: dicts and sets laid out anew) by millions of instructions,
    # tens of thousands a request in-process: every child hashes alike.
    os.environ["PYTHONHASHSEED"] = "0"
    trees = {"current": str(SRC)}
    if args.baseline_src:
        trees["baseline"] = args.baseline_src
    names = [args.only] if args.only else list(SCENARIOS)
    print(f"instructions per request (callgrind, {args.requests} requests less {args.warm_up})")
    print(
        f"{'':<12}" + "".join(f"{t:>12}" for t in trees) + ("     ratio" if len(trees) > 1 else "")
    )
    for name in names:
        # The ping-pong runs no binglide code: one count, whatever the tree.
        counted = {"current": trees["current"]} if name == "pingpong" else trees
        counts = {
            t: per_request(src, name, args.warm_up, args.requests) for t, src in counted.items()
        }
        if name == "pingpong":
            counts = dict.fromkeys(trees, counts["current"])
        line = f"{name:<12}" + "".join(f"{counts[t]:>12.0f}" for t in trees)
        if len(trees) > 1 and name != "pingpong":
            line += f"{counts['current'] / counts['baseline']:>9.3f}x"
        print(line, flush=True)
    if "pingpong" in names and "echo" in names:
        print("(the issue's target: echo at most 3.5x the ping-pong)")


if __name__ == "__main__":
    main()
