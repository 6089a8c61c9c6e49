"""What each op of the page asks binglide, and what of each report goes to the page.

Every op is an async generator of `Out` (a header, arrays for the page, and
whether it is the last one), built on the public `binglide.Client` only.
Arrays go to the page in the narrowest type that keeps what a picture needs
(counts as float32, byte-class shares as bytes); exports go through the
command's own writers with the exact arrays of the final report.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import attrs
import numpy as np

import binglide

from .tiles import ENTROPY_WINDOW, TILE_BUCKETS, tile_range

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Mapping, Sequence

__all__ = ("FileEntry", "Out", "ReportCache", "Views")

Array = np.ndarray[Any, Any]

#: The most trigram cells sent to the page (the most frequent ones).
TRIGRAM_POINTS = 1 << 16
#: Bits kept of each byte for the trigram (64**3 cells).
TRIGRAM_BITS = 6
#: The fewest bytes behind one point of the entropy profile.
MIN_POINT_BYTES = 64
#: A preview reads at most this many bytes of the range (the ``data`` service's runs).
PREVIEW_BYTES = 1 << 16
#: Search: the bytes read per step, and the most read for one search.
_SEARCH_STEP = 1 << 20
SEARCH_LIMIT = 256 << 20
#: Diff narrowing: below this many bytes, compare the bytes themselves.
_DIFF_LEAF = 1 << 16


@attrs.frozen
class FileEntry:
    """A file the page may look at, by its index: never a path sent by the page."""

    index: int
    path: str
    name: str

    def identity(self) -> tuple[str, int, int, int]:
        """Return what changes when the file does (the stat quick check)."""
        st = os.stat(self.path)
        return (self.path, st.st_ino, st.st_size, st.st_mtime_ns)

    def size(self) -> int:
        """Return the file's size now."""
        return os.stat(self.path).st_size


@attrs.frozen
class Out:
    """One frame's worth of an answer."""

    header: dict[str, Any]
    arrays: dict[str, Array] = attrs.field(factory=dict)
    final: bool = False


class ReportCache:
    """Final answers already sent, by what was asked, least recently used out first.

    A range seen before is painted from here at once (binglide's chunk cache
    answers the rest quickly too, but not in one message). Keys hold the
    files' stat identity, so a file that changed is never answered from here.
    """

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Any, Out] = OrderedDict()
        self._bytes = 0
        self.hits = 0

    def get(self, key: Any) -> Out | None:
        """Return the answer stored under `key`, or None."""
        out = self._entries.get(key)
        if out is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return out

    def put(self, key: Any, out: Out) -> None:
        """Store `out`; drop the least recently used answers past the bound."""
        size = sum(a.nbytes for a in out.arrays.values()) + 256
        if size > self.max_bytes // 4:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= sum(a.nbytes for a in old.arrays.values()) + 256
        self._entries[key] = out
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= sum(a.nbytes for a in dropped.arrays.values()) + 256


def _report_header(report: binglide.Report, meta: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "completion": report.completion,
        "precision": report.precision,
        "final": report.final,
        "meta": dict(meta),
    }


