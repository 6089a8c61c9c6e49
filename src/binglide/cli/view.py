"""``binglide view FILE [FILE2]``: the viewer's sub-command.

Opens the client as every command does (the embedded default, or
``--connect`` with the CURVE key options), serves the page with
`binglide.viewer.serve`, prints its URL and opens it in the browser, then
serves until Ctrl-C. The viewer (and aiohttp) is imported only when the
command runs.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import webbrowser
from typing import TYPE_CHECKING

import anyio

import binglide
from binglide.cli.connection import (
    add_connection_arguments,
    add_embedded_arguments,
    check_connection,
    open_client,
)
from binglide.cli.usage import UsageError

if TYPE_CHECKING:
    import argparse

__all__ = ("add_arguments", "run")


def _port(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``binglide view`` to its parser."""
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="the file to look at (two: compare them)"
    )
    web = parser.add_argument_group("the page")
    web.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1: this machine only)",
    )
    web.add_argument("--port", type=_port, default=0, help="the port (default: any free one)")
    web.add_argument(
        "--no-browser", action="store_true", help="print the URL but do not open a browser"
    )
    add_connection_arguments(
        parser,
        connect_help="use the broker at ADDRESS (tcp://host:port, ipc:///path); its workers"
        " need the classes service for the byte-class map: binglide worker ADDRESS"
        " binglide.viewer:ClassesService",
    )
    add_embedded_arguments(parser)


def _check(args: argparse.Namespace) -> None:
    """Refuse what cannot work, before anything starts.

    Raises:
        UsageError: too many files, an unreadable one, a bad root, bad connection options.
    """
    if len(args.files) > 2:
        raise UsageError("binglide view shows one file, or compares two")
    for path in args.files:
        if not os.path.isfile(path):
            raise UsageError(f"cannot read {path}: no such file")
        if not os.access(path, os.R_OK):
            raise UsageError(f"cannot read {path}: permission denied")
    for root in args.root or ():
        if not os.path.isdir(root):
            raise UsageError(f"--root {root} is not a directory")
    if args.root:
        real_roots = [os.path.realpath(r) for r in args.root]
        for path in args.files:
            real = os.path.realpath(path)
            if not any(real.startswith(r.rstrip(os.sep) + os.sep) for r in real_roots):
                raise UsageError(f"{path} is outside --root: the workers may read only there")
    check_connection(args)


async def _serve(args: argparse.Namespace) -> None:
    from binglide.viewer import ClassesService, serve

    # A viewer waits for its answers as long as the page wants them.
    config = binglide.BrokerConfig(service_timeout=math.inf)
    # The page may browse the first --root (the workers read only under the roots).
    root = args.root[0] if args.root else None
    async with (
        open_client(args, config=config, services=[ClassesService]) as client,
        serve(client, args.files, host=args.host, port=args.port, root=root) as viewer,
    ):
        print(f"binglide view: {viewer.url}", flush=True)
        print("  Ctrl-C stops it.", flush=True)
        if not args.no_browser:
            webbrowser.open(viewer.url)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break


def run(args: argparse.Namespace) -> int:
    """Run ``binglide view``; return the exit status.

    Raises:
        UsageError: bad input (one line, status 2).
    """
    _check(args)
    try:
        anyio.run(_serve, args, backend="asyncio")
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    print("binglide view: stopped", file=sys.stderr)
    return 0
