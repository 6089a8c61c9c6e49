"""ChunkStore in one process: round trips, corruption, eviction, degrading, info/clear."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import numpy as np
import pytest

from binglide.cachefs import (
    DEFAULT_MAX_BYTES,
    CacheDisabledWarning,
    CacheInfo,
    ChunkKey,
    ChunkStore,
    default_cache_dir,
)

if TYPE_CHECKING:
    from pathlib import Path

LOGGER = "binglide.cachefs.store"


def key(start: int = 0, stop: int = 4096, resource: str = "HIST") -> ChunkKey:
    return ChunkKey(resource, ("f00d",), start, stop)


def path_of(store: ChunkStore, k: ChunkKey) -> Path:
    return store.directory / k.filename


ARRAYS: dict[str, np.ndarray] = {
    "uint64": np.arange(256, dtype=np.uint64) * 2**40,
    "float64": np.linspace(-1.0, 1.0, 17),
    "uint8": np.arange(200, dtype=np.uint8),
    "uint64-3d": np.arange(2 * 3 * 4, dtype=np.uint64).reshape(2, 3, 4),
    "float64-3d": np.arange(24, dtype=np.float64).reshape(4, 3, 2) / 7,
    "empty": np.empty(0, dtype=np.uint64),
    "empty-3d": np.empty((2, 0, 3), dtype=np.float64),
    "scalar": np.array(7, dtype=np.int32),
    "big-endian": np.arange(5, dtype=">u4"),
    "complex": np.array([1 + 2j, -3j]),
    "bool": np.array([True, False, True]),
    "strided": np.arange(40, dtype=np.uint64).reshape(4, 10)[:, ::3],
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_round_trip(store, name):
    array = ARRAYS[name]
    assert store.put(key(), array)
    got = store.get(key())
    assert got is not None
    assert got.dtype == array.dtype
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    got[...] = 0  # the result is the caller's to use, writable and not shared
    np.testing.assert_array_equal(store.get(key()), array)


def test_miss_is_none(store):
    assert store.get(key()) is None


def test_put_replaces(store):
    store.put(key(), np.zeros(3))
    store.put(key(), np.ones((2, 2)))
    np.testing.assert_array_equal(store.get(key()), np.ones((2, 2)))
    assert store.info().entries == 1


def test_keys_do_not_collide(store):
    keys = [
        key(0, 4096),
        key(4096, 8192),
        key(0, 4096, "NG2B8"),
        ChunkKey("HIST", ("f00e",), 0, 4096),
    ]
    for number, k in enumerate(keys):
        store.put(k, np.full(4, number))
    for number, k in enumerate(keys):
        np.testing.assert_array_equal(store.get(k), np.full(4, number))


def test_uncacheable_dtype_refused(store):
    with pytest.raises(ValueError, match="dtype"):
        store.put(key(), np.array([object()]))
    with pytest.raises(ValueError, match="dtype"):
        store.put(key(), np.zeros(2, dtype=[("a", "u1"), ("b", "f8")]))
    assert store.get(key()) is None


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncate_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _flip_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01
    path.write_bytes(bytes(data))


def _flip_shape_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[40] ^= 0x04  # the first dimension
    path.write_bytes(bytes(data))


def _wrong_magic(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0:8] = b"NOTCHUNK"
    path.write_bytes(bytes(data))


def _wrong_version(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8] = 99
    path.write_bytes(bytes(data))


def _trailing_garbage(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\0")


def _other_entry(path: Path) -> None:
    # A perfectly valid entry, but of another key (copied by hand).
    other = ChunkStore(path.parent / "other")
    other.put(key(4096, 8192), np.arange(100, dtype=np.uint64))
    path.write_bytes((path.parent / "other" / key(4096, 8192).filename).read_bytes())


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _truncate_header,
        _empty,
        _flip_payload_byte,
        _flip_shape_byte,
        _wrong_magic,
        _wrong_version,
        _trailing_garbage,
        _other_entry,
    ],
)
def test_damaged_entry_is_a_miss_removed_then_recomputed(store, caplog, damage):
    array = np.arange(100, dtype=np.uint64)
    store.put(key(), array)
    damage(path_of(store, key()))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.get(key()) is None
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1
    assert key().filename in records[0].getMessage()
    assert not path_of(store, key()).exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.get(key()) is None  # removed: a plain miss, not logged again
    assert not caplog.records
    assert store.put(key(), array)
    np.testing.assert_array_equal(store.get(key()), array)


def test_directory_under_entry_name_is_a_miss(store):
    store.put(key(4096, 8192), np.zeros(1))
    path_of(store, key()).mkdir()
    assert store.get(key()) is None
    assert store.info().entries == 1  # only real files count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_get_leaves_no_file_open_on_a_hit_a_miss_or_a_bad_entry(store):
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    store.put(key(0, 4096), np.arange(3))
    path_of(store, key(4096, 8192)).mkdir()
    path_of(store, key(8192, 12288)).write_bytes(b"not an entry")
    before = open_fds()
    for _ in range(20):
        np.testing.assert_array_equal(store.get(key(0, 4096)), np.arange(3))
        assert store.get(key(4096, 8192)) is None  # a directory
        assert store.get(key(12288, 16384)) is None  # missing
    assert store.get(key(8192, 12288)) is None  # corrupt: removed
    assert not path_of(store, key(8192, 12288)).exists()
    assert open_fds() == before


def test_get_blocks_returns_the_hits_in_order_as_get_would(store):
    for start in (8192, 0):
        store.put(key(start, start + 4096), np.full(3, start))
    blocks = [(0, 4096), (4096, 8192), (8192, 12288)]
    hits = store.get_blocks("HIST", ("f00d",), blocks)
    assert [k for k, _ in hits] == [key(0, 4096), key(8192, 12288)]
    for k, array in hits:
        np.testing.assert_array_equal(array, store.get(k))
    assert store.get_blocks("HIST", ("beef",), blocks) == []


@pytest.mark.parametrize("block", [(-1, 4096), (4096, 4096), (True, 4096), (0, 2**64), (0, 1.0)])
def test_get_blocks_refuses_an_invalid_block(store, block):
    with pytest.raises(ValueError, match="invalid cache range"):
        store.get_blocks("HIST", ("f00d",), [block])


def test_get_blocks_refuses_an_invalid_source(store):
    with pytest.raises(ValueError, match="invalid cache source id"):
        store.get_blocks("HIST", ("../x",), [(0, 4096)])


def test_get_marks_used(store):
    store.put(key(), np.zeros(1))
    os.utime(path_of(store, key()), (1000, 1000))
    store.get(key())
    assert path_of(store, key()).stat().st_mtime > 1000


def _fill(store: ChunkStore, count: int) -> tuple[list[ChunkKey], int]:
    keys = [key(4096 * i, 4096 * (i + 1)) for i in range(count)]
    for number, k in enumerate(keys):
        store.put(k, np.full(64, number, dtype=np.uint64))
        os.utime(path_of(store, k), (1000 + number, 1000 + number))
    size = path_of(store, keys[0]).stat().st_size
    return keys, size


def test_evict_removes_least_recently_used_first(store):
    keys, size = _fill(store, 10)
    store.get(keys[0])  # now the most recently used
    os.utime(path_of(store, keys[3]), (5000, 5000))
    assert store.evict(5 * size) == 5
    left = [k for k in keys if path_of(store, k).exists()]
    assert left == [keys[0], keys[3], keys[7], keys[8], keys[9]]
    assert store.info().total_bytes == 5 * size
    assert store.evict(5 * size) == 0


def test_put_keeps_the_bound(tmp_path):
    probe = ChunkStore(tmp_path / "probe")
    _, size = _fill(probe, 1)
    store = ChunkStore(tmp_path / "cache", max_bytes=10 * size)
    keys = [key(4096 * i, 4096 * (i + 1)) for i in range(40)]
    for number, k in enumerate(keys):
        store.put(k, np.full(64, number, dtype=np.uint64))
        # Explicit mtimes: put order is use order, whatever the clock's resolution.
        os.utime(path_of(store, k), (1000 + number, 1000 + number))
        info = store.info()
        assert info.total_bytes <= 10 * size
        assert path_of(store, k).exists()
    left = [k for k in keys if path_of(store, k).exists()]
    # The survivors are the most recent puts, without holes.
    assert left == keys[len(keys) - len(left) :]
    assert len(left) >= 9


def test_put_does_not_rescan_under_the_bound(tmp_path, monkeypatch):
    scans = []
    original = ChunkStore._scan

    def counting_scan(self):
        scans.append(1)
        return original(self)

    monkeypatch.setattr(ChunkStore, "_scan", counting_scan)
    store = ChunkStore(tmp_path / "cache", max_bytes=100_000)
    for i in range(50):
        store.put(key(4096 * i, 4096 * (i + 1)), np.zeros(100, dtype=np.uint8))
    assert len(scans) == 1  # the first use
    for i in range(50, 200):
        store.put(key(4096 * i, 4096 * (i + 1)), np.zeros(900, dtype=np.uint8))
    # Over the bound, each eviction frees 10%: a handful of scans, not one per put.
    assert 1 < len(scans) < 30
    assert store.info().total_bytes <= 100_000


def test_a_store_that_only_reads_never_scans_and_the_first_put_counts_what_is_there(
    tmp_path, monkeypatch
):
    # A command answered from the cache only reads: listing (and stat-ing)
    # every entry of an old cache for a size estimate only writes need is
    # start-up time for nothing.
    scans = []
    original = ChunkStore._scan

    def counting_scan(self):
        scans.append(1)
        return original(self)

    directory = tmp_path / "cache"
    ChunkStore(directory).put(key(), np.zeros(100, dtype=np.uint8))
    old_size = path_of(ChunkStore(directory), key()).stat().st_size
    monkeypatch.setattr(ChunkStore, "_scan", counting_scan)
    store = ChunkStore(directory, max_bytes=2 * old_size + 10)
    assert store.enabled
    assert store.get(key()) is not None
    assert store.get(key(4096, 8192)) is None
    assert store.ranges("HIST", ("f00d",)) == [(0, 4096)]
    assert scans == []
    # The first put starts the estimate from what was there: the third entry
    # of this size passes the bound, and evicts the oldest.
    assert store.put(key(4096, 8192), np.zeros(100, dtype=np.uint8))
    assert scans == [1]
    assert path_of(store, key()).exists()
    os.utime(path_of(store, key()), (1, 1))
    assert store.put(key(8192, 12288), np.zeros(100, dtype=np.uint8))
    assert not path_of(store, key()).exists()
    assert path_of(store, key(8192, 12288)).exists()


def test_entry_larger_than_bound_is_not_stored(tmp_path):
    store = ChunkStore(tmp_path / "cache", max_bytes=1000)
    assert not store.put(key(), np.zeros(1000, dtype=np.uint8))
    assert store.get(key()) is None
    assert store.put(key(), np.zeros(10, dtype=np.uint8))


def test_info_and_clear(store, tmp_path):
    assert store.info() == CacheInfo(tmp_path / "cache", 0, 0, DEFAULT_MAX_BYTES)
    for i in range(3):
        store.put(key(4096 * i, 4096 * (i + 1)), np.zeros(10))
    foreign = store.directory / "notes.txt"
    foreign.write_text("mine")
    info = store.info()
    assert info.entries == 3
    assert info.total_bytes == sum(
        path_of(store, key(4096 * i, 4096 * (i + 1))).stat().st_size for i in range(3)
    )
    assert store.clear() == 3
    assert store.info().entries == 0
    assert store.clear() == 0
    assert foreign.read_text() == "mine"  # never delete what is not ours


def test_stale_temp_files_are_removed_on_open(tmp_path):
    directory = tmp_path / "cache"
    directory.mkdir()
    stale = directory / f".{key().filename}.123.deadbeef.tmp"
    fresh = directory / f".{key(4096, 8192).filename}.124.deadbeef.tmp"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"in flight")
    os.utime(stale, (0, 0))
    store = ChunkStore(directory, temp_timeout=3600)
    assert store.info().entries == 0
    assert not stale.exists()
    assert fresh.exists()  # maybe a live writer's


def test_failed_put_leaves_no_temp_file(store, monkeypatch):
    store.put(key(4096, 8192), np.zeros(1))

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    assert not store.put(key(), np.zeros(10))
    monkeypatch.undo()
    assert sorted(os.listdir(store.directory)) == [key(4096, 8192).filename]
    assert store.put(key(), np.zeros(10))  # still enabled


def test_directory_removed_under_the_store(store):
    store.put(key(), np.zeros(1))
    path_of(store, key()).unlink()
    store.directory.rmdir()
    assert store.get(key()) is None
    assert store.put(key(), np.ones(1))
    np.testing.assert_array_equal(store.get(key()), np.ones(1))


def _use_everything(store: ChunkStore) -> None:
    assert store.get(key()) is None
    assert not store.put(key(), np.zeros(10))
    assert store.get(key()) is None
    assert store.ranges("HIST", ("f00d",)) == []
    assert store.evict() == 0
    assert store.clear() == 0
    assert store.info().entries == 0
    assert not store.enabled


def test_uncreatable_directory_warns_once(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    directory = blocker / "cache"
    store = ChunkStore(directory)
    with pytest.warns(CacheDisabledWarning) as record:
        _use_everything(store)
    assert len(record) == 1
    message = str(record[0].message)
    assert str(directory) in message
    assert "BINGLIDE_CACHE_DIR" in message
    assert record[0].filename == __file__  # points at the caller


def test_directory_that_is_a_file_warns_once(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    store = ChunkStore(blocker)
    with pytest.warns(CacheDisabledWarning, match="cannot be created") as record:
        _use_everything(store)
    assert len(record) == 1
    assert blocker.read_text() == "a regular file"


def test_unwritable_directory_warns_once(tmp_path, monkeypatch):
    # Root ignores permission bits, so have the file system refuse instead.
    store = ChunkStore(tmp_path / "cache")
    assert store.get(key()) is None

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.warns(CacheDisabledWarning, match="not writable") as record:
        _put_twice_then_get(store)
    assert len(record) == 1


def _put_twice_then_get(store: ChunkStore) -> None:
    assert not store.put(key(), np.zeros(1))
    assert not store.put(key(), np.zeros(1))
    assert store.get(key()) is None


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("BINGLIDE_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("BINGLIDE_CACHE_DIR")
    assert default_cache_dir().name == "binglide"


def test_ranges_lists_one_resource_and_source(store):
    store.put(key(4096, 8192), np.zeros(1))
    store.put(key(0, 4096), np.zeros(1))
    store.put(key(0, 4096, "NG2B8"), np.zeros(1))
    store.put(ChunkKey("HIST", ("f00d", "beef"), 0, 4096), np.zeros(1))
    assert store.ranges("HIST", ("f00d",)) == [(0, 4096), (4096, 8192)]
    assert store.ranges("HIST", ("f00d", "beef")) == [(0, 4096)]
    with pytest.raises(ValueError):
        store.ranges("../HIST", ("f00d",))


def test_fsync_round_trip(tmp_path):
    store = ChunkStore(tmp_path / "cache", fsync=True)
    assert store.put(key(), np.arange(3))
    np.testing.assert_array_equal(store.get(key()), np.arange(3))
