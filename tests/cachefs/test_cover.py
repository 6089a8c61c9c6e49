"""Levels, aligned blocks and covering ranges with cached blocks."""

from __future__ import annotations

import itertools
import tempfile
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binglide.cachefs import (
    ChunkKey,
    ChunkStore,
    Cover,
    aligned_blocks,
    commit_levels,
    find_cover,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from numpy.typing import NDArray

MiB = 2**20
GiB = 2**30
IDS = ("f00d",)


def put_block(store: ChunkStore, start: int, stop: int, resource: str = "HIST") -> None:
    store.put(ChunkKey(resource, IDS, start, stop), np.array([start, stop], dtype=np.uint64))


def spans(cover: Cover) -> list[tuple[int, int]]:
    return [(key.start, key.stop) for key, _ in cover.hits]


def both_ways(
    store: ChunkStore, start: int, stop: int, levels: list[int], end: int | None = None
) -> Cover:
    """Cover by probing and by listing; both must agree."""
    probed = find_cover(store, "HIST", IDS, start, stop, levels, end=end, max_probes=10**9)
    listed = find_cover(store, "HIST", IDS, start, stop, levels, end=end, max_probes=0)
    assert spans(probed) == spans(listed)
    assert probed.gaps == listed.gaps
    for key, array in listed.hits:
        np.testing.assert_array_equal(array, [key.start, key.stop])
    return listed


# -- commit_levels and aligned_blocks -------------------------------------------


def test_commit_levels():
    # 10% of 1 GiB rounds down to 64 MiB, 1% to 8 MiB; then the chunk.
    assert commit_levels(GiB, min_block=MiB, chunk=4 * MiB) == [64 * MiB, 8 * MiB, 4 * MiB]
    # Duplicates merge, and levels below the minimum go.
    assert commit_levels(GiB, min_block=MiB, chunk=8 * MiB) == [64 * MiB, 8 * MiB]
    assert commit_levels(GiB, min_block=16 * MiB, chunk=4 * MiB) == [64 * MiB]
    assert commit_levels(10 * MiB, min_block=MiB, chunk=MiB // 2) == [MiB]
    assert commit_levels(0, min_block=MiB, chunk=MiB) == [MiB]
    assert commit_levels(50, min_block=MiB, chunk=4096) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_block": 3, "chunk": 4},
        {"min_block": 0, "chunk": 4},
        {"min_block": 4, "chunk": 6},
        {"min_block": 4, "chunk": True},
    ],
)
def test_commit_levels_refuses(kwargs):
    with pytest.raises(ValueError, match="power of two"):
        commit_levels(GiB, **kwargs)


def test_commit_levels_refuses_negative_size():
    with pytest.raises(ValueError, match="request_size"):
        commit_levels(-1, min_block=1, chunk=1)


def test_aligned_blocks():
    assert aligned_blocks(0, 64, 16) == [(0, 16), (16, 32), (32, 48), (48, 64)]
    assert aligned_blocks(5, 60, 16) == [(16, 32), (32, 48)]
    assert aligned_blocks(5, 31, 16) == []
    assert aligned_blocks(16, 16, 16) == []
    # The block cut by the end of the source counts, if inside the range.
    assert aligned_blocks(5, 60, 16, end=60) == [(16, 32), (32, 48), (48, 60)]
    assert aligned_blocks(50, 60, 16, end=60) == []
    assert aligned_blocks(48, 60, 16, end=60) == [(48, 60)]
    assert aligned_blocks(0, 40, 16, end=60) == [(0, 16), (16, 32)]
    assert aligned_blocks(0, 64, 16, end=64) == aligned_blocks(0, 64, 16)


@pytest.mark.parametrize(
    ("start", "stop", "level", "end"),
    [(0, 10, 3, None), (0, 10, 0, None), (5, 4, 2, None), (-1, 4, 2, None), (0, 10, 2, 8)],
)
def test_aligned_blocks_refuses(start, stop, level, end):
    with pytest.raises(ValueError):
        aligned_blocks(start, stop, level, end=end)


# -- find_cover --------------------------------------------------------------------


