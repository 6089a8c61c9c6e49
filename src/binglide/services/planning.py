"""Splitting a byte range into aligned chunks, and sampling it.

Chunk boundaries fall on multiples of a power-of-two chunk size, whatever the
range: two requests over overlapping ranges then cut the same interior chunks,
so the results cached for one answer the other (a viewer zooming and panning
asks for many such ranges).
"""

from __future__ import annotations

__all__ = ("floor_power_of_two", "is_power_of_two", "plan_chunks", "sample_runs")


def _check_range(start: int, stop: int) -> None:
    if start < 0 or stop < start:
        raise ValueError(f"range [{start}, {stop}) must satisfy 0 <= start <= stop")


def is_power_of_two(value: int) -> bool:
    """Return whether `value` is a positive power of two."""
    return value > 0 and value & (value - 1) == 0


def floor_power_of_two(value: int) -> int:
    """Return the largest power of two at most `value` (1 for values below 2)."""
    return 1 << max(0, value.bit_length() - 1)


def plan_chunks(
    start: int,
    stop: int,
    *,
    workers: int,
    min_chunk: int = 1 << 20,
    max_chunk: int = 1 << 28,
) -> list[tuple[int, int]]:
    """Split ``[start, stop)`` into chunks with power-of-two aligned boundaries.

    The chunk size is ``(stop - start) / workers`` rounded down to a power of
    two (down, so that there are at least ``workers`` chunks to share out
    whenever the range is large enough), clamped to ``[min_chunk, max_chunk]``.
    Every interior boundary is a multiple of that size; only the first and
    last chunks may be shorter.

    Args:
        start: the first offset of the range.
        stop: its end (exclusive).
        workers: how many workers will share the chunks, at least 1.
        min_chunk: the smallest chunk size, a power of two.
        max_chunk: the largest chunk size, a power of two, at least ``min_chunk``.

    Returns:
        The chunks ``(start, stop)`` in order, covering the range exactly and
        without overlap; an empty list for an empty range.

    Raises:
        ValueError: the range is negative or reversed, ``workers`` is less than
            1, or the chunk bounds are not ordered powers of two.
    """
    _check_range(start, stop)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if not (is_power_of_two(min_chunk) and is_power_of_two(max_chunk)) or min_chunk > max_chunk:
        raise ValueError(
            f"min_chunk ({min_chunk}) and max_chunk ({max_chunk}) must be powers of two,"
            " min_chunk <= max_chunk"
        )
    length = stop - start
    if length == 0:
        return []
    share = max(1, length // workers)
    size = min(max_chunk, max(min_chunk, floor_power_of_two(share)))
    chunks = []
    lo = start
    boundary = (start // size + 1) * size  # the first aligned boundary after start
    while boundary < stop:
        chunks.append((lo, boundary))
        lo = boundary
        boundary += size
    chunks.append((lo, stop))
    return chunks


def sample_runs(
    start: int, stop: int, *, budget: int, run: int = 1 << 16
) -> list[tuple[int, int]]:
    """Pick about ``budget`` bytes of ``[start, stop)`` as evenly spread runs.

    The sample is deterministic (the same range and budget give the same
    runs), for a quick first estimate before the exact answer. Runs are
    ``run`` bytes long (one shorter run when the budget is smaller), spread so
    that the first starts at ``start`` and the last ends at ``stop``.

    Args:
        start: the first offset of the range.
        stop: its end (exclusive).
        budget: how many bytes to read, at least 1.
        run: the length of each run, at least 1.

    Returns:
        Disjoint sorted runs ``(start, stop)``: the whole range as one run when
        it is no longer than ``budget``; ``[]`` for an empty range.

    Raises:
        ValueError: the range is negative or reversed, or ``budget`` or ``run``
            is less than 1.
    """
    _check_range(start, stop)
    if budget < 1 or run < 1:
        raise ValueError(f"budget ({budget}) and run ({run}) must be at least 1")
    length = stop - start
    if length == 0:
        return []
    if length <= budget:
        return [(start, stop)]
    run = min(run, budget)
    count = budget // run
    if count == 1:
        # One run: from the middle, the most typical place of a file.
        lo = start + (length - run) // 2
        return [(lo, lo + run)]
    # count * run <= budget < length, so the spacing is at least one run: disjoint.
    slack = length - run
    return [
        (start + k * slack // (count - 1), start + k * slack // (count - 1) + run)
        for k in range(count)
    ]
