"""The ``binglide`` command.

::

    binglide stats|entropy|histogram|ngrams|data FILE [--range START:STOP] [options]
    binglide diff FILE FILE [options]
    binglide broker|worker|keys ...      # the ZeroMQ deployment (binglide.cli.deploy)
    binglide cache info|clear [--cache-dir DIR]

An analysis runs on the embedded default (a broker and workers in this
process) or, with ``--connect ADDRESS`` and its CURVE keys, on a running
broker (`binglide.cli.connection`). While it runs, a progress bar on standard
error follows the progressive reports; the final report is printed for a
person to read, and exported with ``--json``, ``--npz``, ``--csv`` and
``--png``.

Exit status: 0 on success; 2 for bad input (a usage error, a missing file, a
bad range or option, a file that cannot be written); 1 when the job failed
otherwise (a worker raised, no worker, the broker unreachable or refusing
us); 130 after Ctrl-C, which cancels the job everywhere before exiting. When
the reader of standard output goes away, the process ends by SIGPIPE, as
other Unix tools do. Every error is one line, ``binglide: error: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import io
import logging
import os
import signal
import sys
import tempfile
import warnings
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import attrs

import binglide
from binglide.cli import export
from binglide.cli.batch import is_batch, run_batch
from binglide.cli.commands import ANALYSES, Analysis, PictureUnavailable
from binglide.cli.connection import (
    add_connection_arguments,
    add_embedded_arguments,
    check_connection,
    open_client,
)
from binglide.cli.progress import ProgressBar
from binglide.cli.text import human_bytes, parse_range
from binglide.cli.usage import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    Parser,
    UsageError,
    fail,
    positive_int,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from anyio.abc import TaskStatus

    from binglide import Call, Report

__all__ = ("EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_PIPE", "EXIT_USAGE", "main", "run")

#: The reader of standard output went away (``binglide ... | head``): 128 +
#: SIGPIPE, the status a shell reports for a tool that SIGPIPE ended.
EXIT_PIPE = 128 + signal.SIGPIPE


def _range(text: str) -> tuple[int | None, int | None]:
    try:
        return parse_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_analysis(sub: Any, analysis: Analysis) -> None:
    p = sub.add_parser(analysis.name, help=analysis.summary, description=analysis.summary + ".")
    if analysis.sources == 1:
        p.add_argument(
            "files",
            nargs="+",
            metavar="FILE",
            help="the file to analyse; several files or directories run a batch, a line per"
            " file (see --jsonl)",
        )
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
    connection = add_connection_arguments(p)
    connection.add_argument(
        "--serve-files",
        action="store_true",
        help="serve the files named from this process to workers that cannot see them"
        " (on other machines, without a shared file system); only those files are served",
    )
    embedded = add_embedded_arguments(p)
    embedded.add_argument(
        "--no-cache", action="store_true", help="neither read nor fill the chunk cache"
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
    if analysis.sources == 1:
        batch = p.add_argument_group("several files")
        batch.add_argument(
            "--recursive",
            "-R",
            action="store_true",
            help="analyse the files under the directories named, and under theirs"
            " (symlinks inside are not followed)",
        )
        batch.add_argument(
            "--jsonl",
            metavar="FILE",
            help="write one JSON object per file as it completes, its result or its error"
            " (- for stdout)",
        )
        batch.add_argument(
            "--in-flight",
            type=positive_int,
            default=16,
            metavar="N",
            help="files analysed at once (default 16)",
        )
    else:
        p.set_defaults(recursive=False, jsonl=None)
    p.set_defaults(analysis=analysis)


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """Return the parser of the whole command.

    Args:
        argv: the arguments it will parse. When they name a sub-command, the
            parser has that one only (a parser per sub-command, and their
            modules, the deployment's and the viewer's, were most of a small
            run's parsing); without `argv`, or when it names none (``--help``,
            a mistyped name), it has all of them.
    """
    parser = Parser(
        prog=PROG,
        description="Analyses of binary files: byte histograms, n-gram plots, entropy"
        " profiles, diffs, views and ent statistics, computed by workers behind a broker,"
        " progressively and cached.",
        epilog="Run 'binglide COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"binglide {binglide.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # The command's own options (--version, --help) take no value: the first
    # word that is not an option names the sub-command.
    command = next((word for word in argv or () if not word.startswith("-")), None)
    adders: dict[str, Callable[[Any], None]] = {
        **{name: functools.partial(_add_analysis, analysis=a) for name, a in ANALYSES.items()},
        "broker": _add_broker,
        "worker": _add_worker,
        "keys": _add_keys,
        "view": _add_view,
        "cache": _add_cache,
    }
    for name, add in adders.items():
        if command not in adders or command == name:
            add(sub)
    return parser


def _add_broker(sub: Any) -> None:
    from binglide.cli import deploy

    broker = sub.add_parser("broker", help="run a broker on a ZeroMQ address")
    deploy.add_broker_arguments(broker)
    broker.set_defaults(run=deploy.run_broker_command)


def _add_worker(sub: Any) -> None:
    from binglide.cli import deploy

    worker = sub.add_parser("worker", help="serve services to a broker")
    deploy.add_worker_arguments(worker)
    worker.set_defaults(run=deploy.run_worker_command)


def _add_keys(sub: Any) -> None:
    from binglide.cli import deploy

    keys = sub.add_parser("keys", help="write CURVE keys for a broker and its peers")
    deploy.add_keys_arguments(keys)
    keys.set_defaults(run=deploy.run_keys_command)


def _add_view(sub: Any) -> None:
    from binglide.cli import view

    viewer = sub.add_parser(
        "view",
        help="look at files in the browser, every view live",
        description="Open FILE (or FILE and FILE2, compared) in the browser: overview maps,"
        " the bigram, trigram, byte histogram, entropy profile, ent statistics and a hex dump,"
        " each refining live (docs/viewer.md).",
    )
    view.add_arguments(viewer)
    viewer.set_defaults(run=view.run)


def _add_cache(sub: Any) -> None:
    cache = sub.add_parser(
        "cache",
        help="show or clear the chunk cache",
        description="Show the chunk cache's directory, entries, size and size bound, or"
        " remove every entry.",
    )
    cache.add_argument("action", choices=("info", "clear"), help="info: show it; clear: empty it")
    cache.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the cache directory (default: $BINGLIDE_CACHE_DIR or the user cache directory)",
    )
    cache.set_defaults(run=_run_cache)


def _max_size() -> tuple[int, str]:
    """Return the cache's size bound, and where it comes from."""
    from binglide.cachefs import default_max_bytes

    try:
        bound = default_max_bytes()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if os.environ.get("BINGLIDE_CACHE_MAX_SIZE", "").strip():
        return bound, "from $BINGLIDE_CACHE_MAX_SIZE"
    return bound, "the default; set --cache-max-size or $BINGLIDE_CACHE_MAX_SIZE"


