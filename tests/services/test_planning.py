"""Chunk planning and sampling."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from binglide.services.planning import (
    floor_power_of_two,
    is_power_of_two,
    plan_chunks,
    sample_runs,
)

MiB = 1 << 20


def check_cover(chunks: list[tuple[int, int]], start: int, stop: int) -> None:
    if start == stop:
        assert chunks == []
        return
    assert chunks[0][0] == start
    assert chunks[-1][1] == stop
    for (_, a_stop), (b_start, _) in itertools.pairwise(chunks):
        assert a_stop == b_start
    assert all(lo < hi for lo, hi in chunks)


def test_plan_chunks_whole_aligned_range() -> None:
    chunks = plan_chunks(0, 64 * MiB, workers=4)
    assert chunks == [(i * 16 * MiB, (i + 1) * 16 * MiB) for i in range(4)]


def test_plan_chunks_ragged_ends_are_the_only_partial_chunks() -> None:
    chunks = plan_chunks(3 * MiB + 5, 40 * MiB + 7, workers=2)
    check_cover(chunks, 3 * MiB + 5, 40 * MiB + 7)
    size = 16 * MiB  # 37 MiB / 2 rounded down to a power of two
    assert [hi % size for _, hi in chunks[:-1]] == [0] * (len(chunks) - 1)
    assert all(hi - lo == size for lo, hi in chunks[1:-1])


def test_plan_chunks_clamps() -> None:
    assert plan_chunks(0, 100, workers=8) == [(0, 100)]
    assert plan_chunks(0, 3 * MiB, workers=8) == [(0, MiB), (MiB, 2 * MiB), (2 * MiB, 3 * MiB)]
    big = plan_chunks(0, 1 << 32, workers=1)
    assert all(hi - lo == 1 << 28 for lo, hi in big)
    assert len(big) == 16
    small = plan_chunks(0, 1 << 16, workers=4, min_chunk=4096, max_chunk=8192)
    assert all(hi - lo == 8192 for lo, hi in small)


def test_plan_chunks_empty_and_errors() -> None:
    assert plan_chunks(5, 5, workers=2) == []
    with pytest.raises(ValueError, match="workers"):
        plan_chunks(0, 10, workers=0)
    with pytest.raises(ValueError, match="range"):
        plan_chunks(10, 5, workers=1)
    with pytest.raises(ValueError, match="range"):
        plan_chunks(-1, 5, workers=1)
    with pytest.raises(ValueError, match="powers of two"):
        plan_chunks(0, 10, workers=1, min_chunk=3000)
    with pytest.raises(ValueError, match="powers of two"):
        plan_chunks(0, 10, workers=1, min_chunk=8192, max_chunk=4096)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    start=st.integers(0, 1 << 40),
    length=st.integers(0, 1 << 36),
    workers=st.integers(1, 64),
    min_exp=st.integers(0, 30),
    spread=st.integers(0, 10),
)
def test_plan_chunks_properties(
    start: int, length: int, workers: int, min_exp: int, spread: int
) -> None:
    stop = start + length
    min_chunk, max_chunk = 1 << min_exp, 1 << (min_exp + spread)
    assume(length // max_chunk < 10_000)  # keep the lists small
    chunks = plan_chunks(start, stop, workers=workers, min_chunk=min_chunk, max_chunk=max_chunk)
    check_cover(chunks, start, stop)
    share = max(1, length // workers)
    size = 1
    while size * 2 <= share:
        size *= 2
    size = min(max_chunk, max(min_chunk, size))
    assert all(hi % size == 0 for _, hi in chunks[:-1])
    assert all(hi - lo == size for lo, hi in chunks[1:-1])
    assert all(hi - lo <= size for lo, hi in chunks)
    if size > min_chunk and length >= workers:
        # rounded down, so at least one chunk per worker...
        assert len(chunks) >= workers
    if size < max_chunk and length:
        # ...and at most about two per worker, plus the ragged ends
        assert len(chunks) <= 2 * workers + 2 or size == min_chunk


def test_sample_runs_whole_range_when_it_fits() -> None:
    assert sample_runs(10, 1000, budget=990) == [(10, 1000)]
    assert sample_runs(10, 10, budget=5) == []


def test_sample_runs_spread() -> None:
    runs = sample_runs(0, 1 << 30, budget=1 << 20, run=1 << 16)
    assert len(runs) == 16
    assert all(hi - lo == 1 << 16 for lo, hi in runs)
    assert runs[0][0] == 0
    assert runs[-1][1] == 1 << 30
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(runs)]
    assert max(gaps) - min(gaps) <= 1
    assert sample_runs(0, 1 << 30, budget=1 << 20) == runs  # deterministic


def test_sample_runs_small_budget_takes_the_middle() -> None:
    assert sample_runs(0, 1000, budget=10, run=1 << 16) == [(495, 505)]


def test_sample_runs_errors() -> None:
    with pytest.raises(ValueError, match="budget"):
        sample_runs(0, 10, budget=0)
    with pytest.raises(ValueError, match="range"):
        sample_runs(10, 0, budget=4)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    start=st.integers(0, 1 << 40),
    length=st.integers(0, 1 << 34),
    budget=st.integers(1, 1 << 24),
    run=st.integers(1, 1 << 18),
)
def test_sample_runs_properties(start: int, length: int, budget: int, run: int) -> None:
    stop = start + length
    runs = sample_runs(start, stop, budget=budget, run=run)
    total = sum(hi - lo for lo, hi in runs)
    assert total == min(length, budget) or (length > budget and budget - run < total <= budget)
    assert all(start <= lo < hi <= stop for lo, hi in runs)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(runs))


def test_power_of_two_helpers() -> None:
    assert [is_power_of_two(v) for v in (-4, 0, 1, 2, 3, 4, 6, 1 << 40)] == [
        False, False, True, True, False, True, False, True,
    ]  # fmt: skip
    assert [floor_power_of_two(v) for v in (0, 1, 2, 3, 4, 5, 1023, 1024, (1 << 40) + 1)] == [
        1, 1, 2, 2, 4, 4, 512, 1024, 1 << 40,
    ]  # fmt: skip
