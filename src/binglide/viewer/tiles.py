"""Overview tiles: levels of power-of-two buckets, and the byte classes of each bucket.

Theory of operation
-------------------
An overview map shows a range of a file as *buckets*: at level ``L`` a bucket
is ``2**L`` bytes, aligned on its size, so the buckets of every level nest
inside those of the next, exactly as the chunk cache's blocks do. A *tile* is
`TILE_BUCKETS` consecutive buckets, aligned on its own span: tile ``k`` of
level ``L`` covers ``[k * span, (k + 1) * span)`` with ``span = TILE_BUCKETS
<< L`` (cut at the end of the file). A map showing ``[start, stop)`` asks for
the level with about one bucket per pixel (`level_for`), and for the tiles
that range touches (`tiles_for`); a pan keeps most of them, so the page and
the server reuse the tiles they already hold (the HiGlass and Perfetto
scheme; see docs/viewer.md).

A tile has two layers: the entropy of each bucket (the built-in ``entropy``
service, ``block`` mode, or a 256-byte sliding window when buckets are
smaller than that) and the share of each byte class in each bucket (the
``classes`` service below: 0x00, other control bytes, printable ASCII,
0x80-0xFE, 0xFF, the classes of ``binglide data --png``).

`ClassesService` is a `binglide.Service` like any analysis: it answers a
sampled estimate first (a run from the middle of every bucket), then exact
counts, refined as it goes. It reads files with ``pread`` into one reused
buffer, so memory stays flat whatever the file size (a 64 GiB sparse file
included), and it refuses paths outside the workers' roots.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import numpy as np

import binglide

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from numpy.typing import NDArray

__all__ = (
    "CLASS_NAMES",
    "ENTROPY_WINDOW",
    "MAX_LEVEL",
    "TILE_BUCKETS",
    "ClassesService",
    "byte_class_counts",
    "level_for",
    "tile_range",
    "tiles_for",
)

#: Buckets per tile: one 64 x 64 Hilbert square, 64 rows of a 64-wide strip.
TILE_BUCKETS = 4096
#: The largest bucket: 2**50 bytes (a PiB), far past any file.
MAX_LEVEL = 50
#: Entropy needs a few hundred bytes to mean anything: smaller buckets get the
#: entropy of this many bytes around their middle.
ENTROPY_WINDOW = 256
#: The byte classes, in the order of the counts (and of ``binglide data --png``).
CLASS_NAMES = ("0x00", "control", "printable", "high", "0xFF")

_CLASS_OF = np.full(256, 3, dtype=np.uint8)
_CLASS_OF[:0x80] = 1
_CLASS_OF[0x20:0x7F] = 2
_CLASS_OF[[0x09, 0x0A, 0x0D]] = 2
_CLASS_OF[0x00] = 0
_CLASS_OF[0xFF] = 4

#: Bytes read by one step of the exact pass (bounds memory and cancel latency).
_STEP = 8 << 20
#: Bytes the estimate reads in all, spread over every bucket of the tile.
_SAMPLE_BUDGET = 1 << 20


def level_for(length: int, capacity: int) -> int:
    """Return the smallest level whose buckets show `length` bytes in `capacity` buckets.

    Args:
        length: the bytes to show (0 gives level 0).
        capacity: how many buckets the map can draw, at least 1.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, not {capacity}")
    if length <= capacity:
        return 0
    return min(MAX_LEVEL, math.ceil(math.log2(length / capacity)))


def tile_range(level: int, index: int, size: int) -> tuple[int, int]:
    """Return the bytes ``[start, stop)`` of tile `index` of `level`, cut at `size`.

    Raises:
        ValueError: the level or index is out of bounds (the tile lies past the end).
    """
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"level must be within 0..{MAX_LEVEL}, not {level}")
    span = TILE_BUCKETS << level
    start = index * span
    if index < 0 or start >= max(size, 1):
        raise ValueError(f"tile {index} of level {level} lies outside the file ({size} bytes)")
    return start, min(size, start + span)


