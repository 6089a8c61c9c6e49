"""Opening the files users name: checks, read-only memory maps, ranges, file ids.

This is the one module that touches user files. Every path is resolved with
`os.path.realpath` before it is checked, so ``..`` components and symbolic
links cannot lead outside the allowed roots; then the file is memory-mapped
read-only, and kernels read zero-copy slices of the map (reading a page-cached
file runs several times faster than any kernel, so the map, not a read loop).
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import stat
import sys
from typing import TYPE_CHECKING, Final, Literal, Protocol, Self

import numpy as np
import numpy.typing as npt

from binglide.errors import RequestError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

__all__ = ("Source", "file_identity", "open_source", "resolve_range")

StrPath = str | os.PathLike[str]

#: Hex digits in every file id after its one-letter prefix.
_ID_HEX: Final = 32
#: Linux's MADV_POPULATE_READ (not in the mmap module of Python 3.11).
_MADV_POPULATE_READ: Final = 22 if sys.platform.startswith("linux") else None
#: Bytes hashed per step for content ids (the map is read in blocks so that a
#: huge file never needs its own size in memory).
_HASH_BLOCK: Final = 8 << 20


class Source:
    """A user file, memory-mapped read-only.

    Make one with `open_source`; use it as a context manager or call `close`.

    Attributes:
        path: the resolved (real) path of the file.
        size: its size in bytes when it was opened.
    """

    def __init__(
        self, path: str, size: int, mapping: mmap.mmap | None, fd: int | None = None
    ) -> None:
        self.path = path
        self.size = size
        self._mapping = mapping
        self._array: npt.NDArray[np.uint8] | None = (
            np.frombuffer(mapping, dtype=np.uint8) if mapping is not None else None
        )
        self._closed = False
        self._fd = fd

    def gather(self, runs: Sequence[tuple[int, int]]) -> npt.NDArray[np.uint8]:
        """Return the bytes of every run ``(start, stop)``, one after the other, as a copy.

        For many small scattered runs (a sample): reading them with pread is
        about 15x faster here than touching them through the map, where each
        run costs a page fault.

        Raises:
            ValueError: a run is not within ``[0, size]``, or the source is closed.
        """
        if self._closed:
            raise ValueError(f"{self.path}: the source is closed")
        total = 0
        for start, stop in runs:
            if not 0 <= start <= stop <= self.size:
                raise ValueError(
                    f"{self.path}: run [{start}, {stop}) is not within [0, {self.size}]"
                )
            total += stop - start
        out = np.empty(total, np.uint8)
        if self._fd is None or not hasattr(os, "preadv"):
            pos = 0
            for start, stop in runs:
                out[pos : pos + stop - start] = self.view(start, stop)
                pos += stop - start
            return out
        view = memoryview(out.data)
        pos = 0
        for start, stop in runs:
            want = stop - start
            got = os.preadv(self._fd, [view[pos : pos + want]], start) if want else 0
            if got != want:  # the file shrank under us: the map still holds the old bytes
                out[pos : pos + want] = self.view(start, stop)
            pos += want
        return out

    def view(self, start: int, stop: int) -> npt.NDArray[np.uint8]:
        """Return the bytes ``[start, stop)`` as a read-only uint8 array, without copying.

        Args:
            start: the first offset, ``0 <= start <= stop``.
            stop: the end offset, ``stop <= size``.

        Returns:
            A read-only view of the map (an empty array for an empty range).

        Raises:
            ValueError: the range is not within ``[0, size]`` (a caller bug: check
                user ranges with `resolve_range`), or the source is closed.
        """
        if self._closed:
            raise ValueError(f"{self.path}: the source is closed")
        if not 0 <= start <= stop <= self.size:
            raise ValueError(
                f"{self.path}: range [{start}, {stop}) is not within [0, {self.size}]"
            )
        if self._array is None:
            return np.zeros(0, np.uint8)
        return self._array[start:stop]

    def prefetch(self, start: int, stop: int) -> None:
        """Map in the pages of ``[start, stop)`` at once, before a kernel reads them.

        Faulting a mapped file in page by page costs a trap per 4 KiB, which
        two threads pay on one memory map's lock; MADV_POPULATE_READ (Linux
        5.14+) maps the whole range in one call. Elsewhere it is a hint
        (MADV_WILLNEED) or nothing: it only ever changes speed.
        """
        mapping = self._mapping
        if mapping is None or start >= stop:
            return
        lo = start - start % mmap.ALLOCATIONGRANULARITY
        for advice in (_MADV_POPULATE_READ, getattr(mmap, "MADV_WILLNEED", None)):
            if advice is None:
                continue
            try:
                mapping.madvise(advice, lo, min(stop, self.size) - lo)
                return
            except (OSError, ValueError, AttributeError):
                continue

    def close(self) -> None:
        """Release the map.

        Views handed out earlier stay valid: the map is unmapped when the last
        of them is garbage-collected (closing it under a live view would make
        that view point at unmapped memory, so mmap refuses, and we let it).
        """
        if self._closed:
            return
        self._closed = True
        self._array = None
        mapping, self._mapping = self._mapping, None
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if mapping is not None:
            # BufferError: views are still alive; the map goes when they do.
            with contextlib.suppress(BufferError):
                mapping.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Source {self.path!r} size={self.size} {state}>"


def _check_roots(shown: str, real: str, roots: Sequence[StrPath]) -> None:
    for root in roots:
        real_root = os.path.realpath(root)
        try:
            if os.path.commonpath([real_root, real]) == real_root:
                return
        except ValueError:
            continue  # different drives (Windows): not under this root
    allowed = ", ".join(os.path.realpath(r) for r in roots) or "none"
    raise RequestError(
        f"{shown}: refused, it resolves to {real}, which is outside the allowed roots"
        f" ({allowed}); use a file under one of them, or allow its directory"
    )


def _access_error(shown: str, exc: OSError, doing: str) -> RequestError:
    """The `RequestError` for an OS error met while `doing` (access, open) the file."""
    if isinstance(exc, PermissionError):
        return RequestError(
            f"{shown}: permission denied; make the file readable by the user running binglide"
        )
    return RequestError(f"{shown}: cannot {doing} it ({exc.strerror}); check the path")


def _stat_regular(shown: str, real: str) -> os.stat_result:
    try:
        st = os.stat(real)
    except FileNotFoundError as exc:
        raise RequestError(f"{shown}: no such file; check the path") from exc
    except OSError as exc:
        raise _access_error(shown, exc, "access") from exc
    if stat.S_ISDIR(st.st_mode):
        raise RequestError(f"{shown}: is a directory; name a regular file inside it")
    if not stat.S_ISREG(st.st_mode):
        # Devices, FIFOs and sockets have no fixed size to map (and a FIFO
        # would block the open).
        raise RequestError(
            f"{shown}: not a regular file (a device, FIFO or socket); copy the data to a file"
        )
    return st


def open_source(path: StrPath, *, roots: Sequence[StrPath] | None = None) -> Source:
    """Open a user file for reading, memory-mapped.

    Args:
        path: the file, absolute or relative to the working directory.
        roots: if given, the directories the file must lie under (after
            resolving symbolic links and ``..``); an empty sequence allows none.
            ``None`` allows any file.

    Returns:
        The open `Source`.

    Raises:
        RequestError: the file is missing, a directory or not a regular file,
            unreadable, or outside the allowed roots; the message names the
            path, the reason and what to do.
    """
    shown = os.fspath(path)
    real = os.path.realpath(shown)
    if roots is not None:
        _check_roots(shown, real, roots)
    _stat_regular(shown, real)
    try:
        # O_NOFOLLOW and O_NONBLOCK: if the resolved path was swapped for a
        # symlink or a FIFO since it was checked, fail rather than follow or block.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _access_error(shown, exc, "open") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RequestError(f"{shown}: not a regular file; name a regular file")
        mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if st.st_size else None
    except OSError as exc:
        os.close(fd)
        raise RequestError(f"{shown}: cannot map it ({exc.strerror}); check the file") from exc
    except BaseException:
        os.close(fd)
        raise
    # The descriptor stays open for `gather` (scattered small reads).
    return Source(real, st.st_size, mapping, fd)


def _as_offset(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise RequestError(
            f"{name} must be an integer byte offset, not {value!r};"
            " a range is (start, stop) with 0 <= start <= stop"
        )
    return int(value)


def resolve_range(size: int, start: int | None = None, stop: int | None = None) -> tuple[int, int]:
    """Turn a user's (start, stop) into a half-open range within a file of ``size`` bytes.

    ``start`` defaults to 0 and ``stop`` to ``size``; offsets past the end are
    clipped to the end (so a range past the end is empty).

    Args:
        size: the file size in bytes.
        start: the first offset, or None.
        stop: the end offset (exclusive), or None.

    Returns:
        ``(start, stop)`` with ``0 <= start <= stop <= size``.

    Raises:
        RequestError: an offset is negative or not an integer, or ``start > stop``.
    """
    lo = 0 if start is None else _as_offset("start", start)
    # An open end is the end of the file, or the start if that lies past it.
    hi = max(size, lo) if stop is None else _as_offset("stop", stop)
    if lo < 0 or hi < 0:
        raise RequestError(
            f"range ({start}, {stop}) has a negative offset;"
            " a range is (start, stop) with 0 <= start <= stop (stop past the end is clipped)"
        )
    if lo > hi:
        raise RequestError(
            f"range ({start}, {stop}) is reversed;"
            " a range is (start, stop) with 0 <= start <= stop (stop past the end is clipped)"
        )
    return min(lo, size), min(hi, size)


class _Hasher(Protocol):
    def update(self, data: memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


def _content_hasher() -> tuple[str, _Hasher]:
    try:
        import xxhash  # type: ignore[import-not-found, unused-ignore]  # optional, faster
    except ImportError:
        return "c", hashlib.blake2b(digest_size=_ID_HEX // 2)
    return "x", xxhash.xxh3_128()


def file_identity(
    path: StrPath,
    *,
    mode: Literal["stat", "content"] = "stat",
    roots: Sequence[StrPath] | None = None,
) -> str:
    """Return an id for the file's current contents, to name cache entries.

    ``"stat"`` (the default, like rsync's quick check) digests the device,
    inode, size and modification time in nanoseconds: it changes whenever the
    file is written, in practice, and costs one ``stat``. ``"content"`` hashes
    the bytes, so identical files share an id across paths and machines.

    Ids are a one-letter prefix and 32 lowercase hex digits, safe in file
    names. The prefix tells the kinds apart, so they never collide: ``s`` for
    stat, ``c`` for a blake2b content hash, ``x`` for an xxh3-128 content hash
    (used when the ``xxhash`` package is installed; about eight times faster,
    but its ids differ from blake2b's for the same bytes).

    Args:
        path: the file.
        mode: ``"stat"`` or ``"content"``.
        roots: as for `open_source`.

    Returns:
        The id.

    Raises:
        RequestError: the mode is unknown, or the file cannot be opened (see
            `open_source`).
    """
    if mode == "stat":
        shown = os.fspath(path)
        real = os.path.realpath(shown)
        if roots is not None:
            _check_roots(shown, real, roots)
        st = _stat_regular(shown, real)
        key = repr((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)).encode()
        return "s" + hashlib.blake2b(key, digest_size=_ID_HEX // 2).hexdigest()
    if mode == "content":
        prefix, hasher = _content_hasher()
        with open_source(path, roots=roots) as source:
            for start in range(0, source.size, _HASH_BLOCK):
                block = source.view(start, min(source.size, start + _HASH_BLOCK))
                hasher.update(block.data)
                del block  # let close() unmap at once
        return prefix + hasher.hexdigest()
    raise RequestError(f"unknown file identity mode {mode!r}; use 'stat' or 'content'")
