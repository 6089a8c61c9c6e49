"""``binglide broker``, ``binglide worker`` and ``binglide keys``: the ZeroMQ deployment.

Argument parsing and the commands' runners; the work itself is done by
`binglide.broker.run_broker_blocking`, `binglide.worker.Worker` and
`binglide.supervisor.supervise_workers`. Errors are `UsageError` (one line,
status 2) or a `binglide.BinglideError` (one line, status 1), printed by
`binglide.cli.main`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from binglide import BrokerConfig, CancelMode, Settings
from binglide.broker import DEFAULT_MAX_MESSAGE_SIZE, run_broker_blocking
from binglide.cli.connection import add_connection_arguments
from binglide.cli.usage import (
    UsageError,
    byte_count,
    non_negative_int,
    positive_int,
    seconds,
)
from binglide.connect import default_services, load_client_keys, resolve_service, wait_handshake
from binglide.supervisor import supervise_workers
from binglide.worker import DEFAULT_HEARTBEAT_INTERVAL, Worker

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from anyio.abc import TaskStatus

    from binglide import Service
    from binglide.transports.zeromq import CurveClientKeys, CurveServerKeys, ZmqPeer

__all__ = (
    "add_broker_arguments",
    "add_keys_arguments",
    "add_worker_arguments",
    "run_broker_command",
    "run_keys_command",
    "run_worker_command",
)


def _seconds_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else seconds(text)


def _address(positional: str | None, option: str | None, flag: str, example: str) -> str:
    """Return the one address given, positionally or by `flag`.

    Raises:
        UsageError: none was given, or two different ones.
    """
    if positional and option and positional != option:
        raise UsageError(f"two addresses, {positional} and {option} ({flag}): give one")
    address = option or positional
    if not address:
        raise UsageError(f"give an address: {example}")
    return address


# -- broker -------------------------------------------------------------------------------


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``binglide broker`` arguments to `parser`."""
    d = BrokerConfig()
    parser.add_argument("address", nargs="?", metavar="ADDRESS", help="the same as --bind ADDRESS")
    parser.add_argument(
        "--bind",
        metavar="ADDRESS",
        help="the endpoint to listen on: tcp://127.0.0.1:5555 (this machine),"
        " tcp://0.0.0.0:5555 (every interface: needs --curve-dir), ipc:///path;"
        " port * picks a free one (required, here or as ADDRESS)",
    )
    parser.add_argument(
        "--curve-dir",
        metavar="DIR",
        help="CURVE keys from 'binglide keys DIR': the broker's key pair (server.key_secret)"
        " and the public keys it admits (authorized/*.key); required to listen on anything"
        " but loopback or ipc (default: no CURVE)",
    )
    limits = parser.add_argument_group("heartbeats, timeouts and bounds")
    limits.add_argument(
        "--heartbeat-interval",
        type=seconds,
        default=d.heartbeat_interval,
        metavar="SECONDS",
        help="seconds between heartbeats to each worker and client; theirs must be the"
        f" same (default: {d.heartbeat_interval:g})",
    )
    limits.add_argument(
        "--liveness",
        type=positive_int,
        default=d.liveness,
        metavar="N",
        help="heartbeat intervals of silence after which a worker or client counts as"
        f" gone: a worker's tasks go to others, a client's jobs are cancelled (default:"
        f" {d.liveness})",
    )
    limits.add_argument(
        "--plain-heartbeat-interval",
        type=seconds,
        default=d.plain_heartbeat_interval,
        metavar="SECONDS",
        help="seconds between the heartbeats of plain MDP workers (MDP/0.1 or 0.2, not"
        " binglide's), which count as gone after --liveness times the longer of this and"
        f" --heartbeat-interval (default: {d.plain_heartbeat_interval:g}, the ZeroMQ guide's"
        " Majordomo interval)",
    )
    limits.add_argument(
        "--service-timeout",
        type=seconds,
        default=d.service_timeout,
        metavar="SECONDS",
        help="seconds a request waits for a service that has no worker before it fails"
        f" (default: {d.service_timeout:g})",
    )
    limits.add_argument(
        "--max-depth",
        type=positive_int,
        default=d.max_depth,
        metavar="N",
        help=f"the deepest request tree accepted, in requests (default: {d.max_depth})",
    )
    limits.add_argument(
        "--stack-bound",
        type=positive_int,
        default=d.stack_bound,
        metavar="N",
        help="tasks waiting on sub-requests a worker holds before it only gets more to"
        f" keep the system making progress (default: {d.stack_bound})",
    )
    limits.add_argument(
        "--prefetch",
        type=positive_int,
        default=d.prefetch,
        metavar="N",
        help="the most computing tasks a worker may hold at once, for services whose"
        f" tasks are short; 1 turns prefetch off (default: {d.prefetch})",
    )
    limits.add_argument(
        "--prefetch-window",
        type=seconds,
        default=d.prefetch_window,
        metavar="SECONDS",
        help="seconds of a service's average task time a worker may have queued: the"
        " prefetch depth is this over the task time (default:"
        f" {d.prefetch_window:g})",
    )
    limits.add_argument(
        "--max-queued",
        type=positive_int,
        default=d.max_queued,
        metavar="N",
        help="tasks waiting per service before new requests are refused (default:"
        f" {d.max_queued})",
    )
    limits.add_argument(
        "--cancel-mode",
        choices=[m.value for m in CancelMode],
        default=d.cancel_mode.value,
        help="how workers hear of a cancelled job: broadcast (every worker, which filters"
        " by job id) or targeted (only the workers holding its tasks) (default:"
        f" {d.cancel_mode.value})",
    )
    limits.add_argument(
        "--max-message-size",
        type=byte_count,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="BYTES",
        help="the largest message frame accepted, in bytes (256M, 1G); a peer that sends a"
        f" larger one is disconnected; 0: no bound (default: {DEFAULT_MAX_MESSAGE_SIZE >> 20}M)",
    )