def _shares(counts: Array) -> Array:
    """Return each row's shares of its total as bytes (0..255), rows summing to about 255."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts * 255.0, total, out=np.zeros_like(counts), where=total > 0)
    out: Array = np.rint(shares).astype(np.uint8)
    return out


def _trigram_points(table: Array) -> tuple[Array, Array, int]:
    flat = np.asarray(table).reshape(-1)
    nonzero = np.flatnonzero(flat)
    if len(nonzero) > TRIGRAM_POINTS:
        keep = np.argpartition(flat[nonzero], -TRIGRAM_POINTS)[-TRIGRAM_POINTS:]
        nonzero = np.sort(nonzero[keep])
    return nonzero.astype(np.uint32), flat[nonzero].astype(np.float32), int(np.count_nonzero(flat))


class Views:
    """The ops of the page over one `binglide.Client` and a list of files."""

    def __init__(
        self,
        client: binglide.Client,
        files: Sequence[FileEntry],
        *,
        cache: ReportCache | None = None,
    ) -> None:
        self.client = client
        # The viewer's own list: a file opened under the root shows in every page.
        self.files = files if isinstance(files, list) else list(files)
        self.cache = cache if cache is not None else ReportCache()

    def file(self, index: int) -> FileEntry:
        """Return file `index`.

        Raises:
            binglide.RequestError: there is no such file.
        """
        if not 0 <= index < len(self.files):
            raise binglide.RequestError(
                f"there is no file {index}: the viewer shows {len(self.files)} file(s)"
            )
        return self.files[index]

    def _range(self, params: Mapping[str, Any], entry: FileEntry) -> tuple[int, int]:
        size = entry.size()
        start = int(params.get("start") or 0)
        stop = params.get("stop")
        stop = size if stop is None else min(int(stop), size)
        start = min(start, stop)
        return start, stop

    async def _follow(
        self,
        call: binglide.Call,
        convert: Callable[[binglide.Report], tuple[dict[str, Any], dict[str, Array]]],
        key: Any = None,
    ) -> AsyncGenerator[Out, None]:
        """Yield every report of `call`, converted; cancel the call if abandoned."""
        try:
            async for report in call:
                meta, arrays = convert(report)
                out = Out(_report_header(report, meta), arrays, report.final)
                if report.final and key is not None:
                    self.cache.put(key, out)
                yield out
        finally:
            call.cancel()  # a no-op once done; else the CANCEL reaches the workers

    async def run(self, op: str, params: Mapping[str, Any]) -> AsyncGenerator[Out, None]:
        """Answer one op; the last `Out` has ``final`` set.

        Raises:
            binglide.BinglideError: the request failed (a bad file index or
                range, a worker error, ...).
        """
        if op == "info":
            yield Out({"final": True, "meta": self.info()}, final=True)
            return
        if op == "finddiff":
            offset = await self.find_difference(int(params["offset"]), int(params["direction"]))
            yield Out({"final": True, "meta": {"offset": offset}}, final=True)
            return
        if op == "search":
            offset, scanned = await self.search(params)
            yield Out({"final": True, "meta": {"offset": offset, "scanned": scanned}}, final=True)
            return
        method = getattr(self, "_" + op)
        async for out in method(params):
            yield out

    def info(self) -> dict[str, Any]:
        """Return what the page needs to start: the files, and the tile geometry."""
        files = []
        for f in self.files:
            try:
                size = f.size()
            except OSError:
                size = None
            files.append({"index": f.index, "name": f.name, "size": size})
        return {
            "files": files,
            "version": binglide.__version__,
            "tile_buckets": TILE_BUCKETS,
            "entropy_window": ENTROPY_WINDOW,
            "trigram_bits": TRIGRAM_BITS,
        }

    async def _cached_or(
        self,
        key: Any,
        begin: Callable[[], binglide.Call],
        convert: Callable[[binglide.Report], tuple[dict[str, Any], dict[str, Array]]],
    ) -> AsyncGenerator[Out, None]:
        """Answer from the cache under `key`, or else `begin` the call and follow it.

        `begin` makes the call only on a miss: a call is a request on its way
        as soon as it exists, and one made for a hit would run to its end
        unseen and never be cancelled.
        """
        hit = self.cache.get(key)
        if hit is not None:
            header = {**hit.header, "cached": True}
            yield Out(header, hit.arrays, True)
            return
        async with contextlib.aclosing(self._follow(begin(), convert, key)) as outs:
            async for out in outs:
                yield out

    # -- the ops ---------------------------------------------------------------------------

    async def _tile(self, params: Mapping[str, Any]) -> AsyncGenerator[Out, None]:
        entry = self.file(params["file"])
        level, index, layer = int(params["level"]), int(params["index"]), params["layer"]
        try:
            start, stop = tile_range(level, index, entry.size())
        except ValueError as exc:
            raise binglide.RequestError(str(exc)) from None
        block = 1 << level
        meta = {"level": level, "index": index, "layer": layer, "start": start, "stop": stop}
        key = ("tile", layer, entry.identity(), level, index)
        if layer == "entropy":
            if block >= ENTROPY_WINDOW:
                begin = functools.partial(
                    self.client.entropy, entry.path, (start, stop), mode="block", block=block
                )
            else:
                begin = functools.partial(
                    self.client.entropy,
                    entry.path,
                    (start, stop),
                    mode="sliding",
                    resolution=max(1, -(-(stop - start) // block)),
                    window=ENTROPY_WINDOW,
                )

            def convert(r: binglide.Report) -> tuple[dict[str, Any], dict[str, Array]]:
                return meta, {"entropy": r.array.astype(np.float32)}
        else:
            body = {
                "inputs": [{"source": entry.path, "start": start, "stop": stop}],
                "options": {"block": block},
            }
            begin = functools.partial(self.client.request, "classes", body)

            def convert(r: binglide.Report) -> tuple[dict[str, Any], dict[str, Array]]:
                return meta, {"shares": _shares(r.array)}

        async for out in self._cached_or(key, begin, convert):
            yield out

    async def _stats(self, params: Mapping[str, Any]) -> AsyncGenerator[Out, None]:
        entry = self.file(params["file"])
        start, stop = self._range(params, entry)
        key = ("stats", entry.identity(), start, stop)

        def convert(r: binglide.Report) -> tuple[dict[str, Any], dict[str, Array]]:
            return r.meta, {"counts": r.array.astype(np.float64)}

        begin = functools.partial(self.client.stats, entry.path, (start, stop))
        async for out in self._cached_or(key, begin, convert):
            yield out

    async def _histogram(self, params: Mapping[str, Any]) -> AsyncGenerator[Out, None]:
        entry = self.file(params["file"])
        start, stop = self._range(params, entry)
        key = ("histogram", entry.identity(), start, stop)

        def convert(r: binglide.Report) -> tuple[dict[str, Any], dict[str, Array]]:
            return r.meta, {"counts": r.array.astype(np.float64)}

        begin = functools.partial(self.client.histogram, entry.path, (start, stop))
        async for out in self._cached_or(key, begin, convert):
            yield out

    async def _ngrams(self, params: Mapping[str, Any]) -> AsyncGenerator[Out, None]:
        entry = self.file(params["file"])
        start, stop = self._range(params, entry)
        n = int(params["n"])
        if params.get("preview") and n == 2:
            yield await self._bigram_preview(entry, start, stop)
            return
        key = ("ngrams", n, entry.identity(), start, stop)
        if n == 2:
            begin = functools.partial(self.client.ngrams, entry.path, (start, stop), n=2)

            def convert(r: binglide.Report) -> tuple[dict[str, Any], dict[str, Array]]:
                return r.meta, {"counts": r.array.astype(np.float32)}
        else:
            begin = functools.partial(
                self.client.ngrams, entry.path, (start, stop), n=3, bits=TRIGRAM_BITS
            )

            def convert(r: binglide.Report) -> tuple[dict[str, Any], dict[str, Array]]:
                cells, counts, distinct = _trigram_points(r.array)
                return {**r.meta, "distinct": distinct}, {"cells": cells, "counts": counts}

        async for out in self._cached_or(key, begin, convert):
            yield out

    async def _bigram_preview(self, entry: FileEntry, start: int, stop: int) -> Out:
        """A bigram estimate from at most `PREVIEW_BYTES` of the range, and nothing more.

        While a selection is being dragged, each range is soon replaced: an
        ``ngrams`` request would start exact chunks that cancelling cannot
        stop mid-kernel, and they would pile up on the cores. The ``data``
        service's runs (about 256 spread over the range) cost one small read.
        """
        report = await self.client.data(entry.path, (start, stop), size=PREVIEW_BYTES)
        data = report.array.astype(np.int64)
        runs = report.meta.get("runs", [])
        # Pairs that lie inside one run: not across the gap between two.
        inside = np.ones(max(0, len(data) - 1), dtype=bool)
        ends = np.cumsum([length for _, length in runs])[:-1]
        inside[ends[ends <= len(inside)] - 1] = False
        pairs = data[:-1][inside] * 256 + data[1:][inside]
        counts = np.bincount(pairs, minlength=1 << 16).astype(np.float64)
        total_pairs = max(0, stop - start - 1)
        if len(pairs) and len(data) < stop - start:
            counts *= total_pairs / len(pairs)
        precision = len(data) / (stop - start) if stop > start else 1.0
        meta = {"start": start, "stop": stop, "n": 2, "bits": 8, "preview": True}
        header = {"completion": 0.0, "precision": precision, "final": True, "meta": meta}
        return Out(header, {"counts": counts.reshape(256, 256).astype(np.float32)}, True)

    def entropy_points(self, length: int, resolution: int) -> int:
        """Return the points of an entropy profile: `resolution`, or fewer on a short range."""
        return max(1, min(resolution, length // MIN_POINT_BYTES))

    async def _entropy(self, params: Mapping[str, Any]) -> AsyncGenerator[Out, None]:
        entry = self.file(params["file"])
        start, stop = self._range(params, entry)
        points = self.entropy_points(stop - start, int(params["resolution"]))
        key = ("entropy", entry.identity(), start, stop, points)

        def convert(r: binglide.Report) -> tuple[dict[str, Any], dict[str, Array]]:
            meta = {**r.meta, "points": points, "point_bytes": (stop - start) / points}
            return meta, {"entropy": r.array.astype(np.float32)}

        begin = functools.partial(
            self.client.entropy, entry.path, (start, stop), resolution=points
        )
        async for out in self._cached_or(key, begin, convert):
            yield out

    async def _data(self, params: Mapping[str, Any]) -> AsyncGenerator[Out, None]:
        entry = self.file(params["file"])
        start = int(params["start"])
        size = int(params["size"])
        call = self.client.data(entry.path, (start, start + size), size=size)

        def convert(r: binglide.Report) -> tuple[dict[str, Any], dict[str, Array]]:
            return {**r.meta, "file": entry.index}, {"bytes": r.array.astype(np.uint8)}

        async for out in self._follow(call, convert):
            yield out

    async def _diff(self, params: Mapping[str, Any]) -> AsyncGenerator[Out, None]:
        a, b = self._pair()
        size = max(a.size(), b.size())
        start = int(params.get("start") or 0)
        stop = size if params.get("stop") is None else min(int(params["stop"]), size)
        start = min(start, stop)
        resolution = max(1, min(int(params["resolution"]), stop - start))
        key = ("diff", a.identity(), b.identity(), start, stop, resolution)

        def convert(r: binglide.Report) -> tuple[dict[str, Any], dict[str, Array]]:
            return r.meta, {"counts": r.array.astype(np.float64)}

        begin = functools.partial(
            self.client.diff, a.path, b.path, (start, stop), resolution=resolution
        )
        async for out in self._cached_or(key, begin, convert):
            yield out

    def _pair(self) -> tuple[FileEntry, FileEntry]:
        if len(self.files) < 2:
            raise binglide.RequestError("a diff needs two files: binglide view FILE FILE2")
        return self.files[0], self.files[1]

    async def find_difference(self, offset: int, direction: int) -> int | None:
        """Return the first offset after (or the last before) `offset` where the files differ.

        Narrows with ``diff`` profiles (1024 points, then the points that
        differ), then compares the bytes of the last 64 KiB itself. Bytes
        past the end of the shorter file differ.

        Raises:
            binglide.RequestError: fewer than two files, or a direction other than 1 or -1.
        """
        if direction not in (1, -1):
            raise binglide.RequestError("direction must be 1 (next) or -1 (previous)")
        a, b = self._pair()
        size = max(a.size(), b.size())
        lo, hi = (offset + 1, size) if direction > 0 else (0, min(offset, size))
        while hi - lo > _DIFF_LEAF:
            report = await self.client.diff(
                a.path, b.path, (lo, hi), resolution=1024, reports={"estimate": False}
            )
            if direction > 0 and report.meta.get("first_offsets"):
                return int(report.meta["first_offsets"][0])
            counts = report.array
            hits = np.flatnonzero(counts)
            if not len(hits):
                return None
            edges = _edges(lo, hi, len(counts))
            i = int(hits[-1])
            lo, hi = int(edges[i]), int(edges[i + 1])
        if hi <= lo:
            return None
        left = await self.client.data(a.path, (lo, hi), size=max(1, hi - lo))
        right = await self.client.data(b.path, (lo, hi), size=max(1, hi - lo))
        x, y = left.array, right.array
        common = min(len(x), len(y))
        where = np.flatnonzero(x[:common] != y[:common]) + lo
        beyond = np.arange(lo + common, hi) if len(x) != len(y) else np.zeros(0, dtype=np.int64)
        found = np.concatenate([where, beyond])
        if not len(found):
            return None
        return int(found[0] if direction > 0 else found[-1])

    async def search(self, params: Mapping[str, Any]) -> tuple[int | None, int]:
        """Return the first offset of ``pattern`` (hex) in the range, and the bytes scanned.

        Reads the range in 1 MiB steps through the ``data`` service, at most
        `SEARCH_LIMIT` bytes.

        Raises:
            binglide.RequestError: the pattern is not 1 to 16 bytes of hex.
        """
        try:
            pattern = bytes.fromhex(params["pattern"])
        except ValueError:
            pattern = b""
        if not 1 <= len(pattern) <= 16:
            raise binglide.RequestError("search: the pattern is 1 to 16 bytes, in hex")
        entry = self.file(params["file"])
        start, stop = self._range(params, entry)
        at = start
        scanned = 0
        while at < stop and scanned < SEARCH_LIMIT:
            hi = min(stop, at + _SEARCH_STEP + len(pattern) - 1)
            report = await self.client.data(entry.path, (at, hi), size=hi - at)
            found = report.array.tobytes().find(pattern)
            if found >= 0:
                return at + found, scanned + found
            scanned += hi - at
            at += _SEARCH_STEP
        return None, scanned

    async def export(self, request: Mapping[str, Any], fmt: str) -> tuple[str, bytes]:
        """Return the file name and bytes of a view's data, written by the command's writers.

        The request runs to its exact answer (from the cache when it can);
        the file is what ``binglide OP ... --json/--npz/--csv`` writes.
        """
        # The command's own writers and layout: the same files as --json/--npz/--csv.
        import binglide.cli.export as writers

        op = str(request["op"])
        final: binglide.Report | None = None
        files = [self.file(int(request.get("file", 0)))] if op != "diff" else list(self._pair())
        start, stop = self._range(request, files[0]) if op != "diff" else (0, None)
        kwargs: dict[str, Any] = {}
        if op == "diff":
            size = max(f.size() for f in files)
            start = int(request.get("start") or 0)
            stop = size if request.get("stop") is None else min(int(request["stop"]), size)
            call = self.client.diff(
                files[0].path,
                files[1].path,
                (start, stop),
                resolution=max(1, min(int(request["resolution"]), stop - start)),
            )
            kwargs = {"resolution": int(request["resolution"])}
        elif op == "entropy":
            points = self.entropy_points(int(stop or 0) - start, int(request["resolution"]))
            call = self.client.entropy(files[0].path, (start, stop), resolution=points)
            kwargs = {"mode": "resolution", "resolution": points}
        elif op == "ngrams":
            n = int(request["n"])
            bits = 8 if n == 2 else TRIGRAM_BITS
            call = self.client.ngrams(files[0].path, (start, stop), n=n, bits=bits)
            kwargs = {"n": n, "bits": bits}
        elif op == "data":
            start = int(request["start"])
            size = int(request["size"])
            stop = start + size
            call = self.client.data(files[0].path, (start, stop), size=size)
            kwargs = {"size": size}
        else:
            call = getattr(self.client, op)(files[0].path, (start, stop))
        try:
            final = await call
        finally:
            call.cancel()
        sources = [f.path for f in files]
        doc = writers.document(
            service=op,
            sources=sources,
            options={"range": [start, stop], **kwargs},
            meta=final.meta,
            completion=final.completion,
            precision=final.precision,
        )
        base = "-".join(os.path.basename(f.path) for f in files)
        name = f"{base}.{op}.{start:#x}-{(stop or 0):#x}.{fmt}"

        def write() -> bytes:
            assert final is not None
            layout = writers.tables(op, final)
            with tempfile.TemporaryDirectory(prefix="binglide-view-") as directory:
                path = os.path.join(directory, "export")
                if fmt == "csv":
                    writers.write_csv(path, layout.header, layout.rows)
                elif fmt == "json":
                    writers.write_json(path, doc, layout.arrays)
                else:
                    writers.write_npz(path, doc, layout.arrays)
                with open(path, "rb") as stream:
                    return stream.read()

        return name, await anyio.to_thread.run_sync(write)


def _edges(start: int, stop: int, points: int) -> Array:
    """The points' edges as the profile services cut them."""
    i = np.arange(points + 1, dtype=np.int64)
    q, r = divmod(stop - start, points)
    return start + i * q + (i * r) // points
