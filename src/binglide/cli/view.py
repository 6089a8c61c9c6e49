"""``binglide view FILE [FILE2]``: the viewer's sub-command.

Starts the embedded default (or connects to a broker), serves the page with
`binglide.viewer.serve`, prints its URL and opens it in the browser, then
serves until Ctrl-C. aiohttp is imported only here, when the command runs.
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


def _count(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
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
    web.add_argument(
        "--root",
        metavar="DIR",
        help="let the page open the files under DIR too (paths the server checks)",
    )
    run = parser.add_argument_group("where it runs")
    run.add_argument(
        "--connect",
        metavar="ADDRESS",
        help="use the broker at ADDRESS (tcp://host:port, ipc:///path); its workers need"
        " the classes service for the byte-class map: binglide worker ADDRESS"
        " binglide.viewer:ClassesService",
    )
    run.add_argument(
        "--workers",
        type=_count,
        metavar="N",
        help="workers per service in this process (default: one per core)",
    )
    run.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the chunk cache (default: $BINGLIDE_CACHE_DIR or the user cache directory)",
    )


def _problem(args: argparse.Namespace) -> str | None:
    if len(args.files) > 2:
        return "binglide view shows one file, or compares two"
    for path in args.files:
        if not os.path.isfile(path):
            return f"cannot read {path}: no such file"
        if not os.access(path, os.R_OK):
            return f"cannot read {path}: permission denied"
    if args.root is not None and not os.path.isdir(args.root):
        return f"--root {args.root} is not a directory"
    if args.connect and (args.workers is not None or args.cache_dir is not None):
        return (
            "--workers and --cache-dir set up workers in this process; with --connect the"
            " broker's workers have their own"
        )
    return None


async def _serve(args: argparse.Namespace) -> None:
    from binglide.viewer import ClassesService, serve

    if args.connect:
        connecting = binglide.connect(args.connect)
    else:
        # A viewer waits for its answers as long as the page wants them.
        config = binglide.BrokerConfig(heartbeat_interval=math.inf, service_timeout=math.inf)
        connecting = binglide.connect(
            services=[ClassesService],
            workers=args.workers,
            cache_dir=args.cache_dir,
            config=config,
        )
    async with (
        connecting as client,
        serve(client, args.files, host=args.host, port=args.port, root=args.root) as viewer,
    ):
        print(f"binglide view: {viewer.url}", flush=True)
        print("  Ctrl-C stops it.", flush=True)
        if not args.no_browser:
            webbrowser.open(viewer.url)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break


def run(args: argparse.Namespace) -> int:
    """Run ``binglide view``; return the exit status."""
    problem = _problem(args)
    if problem:
        print(f"binglide: error: {problem}", file=sys.stderr)
        return 2
    try:
        anyio.run(_serve, args, backend="asyncio")
    except OSError as exc:
        print(f"binglide: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    print("binglide view: stopped", file=sys.stderr)
    return 0