def _run_cache(args: argparse.Namespace) -> int:
    from binglide.cachefs import ChunkStore, default_cache_dir

    bound, origin = _max_size()
    store = ChunkStore(args.cache_dir or default_cache_dir(), max_bytes=bound)
    if args.action == "clear":
        removed = store.clear()
        print(f"removed {removed} entries from {store.directory}")
        return 0
    info = store.info()
    print(f"directory: {info.directory}")
    print(f"entries:   {info.entries}")
    print(f"size:      {human_bytes(info.total_bytes)} ({info.total_bytes:,} bytes)")
    print(
        f"max size:  {human_bytes(info.max_bytes)} ({info.max_bytes:,} bytes; {origin});"
        " least recently used entries go first"
    )
    return 0


# -- running an analysis ------------------------------------------------------------------


def _check(args: argparse.Namespace) -> None:
    """Refuse combinations argparse cannot see, before anything starts."""
    analysis: Analysis = args.analysis
    problem = analysis.check(args)
    if problem:
        raise UsageError(problem)
    check_connection(args)
    if not args.connect and args.cache_max_size is None:
        _max_size()  # a bad $BINGLIDE_CACHE_MAX_SIZE is a usage error, now
    to_stdout = [name for name in ("json", "csv", "jsonl") if getattr(args, name) == "-"]
    if len(to_stdout) > 1:
        raise UsageError(
            f"only one of {', '.join(f'--{n} -' for n in to_stdout)} can write to standard output"
        )
    for name in ("npz", "png"):
        if getattr(args, name) == "-":
            raise UsageError(f"--{name} writes a binary file: give a file name, not -")
    # Refuse now what could only fail after the job: minutes of work lost.
    for name in ("json", "npz", "csv", "png", "jsonl"):
        path = getattr(args, name)
        if path and path != "-":
            _check_writable(path)


def _check_writable(path: str) -> None:
    """Refuse an output that could not be written, by doing what writing it does.

    An export is written to a temporary file next to `path` and renamed over
    it (unless `path` is a device or a pipe, written into), so what must work
    is creating a file in its directory: try that
    (permissions, a read-only file system, root in ``/proc``: the kernel
    decides, not a guess from the mode bits).
    """
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"cannot write {path}: it is a directory")
    if export.is_special(path):  # a device or a pipe: written into, not replaced
        if not os.access(path, os.W_OK):
            raise UsageError(f"cannot write {path}: permission denied")
        return
    if not os.path.isdir(directory):
        raise UsageError(f"cannot write {path}: no directory {directory}")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".binglide-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc} in {directory}") from None


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


