"""Opening the files users name: checks, reads that cannot fault, ranges, file ids.

This is the one module that touches user files. Every path is resolved
(`real_path`, as `os.path.realpath`) before it is checked, so ``..``
components and symbolic links cannot lead outside the allowed roots.

Files are read with ``preadv`` into buffers, never memory-mapped: a mapped
file truncated while a kernel reads it kills the whole process with SIGBUS,
and nothing in Python can catch that. A read past a new end is only short,
so a file that changes while it is read (truncated, grown, rewritten) is a
`RequestError` saying so, never a crash and never an answer mixing two
versions: a `Source` remembers the file's identity when it was opened
(device, inode, size, modification time) and `Source.check_unchanged`
compares it again after the reads, before anything is cached. Kernels read
large ranges as `Source.pieces` of about a MiB into reused buffers, which
stay in the CPU caches (reading a page-cached file runs several times faster
than any kernel, so the copy costs little), and between pieces a kernel
thread stops if its task was cancelled (`binglide.services.threads`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
from typing import TYPE_CHECKING, Final, Literal, NamedTuple, Protocol, Self

import numpy as np
import numpy.typing as npt

from binglide.errors import RequestError

from .threads import checkpoint

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import TracebackType

__all__ = (
    "PIECE",
    "FileVersion",
    "Source",
    "changed_error",
    "file_identity",
    "open_source",
    "real_path",
    "resolve_range",
    "scratch",
)

StrPath = str | os.PathLike[str]
U8Array = npt.NDArray[np.uint8]

#: Hex digits in every file id after its one-letter prefix.
_ID_HEX: Final = 32
#: Bytes per piece kernels read at a time: small enough to stay in the CPU's
#: caches between the read and the kernel, and to bound the time between two
#: cancellation checks (about a millisecond of the slowest kernel); large
#: enough that the per-piece costs (a system call, a kernel call) vanish.
PIECE: Final = 1 << 20
#: Bytes per read call at most: a longer read checks for a cancellation
#: between parts (and Linux returns at most 2 GiB - 4 KiB a call).
_LARGE_READ: Final = 64 << 20
#: Bytes hashed per step for content ids.
_HASH_BLOCK: Final = 8 << 20
#: Spare piece buffers kept per thread (a diff reads two files at once).
_SPARE_BUFFERS: Final = 2


class FileVersion(NamedTuple):
    """What identifies one version of a file: `os.stat`'s quick check, as rsync's."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileVersion:
        """Return the version of a file from its `os.stat` result."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def stat_id(self) -> str:
        """Return the ``s``-prefixed file id of this version (see `file_identity`)."""
        key = repr(tuple(self)).encode()
        return "s" + hashlib.blake2b(key, digest_size=_ID_HEX // 2).hexdigest()


def changed_error(shown: str) -> RequestError:
    """Return the error of a request whose file changed while it was read."""
    return RequestError(
        f"{shown} changed while it was read (truncated, grown, replaced or rewritten);"
        " ask again once it has stopped changing"
    )


if hasattr(os, "preadv"):

    def _pread_into(fd: int, view: memoryview, offset: int) -> int:
        return os.preadv(fd, [view], offset)

else:  # Windows: no positional reads; seek and read under one lock per process
    _seek_lock = threading.Lock()

    def _pread_into(fd: int, view: memoryview, offset: int) -> int:
        with _seek_lock, open(fd, "rb", buffering=0, closefd=False) as f:
            f.seek(offset)
            return f.readinto(view) or 0


_spares = threading.local()


def _take_buffer(size: int) -> U8Array:
    spares: list[U8Array] = getattr(_spares, "buffers", [])
    for i, buf in enumerate(spares):
        if buf.shape[0] >= size:
            return spares.pop(i)
    return np.empty(max(size, PIECE), np.uint8)


def _give_buffer(buf: U8Array) -> None:
    spares: list[U8Array] | None = getattr(_spares, "buffers", None)
    if spares is None:
        spares = _spares.buffers = []
    if len(spares) < _SPARE_BUFFERS and buf.shape[0] <= 4 * PIECE:
        spares.append(buf)


@contextlib.contextmanager
def scratch(size: int = PIECE) -> Iterator[U8Array]:
    """Lend a uint8 buffer of at least `size` bytes to read into, reused by this thread.

    Allocating a fresh piece buffer per read costs its page faults every
    time; each thread keeps a couple of buffers for its next reads.
    """
    buf = _take_buffer(size)
    try:
        yield buf
    finally:
        _give_buffer(buf)


class Source:
    """A user file open for reading.

    Make one with `open_source`; use it as a context manager or call `close`.
    Reads are ``preadv`` calls into numpy buffers: a file truncated meanwhile
    makes them short, which is `changed_error`, not a crash.

    Attributes:
        path: the resolved (real) path of the file.
        size: its size in bytes when it was opened.
        version: its identity when it was opened.
        named: the identity a client named for it when it serves the file
            itself (`binglide.services.remote`), which then names its cache
            entries; None for a plain local file.
    """

    def __init__(self, path: str, fd: int, version: FileVersion) -> None:
        self.path = path
        self.size = version.size
        self.version = version
        self.named: FileVersion | None = None
        self._fd: int | None = fd

    def _descriptor(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path}: the source is closed")
        return self._fd

    def _check(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self.size:
            raise ValueError(
                f"{self.path}: range [{start}, {stop}) is not within [0, {self.size}]"
            )

    def _read_into(self, fd: int, view: memoryview, offset: int) -> None:
        """Fill `view` with the bytes at `offset`; a short read means the file shrank."""
        done, want = 0, len(view)
        while done < want:
            if done:
                checkpoint()  # a long read stops for a cancellation too
            part = view[done : done + _LARGE_READ]
            try:
                got = _pread_into(fd, part, offset + done)
            except OSError as exc:
                raise _access_error(self.path, exc, "read") from exc
            if got <= 0:
                raise changed_error(self.path)
            done += got

    def read(self, start: int, stop: int, out: U8Array | None = None) -> U8Array:
        """Return the bytes ``[start, stop)``, read into `out` (or a new array).

        Args:
            start: the first offset, ``0 <= start <= stop``.
            stop: the end offset, ``stop <= size``.
            out: a uint8 array of at least ``stop - start`` bytes to read into.

        Returns:
            The bytes: the first ``stop - start`` bytes of `out` when given.

        Raises:
            RequestError: the file is shorter than when it was opened (it
                changed while it was read).
            ValueError: the range is not within ``[0, size]`` (a caller bug:
                check user ranges with `resolve_range`), `out` is too small, or
                the source is closed.
        """
        return self.gather(((start, stop),), out)

    def pieces(
        self, start: int, stop: int, *, piece: int = PIECE, after: int = 0
    ) -> Iterator[tuple[int, int, U8Array]]:
        """Read ``[start, stop)`` piece by piece, into one reused buffer.

        Each piece ``[lo, hi)`` comes with up to `after` more bytes past ``hi``
        (the next piece's first bytes, or the bytes past `stop` within the
        file), for kernels that look ahead (n-grams, ``ent``'s Monte Carlo
        groups). Before each piece the kernel thread stops if its task was
        cancelled (`binglide.services.threads.checkpoint`).

        Args:
            start: the first offset.
            stop: the end offset, ``start <= stop <= size``.
            piece: the bytes per piece, at least 1.
            after: the bytes of look-ahead per piece.

        Yields:
            ``(lo, hi, data)``: ``data`` holds the bytes ``[lo, min(hi + after,
            size))``. It is overwritten by the next piece: use it before asking
            for the next one.

        Raises:
            RequestError: the file shrank (see `read`).
            ValueError: as for `read`.
        """
        self._check(start, stop)
        if piece < 1:
            raise ValueError(f"piece must be at least 1 byte, not {piece}")
        with scratch(min(piece, stop - start) + after) as buf:
            for lo in range(start, stop, piece):
                checkpoint()
                hi = min(stop, lo + piece)
                yield lo, hi, self.read(lo, min(hi + after, self.size), buf)

    def gather(self, runs: Sequence[Sequence[int]], out: U8Array | None = None) -> U8Array:
        """Return the bytes of every run ``(start, stop)``, one after the other.

        For many small scattered runs (a sample): one ``preadv`` each.

        Args:
            runs: the ``(start, stop)`` runs, each within ``[0, size]``.
            out: a uint8 array to read into, at least as long as the runs together.

        Returns:
            The bytes: the first bytes of `out` when given.

        Raises:
            RequestError: the file shrank (see `read`).
            ValueError: a run is not within ``[0, size]``, `out` is too small,
                or the source is closed.
        """
        fd = self._descriptor()
        total = 0
        for start, stop in runs:
            self._check(start, stop)
            total += stop - start
        if out is None:
            out = np.empty(total, np.uint8)
        elif out.shape[0] < total:
            raise ValueError(f"out has {out.shape[0]} bytes, fewer than the {total} to read")
        out = out[:total]
        view = memoryview(out.data)
        pos = 0
        for start, stop in runs:
            self._read_into(fd, view[pos : pos + stop - start], start)
            pos += stop - start
        return out

    def check_unchanged(self) -> None:
        """Check that the file is still the version that was opened.

        Call it after reading and before using or caching what was read: a file
        rewritten in place keeps its size, so short reads alone do not show it.
        Like rsync's quick check, it compares the size and the modification
        time (in nanoseconds, as precise as the file system keeps them).

        Raises:
            RequestError: the file changed since it was opened.
            ValueError: the source is closed.
        """
        try:
            now = FileVersion.of(os.fstat(self._descriptor()))
        except OSError as exc:
            raise changed_error(self.path) from exc
        if now != self.version:
            raise changed_error(self.path)

    def content_id(self) -> str:
        """Return the content id of the file (see `file_identity`), read through this source.

        Raises:
            RequestError: the file changed while it was hashed.
        """
        prefix, hasher = _content_hasher()
        for _, _, block in self.pieces(0, self.size, piece=_HASH_BLOCK):
            hasher.update(block.data)
        self.check_unchanged()
        return prefix + hasher.hexdigest()

    def close(self) -> None:
        """Close the file (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

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
        state = "closed" if self._fd is None else "open"
        return f"<Source {self.path!r} size={self.size} {state}>"


#: Where the kernel names what an open descriptor is (Linux's /proc); None
#: where descriptors of a path alone (``O_PATH``) do not exist.
_FD_NAMES: Final = "/proc/self/fd/" if hasattr(os, "O_PATH") else None


def real_path(path: str) -> str:
    """Return `path` absolute, its symbolic links and ``..`` resolved, as `os.path.realpath`.

    On Linux, by one ``O_PATH`` open (which opens no device and blocks on
    no FIFO) and the readlink of its ``/proc/self/fd`` entry: three system
    calls where realpath takes an ``lstat`` per component (about 6x faster
    for a path of a dozen components, a cost every file of a batch pays on
    the worker's event loop). A path that cannot be opened that way
    (missing, not searchable) or named (/proc not mounted) resolves through
    realpath, so that what it says and which error follows stay the same.
    """
    if _FD_NAMES is not None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except (OSError, ValueError):
            return os.path.realpath(path)
        try:
            real = os.readlink(f"{_FD_NAMES}{fd}")
        except OSError:
            real = ""
        finally:
            os.close(fd)
        # Not a path: another kind of object, or a file unlinked meanwhile
        # (" (deleted)" appended: realpath says where the name leads now).
        if real.startswith("/") and not real.endswith(" (deleted)"):
            return real
    return os.path.realpath(path)


def _check_roots(shown: str, real: str, roots: Sequence[StrPath]) -> None:
    for root in roots:
        # Every file a worker opens checks its roots: resolved the cheap way too.
        real_root = real_path(os.fspath(root))
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
    if isinstance(exc, FileNotFoundError):
        # One message for a missing file whichever step found it gone: a
        # file deleted between the stat and the open is as missing as one
        # that never was.
        return RequestError(f"{shown}: no such file; check the path")
    if isinstance(exc, PermissionError):
        return RequestError(
            f"{shown}: permission denied; make the file readable by the user running binglide"
        )
    return RequestError(f"{shown}: cannot {doing} it ({exc.strerror}); check the path")


def _stat_regular(shown: str, real: str) -> os.stat_result:
    try:
        st = os.stat(real)
    except OSError as exc:
        raise _access_error(shown, exc, "access") from exc
    if stat.S_ISDIR(st.st_mode):
        raise RequestError(f"{shown}: is a directory; name a regular file inside it")
    if not stat.S_ISREG(st.st_mode):
        # Devices, FIFOs and sockets have no fixed size to read (and a FIFO
        # would block the open).
        raise RequestError(
            f"{shown}: not a regular file (a device, FIFO or socket); copy the data to a file"
        )
    return st


def open_source(path: StrPath, *, roots: Sequence[StrPath] | None = None) -> Source:
    """Open a user file for reading.

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
    real = real_path(shown)
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
    except OSError as exc:
        os.close(fd)
        raise _access_error(shown, exc, "access") from exc
    except BaseException:
        os.close(fd)
        raise
    return Source(real, fd, FileVersion.of(st))


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
        real = real_path(shown)
        if roots is not None:
            _check_roots(shown, real, roots)
        return FileVersion.of(_stat_regular(shown, real)).stat_id()
    if mode == "content":
        with open_source(path, roots=roots) as source:
            return source.content_id()
    raise RequestError(f"unknown file identity mode {mode!r}; use 'stat' or 'content'")