def _broker_config(args: argparse.Namespace) -> BrokerConfig:
    return BrokerConfig(
        heartbeat_interval=args.heartbeat_interval,
        liveness=args.liveness,
        plain_heartbeat_interval=args.plain_heartbeat_interval,
        service_timeout=args.service_timeout,
        max_depth=args.max_depth,
        stack_bound=args.stack_bound,
        prefetch=args.prefetch,
        prefetch_window=args.prefetch_window,
        max_queued=args.max_queued,
        cancel_mode=CancelMode(args.cancel_mode),
    )


def _server_keys(directory: str) -> CurveServerKeys:
    """Load the broker's CURVE keys from `directory`.

    Raises:
        UsageError: the directory, the key pair or the admitted keys are missing.
    """
    from binglide.transports.zeromq import CurveServerKeys

    root = Path(directory)
    make = f"make keys with 'binglide keys {directory}'"
    if not root.is_dir():
        raise UsageError(f"--curve-dir {directory}: no such directory; {make}")
    if not (root / "server.key_secret").is_file():
        raise UsageError(
            f"--curve-dir {directory}: no broker key pair there (server.key_secret); {make}"
        )
    if not (root / "authorized").is_dir():
        raise UsageError(
            f"--curve-dir {directory}: no authorized/ directory of the public keys the broker"
            f" admits; {make}"
        )
    try:
        return CurveServerKeys.from_directory(root)
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"--curve-dir {directory}: cannot read the broker's keys: {exc}"
        ) from None


class _Stop(Exception):
    """SIGTERM arrived: the blocking broker stops as on SIGINT."""


def _interrupt(signum: int, frame: object) -> None:
    # The exception interrupts zmq_poll, and the loop closes its socket on
    # the way out.
    raise _Stop


