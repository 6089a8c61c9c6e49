"""The analyses and the on-disk cache: what is answered from disk, what is computed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import binglide
from binglide.services import kernels, resources

from . import references as ref

MiB = 1 << 20


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every (start, stop) the histogram resource computes from the file."""
    seen: list[tuple[int, int]] = []
    original = resources.Histogram.compute

    def spy(self: resources.Histogram, source, start: int, stop: int):
        seen.append((start, stop))
        return original(self, source, start, stop)

    monkeypatch.setattr(resources.Histogram, "compute", spy)
    return seen


@asynccontextmanager
async def connected(cache: Path) -> AsyncIterator[binglide.Client]:
    async with binglide.connect(workers=2, cache_dir=cache) as client:
        yield client


def _file(path: Path, size: int, seed: int = 0) -> np.ndarray:
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    data[: size // 3] = 7  # not all alike: chunks differ
    path.write_bytes(data.tobytes())
    return data


def _bytes(spans: list[tuple[int, int]]) -> int:
    return sum(b - a for a, b in spans)


NO_ESTIMATE = {"estimate": False}  # the sample would also compute (a little)


async def test_the_same_request_twice_computes_nothing_the_second_time(
    tmp_path: Path, computed: list[tuple[int, int]]
) -> None:
    path = tmp_path / "f.bin"
    data = _file(path, 20 * MiB + 123)
    with anyio.fail_after(30):
        async with connected(tmp_path / "cache") as client:
            first = await client.histogram(path, reports=NO_ESTIMATE)
            assert _bytes(computed) == path.stat().st_size
            computed.clear()
            assert client.broker is not None
            completed = client.broker.statistics().completed
            second = await client.histogram(path, reports=NO_ESTIMATE)
            assert computed == []  # even the file's ragged last block is an entry
            assert client.broker is not None
            # No chunk sub-request at all: the request itself is the only task.
            assert client.broker.statistics().completed - completed == 1
    np.testing.assert_array_equal(first.data, ref.byte_histogram(data))
    np.testing.assert_array_equal(second.data, first.data)


async def test_sub_range_and_shifted_range_compute_only_what_is_missing(
    tmp_path: Path, computed: list[tuple[int, int]]
) -> None:
    path = tmp_path / "f.bin"
    data = _file(path, 40 * MiB)
    with anyio.fail_after(30):
        async with connected(tmp_path / "cache") as client:
            await client.histogram(path, (0, 32 * MiB), reports=NO_ESTIMATE)
            computed.clear()
            sub = await client.histogram(path, (3 * MiB + 5, 20 * MiB + 7), reports=NO_ESTIMATE)
            np.testing.assert_array_equal(
                sub.data, ref.byte_histogram(data[3 * MiB + 5 : 20 * MiB + 7])
            )
            # Only the ragged ends, each less than one cached block (the 10% level, 2 MiB).
            assert _bytes(computed) < 2 * 2 * MiB
            computed.clear()
            shifted = await client.histogram(path, (16 * MiB, 40 * MiB), reports=NO_ESTIMATE)
            np.testing.assert_array_equal(shifted.data, ref.byte_histogram(data[16 * MiB :]))
            # [16, 32) MiB is cached: only [32, 40) MiB is read.
            assert _bytes(computed) == 8 * MiB
            assert all(a >= 32 * MiB for a, _ in computed)


async def test_the_first_report_comes_from_the_cache_before_any_computation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.bin"
    data = _file(path, 24 * MiB)
    with anyio.fail_after(30):
        async with connected(tmp_path / "cache") as client:
            await client.histogram(path, (0, 16 * MiB))
            reports = [r async for r in client.histogram(path, (0, 24 * MiB))]
    first = reports[0]
    assert first.completion == pytest.approx(16 / 24)
    assert not first.final
    np.testing.assert_array_equal(reports[-1].data, ref.byte_histogram(data))


async def test_a_modified_file_is_never_answered_from_old_entries(
    tmp_path: Path, computed: list[tuple[int, int]]
) -> None:
    path = tmp_path / "f.bin"
    _file(path, 8 * MiB, seed=1)
    with anyio.fail_after(30):
        async with connected(tmp_path / "cache") as client:
            await client.histogram(path)
            stat = path.stat()
            new = _file(path, 8 * MiB, seed=2)  # same size...
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # ...new mtime
            computed.clear()
            report = await client.histogram(path, reports=NO_ESTIMATE)
    np.testing.assert_array_equal(report.data, ref.byte_histogram(new))
    assert _bytes(computed) == 8 * MiB


async def test_a_truncated_entry_is_recomputed(
    tmp_path: Path, computed: list[tuple[int, int]]
) -> None:
    path = tmp_path / "f.bin"
    data = _file(path, 20 * MiB)
    cache = tmp_path / "cache"
    with anyio.fail_after(30):
        async with connected(cache) as client:
            await client.histogram(path, reports=NO_ESTIMATE)
            # Tear every entry that starts at 0 (each level has one).
            victims = [
                p for p in cache.iterdir() if p.name.startswith("HIST_") and ".0_" in p.name
            ]
            assert victims
            for victim in victims:
                victim.write_bytes(victim.read_bytes()[:-10])
            computed.clear()
            report = await client.histogram(path, reports=NO_ESTIMATE)
    np.testing.assert_array_equal(report.data, ref.byte_histogram(data))
    # The torn blocks' bytes, and only those, were read again: the first
    # block of the finest level; larger torn blocks are covered by finer ones.
    assert computed
    assert min(a for a, _ in computed) == 0
    assert _bytes(computed) <= 2 * MiB


async def test_no_caching_when_asked(tmp_path: Path, computed: list[tuple[int, int]]) -> None:
    path = tmp_path / "f.bin"
    _file(path, 8 * MiB)
    off = {"lookup": False, "commit": False}
    with anyio.fail_after(30):
        async with connected(tmp_path / "cache") as client:
            await client.histogram(path, reports=NO_ESTIMATE, cache=off)
            await client.histogram(path, reports=NO_ESTIMATE, cache=off)
    assert _bytes(computed) == 2 * 8 * MiB
    assert not list((tmp_path / "cache").glob("HIST_*"))


async def test_an_unspread_request_is_cut_only_at_the_largest_chunk(
    tmp_path: Path, computed: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from binglide.services import engine

    monkeypatch.setattr(engine, "MAX_CHUNK", 4 * MiB)  # the largest chunk, made small
    path = tmp_path / "f.bin"
    data = _file(path, 10 * MiB + 3)
    with anyio.fail_after(30):
        async with connected(tmp_path / "cache") as client:
            broker = client.broker
            assert broker is not None

            async def tasks(**extra: Any) -> int:
                before = broker.statistics().completed
                report = await client.histogram(path, reports=NO_ESTIMATE, **extra)
                np.testing.assert_array_equal(report.data, ref.byte_histogram(data))
                return broker.statistics().completed - before

            # Spread over the 2 workers, a 10 MiB file is cut into 1 MiB
            # chunks (4 a worker), each a sub-request.
            assert await tasks(cache={"commit": False}) == 1 + 11
            # Not spread: cut where the largest chunks end, 4 and 8 MiB.
            assert await tasks(cache={"commit": False}, spread=False) == 1 + 3
            # Storing only those chunks' blocks (no tenths, no whole-size
            # blocks): what a rerun reads, and it computes nothing.
            assert await tasks(spread=False) == 1 + 3
            entries = sorted(p.name.split(".", 1)[1] for p in (tmp_path / "cache").glob("HIST_*"))
            assert entries == sorted(["0_4194304", "4194304_8388608", "8388608_10485763"])
            computed.clear()
            assert await tasks(spread=False) == 1
            assert computed == []
    small = tmp_path / "small.bin"
    small_data = _file(small, 3 * MiB + 1)
    with anyio.fail_after(30):
        async with connected(tmp_path / "cache2") as client:
            assert client.broker is not None
            # A range of one chunk: one task, its own range one entry.
            for expected_computed in [3 * MiB + 1, 0]:
                computed.clear()
                before = client.broker.statistics().completed
                report = await client.histogram(small, reports=NO_ESTIMATE, spread=False)
                assert client.broker.statistics().completed - before == 1
                assert _bytes(computed) == expected_computed
                np.testing.assert_array_equal(report.data, ref.byte_histogram(small_data))
            assert [p.name.split(".", 1)[1] for p in (tmp_path / "cache2").glob("HIST_*")] == [
                f"0_{3 * MiB + 1}"
            ]


@pytest.mark.parametrize("resource", [resources.Histogram(), resources.EntResource()])
def test_coarse_blocks_are_stored_once_their_parts_are_all_in(
    tmp_path: Path, resource: resources.Resource
) -> None:
    from binglide.cachefs import ChunkKey, ChunkStore
    from binglide.services.common import Opened
    from binglide.services.engine import _Accumulator
    from binglide.services.sources import open_source

    path = tmp_path / "f.bin"
    _file(path, 64 * 1024 + 100)
    store = ChunkStore(tmp_path / "cache")
    with open_source(path) as source:
        op = Opened(source, 0, source.size, "s0")
        acc = _Accumulator(resource, op, [32 * 1024], store)
        pieces = [(a, min(a + 8192, source.size)) for a in range(0, source.size, 8192)]
        for a, b in reversed(pieces):  # out of order, as chunks finish
            acc.add(a, b, resource.compute(source, a, b))
        acc.commit_ordered()
        whole = resource.compute(source, 0, source.size)
        np.testing.assert_array_equal(acc.merged(), whole)
        for a, b in [(0, 32 * 1024), (32 * 1024, 64 * 1024)]:
            stored = store.get(ChunkKey(resource.name, ("s0",), a, b))
            assert stored is not None
            np.testing.assert_array_equal(stored, resource.compute(source, a, b))


def test_ent_merge_of_one_part_is_that_part_unaliased() -> None:
    # A file of one chunk skips the unpacking and packing of its partial: the
    # same entries as merging it after an empty run, in a new uint64 array
    # (the part may be a read-only frame, or a cache entry someone holds).
    resource = resources.EntResource()
    data = np.frombuffer(bytes(range(256)) * 40 + b"\x00" * 7, np.uint8)
    part = kernels.ent_partial(data).to_array()
    merged = resource.merge([part])
    general = resource.merge([kernels.ent_partial(b"").to_array(), part])
    np.testing.assert_array_equal(merged, general)
    assert merged.dtype == np.uint64
    assert not np.shares_memory(merged, part)


async def test_stats_from_a_multiple_of_6_count_one_residue_in_entries_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream starting at a multiple of 6 (a whole file) counts only the
    # Monte Carlo groups at multiples of 6 (`ENTA` blocks); any other start
    # counts all six residues (`ENT` blocks). Neither kind of entry answers
    # the other; each answer is exact, from computed and cached blocks alike.
    seen: list[tuple[str, int, int]] = []
    original = resources.EntResource.compute

    def spy(self: resources.EntResource, source, start: int, stop: int):
        seen.append((self.name, start, stop))
        return original(self, source, start, stop)

    monkeypatch.setattr(resources.EntResource, "compute", spy)
    path = tmp_path / "f.bin"
    data = np.random.default_rng(3).integers(0, 256, 10 * MiB + 5, dtype=np.uint8)
    data[2 * MiB : 3 * MiB] = 0xFF  # groups outside the circle
    data[5 * MiB : 5 * MiB + 100_001] = 0  # and inside
    path.write_bytes(data.tobytes())

    def names() -> set[str]:
        return {name for name, _, _ in seen}

    async def stats(span: tuple[int, int]) -> None:
        reports = [r async for r in client.stats(path, span)]
        expected = ref.ent(data[span[0] : span[1]].tobytes())
        final = reports[-1].meta
        for name in ("entropy", "chi_square", "mean", "monte_carlo_pi"):
            assert final[name] == pytest.approx(expected[name], rel=1e-12), (span, name)
        np.testing.assert_array_equal(
            reports[-1].data, ref.byte_histogram(data[span[0] : span[1]])
        )
        if len(reports) > 1:
            # The first estimate (cached blocks and the sample's runs merged
            # as if adjacent; deterministic, unlike the progress reports'):
            # every run's count read, whatever its residue in the sample.
            assert 2.5 < reports[0].meta["monte_carlo_pi"] < 3.5, span

    size = len(data)
    with anyio.fail_after(60):
        async with connected(tmp_path / "cache") as client:
            await stats((0, size))
            assert seen
            assert names() == {"ENTA"}
            assert sorted({p.name.split("_", 1)[0] for p in (tmp_path / "cache").iterdir()}) == [
                "ENTA"
            ]
            seen.clear()
            await stats((0, size))
            assert seen == []  # answered from the cache
            # Aligned on 6 but not on a block: the cached blocks inside, the
            # ragged ends computed with one residue.
            await stats((6 * 100_003, size - 3))
            assert names() == {"ENTA"}
            assert sum(b - a for _, a, b in seen) < 3 * MiB
            seen.clear()
            # Not a multiple of 6: every residue, none of the ENTA entries.
            for start in (3, MiB + 1, 5):
                await stats((start, size))
                assert names() == {"ENT"}
            seen.clear()
            await stats((3, size))
            # Its own entries, from the first unaligned request: only the
            # ragged ends (under a block) computed again.
            assert names() == {"ENT"}
            assert sum(b - a for _, a, b in seen) < 2 * MiB
            seen.clear()
            await stats((0, size))
            assert seen == []
