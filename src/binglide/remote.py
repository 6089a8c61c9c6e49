"""Brokers, workers and clients across processes and machines, over ZeroMQ.

The runtime (`Broker`, `Worker`, `Client`) is the same as in one process;
only the transport changes (`binglide.transports.zeromq`). This module wires
them together and runs them as processes:

- `connect_remote`: a `Client` on a broker's address, with heartbeats, so the
  broker cancels the jobs of a client that vanished and the client re-issues
  its open requests to a restarted broker;
- `run_broker`, `run_worker`: serve until cancelled;
- `supervise_workers`: start worker processes and restart the ones that die;
- `main_broker`, `main_worker`, `main_keys`: the ``binglide broker``,
  ``binglide worker`` and ``binglide keys`` commands (``python -m
  binglide.remote broker|worker|keys ...`` runs them without the CLI).

Heartbeat intervals must agree between a broker and its peers (MDP/0.2): a
peer is declared dead after ``liveness`` intervals of silence.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import math
import os
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import zmq
import zmq.asyncio

from .broker import Broker, encode_outgoing, feed
from .client import Client
from .core import BrokerConfig, BrokerMachine, CancelMode, IdSource
from .service import Service, Settings
from .transports.zeromq import (
    DEFAULT_MAX_MESSAGE_SIZE,
    CurveClientKeys,
    CurveServerKeys,
    ZmqBroker,
    ZmqPeer,
    bind_router,
    generate_keys,
    has_message,
    new_context,
    new_identity,
    receive_frames,
    send_frames,
)
from .worker import Worker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from anyio.abc import Process, TaskStatus

__all__ = (
    "RunningBroker",
    "WorkerSupervisor",
    "add_broker_arguments",
    "add_worker_arguments",
    "connect_remote",
    "main",
    "main_broker",
    "main_keys",
    "main_worker",
    "resolve_service",
    "run_broker",
    "run_broker_blocking",
    "run_broker_command",
    "run_worker",
    "run_worker_command",
    "supervise_workers",
)

log = logging.getLogger("binglide.remote")

#: Seconds between heartbeats when nothing else is said (the broker's default too).
DEFAULT_HEARTBEAT_INTERVAL = 1.0


# -- clients ---------------------------------------------------------------------------


@asynccontextmanager
async def connect_remote(
    address: str,
    *,
    heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
    curve: CurveClientKeys | None = None,
    identity: str | None = None,
    context: zmq.asyncio.Context | None = None,
) -> AsyncIterator[Client]:
    """Open a `Client` on the broker at `address`.

    Args:
        address: the broker's endpoint (``tcp://host:port``, ``ipc:///path``).
        heartbeat_interval: seconds between client heartbeats; it must match
            the broker's. None: no heartbeats (the broker then never cancels
            this client's jobs on silence, and a restarted broker is not
            noticed).
        curve: CURVE keys, needed when the broker uses CURVE.
        identity: the client's routing id (default: a fresh unique one).
        context: the ZeroMQ context (default: binglide's `shared_context`).

    Raises:
        TransportBroken: ZeroMQ refused the address.
    """
    peer = ZmqPeer.connect(
        address, identity=identity or new_identity("client"), curve=curve, context=context
    )
    async with Client(peer, heartbeat_interval=heartbeat_interval) as client:
        yield client


# -- broker ------------------------------------------------------------------------------


@attrs.frozen
class RunningBroker:
    """What `run_broker` hands to ``task_group.start``.

    Attributes:
        broker: the `Broker` (for `Broker.statistics`).
        address: the bound endpoint (with the port chosen, for ``:*``).
    """

    broker: Broker
    address: str


async def run_broker(
    address: str,
    *,
    config: BrokerConfig | None = None,
    curve: CurveServerKeys | None = None,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    context: zmq.asyncio.Context | None = None,
    task_status: TaskStatus[RunningBroker] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Bind a broker to `address` and serve until cancelled.

    Args:
        address: the endpoint to bind (``tcp://127.0.0.1:*`` picks a port).
        config: the broker's settings (heartbeats, timeouts, bounds).
        curve: CURVE keys; required unless `address` is loopback or ipc.
        max_message_size: the largest frame accepted, in bytes.
        context: the ZeroMQ context.
        task_status: receives a `RunningBroker` once bound.

    Raises:
        ValueError: a non-local address without CURVE (nothing was bound).
        TransportBroken: the address cannot be bound.
    """
    transport = ZmqBroker.bind(
        address, curve=curve, max_message_size=max_message_size, context=context
    )
    broker = Broker(transport, config=config)
    # Task ids start from the clock, so that a restarted broker never reuses
    # an id that a worker of the previous one may still hold.
    broker.machine = BrokerMachine(
        config, ids=IdSource(time.time_ns() // 1000), instance=os.urandom(8).hex()
    )
    async with anyio.create_task_group() as tg:
        await tg.start(broker.serve)
        task_status.started(RunningBroker(broker, transport.address))


#: Messages a blocking broker handles in a row before it looks at its timers.
_DRAIN = 256


def run_broker_blocking(
    address: str,
    *,
    config: BrokerConfig | None = None,
    curve: CurveServerKeys | None = None,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    on_bound: Callable[[str], object] | None = None,
) -> None:
    """Bind a broker to `address` and serve it from a lean blocking loop, forever.

    The same `BrokerMachine` as `run_broker`, driven by a plain pyzmq poll
    loop instead of an event loop: it drains every message that is ready
    (without waiting), feeds the machine, and sends what it says at once;
    it waits (``zmq_poll``) only when nothing is ready, until the machine's
    next deadline. No coroutine, future or cancel scope per message: this is
    what ``binglide broker`` runs, in a process of its own. It returns only
    by an exception (``KeyboardInterrupt`` from a signal, say), after
    closing its socket.

    Args:
        address: the endpoint to bind (``tcp://127.0.0.1:*`` picks a port).
        config: the broker's settings (heartbeats, timeouts, bounds).
        curve: CURVE keys; required unless `address` is loopback or ipc.
        max_message_size: the largest frame accepted, in bytes.
        on_bound: called with the bound endpoint once the broker listens.

    Raises:
        ValueError: a non-local address without CURVE (nothing was bound).
        TransportBroken: the address cannot be bound.
    """
    # Task ids start from the clock (see run_broker).
    machine = BrokerMachine(
        config, ids=IdSource(time.time_ns() // 1000), instance=os.urandom(8).hex()
    )
    ctx: zmq.Context[zmq.Socket[bytes]] = new_context(zmq.Context)
    try:
        sock, authenticator, bound = bind_router(
            ctx, address, curve=curve, max_message_size=max_message_size
        )
    except BaseException:
        ctx.term()
        raise
    clock = time.monotonic
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    peer_ids: dict[str, bytes] = {}

    def flush() -> None:
        for out in machine.outgoing():
            peer = out.peer
            routing = peer_ids.get(peer)
            if routing is None:
                routing = peer_ids[peer] = peer.encode("latin-1")
                if len(peer_ids) > 100_000:  # a cache, not a registry
                    peer_ids.clear()
            try:
                send_frames(sock, [routing, *encode_outgoing(out)])
            except zmq.ZMQError as exc:
                log.warning("could not send to peer %r: %s", peer, exc)

    try:
        if on_bound is not None:
            on_bound(bound)
        deadline = machine.next_deadline()
        while True:
            if deadline is None:
                timeout: int | None = None
            else:
                timeout = max(0, math.ceil((deadline - clock()) * 1000))
            if poller.poll(timeout):
                for _ in range(_DRAIN):
                    if not has_message(sock):
                        break
                    try:
                        frames = receive_frames(sock, zmq.DONTWAIT)
                    except zmq.Again:
                        break
                    peer = bytes(frames[0]).decode("latin-1")
                    feed(machine, peer, frames[1:], clock())
                # Send what the whole batch produced in one burst: a send wakes
                # ZeroMQ's I/O thread, which on a busy machine preempts this
                # one; a send per message received made a context switch pair
                # of every message.
                flush()
            now = clock()
            deadline = machine.next_deadline()
            if deadline is not None and deadline <= now:
                machine.handle_timer(now)
                flush()
                deadline = machine.next_deadline()
    finally:
        sock.close(linger=0)
        if authenticator is not None:
            authenticator.stop()
        ctx.term()


# -- workers ----------------------------------------------------------------------------


def resolve_service(spec: str) -> type[Service]:
    """Return the `Service` class `spec` names.

    Args:
        spec: a built-in service name (``histogram``) or ``module:Class``.

    Raises:
        ValueError: nothing of that name, or not a `Service` subclass.
    """
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
            cls = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load service {spec!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Service)):
            raise ValueError(f"{spec!r} is not a binglide.Service subclass")
        return cls
    from .services import BUILTIN_SERVICES

    by_name = {cls.name: cls for cls in BUILTIN_SERVICES}
    if spec not in by_name:
        known = ", ".join(sorted(by_name)) or "none yet"
        raise ValueError(
            f"unknown service {spec!r}: give a built-in name ({known}) or module:Class"
        )
    return by_name[spec]


async def run_worker(
    address: str,
    service_cls: type[Service],
    *,
    settings: Settings | None = None,
    heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
    curve: CurveClientKeys | None = None,
    identity: str | None = None,
    context: zmq.asyncio.Context | None = None,
    task_status: TaskStatus[Worker] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `service_cls` to the broker at `address` until cancelled.

    The worker registers (READY), heartbeats while its handlers compute (they
    run kernels in threads), and registers again when the broker restarts.

    Args:
        address: the broker's endpoint.
        service_cls: the `Service` to host.
        settings: roots, cache and hints shared by the deployment's workers.
        heartbeat_interval: seconds between heartbeats; must match the broker's.
        curve: CURVE keys, needed when the broker uses CURVE.
        identity: the routing id (default: a fresh unique one).
        context: the ZeroMQ context.
        task_status: receives the `Worker` once it serves.

    Raises:
        TransportBroken: ZeroMQ refused the address.
    """
    peer = ZmqPeer.connect(
        address,
        identity=identity or new_identity(f"w-{service_cls.name}"),
        curve=curve,
        context=context,
    )
    worker = Worker(service_cls(), peer, settings=settings, heartbeat_interval=heartbeat_interval)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        task_status.started(worker)


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


def _worker_command(
    address: str, spec: str, *, heartbeat_interval: float | None, args: Sequence[str]
) -> list[str]:
    command = [sys.executable, "-m", "binglide.remote", "worker", address, spec]
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

    Each process runs ``python -m binglide.remote worker ADDRESS SPEC``. A
    process that exits while the supervisor runs is started again after
    `restart_delay` seconds. When cancelled, the supervisor asks every process
    to stop (SIGTERM: it says DISCONNECT so its tasks are re-issued at once)
    and kills those that have not stopped after a few seconds.

    Args:
        address: the broker's endpoint.
        service_specs: built-in names or ``module:Class`` (see `resolve_service`).
        processes: processes per spec.
        heartbeat_interval: the workers' heartbeat interval.
        worker_args: extra command-line arguments for each worker (``--root``,
            ``--cache-dir``, ``--curve-dir``...; see `add_worker_arguments`).
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
        command = _worker_command(
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


# -- command line -------------------------------------------------------------------------


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``binglide broker`` arguments to `parser`."""
    d = BrokerConfig()
    parser.add_argument("address", help="endpoint to bind: tcp://127.0.0.1:5555, ipc:///path")
    parser.add_argument("--heartbeat-interval", type=_positive, default=d.heartbeat_interval)
    parser.add_argument("--liveness", type=int, default=d.liveness)
    parser.add_argument("--service-timeout", type=_positive, default=d.service_timeout)
    parser.add_argument("--max-depth", type=int, default=d.max_depth)
    parser.add_argument("--stack-bound", type=int, default=d.stack_bound)
    parser.add_argument(
        "--prefetch",
        type=int,
        default=d.prefetch,
        help="the most computing tasks an extended worker may hold at once "
        f"(default {d.prefetch}; 1 turns prefetch off)",
    )
    parser.add_argument(
        "--prefetch-window",
        type=_positive,
        default=d.prefetch_window,
        help="seconds of a service's smoothed task time a worker may have queued: "
        f"the prefetch depth is this over the task time (default {d.prefetch_window})",
    )
    parser.add_argument("--max-queued", type=int, default=d.max_queued)
    parser.add_argument(
        "--cancel-mode", choices=[m.value for m in CancelMode], default=d.cancel_mode.value
    )
    parser.add_argument(
        "--max-message-size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE, help="bytes per frame"
    )
    parser.add_argument(
        "--curve-dir",
        help="directory written by `binglide keys` (required for non-loopback addresses)",
    )


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``binglide worker`` arguments to `parser`."""
    parser.add_argument("address", help="the broker's endpoint")
    parser.add_argument("services", nargs="+", help="built-in service names or module:Class")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="worker processes per service, supervised and restarted when they die "
        "(default 0: serve in this process)",
    )
    parser.add_argument("--heartbeat-interval", type=float, default=DEFAULT_HEARTBEAT_INTERVAL)
    parser.add_argument("--root", action="append", default=None, help="readable directory")
    parser.add_argument("--cache-dir", help="chunk cache directory")
    parser.add_argument("--no-cache", action="store_true", help="do not use the chunk cache")
    parser.add_argument("--parallelism", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--curve-dir", help="directory holding this worker's CURVE keys")
    parser.add_argument("--curve-name", default="client", help="key pair name in --curve-dir")


def _broker_config(args: argparse.Namespace) -> BrokerConfig:
    return BrokerConfig(
        heartbeat_interval=args.heartbeat_interval,
        liveness=args.liveness,
        service_timeout=args.service_timeout,
        max_depth=args.max_depth,
        stack_bound=args.stack_bound,
        prefetch=args.prefetch,
        prefetch_window=args.prefetch_window,
        max_queued=args.max_queued,
        cancel_mode=CancelMode(args.cancel_mode),
    )


async def _until_signalled(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


def run_broker_command(args: argparse.Namespace) -> int:
    """Run ``binglide broker`` with parsed `args`; return the exit status.

    Prints ``listening on ADDRESS`` (the bound endpoint) once bound, and
    serves (`run_broker_blocking`) until SIGINT or SIGTERM.
    """
    config = _broker_config(args)
    curve = CurveServerKeys.from_directory(args.curve_dir) if args.curve_dir else None

    def listening(address: str) -> None:
        print(f"listening on {address}", flush=True)  # noqa: T201 - the CLI's output

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_broker_blocking(
            args.address,
            config=config,
            curve=curve,
            max_message_size=args.max_message_size or None,
            on_bound=listening,
        )
    except ValueError as exc:
        print(f"binglide broker: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM stops the blocking broker as SIGINT does: the exception
    # interrupts zmq_poll, and the loop closes its socket on the way out.
    raise KeyboardInterrupt


def _settings(args: argparse.Namespace) -> Settings:
    cache = None
    if not args.no_cache:
        try:
            from .cachefs import ChunkStore, default_cache_dir
        except ImportError:  # pragma: no cover - the cache is optional
            pass
        else:
            cache = ChunkStore(args.cache_dir or default_cache_dir())
    return Settings(roots=args.root, cache=cache, parallelism=args.parallelism)


def run_worker_command(args: argparse.Namespace) -> int:
    """Run ``binglide worker`` with parsed `args`; return the exit status."""
    try:
        classes = [resolve_service(spec) for spec in args.services]
    except ValueError as exc:
        print(f"binglide worker: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    interval = args.heartbeat_interval or None
    if args.processes:
        passed = _passthrough(args)

        async def supervise() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_until_signalled, tg.cancel_scope)
                await tg.start(
                    lambda task_status: supervise_workers(
                        args.address,
                        args.services,
                        processes=args.processes,
                        heartbeat_interval=interval,
                        worker_args=passed,
                        task_status=task_status,
                    )
                )

        anyio.run(supervise, backend="asyncio")
        return 0
    settings = _settings(args)
    curve = (
        CurveClientKeys.from_directory(args.curve_dir, args.curve_name) if args.curve_dir else None
    )

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_until_signalled, tg.cancel_scope)
            for cls in classes:
                await tg.start(
                    lambda task_status, cls=cls: run_worker(
                        args.address,
                        cls,
                        settings=settings,
                        heartbeat_interval=interval,
                        curve=curve,
                        task_status=task_status,
                    )
                )

    anyio.run(serve, backend="asyncio")
    return 0


def _passthrough(args: argparse.Namespace) -> list[str]:
    out = ["--parallelism", str(args.parallelism)]
    for root in args.root or ():
        out += ["--root", root]
    if args.cache_dir:
        out += ["--cache-dir", args.cache_dir]
    if args.no_cache:
        out.append("--no-cache")
    if args.curve_dir:
        out += ["--curve-dir", args.curve_dir, "--curve-name", args.curve_name]
    return out


def _logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(name)s[%(process)d]: %(message)s")


def main_broker(argv: Sequence[str] | None = None) -> int:
    """Run ``binglide broker ADDRESS [options]``; return the exit status."""
    parser = argparse.ArgumentParser(prog="binglide broker", description="Run a broker.")
    add_broker_arguments(parser)
    _logging()
    return run_broker_command(parser.parse_args(argv))


def main_worker(argv: Sequence[str] | None = None) -> int:
    """Run ``binglide worker ADDRESS SERVICE... [options]``; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="binglide worker", description="Serve services to a broker."
    )
    add_worker_arguments(parser)
    _logging()
    return run_worker_command(parser.parse_args(argv))


def main_keys(argv: Sequence[str] | None = None) -> int:
    """Run ``binglide keys DIRECTORY [--client NAME ...]``; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="binglide keys", description="Write CURVE keys for a broker and its peers."
    )
    parser.add_argument("directory")
    parser.add_argument("--client", action="append", default=None, help="client key pair name")
    args = parser.parse_args(argv)
    root = generate_keys(args.directory, clients=args.client or ("client",))
    print(f"keys written to {root}", flush=True)  # noqa: T201 - the CLI's output
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``python -m binglide.remote broker|worker|keys ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands: dict[str, Any] = {"broker": main_broker, "worker": main_worker, "keys": main_keys}
    if not argv or argv[0] not in commands:
        print("usage: python -m binglide.remote {broker|worker|keys} ...", file=sys.stderr)  # noqa: T201
        return 2
    return int(commands[argv[0]](argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
