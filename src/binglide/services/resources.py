"""Chunk resources: what a chunk's result is, how results merge, how they scale.

A resource is a result that is a pure function of (analysis, parameters,
file identity, byte range) and that merges exactly across adjacent ranges:
byte counts (``HIST``), n-gram counts (``NG<n>B<bits>``) and ``ent``'s
partial statistics (``ENT``, and ``ENTA`` for streams starting at a multiple
of 6 bytes). That is what lets chunks be computed anywhere,
cached on disk under ``<RESOURCE>_<fileid>.<start>_<stop>``, and reused by
any later request whose range contains them.

N-gram chunks count the n-grams that *start* in the chunk and lie wholly in
the *file* (reading up to n - 1 bytes past the chunk), so that merged chunks
count every n-gram of their union exactly once; the few n-grams that cross a
request's end are subtracted once, at the end (`NGrams.finish`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from . import kernels

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .sources import Source

__all__ = (
    "AlignedEntResource",
    "EntResource",
    "Histogram",
    "NGrams",
    "Resource",
    "ent_resource_for",
    "resource_from_name",
)

Array = np.ndarray[Any, Any]


class Resource(ABC):
    """A mergeable chunk result (see the module docstring)."""

    #: The cache resource name, e.g. ``HIST`` or ``NG2B8``.
    name: str
    #: The smallest block worth a cache entry: results much larger than their
    #: bytes (n-gram tables) are only kept for large blocks.
    min_block: int = 1 << 20

    @abstractmethod
    def compute(self, source: Source, start: int, stop: int) -> Array:
        """Return the result for the bytes ``[start, stop)`` of `source` (blocking)."""

    #: Whether parts must be merged in range order (else they are summed).
    ordered: bool = False

    @abstractmethod
    def merge(self, parts: Sequence[Array]) -> Array:
        """Merge the results of adjacent ranges, given in order."""

    def add_into(self, total: Array, part: Array) -> None:
        """Add `part` into `total` in place (summed resources)."""
        total += part

    def compute_into(self, total: Array, source: Source, start: int, stop: int) -> Array:
        """Merge the result of ``[start, stop)`` into `total`; return the merged result.

        `total` is the result of the bytes just before (ordered resources) or
        of any bytes (summed ones, updated in place where possible).
        """
        if self.ordered:
            return self.merge([total, self.compute(source, start, stop)])
        self.add_into(total, self.compute(source, start, stop))
        return total

    def estimate(self, part: Array, factor: float) -> Array:
        """Scale the result of a sample up to the whole: counts grow by `factor`."""
        return np.rint(part.astype(np.float64) * factor).astype(part.dtype)

    def finish(self, source: Source, start: int, stop: int, merged: Array) -> Array:
        """Return the exact result of ``[start, stop)`` from its merged chunks (blocking)."""
        return merged


class Histogram(Resource):
    """256 byte counts."""

    name = "HIST"

    def compute(self, source: Source, start: int, stop: int) -> Array:
        total = np.zeros(256, dtype=np.uint64)
        for _, _, data in source.pieces(start, stop):
            kernels.byte_histogram(data, out=total)
        return total

    def merge(self, parts: Sequence[Array]) -> Array:
        total = np.zeros(256, dtype=np.uint64)
        for part in parts:
            total += part
        return total


#: N-grams counted into one uint32 scratch table before it is flushed (its
#: counters cannot overflow).
_NGRAM_FLUSH = 1 << 31


class NGrams(Resource):
    """Counts of n-grams of bytes reduced to their top `bits` bits."""

    def __init__(self, n: int, bits: int) -> None:
        self.n, self.bits = n, bits
        self.name = f"NG{n}B{bits}"
        # A table costs 8 bytes a cell: keep entries at most an eighth of their bytes.
        self.min_block = max(1 << 20, 64 << (bits * n))

    def compute(self, source: Source, start: int, stop: int) -> Array:
        return self.compute_into(self.merge([]), source, start, stop)

    def merge(self, parts: Sequence[Array]) -> Array:
        total = np.zeros((1 << self.bits,) * self.n, dtype=np.uint64)
        for part in parts:
            total += part
        return total

    def compute_into(self, total: Array, source: Source, start: int, stop: int) -> Array:
        # Count the n-grams starting in [start, stop) and lying in the file,
        # piece by piece: each piece comes with the n - 1 bytes after it.
        starts = max(0, min(stop, source.size - self.n + 1) - start)
        cells = 1 << (self.n * self.bits)
        # Many n-grams into a large table: count them into uint32 counters,
        # half the cache footprint of the uint64 table (what bounds this loop),
        # flushed at the end; a few into the table straight (clearing and
        # flushing a scratch table would cost more than counting them).
        scratch = np.zeros_like(total, np.uint32) if starts >= 4 * cells else None
        table = total if scratch is None else scratch
        counted = 0
        for lo, hi, data in source.pieces(start, stop, after=self.n - 1):
            count = max(0, min(hi, source.size - self.n + 1) - lo)
            if scratch is not None and counted + count > _NGRAM_FLUSH:
                total += scratch
                scratch[...] = 0
                counted = 0
            kernels.ngram_histogram(data, self.n, self.bits, count, out=table)
            counted += count
        if scratch is not None:
            total += scratch
        return total

    def finish(self, source: Source, start: int, stop: int, merged: Array) -> Array:
        # Take out the n-grams that start in the range but end past it.
        lo = max(start, stop - self.n + 1)
        crossing = self.compute(source, lo, stop)
        return merged - crossing


class EntResource(Resource):
    """``ent``'s partial statistics (276 uint64, see `kernels.EntPartial`)."""

    name = "ENT"
    ordered = True

    def accumulator(self, start: int) -> kernels.EntAccumulator:
        """Return the accumulator of a block starting at `start`: every Monte Carlo residue."""
        return kernels.EntAccumulator()

    def compute(self, source: Source, start: int, stop: int) -> Array:
        acc = self.accumulator(start)
        for lo, hi, data in source.pieces(start, stop, after=5):
            # The look-ahead stops at the range's end: the stream ends there.
            acc.add(data[: min(hi + 5, stop) - lo], hi - lo)
        return acc.to_array()

    def merge(self, parts: Sequence[Array]) -> Array:
        if len(parts) == 1:
            # A file of one chunk (most of a corpus): it is its own merge,
            # without unpacking and packing its 276 entries.
            return np.array(parts[0], dtype=np.uint64)
        partial = kernels.ent_partial(np.zeros(0, dtype=np.uint8))
        for part in parts:
            partial = kernels.ent_merge(partial, kernels.EntPartial.from_array(part))
        return partial.to_array()

    def estimate(self, part: Array, factor: float) -> Array:
        # Statistics of a sample estimate those of the whole as they are.
        return part


