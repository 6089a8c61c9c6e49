"""Opening sources: checks, reads, ranges and file ids."""

from __future__ import annotations

import contextlib
import os
import re
from typing import TYPE_CHECKING

import numpy as np
import pytest

from binglide.errors import RequestError
from binglide.services import sources
from binglide.services.sources import (
    Source,
    file_identity,
    open_source,
    real_path,
    resolve_range,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "root" / "data.bin"
    path.parent.mkdir()
    path.write_bytes(bytes(range(256)) * 40 + b"tail")
    return path


def test_open_and_read(data_file: Path) -> None:
    content = data_file.read_bytes()
    with open_source(data_file) as source:
        assert isinstance(source, Source)
        assert source.size == len(content)
        assert source.path == os.path.realpath(data_file)
        data = source.read(3, 1001)
        assert data.dtype == np.uint8
        assert data.tobytes() == content[3:1001]
        buf = np.zeros(2000, np.uint8)
        into = source.read(10, 20, buf)
        assert into.tobytes() == content[10:20]
        assert np.shares_memory(into, buf)
        assert source.read(len(content), len(content)).size == 0
        with pytest.raises(ValueError, match="not within"):
            source.read(0, len(content) + 1)
        with pytest.raises(ValueError, match="not within"):
            source.read(5, 4)
        with pytest.raises(ValueError, match="fewer"):
            source.read(0, 100, np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match="closed"):
        source.read(0, 1)
    source.close()  # idempotent


@pytest.mark.parametrize(("piece", "after"), [(1, 0), (7, 2), (1000, 5), (1 << 20, 0)])
def test_pieces_cover_the_range_with_look_ahead(data_file: Path, piece: int, after: int) -> None:
    content = data_file.read_bytes()
    with open_source(data_file) as source:
        start, stop = 5, len(content) - 3
        got = [
            (lo, hi, data.tobytes())
            for lo, hi, data in source.pieces(start, stop, piece=piece, after=after)
        ]
    assert [lo for lo, _, _ in got] == list(range(start, stop, piece))
    assert got[-1][1] == stop
    for lo, hi, data in got:
        # Each piece with the bytes after it, within the file (past the range too).
        assert data == content[lo : min(hi + after, len(content))]


def test_a_file_truncated_between_reads_is_a_request_error(tmp_path: Path) -> None:
    path = tmp_path / "shrinking.bin"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    with open_source(path) as source:
        assert source.read(0, 10).tobytes() == bytes(range(10))
        source.check_unchanged()
        os.truncate(path, 1000)
        with pytest.raises(RequestError, match="changed while it was read"):
            source.read(0, 2000)
        with pytest.raises(RequestError, match="changed while it was read"):
            source.gather([(10, 20), (5000, 6000)])
        with pytest.raises(RequestError, match="changed while it was read"):
            list(source.pieces(0, source.size, piece=4096))
        # Bytes still there read fine, but the file is not the one opened.
        assert source.read(0, 10).tobytes() == bytes(range(10))
        with pytest.raises(RequestError, match="changed while it was read"):
            source.check_unchanged()


def test_a_file_rewritten_in_place_fails_the_check(tmp_path: Path) -> None:
    path = tmp_path / "rewritten.bin"
    path.write_bytes(b"a" * 5000)
    with open_source(path) as source:
        st = path.stat()
        with open(path, "r+b") as f:  # same size, new bytes, a later mtime
            f.write(b"b" * 100)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        with pytest.raises(RequestError, match="changed while it was read"):
            source.check_unchanged()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux's /proc")
def test_sources_are_never_memory_mapped(data_file: Path) -> None:
    # A mapped file truncated under a reader kills the process with SIGBUS.
    with open_source(data_file) as source:
        source.read(0, 100)
        with open("/proc/self/maps") as maps:
            assert source.path not in maps.read()


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with open_source(path) as source:
        assert source.size == 0
        assert source.read(0, 0).size == 0
        assert source.read(0, 0).dtype == np.uint8


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match=r"nope.*no such file"):
        open_source(tmp_path / "nope")


