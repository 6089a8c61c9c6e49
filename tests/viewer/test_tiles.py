"""Overview tiles: the levels' geometry and the byte classes of every bucket."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import numpy as np
import pytest

import binglide
from binglide.viewer import ClassesService, tiles
from binglide.viewer.tiles import TILE_BUCKETS, byte_class_counts, level_for, tile_range, tiles_for


def reference_counts(data: bytes, block: int) -> np.ndarray:
    """The classes of each block, counted byte by byte (independent of the kernels)."""
    out = np.zeros((-(-len(data) // block), 5), dtype=np.int64)
    for i, b in enumerate(data):
        if b == 0:
            k = 0
        elif b == 0xFF:
            k = 4
        elif 0x20 <= b < 0x7F or b in (9, 10, 13):
            k = 2
        elif b < 0x80:
            k = 1
        else:
            k = 3
        out[i // block, k] += 1
    return out


def test_a_level_shows_the_range_in_at_most_capacity_buckets() -> None:
    assert level_for(0, 100) == 0
    assert level_for(100, 100) == 0
    assert level_for(101, 100) == 1
    for length in (1, 5000, 12288 * 3 + 1, 64 << 30):
        level = level_for(length, 12288)
        assert -(-length // (1 << level)) <= 12288
        assert level == 0 or -(-length // (1 << (level - 1))) > 12288


def test_tiles_nest_and_cut_at_the_end_of_the_file() -> None:
    assert tile_range(0, 0, 10) == (0, 10)
    assert tile_range(2, 1, 1 << 20) == (4 * TILE_BUCKETS, 8 * TILE_BUCKETS)
    # A tile of level L is exactly two tiles of level L - 1.
    a, b = tile_range(5, 3, 1 << 30)
    assert (a, b) == (tile_range(4, 6, 1 << 30)[0], tile_range(4, 7, 1 << 30)[1])
    assert tile_range(3, 2, 3 * 8 * TILE_BUCKETS - 5)[1] == 3 * 8 * TILE_BUCKETS - 5
    with pytest.raises(ValueError, match="outside"):
        tile_range(0, 1, TILE_BUCKETS)
    with pytest.raises(ValueError, match="level"):
        tile_range(51, 0, 10)
    assert list(tiles_for(0, 0, 0)) == []
    assert list(tiles_for(TILE_BUCKETS - 1, TILE_BUCKETS + 1, 0)) == [0, 1]


@pytest.mark.parametrize("numba", [True, False])
@pytest.mark.parametrize("block", [1, 7, 256, 4096, 1 << 17])
def test_byte_classes_are_counted_per_block(
    block: int, numba: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not numba:
        monkeypatch.setattr(tiles, "_numba_count", None)
        monkeypatch.setattr(tiles, "_numba_tried", True)
    rng = np.random.default_rng(block)
    data = rng.integers(0, 256, 70_001, dtype=np.uint8)
    data[100:5000] = 0
    data[9000:9100] = 0xFF
    got = byte_class_counts(data, block)
    np.testing.assert_array_equal(got, reference_counts(data.tobytes(), block))


async def classes(path: str, cache: Path, **body_options: object) -> list[binglide.Report]:
    async with binglide.connect(services=[ClassesService], workers=1, cache_dir=cache) as client:
        body = {"inputs": [{"source": path}], "options": body_options}
        return [report async for report in client.request("classes", body)]


async def test_the_service_answers_an_estimate_then_the_exact_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = bytes(3 << 20) + b"text, " * (1 << 18) + rng.bytes(1 << 20)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with anyio.fail_after(30):
        reports = await classes(str(path), tmp_path / "cache", block=1 << 16)
    first, last = reports[0], reports[-1]
    assert first.precision < 1.0
    assert first.completion == 0.0
    assert last.final
    assert last.precision == 1.0
    expected = reference_counts(data, 1 << 16)
    np.testing.assert_array_equal(last.array, expected)
    # The estimate already tells the blocks apart: zeros, text, random bytes.
    estimate = first.array
    assert estimate[0, 0] == 1 << 16
    assert estimate[50, 2] == 1 << 16
    assert (estimate[-10:, 2] < 0.5 * (1 << 16)).all()
    assert (estimate[-10:, 3] > 0.3 * (1 << 16)).all()
    # And it is still the estimate once the exact counts have come: the
    # service refines its counts in place, but a report is a value.
    assert (estimate[-10:] != expected[-10:]).any()
    assert last.meta["classes"] == ["0x00", "control", "printable", "high", "0xFF"]


async def test_buckets_larger_than_a_read_are_counted_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiles, "_STEP", 1 << 12)
    rng = np.random.default_rng(2)
    data = rng.bytes(50_000) + bytes(30_000) + b"A" * 20_001
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with anyio.fail_after(30):
        reports = await classes(str(path), tmp_path / "cache", block=1 << 15)
    np.testing.assert_array_equal(reports[-1].array, reference_counts(data, 1 << 15))


async def test_the_service_answers_a_range_and_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"\x00\x01AB\xff" * 100)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    async with binglide.connect(
        services=[ClassesService], workers=1, cache_dir=tmp_path / "c"
    ) as client:
        with anyio.fail_after(30):
            body = {
                "inputs": [{"source": str(path), "start": 10, "stop": 30}],
                "options": {"block": 8},
            }
            report = await client.request("classes", body)
            np.testing.assert_array_equal(
                report.array, reference_counts(path.read_bytes()[10:30], 8)
            )
            nothing = await client.request(
                "classes", {"inputs": [{"source": str(empty)}], "options": {"block": 8}}
            )
            assert nothing.array.shape == (0, 5)
            with pytest.raises(binglide.RequestError, match="cannot read"):
                await client.request(
                    "classes", {"inputs": [{"source": str(tmp_path / "no")}], "options": {}}
                )
            with pytest.raises(binglide.RequestError, match="block"):
                await client.request(
                    "classes", {"inputs": [{"source": str(path)}], "options": {"block": 0}}
                )


async def test_the_service_refuses_files_outside_the_roots(tmp_path: Path) -> None:
    inside = tmp_path / "in"
    inside.mkdir()
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"x" * 10)
    async with binglide.connect(
        services=[ClassesService], workers=1, cache_dir=tmp_path / "c", roots=[inside]
    ) as client:
        with anyio.fail_after(30), pytest.raises(binglide.RequestError, match="outside"):
            await client.request("classes", {"inputs": [{"source": os.fspath(outside)}]})
