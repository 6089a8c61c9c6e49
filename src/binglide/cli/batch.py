"""Batch runs of the command: one analysis over many files, a line per file as it completes.

``binglide stats firmware/ -R --jsonl results.jsonl`` (any analysis that
takes one file) runs `binglide.analyse_files`: up to ``--in-flight`` files at
once through the broker, one progress bar for the whole corpus (files and
bytes done, rate, time left), one line per file on standard output as it
completes (its path and the result in one line), and with ``--jsonl FILE``
one JSON object per file (``-`` for standard output instead of the lines).
A file that cannot be analysed is one error line (and one JSON object with
its ``error``); the run goes on, and the exit status says whether any file
failed.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import sys
from typing import IO, TYPE_CHECKING, Any

import anyio
import attrs

import binglide
from binglide.cli import export
from binglide.cli.connection import open_client
from binglide.cli.progress import ProgressBar
from binglide.cli.usage import EXIT_FAILED, PROG, UsageError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from anyio.abc import TaskStatus

    from binglide.cli.commands import Analysis

__all__ = ("BatchOutcome", "check_batch", "is_batch", "record", "run_batch")


def is_batch(args: argparse.Namespace) -> bool:
    """Return whether `args` ask for a batch run rather than one file's full answer."""
    if args.analysis.sources != 1:
        return False  # diff takes its two files at once
    return bool(len(args.files) > 1 or args.recursive or args.jsonl)


def check_batch(args: argparse.Namespace) -> None:
    """Refuse what a batch run cannot do, before anything starts."""
    one_file = [f"--{n}" for n in ("json", "npz", "csv", "png") if getattr(args, n)]
    if one_file:
        raise UsageError(
            f"{', '.join(one_file)}: one file's result only; for several files use"
            " --jsonl FILE (one JSON object per file)"
        )


def record(
    analysis: Analysis, args: argparse.Namespace, result: binglide.FileResult
) -> dict[str, Any]:
    """Return the JSON object of one file's result (its error instead, if it failed)."""
    doc: dict[str, Any] = {
        "path": result.path,
        "size": result.size,
        "identity": result.identity,
        "service": analysis.name,
    }
    if result.error is not None:
        doc["error"] = {"type": type(result.error).__name__, "message": str(result.error)}
        return doc
    report = result.reports[analysis.name]
    doc.update(
        error=None,
        completion=report.completion,
        precision=report.precision,
        meta=report.meta,
        arrays=analysis.arrays(report, args),
    )
    return export.to_jsonable(doc)  # type: ignore[no-any-return]


@attrs.define
class BatchOutcome:
    """How a batch run ended."""

    files: int = 0
    failed: int = 0
    interrupted: bool = False


@contextlib.contextmanager
def _jsonl(path: str | None) -> Iterator[IO[str] | None]:
    if path is None:
        yield None
    elif path == "-":
        yield sys.stdout
    else:
        # Lines go out as files complete, so that a run cut short keeps what
        # it had: no temporary file renamed at the end.
        with open(path, "w", encoding="utf-8") as f:
            yield f


def _progress_bar(args: argparse.Namespace) -> ProgressBar:
    if args.progress is False:
        return ProgressBar(io.StringIO())
    return ProgressBar(sys.stderr, force=bool(args.progress), description=args.analysis.name)


def _show_progress(bar: ProgressBar, stats: binglide.CorpusStatistics) -> None:
    found = f"{stats.files_found:,}{'+' if stats.walking else ''}"
    note = f"{stats.files_done:,}/{found} files"
    if stats.files_failed:
        note += f", {stats.files_failed:,} failed"
    total = stats.bytes_found
    completion = stats.bytes_done / total if total else 0.0
    bar.update(completion, bytes_done=stats.bytes_done, total_bytes=total or None, note=note)


async def _on_sigint(
    scope: anyio.CancelScope,
    outcome: BatchOutcome,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            outcome.interrupted = True
            # Stop reading results, not the client: leaving the run cancels
            # its requests, and the client then closes unhurried so that the
            # CANCELs reach the broker.
            scope.cancel()
            return


async def _run(args: argparse.Namespace) -> BatchOutcome:
    analysis: Analysis = args.analysis
    extra: dict[str, Any] = {}
    if args.no_cache:
        extra["cache"] = {"lookup": False, "commit": False}
    options = analysis.options(args, extra)
    outcome = BatchOutcome()
    lines_out = args.jsonl != "-"
    with _progress_bar(args) as bar, _jsonl(args.jsonl) as jsonl:
        async with open_client(args) as client:
            bar.update(0.0, note="finding files")
            async with (
                binglide.analyse_files(
                    client,
                    args.files,
                    analyses={analysis.name: options},
                    recursive=args.recursive,
                    in_flight=args.in_flight,
                ) as run,
                anyio.create_task_group() as tg,
            ):
                reading = anyio.CancelScope()
                await tg.start(_on_sigint, reading, outcome)
                with reading:
                    async for result in run:
                        outcome.files += 1
                        if jsonl is not None:
                            jsonl.write(json.dumps(record(analysis, args, result)) + "\n")
                            jsonl.flush()
                        if result.error is not None:
                            outcome.failed += 1
                            message = " ".join(str(result.error).split())
                            if result.path not in message:
                                message = f"{result.path}: {message}"
                            print(f"{PROG}: error: {message}", file=sys.stderr)
                        elif lines_out and not args.quiet:
                            print(
                                f"{result.path}: {analysis.brief(result.reports[analysis.name])}"
                            )
                            sys.stdout.flush()
                        _show_progress(bar, run.statistics())
                tg.cancel_scope.cancel()
    return outcome


def run_batch(args: argparse.Namespace) -> int:
    """Run a batch of files (see the module docstring); return the exit status.

    Raises:
        KeyboardInterrupt: Ctrl-C; every request of the run was cancelled.
    """
    check_batch(args)
    outcome = anyio.run(_run, args, backend="asyncio")
    if outcome.interrupted:
        raise KeyboardInterrupt
    if outcome.failed:
        print(
            f"{PROG}: error: {outcome.failed:,} of {outcome.files:,} files failed",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if not outcome.files:
        print(f"{PROG}: warning: no files found", file=sys.stderr)
    return 0
