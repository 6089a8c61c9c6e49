"""ChunkStore across processes: writers killed mid-put, concurrent writers and readers.

Every array written encodes its key and a generation, so a reader can tell a
valid entry that is wrong (torn, mixed, misplaced) from a right one.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import signal
import time
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import pytest

from binglide.cachefs import ChunkKey, ChunkStore
from binglide.cachefs import store as store_module

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.synchronize import Event
    from pathlib import Path

# Fork is cheap (100 writers in about a second) and needs no importable target.
CONTEXT = multiprocessing.get_context("fork")
KEYS = [ChunkKey("HIST", ("f00d",), 2**20 * i, 2**20 * (i + 1)) for i in range(6)]


def payload(index: int, generation: int) -> np.ndarray:
    """The array written for KEYS[index] by one generation (32 KiB to 512 KiB)."""
    size = 4096 * (1 + 3 * index)
    values = np.arange(size, dtype=np.uint64)
    return values + (index << 56) + (generation << 32)


def check_entries(store: ChunkStore) -> int:
    """Assert every readable entry is exactly one that was written; count them."""
    valid = 0
    for index, key in enumerate(KEYS):
        array = store.get(key)
        if array is None:
            continue
        assert array.dtype == np.uint64
        assert array.size > 0
        generation = int(array[0]) >> 32 & 0xFFFFFF
        np.testing.assert_array_equal(array, payload(index, generation))
        valid += 1
    return valid


def temp_files(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


def handshake(conn: Connection) -> None:
    # Wait for the parent's go, so it knows when the next step starts.
    conn.send("ready")
    conn.recv()


class SignallingStore(ChunkStore):
    """A store that waits for a go before writing each entry's temporary file."""

    def __init__(self, directory: str, conn: Connection) -> None:
        super().__init__(directory)
        self.conn = conn

    def _write(self, final: Path, header: bytes, payload: memoryview) -> None:
        handshake(self.conn)
        super()._write(final, header, payload)


def kill_self() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


class TornFile:
    """The temporary file of a writer that dies halfway through the payload."""

    def __init__(self, file: io.FileIO) -> None:
        self.file = file
        self.writes = 0

    def __enter__(self) -> TornFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.file.close()

    def fileno(self) -> int:
        return self.file.fileno()

    def write(self, data: memoryview) -> int:
        self.writes += 1
        if self.writes == 2:  # the payload, after the header
            self.file.write(data[: len(data) // 2])
            kill_self()
        return self.file.write(data) or 0


def torn_open(fd: int, mode: str, buffering: int) -> TornFile:
    # The file is closed by TornFile.__exit__, or by the process dying.
    return TornFile(io.FileIO(fd, "wb"))


def writer(directory: str, conn: Connection, generation: int, mode: str, steps: int) -> None:
    """Put KEYS in a loop until killed: by the parent, or by itself at a chosen point."""
    store = SignallingStore(directory, conn) if mode == "write" else ChunkStore(directory)
    arrays = [payload(index, generation) for index in range(len(KEYS))]
    step = 0
    while True:
        index = step % len(KEYS)
        if mode == "put":
            handshake(conn)
        if step == steps and mode == "torn":
            # Fork made this process's modules its own: patching them here
            # changes nothing in the test process.
            store_module.open = torn_open  # type: ignore[attr-defined]
        if step == steps and mode == "unrenamed":
            os.replace = lambda *args, **kwargs: kill_self()
        store.put(KEYS[index], arrays[index])
        step += 1


def spin(seconds: float) -> None:
    # A busy wait, not sleep(): it only varies where in a put the kill lands.
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


# How each round's writer dies: killed by us a varied while after it starts a
# put, or after it starts writing a temporary file; or killing itself halfway
# through writing a payload, or right before the rename.
MODES = ("put", "write", "torn", "unrenamed")


def test_writer_killed_mid_put_never_leaves_a_wrong_entry(tmp_path):
    directory = tmp_path / "cache"
    reader = ChunkStore(directory)
    valid_seen = 0
    for round_ in range(100):
        mode = MODES[round_ % len(MODES)]
        steps = round_ % 7
        parent, child = CONTEXT.Pipe()
        process = CONTEXT.Process(target=writer, args=(str(directory), child, round_, mode, steps))
        process.start()
        child.close()
        if mode in ("put", "write"):
            for _ in range(1 + steps):
                assert parent.poll(10), "writer stuck"
                parent.recv()
                parent.send("go")
            spin((round_ // len(MODES) % 10) * 40e-6)
            assert process.pid is not None
            os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        parent.close()
        assert process.exitcode == -signal.SIGKILL
        valid_seen += check_entries(reader)
    assert valid_seen > 0
    leftovers = temp_files(directory)
    # Every self-killed writer left its temporary file, and nothing else.
    assert len(leftovers) >= 50
    # Were a leftover ever put in place (as a power loss without fsync might),
    # validation would catch the torn ones: each key alone in its directory.
    torn = 0
    for number, name in enumerate(leftovers):
        installed = tmp_path / f"installed{number}"
        installed.mkdir()
        entry_name = name[1:].rsplit(".", 3)[0]  # .<entry>.<pid>.<token>.tmp
        shutil.copyfile(directory / name, installed / entry_name)
        torn += check_entries(ChunkStore(installed)) == 0
    assert torn >= 25
    # The janitor removes them, and the entries are still all right.
    ChunkStore(directory, temp_timeout=0).evict()
    assert temp_files(directory) == []
    check_entries(reader)


def racer(directory: str, start: Event, generation: int) -> None:
    store = ChunkStore(directory)
    start.wait(10)
    for step in range(20):
        for index, key in enumerate(KEYS):
            assert store.put(key, payload(index, generation + step))


def test_concurrent_writers_of_the_same_entries(tmp_path):
    directory = tmp_path / "cache"
    reader = ChunkStore(directory)
    start = CONTEXT.Event()
    processes = [
        CONTEXT.Process(target=racer, args=(str(directory), start, generation))
        for generation in (1000, 2000)
    ]
    for process in processes:
        process.start()
    start.set()
    # Read while they write: every hit must be a whole, right entry.
    while any(process.is_alive() for process in processes):
        check_entries(reader)
    for process in processes:
        process.join(10)
        assert process.exitcode == 0
    assert check_entries(reader) == len(KEYS)
    assert temp_files(directory) == []


@pytest.mark.parametrize("fsync", [False, True])
def test_two_stores_share_a_directory(tmp_path, fsync):
    first = ChunkStore(tmp_path / "cache", fsync=fsync)
    second = ChunkStore(tmp_path / "cache", fsync=fsync)
    first.put(KEYS[0], payload(0, 1))
    np.testing.assert_array_equal(second.get(KEYS[0]), payload(0, 1))
    second.put(KEYS[0], payload(0, 2))
    np.testing.assert_array_equal(first.get(KEYS[0]), payload(0, 2))
