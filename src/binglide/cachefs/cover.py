"""Levels, aligned blocks, and covering a range with what the cache holds.

Theory of operation
-------------------
Results are committed at a few *levels*: power-of-two block sizes, each block
aligned on its own size (see `commit_levels`). Aligned power-of-two blocks are
either nested or disjoint, so the entries on disk form a segment tree whose
nodes are files: a request for any range is answered by the largest cached
blocks lying inside it, and only the rest (the *gaps*: the ragged ends, and
the holes no level holds) is computed.

`find_cover` picks, greedily from the largest level down, every cached block
that lies wholly inside the range and inside no larger block already picked.
Because the blocks nest, that greedy choice is simply the set of maximal
cached blocks, which gives two equivalent ways to find them:

* *probing*: for each level, try to read each aligned block inside what is
  still uncovered. It costs one ``open`` per candidate, so it is used only
  when the candidates are few (``max_probes``);
* *listing*: one listing of the directory, keeping the names of this resource
  and source, then a sweep over those blocks sorted by start (largest first
  on a tie) that keeps each block starting past the end of the last one kept.
  A 1 GiB range with 1 MiB blocks costs one listing and one read per hit,
  not a thousand probes.

An entry that vanishes or proves corrupt between the choice and the read is
skipped, which lets the smaller blocks inside it be chosen instead.

The last block of a source is usually cut short by the end of the file. With
``end`` (the source size), a block of level ``L`` aligned on ``L`` that
straddles ``end`` counts as the block ``[a, end)``; blocks still nest, so
everything above holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from .keys import ChunkKey, key_prefix

if TYPE_CHECKING:
    from collections.abc import Iterable

    import numpy as np
    from numpy.typing import NDArray

    from .store import ChunkStore

__all__ = ("Cover", "aligned_blocks", "commit_levels", "find_cover")


def _check_power_of_two(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value & (value - 1):
        raise ValueError(f"{name} must be a positive power of two, not {value!r}")


def _check_range(start: int, stop: int, end: int | None) -> None:
    if not 0 <= start <= stop:
        raise ValueError(f"invalid range [{start}, {stop}): expected 0 <= start <= stop")
    if end is not None and stop > end:
        raise ValueError(f"range [{start}, {stop}) goes past the end of the source ({end})")


def aligned_blocks(
    start: int, stop: int, level: int, *, end: int | None = None
) -> list[tuple[int, int]]:
    """Return the blocks of one level lying wholly inside ``[start, stop)``.

    Args:
        start: the first offset of the range.
        stop: one past its last offset.
        level: the block size, a power of two; each block is aligned on it.
        end: the source size, if known: the block straddling it is cut to
            end there (and included if it then lies inside the range).

    Returns:
        The ``(start, stop)`` of each block, in order.

    Raises:
        ValueError: ``level`` is not a positive power of two, the range is
            not ``0 <= start <= stop``, or it goes past ``end``.
    """
    _check_power_of_two("level", level)
    _check_range(start, stop, end)
    first = -(-start // level) * level
    blocks = [(a, a + level) for a in range(first, stop - level + 1, level)]
    if end is not None:
        # The block straddling the end of the source, cut there.
        cut = end - end % level
        if end % level and start <= cut and end <= stop:
            blocks.append((cut, end))
    return blocks


def commit_levels(request_size: int, *, min_block: int, chunk: int) -> list[int]:
    """Return the block sizes at which a request's results are committed to the cache.

    About 10% and about 1% of the request (rounded down to powers of two), so
    later requests of a similar or a ten times smaller size find blocks that
    fit, plus the computation chunk size, which costs nothing extra to keep.

    Args:
        request_size: the size of the requested range in bytes.
        min_block: the smallest block worth an entry (a power of two).
        chunk: the computation chunk size (a power of two).

    Returns:
        The levels, each at least ``min_block``, without duplicates, largest
        first (possibly empty).

    Raises:
        ValueError: ``request_size`` is negative, or ``min_block`` or
            ``chunk`` is not a positive power of two.
    """
    if request_size < 0:
        raise ValueError(f"request_size must be >= 0, not {request_size}")
    _check_power_of_two("min_block", min_block)
    _check_power_of_two("chunk", chunk)
    levels = {chunk}
    for share in (request_size // 10, request_size // 100):
        if share > 0:
            levels.add(1 << (share.bit_length() - 1))
    return sorted((level for level in levels if level >= min_block), reverse=True)


@attrs.frozen(eq=False)
class Cover:
    """What the cache holds of a range, and what is left to compute.

    ``hits`` and ``gaps`` together tile the range exactly, without overlap.

    Attributes:
        hits: the cached blocks used, as ``(key, array)``, sorted by start.
        gaps: the ``(start, stop)`` ranges no cached block covers, sorted,
            disjoint and not adjacent to one another.
    """

    hits: list[tuple[ChunkKey, NDArray[np.generic]]]
    gaps: list[tuple[int, int]]

    @property
    def complete(self) -> bool:
        """Whether the cache covers the whole range."""
        return not self.gaps

    @property
    def covered_bytes(self) -> int:
        """The number of bytes of the range the hits cover."""
        return sum(key.size for key, _ in self.hits)


def find_cover(
    store: ChunkStore,
    resource: str,
    ids: tuple[str, ...],
    start: int,
    stop: int,
    levels: Iterable[int],
    *,
    end: int | None = None,
    max_probes: int = 256,
) -> Cover:
    """Cover ``[start, stop)`` with the largest cached blocks that lie inside it.

    Args:
        store: the cache to look in.
        resource: the analysis and its parameters, e.g. ``"HIST"``.
        ids: the file ids of the sources.
        start: the first offset of the range.
        stop: one past its last offset.
        levels: the block sizes in use (powers of two, any order).
        end: the source size, if known, so the cut last block can be used.
        max_probes: above this many candidate blocks, list the directory once
            instead of trying each candidate's file.

    Returns:
        The hits (read and validated) and the gaps.

    Raises:
        ValueError: an invalid resource, ids, range or level.
    """
    key_prefix(resource, ids)  # validates them before any disk access
    _check_range(start, stop, end)
    sizes = sorted(set(levels), reverse=True)
    for level in sizes:
        _check_power_of_two("level", level)
    if start == stop:
        return Cover([], [])
    candidates = sum((stop - start) // level + 2 for level in sizes)
    if candidates <= max_probes:
        hits = _probe(store, resource, ids, start, stop, sizes, end)
    else:
        hits = _sweep(store, resource, ids, start, stop, sizes, end)
    hits.sort(key=lambda hit: hit[0].start)
    return Cover(hits, _gaps(start, stop, hits))


def _probe(
    store: ChunkStore,
    resource: str,
    ids: tuple[str, ...],
    start: int,
    stop: int,
    sizes: list[int],
    end: int | None,
) -> list[tuple[ChunkKey, NDArray[np.generic]]]:
    hits: list[tuple[ChunkKey, NDArray[np.generic]]] = []
    uncovered = [(start, stop)]
    for level in sizes:
        remaining = []
        for gap_start, gap_stop in uncovered:
            cursor = gap_start
            blocks = aligned_blocks(gap_start, gap_stop, level, end=end)
            for key, array in store.get_blocks(resource, ids, blocks):
                hits.append((key, array))
                if cursor < key.start:
                    remaining.append((cursor, key.start))
                cursor = key.stop
            if cursor < gap_stop:
                remaining.append((cursor, gap_stop))
        uncovered = remaining
        if not uncovered:
            break
    return hits


def _is_block(a: int, b: int, sizes: list[int], end: int | None) -> bool:
    size = b - a
    if size in sizes and a % size == 0:
        return True
    # A block cut by the end of the source: aligned on a level it falls short of.
    return b == end and any(a % level == 0 and size < level for level in sizes)


def _sweep(
    store: ChunkStore,
    resource: str,
    ids: tuple[str, ...],
    start: int,
    stop: int,
    sizes: list[int],
    end: int | None,
) -> list[tuple[ChunkKey, NDArray[np.generic]]]:
    blocks = [
        (a, b)
        for a, b in store.ranges(resource, ids)
        if start <= a and b <= stop and _is_block(a, b, sizes, end)
    ]
    # Largest first among blocks starting together: the one that contains the others.
    blocks.sort(key=lambda block: (block[0], -block[1]))
    hits: list[tuple[ChunkKey, NDArray[np.generic]]] = []
    covered_to = start
    for a, b in blocks:
        # Blocks nest, so one starting before covered_to lies inside a hit.
        if a < covered_to:
            continue
        key = ChunkKey(resource, ids, a, b)
        array = store.get(key)
        if array is not None:
            hits.append((key, array))
            covered_to = b
    return hits


def _gaps(
    start: int, stop: int, hits: list[tuple[ChunkKey, NDArray[np.generic]]]
) -> list[tuple[int, int]]:
    gaps = []
    cursor = start
    for key, _ in hits:
        if cursor < key.start:
            gaps.append((cursor, key.start))
        cursor = key.stop
    if cursor < stop:
        gaps.append((cursor, stop))
    return gaps