def run_broker_command(args: argparse.Namespace) -> int:
    """Run ``binglide broker`` with parsed `args`; return the exit status.

    Prints ``listening on ADDRESS`` (the bound endpoint) once bound, and
    serves (`run_broker_blocking`) until SIGINT or SIGTERM.

    Raises:
        UsageError: no address, keys that cannot be read, or an address
            reachable from other machines without keys.
        binglide.TransportBroken: ZeroMQ could not bind the address.
    """
    from binglide.transports.zeromq import is_local_address

    address = _address(
        args.address, args.bind, "--bind", "binglide broker --bind tcp://127.0.0.1:5555"
    )
    curve = _server_keys(args.curve_dir) if args.curve_dir else None
    if curve is None and not is_local_address(address):
        raise UsageError(
            f"refusing to listen on {address} without CURVE: a broker reachable from other"
            " machines must authenticate its peers. Make keys with 'binglide keys DIR' and"
            " start the broker with --curve-dir DIR (or listen on 127.0.0.1 or ipc://)"
        )
    config = _broker_config(args)

    def listening(bound: str) -> None:
        print(f"listening on {bound}", flush=True)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_broker_blocking(
            address,
            config=config,
            curve=curve,
            max_message_size=args.max_message_size or None,
            on_bound=listening,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


# -- worker -------------------------------------------------------------------------------


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``binglide worker`` arguments to `parser`."""
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="[ADDRESS] SERVICE",
        help="the broker's address, unless --connect gives it, then the services to serve:"
        " built-in names (histogram, ngrams, entropy, diff, data, stats, and the helpers"
        " chunk and segments) or module:Class, imported from the current directory or"
        " PYTHONPATH (default: every built-in analysis and its helpers)",
    )
    add_connection_arguments(
        parser,
        connect_help="the broker to serve: tcp://host:port, ipc:///path (required, here or"
        " as the first positional argument)",
        timeout=False,
    )
    run = parser.add_argument_group("how the workers run")
    run.add_argument(
        "--processes",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="worker processes per service, supervised and restarted when they die"
        " (default: 0, serve every service in this process)",
    )
    run.add_argument(
        "--heartbeat-interval",
        type=_seconds_or_zero,
        default=DEFAULT_HEARTBEAT_INTERVAL,
        metavar="SECONDS",
        help="seconds between heartbeats; must be the broker's --heartbeat-interval; 0:"
        f" none (default: {DEFAULT_HEARTBEAT_INTERVAL:g})",
    )
    run.add_argument(
        "--parallelism",
        type=positive_int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="how many chunk workers compute at once across the deployment: a hint for"
        " the chunk size a request is split into (default: the number of cores here,"
        f" {os.cpu_count() or 1})",
    )
    files = parser.add_argument_group("files and the chunk cache")
    files.add_argument(
        "--root",
        action="append",
        default=None,
        metavar="DIR",
        help="only read files under DIR (repeatable; default: anywhere)",
    )
    files.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the chunk cache (default: $BINGLIDE_CACHE_DIR or the user cache directory)",
    )
    files.add_argument(
        "--cache-max-size",
        type=byte_count,
        metavar="SIZE",
        help="the chunk cache's size bound, in bytes (4G, 512M; least recently used entries"
        " go first; default: $BINGLIDE_CACHE_MAX_SIZE or 4 GiB)",
    )
    files.add_argument(
        "--no-cache", action="store_true", help="neither read nor fill the chunk cache"
    )


def _worker_target(args: argparse.Namespace) -> tuple[str, list[str]]:
    """Return the broker's address and the service specs from the positionals and --connect.

    Raises:
        UsageError: no address.
    """
    targets = list(args.targets)
    example = "binglide worker --connect tcp://127.0.0.1:5555 [SERVICE ...]"
    if args.connect:
        if targets and "://" in targets[0]:
            return _address(targets[0], args.connect, "--connect", example), targets[1:]
        return args.connect, targets
    if not targets or "://" not in targets[0]:
        raise UsageError(f"give the broker's address: {example}")
    return targets[0], targets[1:]


def _service_classes(specs: Sequence[str]) -> list[type[Service]]:
    """Return the classes `specs` name (all the built-ins for none).

    Raises:
        UsageError: a spec names no service.
    """
    if not specs:
        return list(default_services())
    if any(":" in spec for spec in specs):
        # The `binglide` script's own directory heads sys.path, not the current
        # one as with `python -m`: look there too, after what is installed.
        here = os.getcwd()
        if here not in sys.path and "" not in sys.path:
            sys.path.append(here)
    try:
        return [resolve_service(spec) for spec in specs]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _settings(args: argparse.Namespace) -> Settings:
    cache = None
    if not args.no_cache:
        from binglide.cachefs import ChunkStore, default_cache_dir, default_max_bytes

        try:
            bound = args.cache_max_size if args.cache_max_size is not None else default_max_bytes()
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        cache = ChunkStore(args.cache_dir or default_cache_dir(), max_bytes=bound)
    return Settings(roots=args.root, cache=cache, parallelism=args.parallelism)


def _passthrough(args: argparse.Namespace) -> list[str]:
    """Return the options a supervised worker process gets from this command's."""
    out = ["--parallelism", str(args.parallelism)]
    for root in args.root or ():
        out += ["--root", root]
    if args.cache_dir:
        out += ["--cache-dir", args.cache_dir]
    if args.cache_max_size is not None:
        out += ["--cache-max-size", str(args.cache_max_size)]
    if args.no_cache:
        out.append("--no-cache")
    if args.curve_dir:
        out += ["--curve-dir", args.curve_dir, "--curve-name", args.curve_name]
    return out


async def _until_signalled(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _announce(
    address: str, served: Sequence[tuple[ZmqPeer, Worker]], *, with_keys: bool
) -> None:
    """Print one line once the broker has registered every worker.

    Raises:
        binglide.TransportRefused: the broker refused a worker's handshake.
    """
    for peer, _ in served:
        await wait_handshake(peer, with_keys=with_keys)
    for _, worker in served:
        await worker.wait_registered()
    names = ", ".join(worker.service.name for _, worker in served)
    print(f"registered with {address}: {names}", flush=True)


async def _serve(
    address: str,
    classes: Sequence[type[Service]],
    *,
    settings: Settings,
    heartbeat_interval: float | None,
    keys: CurveClientKeys | None,
) -> None:
    """Serve `classes` to the broker at `address`, one worker each, until signalled."""
    from binglide.transports.zeromq import ZmqPeer, new_identity

    async with anyio.create_task_group() as tg:
        tg.start_soon(_until_signalled, tg.cancel_scope)
        served = []
        for cls in classes:
            peer = ZmqPeer.connect(
                address,
                identity=new_identity(f"w-{cls.name}"),
                curve=keys,
                monitor=True,
                adaptive_io=True,  # a worker's lone reply leaves at once (`iothreads`)
            )
            worker = Worker(cls(), peer, settings=settings, heartbeat_interval=heartbeat_interval)
            await tg.start(worker.serve)
            served.append((peer, worker))
        await _announce(address, served, with_keys=keys is not None)


def run_worker_command(args: argparse.Namespace) -> int:
    """Run ``binglide worker`` with parsed `args`; return the exit status.

    Prints ``registered with ADDRESS: SERVICE, ...`` once the broker knows
    every worker, and serves until SIGINT or SIGTERM.

    Raises:
        UsageError: no address, an unknown service, or keys that cannot be read.
        binglide.TransportRefused: the broker refused the workers' handshake.
    """
    address, specs = _worker_target(args)
    classes = _service_classes(specs)
    keys = None
    if args.curve_dir:
        try:
            keys = load_client_keys(args.curve_dir, args.curve_name)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    interval = args.heartbeat_interval or None
    settings = _settings(args)
    if args.processes:
        passed = _passthrough(args)
        names = list(specs) or [cls.name for cls in classes]

        async def supervise() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_until_signalled, tg.cancel_scope)

                async def start(*, task_status: TaskStatus[object]) -> None:
                    await supervise_workers(
                        address,
                        names,
                        processes=args.processes,
                        heartbeat_interval=interval,
                        worker_args=passed,
                        task_status=task_status,
                    )

                await tg.start(start)

        anyio.run(supervise, backend="asyncio")
        return 0
    anyio.run(
        lambda: _serve(
            address, classes, settings=settings, heartbeat_interval=interval, keys=keys
        ),
        backend="asyncio",
    )
    return 0


# -- keys ---------------------------------------------------------------------------------


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``binglide keys`` arguments to `parser`."""
    parser.add_argument(
        "directory",
        metavar="DIR",
        help="where to write the keys (created if needed): server.key and"
        " server.key_secret (the broker's pair), NAME.key and NAME.key_secret per client,"
        " authorized/NAME.key (the public keys the broker admits)",
    )
    parser.add_argument(
        "--client",
        action="append",
        default=None,
        metavar="NAME",
        help="a key pair for a client or worker (repeatable; default: one named client)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace keys already in DIR (the peers that use them are locked out)",
    )


def run_keys_command(args: argparse.Namespace) -> int:
    """Run ``binglide keys DIR [--client NAME ...] [--force]``; return the exit status.

    Raises:
        UsageError: DIR already holds keys this would replace, without ``--force``.
    """
    from binglide.transports.zeromq import generate_keys

    root = Path(args.directory)
    clients = args.client or ["client"]
    for name in clients:
        if not name or "/" in name or name.startswith(".") or name == "server":
            raise UsageError(f"--client {name!r}: give a plain file name other than 'server'")
    names = ["server", *clients]
    files = [root / f"{n}.key" for n in names] + [root / f"{n}.key_secret" for n in names]
    files += [root / "authorized" / f"{n}.key" for n in clients]
    present = [str(p.relative_to(root)) for p in files if p.exists()]
    if present and not args.force:
        raise UsageError(
            f"{root} already holds keys ({', '.join(present)}): new ones would lock out the"
            " peers that use them; pass --force to replace them, or choose another directory"
        )
    written = generate_keys(root, clients=clients)
    print(f"keys written to {written}", flush=True)
    return 0