def test_a_file_deleted_between_its_check_and_its_open_is_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file is there when it is checked and gone when it is opened (another
    # process deleted it meanwhile): the same message as a file never there,
    # not the OS's wording of the open's error.
    path = tmp_path / "going"
    path.write_bytes(b"data")
    check = sources._stat_regular

    def check_then_delete(shown: str, real: str) -> os.stat_result:
        st = check(shown, real)
        os.unlink(real)
        return st

    monkeypatch.setattr(sources, "_stat_regular", check_then_delete)
    with pytest.raises(RequestError, match=r"going: no such file; check the path$"):
        open_source(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="is a directory"):
        open_source(tmp_path)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(RequestError, match="not a regular file"):
        open_source(fifo)


def test_unreadable(data_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod 000 does not stop root, so make the open itself fail.
    def refuse(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(RequestError, match="permission denied"):
        open_source(data_file)


def test_roots(data_file: Path, tmp_path: Path) -> None:
    root = data_file.parent
    with open_source(data_file, roots=[root]) as source:
        assert source.size > 0
    # `..` that climbs out, and back in, is fine; out is refused.
    with open_source(root / ".." / "root" / "data.bin", roots=[str(root)]):
        pass
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x")
    with pytest.raises(RequestError, match="outside the allowed roots"):
        open_source(root / ".." / "outside.bin", roots=[root])
    # A symlink inside the root that points outside it is refused...
    link = root / "link.bin"
    link.symlink_to(outside)
    with pytest.raises(RequestError, match=r"link\.bin.*outside the allowed roots"):
        open_source(link, roots=[root])
    # ...and one outside pointing inside is fine.
    back = tmp_path / "back.bin"
    back.symlink_to(data_file)
    with open_source(back, roots=[root]) as source:
        assert source.path == os.path.realpath(data_file)
    # A sibling whose name starts like the root is not under it.
    sibling = tmp_path / "rootother"
    sibling.mkdir()
    (sibling / "f").write_bytes(b"y")
    with pytest.raises(RequestError, match="outside"):
        open_source(sibling / "f", roots=[root])
    with pytest.raises(RequestError, match="outside"):
        open_source(data_file, roots=[])


def _symlink_tree(tmp_path: Path) -> list[str]:
    """Paths through symlinked directories, chains of links and ``..``, and missing ones."""
    real = tmp_path / "real" / "deep"
    real.mkdir(parents=True)
    (real / "f.bin").write_bytes(b"x")
    (tmp_path / "dirlink").symlink_to(real)
    (tmp_path / "rel").symlink_to("real/deep/../deep")  # relative, with ..
    (real / "flink").symlink_to("f.bin")
    (tmp_path / "chain").symlink_to(tmp_path / "dirlink" / "flink")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    return [
        f"{tmp_path}/real/deep/f.bin",
        f"{tmp_path}/dirlink/f.bin",
        f"{tmp_path}/rel/f.bin",
        f"{tmp_path}/rel/../deep/f.bin",  # .. after the link: physical, as realpath
        f"{tmp_path}/rel/../real/deep/f.bin",  # so this one is missing
        f"{tmp_path}/dirlink/flink",
        f"{tmp_path}/chain",
        f"{tmp_path}/dirlink",
        f"{tmp_path}/real/./deep//f.bin",
        f"{tmp_path}/dangling",
        f"{tmp_path}/missing/f.bin",
        f"{tmp_path}/real/deep/f.bin/",
    ]


def test_real_path_is_realpath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path / "..")
    paths = _symlink_tree(tmp_path)
    paths += [os.path.relpath(p) for p in paths[:3]]
    for path in paths:
        assert real_path(path) == os.path.realpath(path), path


def test_real_path_asks_the_kernel_not_each_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sources._FD_NAMES is None or not os.path.isdir("/proc/self/fd"):
        pytest.skip("no O_PATH descriptors or /proc here: real_path is os.path.realpath")
    expected = {p: os.path.realpath(p) for p in _symlink_tree(tmp_path) if os.path.exists(p)}
    assert len(expected) == 8
    lstats: list[object] = []
    real_lstat = os.lstat

    def counting_lstat(*args: object, **kwargs: object) -> os.stat_result:
        lstats.append(args[0])
        return real_lstat(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", counting_lstat)
    for path, real in expected.items():
        assert real_path(path) == real
        with open_source(path) if os.path.isfile(real) else contextlib.nullcontext():
            pass
    assert lstats == []


def test_roots_checked_before_existence(tmp_path: Path) -> None:
    # Paths outside the roots are refused without saying whether they exist.
    with pytest.raises(RequestError, match="outside"):
        open_source("/etc/passwd-does-not-exist", roots=[tmp_path])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((100,), (0, 100)),
        ((100, 10), (10, 100)),
        ((100, 10, 20), (10, 20)),
        ((100, None, 20), (0, 20)),
        ((100, 10, 1000), (10, 100)),
        ((100, 150, 1000), (100, 100)),
        ((100, 5, 5), (5, 5)),
        ((0,), (0, 0)),
        ((100, np.int64(3), np.uint32(7)), (3, 7)),
    ],
)
def test_resolve_range(args: tuple[int, ...], expected: tuple[int, int]) -> None:
    assert resolve_range(*args) == expected


@pytest.mark.parametrize(
    ("start", "stop", "match"),
    [
        (-1, None, "negative"),
        (0, -5, "negative"),
        (20, 10, "reversed"),
        (1.5, None, "integer"),
        (True, None, "integer"),
        ("3", None, "integer"),
    ],
)
def test_resolve_range_errors(start: object, stop: object, match: str) -> None:
    with pytest.raises(RequestError, match=match) as info:
        resolve_range(100, start, stop)  # type: ignore[arg-type]
    assert "0 <= start <= stop" in str(info.value)


ID_FORMAT = re.compile(r"[scx][0-9a-f]{32}")


def test_stat_identity(data_file: Path) -> None:
    first = file_identity(data_file)
    assert ID_FORMAT.fullmatch(first)
    assert first.startswith("s")
    assert file_identity(data_file, mode="stat") == first
    # Same size, new bytes, new modification time: a new id.
    data_file.write_bytes(b"Z" * data_file.stat().st_size)
    st = data_file.stat()
    os.utime(data_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert file_identity(data_file) != first


def test_content_identity(data_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.bin"
    copy.write_bytes(data_file.read_bytes())
    content = file_identity(data_file, mode="content")
    assert ID_FORMAT.fullmatch(content)
    assert content[0] in "cx"
    assert file_identity(copy, mode="content") == content
    assert file_identity(copy, mode="stat") != file_identity(data_file, mode="stat")
    assert content != file_identity(data_file, mode="stat")
    copy.write_bytes(data_file.read_bytes()[:-1] + b"!")
    assert file_identity(copy, mode="content") != content


def test_content_identity_is_stable_across_runs(tmp_path: Path) -> None:
    # A known value: the ids name cache files shared across machines.
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    import hashlib

    expected = "c" + hashlib.blake2b(b"abc", digest_size=16).hexdigest()
    got = file_identity(path, mode="content")
    if got.startswith("c"):
        assert got == expected
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert ID_FORMAT.fullmatch(file_identity(empty, mode="content"))


def test_content_identity_reads_in_blocks(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from binglide.services import sources

    whole = file_identity(data_file, mode="content")
    monkeypatch.setattr(sources, "_HASH_BLOCK", 1000)
    assert file_identity(data_file, mode="content") == whole


def test_identity_errors(tmp_path: Path, data_file: Path) -> None:
    with pytest.raises(RequestError, match="no such file"):
        file_identity(tmp_path / "missing")
    with pytest.raises(RequestError, match="no such file"):
        file_identity(tmp_path / "missing", mode="content")
    with pytest.raises(RequestError, match="directory"):
        file_identity(tmp_path)
    with pytest.raises(RequestError, match="'stat' or 'content'"):
        file_identity(data_file, mode="fast")  # type: ignore[arg-type]
    with pytest.raises(RequestError, match="outside"):
        file_identity(data_file, roots=[tmp_path / "elsewhere"])


def test_gather_reads_scattered_runs_in_order(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    path = tmp_path / "g.bin"
    path.write_bytes(data)
    runs = [(5, 9), (1000, 1000), (10_000, 10_240), (0, 3)]
    with open_source(path) as source:
        got = source.gather(runs)
        assert got.tobytes() == b"".join(data[a:b] for a, b in runs)
        with pytest.raises(ValueError, match="not within"):
            source.gather([(0, len(data) + 1)])
    with pytest.raises(ValueError, match="closed"):
        source.gather([(0, 1)])
