"""Where a sub-command's requests go: the options that say so, and the client they open.

Every sub-command that sends requests takes the same options, added by two
functions and read by one:

- `add_connection_arguments`: ``--connect ADDRESS`` (a running broker) and
  its CURVE keys, ``--curve-dir DIR`` and ``--curve-name NAME``, and
  ``--connect-timeout SECONDS``;
- `add_embedded_arguments`: how the embedded default runs when there is no
  ``--connect`` (``--workers``, ``--cache-dir``, ``--cache-max-size``,
  ``--root``);
- `check_connection` refuses what cannot work before anything starts (keys
  that are not there, in-process options with ``--connect``), and
  `open_client` opens the `binglide.Client` the arguments describe.
"""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import binglide
from binglide.cli.usage import UsageError, byte_count, positive_int, seconds
from binglide.connect import load_client_keys

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Iterable

__all__ = (
    "DEFAULT_CONNECT_TIMEOUT",
    "add_connection_arguments",
    "add_embedded_arguments",
    "check_connection",
    "open_client",
)

#: Seconds a command waits for a broker to answer.
DEFAULT_CONNECT_TIMEOUT = 10.0


def add_connection_arguments(
    parser: argparse.ArgumentParser,
    *,
    connect_help: str = "use the broker at ADDRESS (tcp://host:port, ipc:///path) instead of"
    " starting one in this process",
    timeout: bool = True,
) -> argparse._ArgumentGroup:
    """Add ``--connect`` and the CURVE key options to `parser`; return their group.

    Args:
        parser: a sub-command's parser.
        connect_help: what ``--connect`` means for this sub-command.
        timeout: whether to add ``--connect-timeout`` too.
    """
    group = parser.add_argument_group("connection to a broker")
    group.add_argument("--connect", metavar="ADDRESS", help=connect_help)
    group.add_argument(
        "--curve-dir",
        metavar="DIR",
        help="CURVE keys, as 'binglide keys' writes them: DIR/NAME.key_secret (this"
        " side's key pair) and DIR/server.key (the broker's public key); needed when the"
        " broker uses CURVE, as every broker reachable from other machines does"
        " (default: no keys)",
    )
    group.add_argument(
        "--curve-name",
        metavar="NAME",
        default="client",
        help="the key pair in --curve-dir (default: client)",
    )
    if timeout:
        group.add_argument(
            "--connect-timeout",
            type=seconds,
            default=DEFAULT_CONNECT_TIMEOUT,
            metavar="SECONDS",
            help="how long to wait for the broker to answer, in seconds"
            f" (default: {DEFAULT_CONNECT_TIMEOUT:g})",
        )
    return group


def add_embedded_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the embedded default's options (without ``--connect``) to `parser`; return them."""
    group = parser.add_argument_group("workers in this process (without --connect)")
    group.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="workers per service (default: one per core)",
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the chunk cache (default: $BINGLIDE_CACHE_DIR or the user cache directory)",
    )
    group.add_argument(
        "--cache-max-size",
        type=byte_count,
        metavar="SIZE",
        help="the chunk cache's size bound, in bytes (4G, 512M; least recently used"
        " entries go first; default: $BINGLIDE_CACHE_MAX_SIZE or 4 GiB)",
    )
    group.add_argument(
        "--root",
        action="append",
        metavar="DIR",
        help="only read files under DIR (repeatable; default: anywhere)",
    )
    return group


#: The options of the embedded default, by attribute name.
_EMBEDDED = {
    "workers": "--workers",
    "cache_dir": "--cache-dir",
    "cache_max_size": "--cache-max-size",
    "root": "--root",
}


def check_connection(args: argparse.Namespace) -> None:
    """Refuse connection options that cannot work, before anything starts.

    Raises:
        UsageError: keys given without ``--connect``, keys that cannot be
            read, or in-process options given with ``--connect``.
    """
    if not args.connect:
        if args.curve_dir is not None:
            raise UsageError(
                "--curve-dir is for --connect: the workers in this process need no keys"
            )
        return
    local = [flag for name, flag in _EMBEDDED.items() if getattr(args, name, None) is not None]
    if local:
        raise UsageError(
            f"{', '.join(local)} set up workers in this process; with --connect the"
            " broker's workers have their own (see 'binglide worker --help')"
        )
    if args.curve_dir is not None:
        try:
            load_client_keys(args.curve_dir, args.curve_name)
        except ValueError as exc:
            raise UsageError(str(exc)) from None


@asynccontextmanager
async def open_client(
    args: argparse.Namespace,
    *,
    config: binglide.BrokerConfig | None = None,
    services: Iterable[type[binglide.Service]] = (),
) -> AsyncIterator[binglide.Client]:
    """Open the client `args` describe: on ``--connect``'s broker, or the embedded default.

    Call `check_connection` first: it turns what this would raise as
    ``ValueError`` into a one-line usage error before anything starts.

    Args:
        args: parsed with `add_connection_arguments` (and, for the embedded
            default's options, `add_embedded_arguments`).
        config: the embedded broker's settings (default: requests wait as
            long as it takes for a free worker, as a command is happy to).
        services: more `binglide.Service` classes for the embedded default
            (with ``--connect``, the broker's workers must serve them).

    Raises:
        binglide.TransportBroken: no broker answered at ``--connect``.
        binglide.TransportRefused: the broker refused us (see `binglide.connect`).
    """
    if args.connect:
        async with binglide.connect(
            args.connect,
            curve_dir=args.curve_dir,
            curve_name=args.curve_name,
            connect_timeout=getattr(args, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
            serve_files=getattr(args, "serve_files", False),
        ) as client:
            yield client
        return
    # A long job's queued chunks must not time out (the broker's default
    # queue deadline is 10 s).
    config = config or binglide.BrokerConfig(service_timeout=math.inf)
    async with binglide.connect(
        services=services,
        workers=getattr(args, "workers", None),
        cache_dir=getattr(args, "cache_dir", None),
        cache_max_size=getattr(args, "cache_max_size", None),
        roots=getattr(args, "root", None),
        config=config,
        serve_files=getattr(args, "serve_files", False),
    ) as client:
        yield client
