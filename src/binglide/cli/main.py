"""The ``binglide`` command.

::

    binglide stats|entropy|histogram|ngrams|data FILE [--range START:STOP] [options]
    binglide diff FILE FILE [options]
    binglide broker|worker|keys ...      # the ZeroMQ deployment (binglide.cli.deploy)
    binglide cache info|clear [--cache-dir DIR]

An analysis runs on the embedded default (a broker and workers in this
process) or, with ``--connect ADDRESS``, on a running broker. While it runs,
a progress bar on standard error follows the progressive reports; the final
report is printed for a person to read, and exported with ``--json``,
``--npz``, ``--csv`` and ``--png``.

Exit status: 0 on success; 2 for bad input (a usage error, a missing file, a
bad range or option, a file that cannot be written); 1 when the job failed
otherwise (a worker raised, no worker, the broker unreachable); 130 after
Ctrl-C, which cancels the job everywhere before exiting.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import os
import signal
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import attrs

import binglide
from binglide.cli import export
from binglide.cli.commands import ANALYSES, Analysis, PictureUnavailable
from binglide.cli.progress import ProgressBar
from binglide.cli.text import human_bytes, parse_range

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from anyio.abc import TaskStatus

    from binglide import Call, Client, Report

__all__ = ("EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "main")

#: The job failed (other than by bad input).
EXIT_FAILED = 1
#: Bad input: usage, a file, a range, an option, an output path.
EXIT_USAGE = 2
#: Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

PROG = "binglide"


class UsageError(Exception):
    """Bad input found by the command itself; exits with `EXIT_USAGE`."""


class Parser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line: ``binglide: error: ...``."""

    def error(self, message: str) -> NoReturn:
        """Print the error as one line with a hint, and exit with `EXIT_USAGE`."""
        hint = f" (see '{self.prog} --help')"
        self.exit(EXIT_USAGE, f"{PROG}: error: {message}{hint}\n")


def _range(text: str) -> tuple[int | None, int | None]:
    try:
        return parse_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_analysis(sub: Any, analysis: Analysis) -> None:
    p = sub.add_parser(analysis.name, help=analysis.summary, description=analysis.summary + ".")
    if analysis.sources == 1:
        p.add_argument("files", nargs=1, metavar="FILE", help="the file to analyse")
    else:
        p.add_argument("files", nargs=2, metavar="FILE", help="the two files to compare")
    p.add_argument(
        "--range",
        "-r",
        type=_range,
        default=None,
        metavar="START:STOP",
        help="bytes [START, STOP): 4096, 0x1000, 4K, 1.5M; either side may be empty"
        " (default: the whole file)",
    )
    analysis.add_arguments(p)
    run = p.add_argument_group("where it runs")
    run.add_argument(
        "--connect",
        metavar="ADDRESS",
        help="use the broker at ADDRESS (tcp://host:port, ipc:///path) instead of"
        " starting one in this process",
    )
    run.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="workers per service in this process (default: one per core)",
    )
    run.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the chunk cache (default: $BINGLIDE_CACHE_DIR or the user cache directory)",
    )
    run.add_argument(
        "--no-cache", action="store_true", help="neither read nor fill the chunk cache"
    )
    run.add_argument(
        "--root",
        action="append",
        metavar="DIR",
        help="only read files under DIR (repeatable; default: anywhere)",
    )
    out = p.add_argument_group("output")
    bar = out.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="draw the progress bar on stderr even when it is not a terminal",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never draw it")
    out.add_argument("-q", "--quiet", action="store_true", help="print no summary")
    out.add_argument(
        "--json", metavar="FILE", help="export meta and arrays as JSON (- for stdout)"
    )
    out.add_argument("--npz", metavar="FILE", help="export arrays, and meta as JSON, as .npz")
    out.add_argument(
        "--csv", metavar="FILE", help="export one row per value as CSV (- for stdout)"
    )
    out.add_argument("--png", metavar="FILE", help="draw the result as a PNG picture")
    p.set_defaults(analysis=analysis)


