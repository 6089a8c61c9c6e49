"""Batch runs: the same analyses over many files, results as each file completes.

`analyse_files` takes files and directories (descending into directories with
``recursive=True``), runs the analyses of up to `in_flight` files at once
through one `Client`, and yields one `FileResult` per file as it completes:
its path, size, identity and final reports, or the error that ended it. A
missing, unreadable, vanished or changing file is one error record; the run
goes on. The broker serves the run's requests round-robin with every other
client's, so a corpus run does not starve anyone; and the analyses are cached
by file identity, so a second run over the same files is answered from the
cache.

::

    async with binglide.connect() as client:
        async with binglide.analyse_files(client, ["firmware/"], recursive=True) as run:
            async for result in run:
                if result.ok:
                    print(result.path, result.reports["stats"].meta["entropy"])
                else:
                    print(result.path, "failed:", result.error)
"""

from __future__ import annotations

import itertools
import os
import stat
import time
from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ._groups import single_errors
from .errors import BinglideError, RequestError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator, Sequence

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .client import Call, Client
    from .report import Report

__all__ = ("CORPUS_ANALYSES", "CorpusRun", "CorpusStatistics", "FileResult", "analyse_files")

#: The analyses a batch run can ask for: every built-in one that takes one file.
CORPUS_ANALYSES = ("histogram", "ngrams", "entropy", "data", "stats")

#: Files analysed at once by default: enough to keep the workers busy with
#: small files (each costs a few broker round trips), few enough that a big
#: file's chunks do not wait behind a long queue.
DEFAULT_IN_FLIGHT = 16