def test_empty_cache_is_one_gap(store):
    cover = both_ways(store, 100, 5000, [1024, 256])
    assert cover.hits == []
    assert cover.gaps == [(100, 5000)]
    assert not cover.complete


def test_empty_range(store):
    cover = find_cover(store, "HIST", IDS, 7, 7, [16])
    assert (cover.hits, cover.gaps, cover.complete) == ([], [], True)


def test_prefers_larger_blocks(store):
    for start in range(0, 4096, 1024):
        put_block(store, start, start + 1024)
    put_block(store, 0, 4096)
    put_block(store, 4096, 4096 + 1024)
    cover = both_ways(store, 0, 8192, [4096, 1024])
    assert spans(cover) == [(0, 4096), (4096, 5120)]
    assert cover.gaps == [(5120, 8192)]
    assert cover.covered_bytes == 5120


def test_sub_range_and_shifted_range(store):
    for start in range(0, 4096, 1024):
        put_block(store, start, start + 1024)
    put_block(store, 0, 4096)
    assert both_ways(store, 0, 4096, [4096, 1024]).complete
    # Inside the big block: the small ones answer.
    sub = both_ways(store, 1024, 3072, [4096, 1024])
    assert spans(sub) == [(1024, 2048), (2048, 3072)]
    assert sub.complete
    # Shifted: only the ragged start and the new part are missing.
    shifted = both_ways(store, 512, 5120, [4096, 1024])
    assert spans(shifted) == [(1024, 2048), (2048, 3072), (3072, 4096)]
    assert shifted.gaps == [(512, 1024), (4096, 5120)]


def test_only_requested_levels_count(store):
    put_block(store, 0, 4096)
    put_block(store, 0, 1024)
    put_block(store, 100, 200)  # not an aligned block of any level
    cover = both_ways(store, 0, 4096, [1024])
    assert spans(cover) == [(0, 1024)]
    assert cover.gaps == [(1024, 4096)]


def test_other_resources_and_sources_are_ignored(store):
    put_block(store, 0, 1024, resource="NG2B8")
    store.put(ChunkKey("HIST", ("beef",), 0, 1024), np.zeros(1))
    assert both_ways(store, 0, 1024, [1024]).gaps == [(0, 1024)]


def test_end_of_source_block(store):
    put_block(store, 0, 1024)
    put_block(store, 1024, 1500)
    cover = both_ways(store, 0, 1500, [1024], end=1500)
    assert spans(cover) == [(0, 1024), (1024, 1500)]
    assert cover.complete
    # Without the source size, a short block is not a block.
    assert both_ways(store, 0, 1500, [1024]).gaps == [(1024, 1500)]


def test_corrupt_block_falls_back_to_smaller_ones(store):
    for start in range(0, 4096, 1024):
        put_block(store, start, start + 1024)
    for max_probes in (0, 10**9):
        put_block(store, 0, 4096)
        path = store.directory / ChunkKey("HIST", IDS, 0, 4096).filename
        path.write_bytes(path.read_bytes()[:-1])
        cover = find_cover(store, "HIST", IDS, 0, 4096, [4096, 1024], max_probes=max_probes)
        assert spans(cover) == [(0, 1024), (1024, 2048), (2048, 3072), (3072, 4096)]
        assert not path.exists()


class CountingStore(ChunkStore):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.gets = 0
        self.listings = 0

    def get(self, key: ChunkKey) -> NDArray[np.generic] | None:
        self.gets += 1
        return super().get(key)

    def get_blocks(
        self, resource: str, ids: tuple[str, ...], blocks: Iterable[tuple[int, int]]
    ) -> list[tuple[ChunkKey, NDArray[np.generic]]]:
        blocks = list(blocks)
        self.gets += len(blocks)
        return super().get_blocks(resource, ids, blocks)

    def ranges(self, resource: str, ids: tuple[str, ...]) -> list[tuple[int, int]]:
        self.listings += 1
        return super().ranges(resource, ids)