def build_parser() -> Parser:
    """Return the parser of the whole command."""
    parser = Parser(
        prog=PROG,
        description="Analyses of binary files: byte histograms, n-gram plots, entropy"
        " profiles, diffs, views and ent statistics, computed by workers behind a broker,"
        " progressively and cached.",
        epilog="Run 'binglide COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"binglide {binglide.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for analysis in ANALYSES.values():
        _add_analysis(sub, analysis)

    from binglide.cli import deploy

    broker = sub.add_parser("broker", help="run a broker on a ZeroMQ address")
    deploy.add_broker_arguments(broker)
    broker.set_defaults(run=deploy.run_broker_command)
    worker = sub.add_parser("worker", help="serve services to a broker")
    deploy.add_worker_arguments(worker)
    worker.set_defaults(run=deploy.run_worker_command)
    keys = sub.add_parser("keys", help="write CURVE keys for a broker and its peers")
    deploy.add_keys_arguments(keys)
    keys.set_defaults(run=deploy.run_keys_command)

    cache = sub.add_parser("cache", help="show or clear the chunk cache")
    cache.add_argument("action", choices=("info", "clear"))
    cache.add_argument("--cache-dir", metavar="DIR", help="the cache directory")
    cache.set_defaults(run=_run_cache)
    return parser


def _run_cache(args: argparse.Namespace) -> int:
    from binglide.cachefs import ChunkStore, default_cache_dir

    store = ChunkStore(args.cache_dir or default_cache_dir())
    if args.action == "clear":
        removed = store.clear()
        print(f"removed {removed} entries from {store.directory}")
        return 0
    info = store.info()
    print(f"directory: {info.directory}")
    print(f"entries:   {info.entries}")
    print(f"size:      {human_bytes(info.total_bytes)} ({info.total_bytes:,} bytes)")
    print(f"bound:     {human_bytes(info.max_bytes)} (least recently used entries go first)")
    return 0


# -- running an analysis ------------------------------------------------------------------


def _check(args: argparse.Namespace) -> None:
    """Refuse combinations argparse cannot see, before anything starts."""
    analysis: Analysis = args.analysis
    problem = analysis.check(args)
    if problem:
        raise UsageError(problem)
    if args.connect:
        local = [
            name
            for name, value in (
                ("--workers", args.workers),
                ("--cache-dir", args.cache_dir),
                ("--root", args.root),
            )
            if value is not None
        ]
        if local:
            raise UsageError(
                f"{', '.join(local)} set up workers in this process; with --connect the"
                " broker's workers have their own (see 'binglide worker --help')"
            )
    to_stdout = [name for name in ("json", "csv") if getattr(args, name) == "-"]
    if len(to_stdout) > 1:
        raise UsageError("only one of --json - and --csv - can write to standard output")
    for name in ("npz", "png"):
        if getattr(args, name) == "-":
            raise UsageError(f"--{name} writes a binary file: give a file name, not -")
    # Refuse now what could only fail after the job: minutes of work lost.
    for name in ("json", "npz", "csv", "png"):
        path = getattr(args, name)
        if path and path != "-":
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise UsageError(f"cannot write {path}: no directory {directory}")
            if os.path.isdir(path):
                raise UsageError(f"cannot write {path}: it is a directory")
            if not os.access(directory, os.W_OK):
                raise UsageError(f"cannot write {path}: {directory} is not writable")


@asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[Client]:
    if args.connect:
        async with binglide.connect(args.connect) as client:
            yield client
        return
    # A command is happy to wait for its answer: a long job's queued chunks
    # must not time out (the embedded default's queue deadline is 10 s), and
    # nobody in this process can die silently, so no heartbeats either.
    config = binglide.BrokerConfig(heartbeat_interval=math.inf, service_timeout=math.inf)
    async with binglide.connect(
        workers=args.workers, cache_dir=args.cache_dir, roots=args.root, config=config
    ) as client:
        yield client


def _progress_bar(args: argparse.Namespace) -> ProgressBar:
    if args.progress is False:
        # A stream that is not a terminal draws nothing.
        return ProgressBar(io.StringIO())
    return ProgressBar(sys.stderr, force=bool(args.progress), description=args.analysis.name)


@attrs.define
class _Outcome:
    """How a run ended: its final report, or the error, or Ctrl-C."""

    report: Report | None = None
    error: binglide.BinglideError | None = None
    interrupted: bool = False


async def _follow(analysis: Analysis, call: Call, bar: ProgressBar) -> Report:
    """Draw the progress of `call` until its final report, and return that."""
    # Draw at once: connecting and the first estimate take a moment.
    bar.update(0.0)
    final: Report | None = None
    async for report in call:
        length = analysis.range_length(report.meta)
        bar.update(
            report.completion,
            precision=report.precision,
            bytes_done=int(report.completion * length),
            total_bytes=length,
        )
        final = report
    assert final is not None
    return final


async def _cancel_on_sigint(
    call: Call, outcome: _Outcome, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            outcome.interrupted = True
            # Cancel the job, not this task's scope: the client must then close
            # unhurried, so that the CANCEL and DISCONNECT reach the broker
            # (a client closed under cancellation cannot send them).
            call.cancel()
            return


async def _compute(args: argparse.Namespace) -> _Outcome:
    """Run the analysis with a progress bar and Ctrl-C cancelling it."""
    analysis: Analysis = args.analysis
    extra: dict[str, Any] = {}
    if args.no_cache:
        extra["cache"] = {"lookup": False, "commit": False}
    outcome = _Outcome()
    with _progress_bar(args) as bar:
        async with _client(args) as client:
            call = analysis.start(client, args, extra)
            async with anyio.create_task_group() as tg:
                # Listening before the bar first draws: whoever saw the bar
                # and pressed Ctrl-C is heard.
                await tg.start(_cancel_on_sigint, call, outcome)
                try:
                    outcome.report = await _follow(analysis, call, bar)
                except binglide.BinglideError as exc:
                    # Kept, not raised: an error raised through task groups
                    # comes out wrapped in exception groups.
                    outcome.error = exc
                finally:
                    # A no-op once the call is done; on any other way out,
                    # nothing of the job may go on anywhere.
                    call.cancel()
                    tg.cancel_scope.cancel()
    return outcome


def _write_outputs(args: argparse.Namespace, report: Report) -> None:
    analysis: Analysis = args.analysis
    if args.png:
        try:
            image = analysis.picture(report, args)
        except PictureUnavailable as exc:
            raise UsageError(str(exc)) from None
        _writing(args.png, export.write_png, args.png, image)
    if args.json or args.npz:
        options = {
            k: v
            for k, v in vars(args).items()
            if k not in ("analysis", "files", "json", "npz", "csv", "png", "command")
            and not callable(v)
        }
        doc = export.document(
            service=analysis.name,
            sources=args.files,
            options=options,
            meta=report.meta,
            completion=report.completion,
            precision=report.precision,
        )
        arrays = analysis.arrays(report, args)
        if args.json:
            _writing(args.json, export.write_json, args.json, doc, arrays)
        if args.npz:
            _writing(args.npz, export.write_npz, args.npz, doc, arrays)
    if args.csv:
        header = analysis.header(report)
        _writing(args.csv, export.write_csv, args.csv, header, analysis.csv(report, args))


def _writing(path: str, fn: Any, *fn_args: Any) -> None:
    try:
        fn(*fn_args)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


class _Interrupted(Exception):
    """Ctrl-C arrived; the job was cancelled."""


def run_analysis(args: argparse.Namespace) -> int:
    """Run the analysis `args` names; print and export its result; return the exit status."""
    _check(args)
    outcome = anyio.run(_compute, args, backend="asyncio")
    if outcome.interrupted:
        raise _Interrupted
    if outcome.error is not None:
        raise outcome.error
    report = outcome.report
    assert report is not None
    to_stdout = "-" in (args.json, args.csv)
    if not args.quiet and not to_stdout:
        print(args.analysis.text(report, args))
    _write_outputs(args, report)
    return 0


def _leaf(exc: BaseException) -> BaseException:
    """Return the one error inside nested exception groups (task groups wrap errors)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _fail(message: str, code: int) -> int:
    # One line, whatever the message: a traceback or a wrapped line is noise.
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``binglide`` command with `argv` (default: ``sys.argv[1:]``); return its status."""
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if hasattr(args, "run"):
            return int(args.run(args))
        return run_analysis(args)
    except (KeyboardInterrupt, _Interrupted):
        # Everything of the job was cancelled on the way out (the client's
        # close tells the broker); say so on one line, as shells expect.
        print(f"{PROG}: interrupted; the job was cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except BrokenPipeError:
        # The reader went away (``binglide ... | head``): not an error of ours.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as caught:
        error = _leaf(caught)
        if isinstance(error, binglide.RequestError):
            return _fail(str(error), EXIT_USAGE)
        if isinstance(error, binglide.BinglideError):
            return _fail(str(error), EXIT_FAILED)
        raise


if __name__ == "__main__":
    sys.exit(main())
