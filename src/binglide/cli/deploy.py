"""``binglide broker``, ``binglide worker`` and ``binglide keys``: the ZeroMQ deployment.

Argument parsing and the commands' runners; the work itself is done by
`binglide.broker.run_broker_blocking`, `binglide.worker.run_worker` and
`binglide.supervisor.supervise_workers`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

import anyio

from binglide import BrokerConfig, CancelMode, Settings
from binglide.broker import DEFAULT_MAX_MESSAGE_SIZE, run_broker_blocking
from binglide.connect import resolve_service
from binglide.supervisor import supervise_workers
from binglide.worker import DEFAULT_HEARTBEAT_INTERVAL, run_worker

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

__all__ = (
    "add_broker_arguments",
    "add_keys_arguments",
    "add_worker_arguments",
    "run_broker_command",
    "run_keys_command",
    "run_worker_command",
)


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


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``binglide keys`` arguments to `parser`."""
    parser.add_argument("directory")
    parser.add_argument("--client", action="append", default=None, help="client key pair name")


def _logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(name)s[%(process)d]: %(message)s")


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


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM stops the blocking broker as SIGINT does: the exception
    # interrupts zmq_poll, and the loop closes its socket on the way out.
    raise KeyboardInterrupt


def run_broker_command(args: argparse.Namespace) -> int:
    """Run ``binglide broker`` with parsed `args`; return the exit status.

    Prints ``listening on ADDRESS`` (the bound endpoint) once bound, and
    serves (`run_broker_blocking`) until SIGINT or SIGTERM.
    """
    from binglide.transports.zeromq import CurveServerKeys

    _logging()
    config = _broker_config(args)
    curve = CurveServerKeys.from_directory(args.curve_dir) if args.curve_dir else None

    def listening(address: str) -> None:
        print(f"listening on {address}", flush=True)

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
        print(f"binglide broker: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    cache = None
    if not args.no_cache:
        from binglide.cachefs import ChunkStore, default_cache_dir

        cache = ChunkStore(args.cache_dir or default_cache_dir())
    return Settings(roots=args.root, cache=cache, parallelism=args.parallelism)


def _passthrough(args: argparse.Namespace) -> list[str]:
    """Return the options a supervised worker process gets from this command's."""
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


def run_worker_command(args: argparse.Namespace) -> int:
    """Run ``binglide worker`` with parsed `args`; return the exit status."""
    from binglide.transports.zeromq import CurveClientKeys

    _logging()
    try:
        classes = [resolve_service(spec) for spec in args.services]
    except ValueError as exc:
        print(f"binglide worker: {exc}", file=sys.stderr)
        return 2
    interval = args.heartbeat_interval or None
    if args.processes:
        passed = _passthrough(args)

        async def supervise() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_until_signalled, tg.cancel_scope)

                async def start(*, task_status: TaskStatus[object]) -> None:
                    await supervise_workers(
                        args.address,
                        args.services,
                        processes=args.processes,
                        heartbeat_interval=interval,
                        worker_args=passed,
                        task_status=task_status,
                    )

                await tg.start(start)

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


def run_keys_command(args: argparse.Namespace) -> int:
    """Run ``binglide keys DIRECTORY [--client NAME ...]``; return the exit status."""
    from binglide.transports.zeromq import generate_keys

    root = generate_keys(args.directory, clients=args.client or ("client",))
    print(f"keys written to {root}", flush=True)
    return 0