def test_large_range_costs_one_listing(tmp_path):
    store = CountingStore(tmp_path / "cache")
    levels = commit_levels(GiB, min_block=MiB, chunk=MiB)  # 64 MiB, 8 MiB, 1 MiB
    put_block(store, 0, 64 * MiB)
    put_block(store, 64 * MiB, 72 * MiB)
    put_block(store, 72 * MiB, 73 * MiB)
    put_block(store, 0, MiB)  # inside a bigger hit: never read
    for start in range(0, 4 * MiB, MiB):  # another source: listed, not read
        store.put(ChunkKey("HIST", ("beef",), start, start + MiB), np.zeros(1))
    cover = find_cover(store, "HIST", IDS, 0, GiB, levels)
    assert spans(cover) == [(0, 64 * MiB), (64 * MiB, 72 * MiB), (72 * MiB, 73 * MiB)]
    assert cover.gaps == [(73 * MiB, GiB)]
    assert (store.listings, store.gets) == (1, 3)


def test_small_range_probes_without_listing(tmp_path):
    store = CountingStore(tmp_path / "cache")
    put_block(store, 0, MiB)
    cover = find_cover(store, "HIST", IDS, 0, 4 * MiB, [4 * MiB, MiB])
    assert spans(cover) == [(0, MiB)]
    assert store.listings == 0
    assert store.gets == 1 + 4


def test_find_cover_refuses():
    store = ChunkStore("/nonexistent/never/touched")
    with pytest.raises(ValueError):
        find_cover(store, "../HIST", IDS, 0, 10, [2])
    with pytest.raises(ValueError):
        find_cover(store, "HIST", ("a/b",), 0, 10, [2])
    with pytest.raises(ValueError):
        find_cover(store, "HIST", IDS, 10, 0, [2])
    with pytest.raises(ValueError):
        find_cover(store, "HIST", IDS, 0, 10, [3])
    with pytest.raises(ValueError):
        find_cover(store, "HIST", IDS, 0, 10, [2], end=5)


@st.composite
def cached_sets(draw):
    exponents = draw(st.sets(st.integers(0, 6), min_size=1, max_size=4))
    levels = sorted((2**e for e in exponents), reverse=True)
    end = draw(st.one_of(st.none(), st.integers(1, 256)))
    limit = 256 if end is None else end
    start = draw(st.integers(0, limit))
    stop = draw(st.integers(start, limit))
    cached = set()
    for _ in range(draw(st.integers(0, 25))):
        level = draw(st.sampled_from([*levels, 2 ** draw(st.integers(0, 7))]))
        a = draw(st.integers(0, limit // level)) * level
        b = min(a + level, limit)
        if a < b:
            cached.add((a, b))
    return levels, end, start, stop, cached


@settings(max_examples=150, deadline=None)
@given(cached_sets())
def test_cover_tiles_the_range(case):
    levels, end, start, stop, cached = case
    with tempfile.TemporaryDirectory() as directory:
        store = ChunkStore(directory)
        for a, b in cached:
            put_block(store, a, b)
        cover = both_ways(store, start, stop, levels, end=end)
    hits = spans(cover)
    # Hits and gaps tile [start, stop) exactly, in order, without overlap.
    pieces = sorted(hits + cover.gaps)
    position = start
    for a, b in pieces:
        assert a == position
        assert a < b
        position = b
    assert position == stop
    assert cover.gaps == sorted(cover.gaps)
    assert all(left[1] < right[0] for left, right in itertools.pairwise(cover.gaps))

    def eligible(a: int, b: int) -> bool:
        full = (b - a) in levels and a % (b - a) == 0
        cut = b == end and any(a % level == 0 and b - a < level for level in levels)
        return start <= a and b <= stop and (full or cut)

    usable = {block for block in cached if eligible(*block)}
    assert set(hits) <= usable
    # Everything the usable blocks cover is covered (nothing cached is recomputed)...
    covered = {x for a, b in hits for x in range(a, b)}
    assert covered == {x for a, b in usable for x in range(a, b)}
    # ...by the largest blocks: no hit lies inside another usable block.
    for a, b in hits:
        assert not any(c <= a and b <= d and (c, d) != (a, b) for c, d in usable)