class AlignedEntResource(EntResource):
    """``ent``'s partials of the Monte Carlo groups at file offsets that are multiples of 6.

    ``ent`` groups a stream from its start; a stream starting at a multiple
    of 6 (a whole file: every file of a batch) needs, of each block, only
    the groups at those offsets, not the six residues `EntResource` tallies
    for a stream starting anywhere: the Monte Carlo part of the kernel is
    then a third of the work. Its blocks are cached under their own name,
    ``ENTA``, and serve only such streams: a block's partial is exact at the
    residue of those offsets (``inside[-start % 6]``, what `ent_merge` reads
    for them) and holds that count in its other entries too, so that a
    sample's merged runs (an estimate) read it wherever they lie.
    """

    name = "ENTA"

    def accumulator(self, start: int) -> kernels.EntAccumulator:
        """Return the accumulator of a block starting at `start`: the groups at multiples of 6."""
        return kernels.EntAccumulator(residue=-start % 6)


def ent_resource_for(start: int) -> EntResource:
    """Return the resource of ``ent``'s statistics of a stream starting at file offset `start`."""
    return AlignedEntResource() if start % 6 == 0 else EntResource()


def resource_from_name(name: str) -> Resource:
    """Return the resource called `name` (``HIST``, ``ENT``, ``ENTA``, ``NG<n>B<bits>``).

    Raises:
        ValueError: no such resource.
    """
    if name == "HIST":
        return Histogram()
    if name == "ENT":
        return EntResource()
    if name == "ENTA":
        return AlignedEntResource()
    if name.startswith("NG") and "B" in name:
        n_text, _, bits_text = name[2:].partition("B")
        if n_text in ("2", "3") and bits_text.isdigit() and 1 <= int(bits_text) <= 8:
            return NGrams(int(n_text), int(bits_text))
    raise ValueError(f"unknown chunk resource {name!r}")