def tiles_for(start: int, stop: int, level: int) -> range:
    """Return the indexes of the tiles of `level` that ``[start, stop)`` touches."""
    span = TILE_BUCKETS << level
    if stop <= start:
        return range(start // span, start // span)
    return range(start // span, -(-stop // span))


# -- counting byte classes ---------------------------------------------------------------


def _count_numpy(data: NDArray[np.uint8], block: int, out: NDArray[np.int64]) -> None:
    classes = _CLASS_OF[data]
    full = len(data) // block * block
    if full:
        rows = classes[:full].reshape(-1, block)
        for k in range(len(CLASS_NAMES)):
            out[: full // block, k] += (rows == k).sum(axis=1, dtype=np.int64)
    if full < len(data):
        out[full // block] += np.bincount(classes[full:], minlength=len(CLASS_NAMES))


def _make_numba_counter() -> Callable[[NDArray[np.uint8], int, NDArray[np.int64]], None] | None:
    if os.environ.get("BINGLIDE_NO_NUMBA", "").strip() not in ("", "0"):
        return None
    try:
        import numba
    except ImportError:
        return None
    class_of = _CLASS_OF

    @numba.njit(nogil=True, cache=False)  # type: ignore[untyped-decorator,misc,unused-ignore]
    def count(data: Any, block: int, out: Any) -> None:  # pragma: no cover - compiled
        for i in range(len(data)):
            out[i // block, class_of[data[i]]] += 1

    return count  # type: ignore[no-any-return,unused-ignore]


_numba_count: Callable[[NDArray[np.uint8], int, NDArray[np.int64]], None] | None = None
_numba_tried = False


def byte_class_counts(data: NDArray[np.uint8], block: int) -> NDArray[np.int64]:
    """Count the bytes of each class (`CLASS_NAMES`) in each `block` bytes of `data`.

    Returns:
        An ``(ceil(len(data) / block), 5)`` array; the last row counts the
        last, shorter block.
    """
    global _numba_count, _numba_tried
    if block < 1:
        raise ValueError(f"block must be at least 1, not {block}")
    out = np.zeros((-(-len(data) // block), len(CLASS_NAMES)), dtype=np.int64)
    if not _numba_tried:
        _numba_tried = True
        _numba_count = _make_numba_counter()
    if _numba_count is not None and len(data) >= 1 << 16:
        _numba_count(data, block, out)
    else:
        _count_numpy(data, block, out)
    return out


class _File:
    """A file read with ``pread`` into a reused buffer: flat memory at any size."""

    def __init__(self, path: str, roots: tuple[str, ...] | None) -> None:
        real = os.path.realpath(path)
        if roots is not None and not any(
            real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots
        ):
            raise binglide.RequestError(f"{path} is outside the directories workers may read")
        try:
            self._fd = os.open(real, os.O_RDONLY)
        except OSError as exc:
            raise binglide.RequestError(f"cannot read {path}: {exc.strerror}") from None
        self.size = os.fstat(self._fd).st_size
        self._buffer = np.empty(0, dtype=np.uint8)

    def read(self, start: int, stop: int) -> NDArray[np.uint8]:
        """Return the bytes ``[start, stop)`` (a view of the buffer, valid until the next read)."""
        n = stop - start
        if len(self._buffer) < n:
            self._buffer = np.empty(n, dtype=np.uint8)
        view = self._buffer[:n]
        got = os.preadv(self._fd, [view.data], start) if n else 0
        return view[:got]

    def read_into(self, start: int, out: NDArray[np.uint8]) -> int:
        """Read ``len(out)`` bytes at `start` into `out`; return how many there were."""
        return os.preadv(self._fd, [out.data], start) if len(out) else 0

    def close(self) -> None:
        os.close(self._fd)


def _sample_counts(
    file: _File, start: int, stop: int, block: int
) -> tuple[NDArray[np.int64], int]:
    """Count classes in a run from the middle of each bucket; scale to the bucket."""
    buckets = -(-(stop - start) // block)
    run = max(1, min(block, _SAMPLE_BUDGET // max(1, buckets)))
    lows = start + np.arange(buckets, dtype=np.int64) * block
    highs = np.minimum(stop, lows + block)
    takes = np.minimum(run, highs - lows)
    firsts = lows + (highs - lows - takes) // 2
    sample = np.empty(int(takes.sum()), dtype=np.uint8)
    got = np.zeros(buckets, dtype=np.int64)
    at = 0
    for i, (lo, take) in enumerate(zip(firsts.tolist(), takes.tolist(), strict=True)):
        got[i] = file.read_into(lo, sample[at : at + take])
        at += take
    # One count for every bucket at once: (bucket, class) pairs.
    where = np.repeat(np.arange(buckets, dtype=np.int64) * len(CLASS_NAMES), takes)
    valid = np.concatenate([np.arange(t) < g for t, g in zip(takes, got, strict=True)])
    pairs = where[valid] + _CLASS_OF[sample[valid]]
    counts = np.bincount(pairs, minlength=buckets * len(CLASS_NAMES)).reshape(buckets, -1)
    scale = np.divide(highs - lows, got, out=np.zeros(buckets), where=got > 0)
    return np.rint(counts * scale[:, None]).astype(np.int64), int(got.sum())


def _pieces(start: int, stop: int, block: int) -> list[tuple[int, int]]:
    """Cut ``[start, stop)`` into reads of at most `_STEP` bytes that never straddle a
    bucket boundary unless they hold whole buckets."""
    if block <= _STEP:
        step = _STEP // block * block
        return [(lo, min(stop, lo + step)) for lo in range(start, stop, step)]
    pieces = []
    for a in range(start, stop, block):
        b = min(stop, a + block)
        pieces += [(lo, min(b, lo + _STEP)) for lo in range(a, b, _STEP)]
    return pieces


def _exact_counts(
    file: _File, start: int, block: int, counts: NDArray[np.int64], lo: int, hi: int
) -> None:
    """Count the bytes ``[lo, hi)`` (a piece from `_pieces`) into `counts`."""
    data = file.read(lo, hi)
    first = (lo - start) // block
    if (lo - start) % block:  # a later piece of one large bucket
        counts[first] += byte_class_counts(data, len(data) or 1).sum(axis=0)
        return
    part = byte_class_counts(data, block)
    if len(part) == 1 and hi - lo < block:  # the first piece of a large bucket
        counts[first] = part[0]
        return
    counts[first : first + len(part)] = part


class ClassesService(binglide.Service):
    """The bytes of each class (`CLASS_NAMES`) in each ``block`` bytes of a range.

    Request (the common format): one input ``{source, start, stop}`` and the
    option ``block`` (bytes per bucket). The final ``data`` is an ``(n, 5)``
    int64 array of counts, one row per bucket; earlier reports are estimates
    (``precision`` is the fraction of the bytes read).
    """

    name = "classes"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        body = task.body
        try:
            (item,) = body["inputs"]
            source = str(item["source"])
            block = int(body.get("options", {}).get("block", 4096))
            first, last = item.get("start"), item.get("stop")
        except (KeyError, TypeError, ValueError) as exc:
            raise binglide.RequestError(
                f"a classes request needs one input and an integer block: {exc}"
            ) from None
        if block < 1:
            raise binglide.RequestError(f"block must be at least 1, not {block}")
        file = _File(source, ctx.settings.roots)
        try:
            start = 0 if first is None else int(first)
            stop = file.size if last is None else min(int(last), file.size)
            if start < 0 or stop < start:
                raise binglide.RequestError(f"invalid range ({first}, {last})")
            length = stop - start
            meta = {"start": start, "stop": stop, "block": block, "classes": list(CLASS_NAMES)}
            if length == 0:
                yield binglide.Report(np.zeros((0, 5), dtype=np.int64), meta=meta)
                return
            counts, read = await anyio.to_thread.run_sync(
                _sample_counts, file, start, stop, block, abandon_on_cancel=False
            )
            if read < length:
                # A copy: `counts` is refined in place below, and a report is
                # a value (the client may keep the estimate).
                yield binglide.Report(
                    counts.copy(), completion=0.0, precision=read / length, meta=meta
                )
            else:
                yield binglide.Report(counts, meta=meta)
                return
            # The sample is replaced bucket by bucket as the exact counts come.
            done = 0
            last_report = anyio.current_time()
            for lo, hi in _pieces(start, stop, block):
                await anyio.to_thread.run_sync(_exact_counts, file, start, block, counts, lo, hi)
                done += hi - lo
                now = anyio.current_time()
                if done < length and now - last_report >= ctx.settings.report_interval:
                    last_report = now
                    yield binglide.Report(
                        counts.copy(),
                        completion=done / length,
                        precision=done / length,
                        meta=meta,
                    )
            yield binglide.Report(counts, meta=meta)
        finally:
            file.close()