def _past_the_end(args: argparse.Namespace, meta: dict[str, Any]) -> binglide.RequestError | None:
    """Return the error for a ``--range`` that starts past the end of the file, if it does.

    The workers clip a range to the file (they alone know its size, with
    ``--connect``), so a start past the end comes back as a start clipped to
    the end: the file's size.
    """
    start = args.range[0] if args.range else None
    if start is None or "start" not in meta or start <= int(meta["start"]):
        return None
    size = int(meta["start"])
    what = args.files[0] if len(args.files) == 1 else "both files"
    return binglide.RequestError(
        f"--range starts at {start:#x} ({human_bytes(start)}), past the end of {what}"
        f" ({size:,} bytes); give a start below {size:#x}"
    )


async def _follow(
    args: argparse.Namespace, analysis: Analysis, call: Call, bar: ProgressBar
) -> Report:
    """Draw the progress of `call` until its final report, and return that.

    Raises:
        binglide.RequestError: ``--range`` starts past the end of the file.
    """
    # Draw at once: connecting and the first estimate take a moment.
    bar.update(0.0)
    final: Report | None = None
    async for report in call:
        if final is None and (error := _past_the_end(args, report.meta)) is not None:
            raise error
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
        async with open_client(args) as client:
            call = analysis.start(client, args, extra)
            async with anyio.create_task_group() as tg:
                # Listening before the bar first draws: whoever saw the bar
                # and pressed Ctrl-C is heard.
                await tg.start(_cancel_on_sigint, call, outcome)
                try:
                    outcome.report = await _follow(args, analysis, call, bar)
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
    except BrokenPipeError:
        raise  # the reader of standard output went away: see main()
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


class _Interrupted(Exception):
    """Ctrl-C arrived; the job was cancelled."""


def run_analysis(args: argparse.Namespace) -> int:
    """Run the analysis `args` names; print and export its result; return the exit status."""
    _check(args)
    if is_batch(args):
        return run_batch(args)
    if os.path.isdir(args.files[0]):
        raise UsageError(
            f"{args.files[0]} is a directory: give --recursive (-R) to analyse the files in it"
        )
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
    # Here, where a reader that went away is handled, not at the exit.
    sys.stdout.flush()
    return 0


def _leaf(exc: BaseException) -> BaseException:
    """Return the one error inside nested exception groups (task groups wrap errors)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class _OneLineFormatter(logging.Formatter):
    """``binglide: warning: ...``: log records in the command's one-line form."""

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())
        formatted = f"{PROG}: {record.levelname.lower()}: {text}"
        if record.exc_info:
            # A handler that raised in a worker: the traceback is the point.
            formatted += "\n" + self.formatException(record.exc_info)
        return formatted


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    # A warning is for the person at the terminal: what and what to do, on
    # one line; not the source line of the library that raised it.
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _logging() -> None:
    # As logging.basicConfig: nothing changes where logging is set up already
    # (a program that calls main() has its own).
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLineFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``binglide`` command with `argv` (default: ``sys.argv[1:]``); return its status.

    Every error is one line on standard error, ``binglide: error: ...``;
    warnings are ``binglide: warning: ...``. When the reader of standard
    output goes away (``binglide ... | head``), returns `EXIT_PIPE` quietly.
    """
    _logging()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
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
        except Exception as caught:
            # Task groups wrap what is raised inside them: look at the one error.
            error = _leaf(caught)
            if isinstance(error, UsageError | binglide.RequestError):
                return fail(str(error), EXIT_USAGE)
            if isinstance(error, BrokenPipeError):
                # The reader went away: not an error of ours, and nothing more
                # to say. What is still buffered for standard output goes
                # nowhere (else the interpreter's last flush fails, loudly).
                with contextlib.suppress(OSError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return EXIT_PIPE
            if isinstance(error, binglide.BinglideError):
                return fail(str(error), EXIT_FAILED)
            raise


def run() -> NoReturn:
    """Run the command as a process (the ``binglide`` entry point) and exit.

    As other Unix tools, the process ends by SIGPIPE when the reader of its
    standard output went away, so that a shell pipeline sees what it expects.
    """
    code = main()
    # The process ends here. The interpreter's last collections would walk
    # every object the imports made (numpy's, the runtime's classes: tens of
    # milliseconds) only to free memory the exit frees anyway.
    gc.freeze()
    if code == EXIT_PIPE:
        sys.stderr.flush()
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    sys.exit(code)


if __name__ == "__main__":
    run()
