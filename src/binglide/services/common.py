"""What every analysis service shares: reading the request, opening its sources.

The request format is the same for every analysis (see `binglide.analyses`)::

    {"inputs": [{"source": PATH, "start": START, "stop": STOP}, ...],
     "options": {...},
     "reports": {"estimate": true, "progress": true},   # optional
     "cache": {"lookup": true, "commit": true},         # optional
     "spread": true}                                    # optional

An input may also say where its bytes come from when the worker cannot see
its file (``via`` and ``identity``: `binglide.services.remote`). Every
malformed part is a `RequestError` that says what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ..errors import RequestError
from .remote import Remote, open_input
from .sources import Source, resolve_range

if TYPE_CHECKING:
    from ..cachefs import ChunkStore
    from ..service import Context

__all__ = (
    "CachePolicy",
    "Input",
    "Parsed",
    "ReportPolicy",
    "RateLimit",
    "opened",
    "option_choice",
    "option_int",
    "parse_body",
    "source_id",
    "usable_cache",
)


@attrs.frozen
class Input:
    """One source of a request, as asked."""

    source: str
    start: int | None
    stop: int | None
    #: Where its bytes come from if this worker cannot see the file.
    remote: Remote | None = None


@attrs.frozen
class ReportPolicy:
    """Which answers the caller wants before the exact one.

    Attributes:
        estimate: a first answer from the cache and a sample of the data.
        progress: answers refined as chunks finish.
    """

    estimate: bool = True
    progress: bool = True


@attrs.frozen
class CachePolicy:
    """Whether to answer from the cache and whether to fill it.

    ``lookup`` and ``commit`` are True (every level), False (none), or a tuple
    of the block sizes (levels) to use.
    """

    lookup: bool | tuple[int, ...] = True
    commit: bool | tuple[int, ...] = True

    def looks_up(self, level: int) -> bool:
        """Return whether blocks of `level` bytes may answer."""
        return self.lookup if isinstance(self.lookup, bool) else level in self.lookup

    def commits(self, level: int) -> bool:
        """Return whether blocks of `level` bytes should be stored."""
        return self.commit if isinstance(self.commit, bool) else level in self.commit


@attrs.frozen
class Parsed:
    """A request body, checked."""

    inputs: tuple[Input, ...]
    options: Mapping[str, Any]
    reports: ReportPolicy
    cache: CachePolicy
    #: Whether to cut the range into chunks for every worker to share (False:
    #: the caller keeps the workers busy with requests of its own, a batch
    #: run, so chunks are only as small as the cache and their bounded
    #: duration need).
    spread: bool = True


def _policy_part(value: Any, name: str) -> bool | tuple[int, ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, list) and all(isinstance(v, int) and v > 0 for v in value):
        return tuple(value)
    raise RequestError(f"cache.{name} must be true, false or a list of block sizes, not {value!r}")


def parse_body(body: Any, *, sources: int) -> Parsed:
    """Check a request body; return its parts.

    Args:
        body: the JSON body the client sent.
        sources: how many inputs the analysis takes.

    Raises:
        RequestError: the body is not in the request format.
    """
    if not isinstance(body, Mapping):
        raise RequestError(
            'the request body must be an object like {"inputs": [{"source": PATH}], "options": {}}'
        )
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != sources:
        raise RequestError(f"the request needs exactly {sources} input(s) in 'inputs'")
    parsed_inputs = []
    for item in inputs:
        if not isinstance(item, Mapping) or not isinstance(item.get("source"), str):
            raise RequestError('each input must be an object with a "source" path')
        parsed_inputs.append(
            Input(item["source"], item.get("start"), item.get("stop"), Remote.from_input(item))
        )
    options = body.get("options") or {}
    if not isinstance(options, Mapping):
        raise RequestError("'options' must be an object")
    reports = body.get("reports") or {}
    cache = body.get("cache") or {}
    if not isinstance(reports, Mapping) or not isinstance(cache, Mapping):
        raise RequestError("'reports' and 'cache' must be objects")
    unknown = set(reports) - {"estimate", "progress"}
    if unknown:
        raise RequestError(f"unknown 'reports' keys: {', '.join(sorted(unknown))}")
    spread = body.get("spread", True)
    if not isinstance(spread, bool):
        raise RequestError(f"'spread' must be true or false, not {spread!r}")
    return Parsed(
        inputs=tuple(parsed_inputs),
        options=options,
        reports=ReportPolicy(
            bool(reports.get("estimate", True)), bool(reports.get("progress", True))
        ),
        cache=CachePolicy(
            _policy_part(cache.get("lookup", True), "lookup"),
            _policy_part(cache.get("commit", True), "commit"),
        ),
        spread=spread,
    )


def option_int(
    options: Mapping[str, Any], name: str, default: int | None, lo: int, hi: int
) -> int:
    """Return the integer option `name`, checked to lie in [lo, hi].

    Raises:
        RequestError: the option is missing without a default, not an integer, or out of range.
    """
    value = options.get(name, default)
    if value is None:
        raise RequestError(f"option {name!r} is required (an integer from {lo} to {hi})")
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RequestError(f"option {name!r} must be an integer from {lo} to {hi}, not {value!r}")
    return value


def option_choice(
    options: Mapping[str, Any], name: str, default: str, choices: tuple[str, ...]
) -> str:
    """Return the option `name`, one of `choices`.

    Raises:
        RequestError: it is not one of them.
    """
    value = options.get(name, default)
    if value not in choices:
        raise RequestError(f"option {name!r} must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


@attrs.frozen
class Opened:
    """A source opened for a request, with its range and identity.

    Attributes:
        source: the open file (local or remote).
        start: the first offset of the range.
        stop: its end.
        fid: the file id naming its cache entries.
        item: the input as asked (None: a plain local file).
    """

    source: Source
    start: int
    stop: int
    fid: str
    item: Input | None = None

    @property
    def length(self) -> int:
        """The number of bytes in the range."""
        return self.stop - self.start

    def where(self) -> dict[str, Any]:
        """Return how a sub-request names this file: its path, and its source if served."""
        if self.item is None or self.item.remote is None:
            return {"source": self.source.path}
        # The name the client serves it under (this worker's view of the
        # path, if it has one, means nothing to the serving end).
        return {"source": self.item.source, **self.item.remote.to_json()}


@contextmanager
def opened(item: Input, ctx: Context) -> Iterator[Opened]:
    """Open the source of `item` under the worker's roots, resolve its range and file id.

    Raises:
        RequestError: the file cannot be read or the range is bad.
    """
    source = open_input(item.source, item.remote, roots=ctx.settings.roots, ctx=ctx)
    try:
        start, stop = resolve_range(source.size, item.start, item.stop)
        yield Opened(source, start, stop, source_id(source), item)
    finally:
        source.close()


_content_ids: dict[tuple[str, int, int, int, int], str] = {}


def source_id(source: Source) -> str:
    """Return the file id naming the cache entries of the version `source` opened.

    rsync-style: the stat quick check by default (of the open file, so that it
    names the bytes read, whatever the path names by now); with
    ``BINGLIDE_FILE_ID=content`` a hash of the bytes (computed once per file
    version and process), so that identical files share entries across paths
    and machines. A file its client serves (`binglide.services.remote`) is
    named by the identity the client named, whichever way it is read.

    Raises:
        RequestError: the file changed while it was hashed.
    """
    if source.named is not None:
        return source.named.stat_id()
    if os.environ.get("BINGLIDE_FILE_ID") != "content":
        return source.version.stat_id()
    version = (source.path, *source.version)
    fid = _content_ids.get(version)
    if fid is None:
        fid = _content_ids[version] = source.content_id()
    return fid


def usable_cache(ctx: Context) -> ChunkStore | None:
    """Return the deployment's chunk cache, or None when there is none or it is off."""
    store = ctx.settings.cache
    return store if store is not None and store.enabled else None


class RateLimit:
    """Let an intermediate report through at most every `interval` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -float("inf")

    def ready(self) -> bool:
        """Return whether a report may go now (and count it as gone if so)."""
        now = anyio.current_time()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False