@attrs.frozen
class FileResult:
    """The outcome of one file of a batch run.

    Attributes:
        path: the file's absolute path, as found.
        size: its size in bytes when it was first seen (None if it could not
            be seen at all).
        identity: ``device:inode:size:mtime_ns`` when it was first seen: what
            says it is the same file in a later run (None if unseen).
        reports: the final report of each analysis, by name (empty on error).
        error: what ended the file, or None.
        elapsed: seconds from its first request to its last answer.
    """

    path: str
    size: int | None
    identity: str | None
    reports: Mapping[str, Report] = attrs.field(factory=dict)
    error: BinglideError | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every analysis of the file ended with its final report."""
        return self.error is None


@attrs.frozen
class CorpusStatistics:
    """A snapshot of a batch run.

    Attributes:
        files_found: files found so far (the walk may still be going on).
        files_done: files with a result, failed ones included.
        files_failed: of those, the ones that ended with an error.
        bytes_found: the size of the files found so far.
        bytes_done: the size of the files done.
        walking: whether more files may still be found.
    """

    files_found: int
    files_done: int
    files_failed: int
    bytes_found: int
    bytes_done: int
    walking: bool


def _identity(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


@attrs.define
class _Found:
    """A file the walk found, or a name it could not use (with its error)."""

    path: str
    status: os.stat_result | None = None
    error: BinglideError | None = None


def _walk(paths: Iterable[str | os.PathLike[str]], recursive: bool) -> Iterator[_Found]:
    """Yield the regular files that `paths` name, in order, each real file once."""
    seen: set[tuple[int, int]] = set()

    def visit(path: str, *, named: bool) -> Iterator[_Found]:
        if not named and os.path.islink(path):
            # Symlinks met inside a tree are not followed (as ``grep -r``):
            # loops and files outside the tree lie that way.
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            yield _Found(path, error=RequestError(f"{path}: no such file or directory"))
            return
        except OSError as exc:
            yield _Found(path, error=RequestError(f"{path}: cannot be read ({exc.strerror})"))
            return
        if stat.S_ISDIR(st.st_mode):
            if not recursive:
                if named:
                    message = f"{path} is a directory: give --recursive to analyse its files"
                    yield _Found(path, error=RequestError(message))
                return
            try:
                with os.scandir(path) as entries:
                    names = sorted(entry.name for entry in entries)
            except OSError as exc:
                message = f"{path}: cannot list the directory ({exc.strerror})"
                yield _Found(path, error=RequestError(message))
                return
            for name in names:
                yield from visit(os.path.join(path, name), named=False)
            return
        if not stat.S_ISREG(st.st_mode):
            if named:
                message = f"{path} is not a regular file (a device, pipe or socket)"
                yield _Found(path, error=RequestError(message))
            return
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return  # the same file under another name: one result per file
        seen.add(key)
        yield _Found(path, status=st)

    for path in paths:
        yield from visit(os.path.abspath(os.fspath(path)), named=True)


#: Files from this size on (bytes) are counted by the compiled kernels, even
#: the first ones (`binglide.services.kernels.numba_for`).
_LARGE = 1 << 20


def _large(found: _Found) -> bool:
    return found.status is not None and found.status.st_size >= _LARGE


def _preload_kernels() -> None:
    # Imported here: a client of remote workers never loads the kernels.
    from .services import kernels

    kernels.preload_numba()


#: Files the walk finds per thread hop.
WALK_BATCH = 32


def _next_found(walker: Iterator[_Found]) -> list[_Found]:
    return list(itertools.islice(walker, WALK_BATCH))


class CorpusRun:
    """The results of `analyse_files`, as an async iterator of `FileResult`.

    Results come in the order files complete. `statistics` tells how far the
    run is, for a progress bar.
    """

    def __init__(self, results: MemoryObjectReceiveStream[FileResult]) -> None:
        self._results = results
        self._found = self._done = self._failed = 0
        self._bytes_found = self._bytes_done = 0
        self._walking = True

    def statistics(self) -> CorpusStatistics:
        """Return how many files and bytes are found and done."""
        return CorpusStatistics(
            files_found=self._found,
            files_done=self._done,
            files_failed=self._failed,
            bytes_found=self._bytes_found,
            bytes_done=self._bytes_done,
            walking=self._walking,
        )

    def __aiter__(self) -> CorpusRun:
        return self

    async def __anext__(self) -> FileResult:
        try:
            return await self._results.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    # -- bookkeeping, by the run's own tasks ------------------------------------------

    def _note_found(self, found: _Found) -> None:
        self._found += 1
        if found.status is not None:
            self._bytes_found += found.status.st_size

    def _note_done(self, result: FileResult) -> None:
        self._done += 1
        self._failed += not result.ok
        self._bytes_done += result.size or 0

    def _note_walked(self) -> None:
        self._walking = False


#: What a batch asks of every analysis unless told otherwise: the final
#: answer only. A first estimate and refinements are for a person watching
#: one file; for a corpus they would cost a sample read, a kernel run and a
#: report per file, for answers nobody reads.
FINAL_ONLY = {"estimate": False, "progress": False}
#: Nor does a batch's file need its range spread over the workers: the
#: other files in flight keep them busy, and every chunk cut for nothing is
#: a sub-request, a broker round trip and a thread hop.
BATCH_OPTIONS: dict[str, Any] = {"reports": FINAL_ONLY, "spread": False}


def _calls(
    client: Client, path: str, analyses: Mapping[str, Mapping[str, Any]]
) -> dict[str, Call]:
    return {
        name: getattr(client, name)(path, **{**BATCH_OPTIONS, **options})
        for name, options in analyses.items()
    }


async def _analyse(
    client: Client, found: _Found, analyses: Mapping[str, Mapping[str, Any]]
) -> FileResult:
    status = found.status
    assert status is not None
    size, identity = status.st_size, _identity(status)
    started = time.monotonic()
    calls = _calls(client, found.path, analyses)
    reports: dict[str, Report] = {}
    try:
        for name, call in calls.items():
            reports[name] = await call
    except BinglideError as exc:
        return FileResult(found.path, size, identity, error=exc)
    finally:
        # One analysis failed, or the run was left early: the others stop
        # (a no-op for calls already done).
        for call in calls.values():
            call.cancel()
    elapsed = time.monotonic() - started
    # The workers read the file while we waited: if it is no longer the file
    # we saw, the answers may mix two versions of it.
    try:
        after = _identity(os.stat(found.path))
    except OSError:
        after = None
    if after != identity:
        message = (
            f"{found.path} changed while it was analysed"
            if after is not None
            else f"{found.path} vanished while it was analysed"
        )
        return FileResult(found.path, size, identity, error=RequestError(message))
    return FileResult(found.path, size, identity, reports, elapsed=elapsed)


def _analyses(
    analyses: Sequence[str] | Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    if isinstance(analyses, str):
        raise TypeError("analyses is a list of names or a mapping, not one string")
    if isinstance(analyses, Mapping):
        chosen = {name: dict(opts) for name, opts in analyses.items()}
    else:
        chosen = {name: {} for name in analyses}
    unknown = [name for name in chosen if name not in CORPUS_ANALYSES]
    if unknown:
        raise ValueError(
            f"unknown analyses {', '.join(map(repr, unknown))}: choose among"
            f" {', '.join(CORPUS_ANALYSES)}"
        )
    if not chosen:
        raise ValueError("name at least one analysis")
    return chosen


@asynccontextmanager
async def analyse_files(
    client: Client,
    paths: Iterable[str | os.PathLike[str]],
    *,
    analyses: Sequence[str] | Mapping[str, Mapping[str, Any]] = ("stats",),
    recursive: bool = False,
    in_flight: int = DEFAULT_IN_FLIGHT,
) -> AsyncIterator[CorpusRun]:
    """Analyse many files through `client`; iterate the results as files complete.

    Args:
        client: an open client (`binglide.connect`).
        paths: files and directories.
        analyses: the analyses to run on every file: names (``"stats"``), or
            a mapping from name to the options of its client method
            (``{"entropy": {"resolution": 64}}``); see `CORPUS_ANALYSES`.
        recursive: descend into directories (symlinks met on the way are
            not followed; named ones are); without it a directory named in
            `paths` is an error record. A file reached under several names
            (hard links) is analysed once.
        in_flight: files analysed at once.

    Yields:
        A `CorpusRun`: ``async for result in run`` gives one `FileResult` per
        file found, in the order they complete. Leaving the block early
        cancels what is still running.

    Raises:
        ValueError: an unknown analysis, none at all, or `in_flight` < 1.
    """
    chosen = _analyses(analyses)
    if in_flight < 1:
        raise ValueError(f"in_flight must be at least 1, not {in_flight}")
    # Results wait for the caller in a buffer of `in_flight`: past that, the
    # analyses wait too (a trigram table is 64 MiB; nothing piles up).
    send, receive = anyio.create_memory_object_stream[FileResult](in_flight)
    found_send, found_receive = anyio.create_memory_object_stream[_Found](0)
    run = CorpusRun(receive)

    # The embedded broker's workers count in this process: the first large
    # file found starts loading their compiled kernels (`_preload_kernels`).
    preload = client.broker is not None

    async def walk(out: MemoryObjectSendStream[_Found]) -> None:
        nonlocal preload
        async with out:
            walker = _walk(paths, recursive)
            while True:
                # Listing a big tree blocks: a thread walks it, some files
                # at a time (a thread hop per file costs more than its stat).
                found = await anyio.to_thread.run_sync(_next_found, walker)
                if preload and any(_large(item) for item in found):
                    preload = False
                    _preload_kernels()
                for item in found:
                    run._note_found(item)
                    await out.send(item)
                if len(found) < WALK_BATCH:
                    break  # the walk is over
        run._note_walked()

    async def analyse(
        source: MemoryObjectReceiveStream[_Found], out: MemoryObjectSendStream[FileResult]
    ) -> None:
        async with source, out:
            async for found in source:
                if found.error is not None:
                    result = FileResult(found.path, None, None, error=found.error)
                else:
                    result = await _analyse(client, found, chosen)
                run._note_done(result)
                await out.send(result)

    with single_errors():
        async with anyio.create_task_group() as tg, receive:
            tg.start_soon(walk, found_send)
            async with send, found_receive:
                for _ in range(in_flight):
                    tg.start_soon(analyse, found_receive.clone(), send.clone())
            yield run
            tg.cancel_scope.cancel()
