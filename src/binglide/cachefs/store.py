"""The on-disk chunk store: one file per entry, shared by any number of processes.

Theory of operation
-------------------
Each entry is one file named by its `ChunkKey` in a single flat directory.
The file is self-describing and self-checking::

    offset  size  field
    0       8     magic  b"BGLCHUNK"
    8       2     format version (little-endian, like every field)
    10      2     ndim
    12      2     length of the dtype string
    14      2     length of the key name
    16      8     payload length in bytes
    24      16    blake2b-128 digest of the rest of the file (bytes 0-24 and 40-end)
    40      8*n   shape
    ...           dtype string (``numpy.dtype.str``, e.g. ``<u8``), key name (ASCII)
    ...           zero padding up to a multiple of 16 (so the payload is aligned)
    header  ...   payload: the array's bytes in C order

*Reads* validate everything (magic, version, sizes, dtype, that the name in the
header is the file's own name, the digest over header and payload). Anything
wrong means a torn, truncated or corrupt entry: it is logged once, removed, and
reported as a miss, never as an exception, so the caller simply recomputes.

*Writes* are atomic: the entry is written to a temporary file in the same
directory (a dot-name no key can produce), optionally fsynced, then moved
into place with `os.replace`. A reader sees either the old entry, the new
one, or none; two writers of the same key both succeed and the last rename
wins with a complete entry. A writer killed mid-put leaves at worst a stray
temporary file, removed once it is older than ``temp_timeout`` by the first
scan of any store (at its first write, and by every eviction).

*Eviction* is least-recently-used on the file's mtime: `put` sets it, and a
successful `get` touches it with `os.utime`, which costs one system call and
is shared by every process. Each store keeps a running estimate of the total
size (a full scan at its first write, plus what it wrote since: a store that
only reads, as a command answered from the cache, never lists the directory
for it); only when the
estimate passes ``max_bytes`` does a put rescan and evict, down to 90% of the
bound, so a full cache does not rescan on every put. Other processes' writes
are seen at the next scan, so the bound holds after each eviction rather than
at every instant.

*Degrading*: if the directory cannot be created or written, the store warns
once with `CacheDisabledWarning` and then behaves as an empty cache (get
returns None, put does nothing). Caching is an optimisation; it never fails
a computation.

No lock is needed for correctness: every mutation is a rename or an unlink,
each atomic on POSIX file systems. The worst a race does is drop an entry
(for example, evicting one another process just rewrote), which costs a
recomputation, never a wrong result.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import secrets
import struct
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np
import platformdirs

from .keys import MAX_OFFSET, ChunkKey, key_prefix
from .sizes import parse_size

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from numpy.typing import ArrayLike, NDArray

__all__ = (
    "DEFAULT_MAX_BYTES",
    "CacheDisabledWarning",
    "CacheInfo",
    "ChunkStore",
    "default_cache_dir",
    "default_max_bytes",
)

logger = logging.getLogger(__name__)

#: The default size bound of a store: 4 GiB.
DEFAULT_MAX_BYTES = 4 * 2**30

_MAGIC = b"BGLCHUNK"
_VERSION = 1
# magic, version, ndim, dtype length, name length, payload length, digest.
_FIXED = struct.Struct("<8sHHHHQ16s")
_DIGEST_AT = 24  # offset of the digest inside _FIXED, which it does not cover
_DIGEST_SIZE = 16
_ALIGN = 16
_MAX_NDIM = 32
_MAX_DTYPE_LENGTH = 32
# Plain numbers only: object arrays have no bytes to store, and structured
# dtypes lose their field names in ``dtype.str``.
_KINDS = frozenset("biufc")
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".tmp"
# Evicting below the bound leaves room, so the puts that follow an eviction
# do not each pay for a full scan.
_LOW_WATER = 0.9


def default_cache_dir() -> Path:
    """Return the cache directory to use when none is given.

    Returns:
        ``$BINGLIDE_CACHE_DIR`` if set and not empty, else the platform's user
        cache directory for binglide (e.g. ``~/.cache/binglide`` on Linux).
    """
    configured = os.environ.get("BINGLIDE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("binglide"))


def default_max_bytes() -> int:
    """Return the size bound to use when none is given.

    Returns:
        ``$BINGLIDE_CACHE_MAX_SIZE`` if set and not empty (a byte count such
        as ``4294967296``, ``4G`` or ``512MiB``), else `DEFAULT_MAX_BYTES`.

    Raises:
        ValueError: ``$BINGLIDE_CACHE_MAX_SIZE`` is not a byte count.
    """
    configured = os.environ.get("BINGLIDE_CACHE_MAX_SIZE", "").strip()
    if not configured:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(configured)
    except ValueError:
        raise ValueError(
            f"BINGLIDE_CACHE_MAX_SIZE={configured!r} is not a size: give bytes such as"
            " 4294967296, 4G or 512MiB"
        ) from None


class CacheDisabledWarning(RuntimeWarning):
    """The cache directory cannot be used, so nothing is cached (results stay correct)."""


@attrs.frozen
class CacheInfo:
    """A snapshot of a store's contents.

    Attributes:
        directory: the store's directory.
        entries: the number of entries on disk.
        total_bytes: their total size in bytes (headers included).
        max_bytes: the store's size bound.
    """

    directory: Path
    entries: int
    total_bytes: int
    max_bytes: int


class _Corrupt(Exception):
    """An entry failed validation (internal: never leaves this module)."""


@attrs.frozen
class _Entry:
    name: str
    size: int
    mtime: float


def _padded(length: int) -> int:
    return -(-length // _ALIGN) * _ALIGN


def _encode_header(name: str, array: NDArray[np.generic]) -> tuple[bytes, bytes]:
    """Return the fixed header without its digest, and the variable header."""
    dtype = array.dtype.str.encode("ascii")
    encoded_name = name.encode("ascii")
    variable = struct.pack(f"<{array.ndim}Q", *array.shape) + dtype + encoded_name
    length = _FIXED.size + len(variable)
    variable += b"\0" * (_padded(length) - length)
    fixed = _FIXED.pack(
        _MAGIC, _VERSION, array.ndim, len(dtype), len(encoded_name), array.nbytes, b""
    )
    return fixed[:_DIGEST_AT], variable


def _decode(name: str, raw: NDArray[np.uint8]) -> NDArray[np.generic]:
    """Validate a whole entry file and return its array (a view of ``raw``).

    Raises:
        _Corrupt: with the reason, if anything at all is wrong.
    """
    if raw.size < _FIXED.size:
        raise _Corrupt(f"truncated header ({raw.size} bytes)")
    magic, version, ndim, dtype_length, name_length, payload_length, digest = _FIXED.unpack(
        raw[: _FIXED.size].tobytes()
    )
    if magic != _MAGIC:
        raise _Corrupt("bad magic")
    if version != _VERSION:
        raise _Corrupt(f"unknown format version {version}")
    if ndim > _MAX_NDIM or dtype_length > _MAX_DTYPE_LENGTH:
        raise _Corrupt("implausible header")
    variable_length = 8 * ndim + dtype_length + name_length
    header_length = _padded(_FIXED.size + variable_length)
    if raw.size != header_length + payload_length:
        raise _Corrupt(
            f"size {raw.size} != header {header_length} + payload {payload_length} bytes"
        )
    # Check the digest before trusting any variable field.
    hasher = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    hasher.update(raw[:_DIGEST_AT].data)
    hasher.update(raw[_FIXED.size :].data)
    if hasher.digest() != digest:
        raise _Corrupt("checksum mismatch")
    variable = raw[_FIXED.size : _FIXED.size + variable_length].tobytes()
    shape = struct.unpack_from(f"<{ndim}Q", variable)
    dtype_text = variable[8 * ndim : 8 * ndim + dtype_length].decode("ascii", "replace")
    stored_name = variable[8 * ndim + dtype_length :].decode("ascii", "replace")
    if stored_name != name:
        # A valid entry under another name (copied or renamed by hand).
        raise _Corrupt(f"entry belongs to {stored_name!r}")
    try:
        dtype = np.dtype(dtype_text)
    except TypeError as exc:
        raise _Corrupt(f"bad dtype {dtype_text!r}") from exc
    if dtype.kind not in _KINDS or dtype.str != dtype_text:
        raise _Corrupt(f"bad dtype {dtype_text!r}")
    if math.prod(shape) * dtype.itemsize != payload_length:
        raise _Corrupt(f"shape {shape} of {dtype_text} does not fill {payload_length} bytes")
    if payload_length == 0:
        return np.empty(shape, dtype)
    return raw[header_length:].view(dtype).reshape(shape)


class ChunkStore:
    """A directory of cached chunk results, bounded in size, shared across processes.

    Synchronous and thread-safe; see the module docstring for the file format,
    atomicity and eviction. Nothing touches the disk until the first call.

    Args:
        directory: where entries live; created on first use if missing.
        max_bytes: the size bound; least-recently-used entries are evicted
            beyond it.
        fsync: fsync each entry before it is renamed into place, so it survives
            a power loss (a crash of the process never needs it).
        temp_timeout: temporary files older than this many seconds are left
            over by a killed writer and removed by scans.

    Raises:
        ValueError: ``max_bytes`` is negative.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fsync: bool = False,
        temp_timeout: float = 3600.0,
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
        self._directory = Path(directory)
        self._prefix = os.path.join(os.fspath(directory), "")
        self._max_bytes = max_bytes
        self._fsync = fsync
        self._temp_timeout = temp_timeout
        self._lock = threading.Lock()
        # None until first use, then whether the directory is usable.
        self._usable: bool | None = None
        # None until the first write needs it (see _count_existing).
        self._estimate: int | None = None
        self._put_failure_logged = False

    def __repr__(self) -> str:
        return f"ChunkStore({str(self._directory)!r}, max_bytes={self._max_bytes})"

    @property
    def directory(self) -> Path:
        """The store's directory."""
        return self._directory

    @property
    def max_bytes(self) -> int:
        """The size bound in bytes."""
        return self._max_bytes

    @property
    def enabled(self) -> bool:
        """Whether the store caches at all (False once the directory proved unusable)."""
        return self._ready()

    # -- reading ---------------------------------------------------------------

    def get(self, key: ChunkKey) -> NDArray[np.generic] | None:
        """Return the cached array of ``key``, or None on a miss.

        A hit marks the entry as recently used. A torn, truncated or corrupt
        entry is logged, removed and reported as a miss.

        Args:
            key: the entry to read.

        Returns:
            A new writable array equal to what was put, or None.
        """
        if not self._ready():
            return None
        return self._read(key.filename)

    def get_blocks(
        self, resource: str, ids: tuple[str, ...], blocks: Iterable[tuple[int, int]]
    ) -> list[tuple[ChunkKey, NDArray[np.generic]]]:
        """Return the cached entries among some blocks of one resource and source.

        As `get` for each block, but a miss builds no key: a cover of a cold
        cache probes many blocks and finds none.

        Args:
            resource: the analysis and its parameters, e.g. ``"HIST"``.
            ids: the file ids of the sources.
            blocks: the ``(start, stop)`` of each block to look up.

        Returns:
            The hits, as ``(key, array)``, in the order of `blocks`.

        Raises:
            ValueError: the resource, ids or a block are not valid (see `ChunkKey`).
        """
        prefix = key_prefix(resource, ids)
        usable = self._ready()
        hits = []
        for start, stop in blocks:
            if (
                type(start) is not int
                or type(stop) is not int
                or not 0 <= start < stop <= MAX_OFFSET
            ):
                raise ValueError(f"invalid cache range ({start!r}, {stop!r})")
            array = self._read(f"{prefix}{start}_{stop}") if usable else None
            if array is not None:
                hits.append((ChunkKey(resource, ids, start, stop), array))
        return hits

    def _read(self, filename: str) -> NDArray[np.generic] | None:
        # A str path and os.open: a miss (every probe of a cold cache) costs
        # about 2 us instead of 17 us for a Path joined and a failed open().
        path = self._prefix + filename
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.debug("cache entry %s unreadable: %s", path, exc)
            return None
        try:
            status = os.fstat(fd)
            raw = np.empty(status.st_size, np.uint8)
            view = raw.data
            done = 0
            while done < status.st_size:
                count = os.readv(fd, [view[done:]])
                if not count:
                    break
                done += count
        except OSError as exc:
            # A directory or unreadable file under an entry's name: not ours
            # to repair, and a miss is always a safe answer.
            logger.debug("cache entry %s unreadable: %s", path, exc)
            return None
        finally:
            os.close(fd)
        try:
            array = _decode(filename, raw[:done])
        except _Corrupt as exc:
            logger.warning("removing corrupt cache entry %s: %s", path, exc)
            self._remove_if_same(Path(path), status)
            return None
        with contextlib.suppress(OSError):
            # LRU order is advisory: an entry we may not touch just ages.
            os.utime(path)
        return array

    def ranges(self, resource: str, ids: tuple[str, ...]) -> list[tuple[int, int]]:
        """List the ``(start, stop)`` of every entry of one resource and source.

        One directory listing, no per-entry system call: this is what makes a
        cover of a large range cheap.

        Args:
            resource: the analysis and its parameters, e.g. ``"HIST"``.
            ids: the file ids of the sources.

        Returns:
            The ranges, sorted.

        Raises:
            ValueError: the resource or ids are not valid (see `ChunkKey`).
        """
        prefix = key_prefix(resource, ids)
        if not self._ready():
            return []
        found = []
        try:
            with os.scandir(self._directory) as scan:
                for item in scan:
                    if item.name.startswith(prefix):
                        key = ChunkKey.from_filename(item.name)
                        if key is not None:
                            found.append((key.start, key.stop))
        except OSError as exc:
            logger.debug("cannot list cache directory %s: %s", self._directory, exc)
        found.sort()
        return found

    # -- writing ---------------------------------------------------------------

    def put(self, key: ChunkKey, array: ArrayLike) -> bool:
        """Store ``array`` under ``key``, atomically, replacing any previous entry.

        A failure to write (disk full, directory removed...) is logged and
        leaves the cache as it was; an unusable directory warns once and
        disables the store. Neither raises.

        Args:
            key: the entry to write.
            array: a numeric (bool, int, float or complex) array.

        Returns:
            Whether the entry is now on disk (False when disabled, on a write
            failure, or when the entry alone is larger than ``max_bytes``).

        Raises:
            ValueError: the array's dtype cannot be cached.
        """
        data = np.asarray(array)
        if not data.flags.c_contiguous:
            # Not np.ascontiguousarray: it turns a 0-d array into a 1-d one.
            data = data.copy(order="C")
        if data.dtype.kind not in _KINDS:
            raise ValueError(f"cannot cache an array of dtype {data.dtype}: numbers only")
        if not self._ready():
            return False
        self._count_existing()
        fixed, variable = _encode_header(key.filename, data)
        size = _FIXED.size + len(variable) + data.nbytes
        if size > self._max_bytes:
            return False
        payload = data.reshape(-1).view(np.uint8).data
        hasher = hashlib.blake2b(fixed, digest_size=_DIGEST_SIZE)
        hasher.update(variable)
        hasher.update(payload)
        header = fixed + hasher.digest() + variable

        final = self._directory / key.filename
        try:
            try:
                self._write(final, header, payload)
            except FileNotFoundError:
                # The directory was removed under us (a user emptying the
                # cache by hand): make it again, once.
                self._directory.mkdir(parents=True, exist_ok=True)
                self._write(final, header, payload)
        except OSError as exc:
            self._put_failed(exc)
            return False
        with self._lock:
            self._estimate = (self._estimate or 0) + size
            over = self._estimate > self._max_bytes
        if over:
            self.evict(int(self._max_bytes * _LOW_WATER))
        return True

    def _write(self, final: Path, header: bytes, payload: memoryview) -> None:
        temp = final.with_name(
            f"{_TEMP_PREFIX}{final.name}.{os.getpid()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        )
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            with open(fd, "wb", buffering=0) as file:
                file.write(header)
                done = 0
                while done < len(payload):
                    done += file.write(payload[done:]) or 0
                if self._fsync:
                    os.fsync(file.fileno())
            os.replace(temp, final)
        except BaseException:
            # Also on KeyboardInterrupt: leave nothing for the janitor to find.
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        if self._fsync:
            # The rename itself is durable only once the directory is synced.
            directory = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def _put_failed(self, exc: OSError) -> None:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            self._disable(f"it is not writable ({exc.strerror})")
            return
        # Disk full and the like may pass: log the first, keep trying later.
        with self._lock:
            first = not self._put_failure_logged
            self._put_failure_logged = True
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "cannot write to cache directory %s: %s",
            self._directory,
            exc,
        )

    # -- maintenance -----------------------------------------------------------

    def evict(self, target_bytes: int | None = None) -> int:
        """Remove least-recently-used entries until the total is at most the target.

        Also removes temporary files older than ``temp_timeout``.

        Args:
            target_bytes: the size to get under; ``max_bytes`` by default.

        Returns:
            The number of entries removed.
        """
        if not self._ready():
            return 0
        target = self._max_bytes if target_bytes is None else target_bytes
        entries = sorted(self._scan(), key=lambda entry: (entry.mtime, entry.name))
        total = sum(entry.size for entry in entries)
        removed = 0
        for entry in entries:
            if total <= target:
                break
            try:
                os.unlink(self._directory / entry.name)
            except FileNotFoundError:
                pass  # another process evicted it first: it is gone either way
            except OSError as exc:
                logger.debug("cannot evict cache entry %s: %s", entry.name, exc)
                continue
            else:
                removed += 1
            total -= entry.size
        with self._lock:
            self._estimate = total
        return removed

    def info(self) -> CacheInfo:
        """Return the number and total size of the entries on disk (one scan).

        Returns:
            The snapshot; zero entries when the store is disabled.
        """
        entries = self._scan() if self._ready() else []
        total = sum(entry.size for entry in entries)
        with self._lock:
            self._estimate = total
        return CacheInfo(self._directory, len(entries), total, self._max_bytes)

    def clear(self) -> int:
        """Remove every entry (files not named like an entry are left alone).

        Returns:
            The number of entries removed.
        """
        return self.evict(0)

    # -- internals -------------------------------------------------------------

    def _ready(self) -> bool:
        usable = self._usable
        if usable is not None:
            return usable
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # FileExistsError too: something that is not a directory is there.
            self._disable(f"it cannot be created ({exc.strerror or exc})")
            return False
        if not os.access(self._directory, os.W_OK | os.X_OK):
            self._disable("it is not writable")
            return False
        with self._lock:
            if self._usable is None:
                self._usable = True
            return self._usable

    def _count_existing(self) -> None:
        """Start the size estimate from what is on disk, before the first write.

        Only writes need the estimate (to know when to evict): a store that
        only reads never scans the directory, which holds thousands of
        entries in a cache of some age.
        """
        if self._estimate is not None:
            return
        total = sum(entry.size for entry in self._scan())
        with self._lock:
            if self._estimate is None:
                self._estimate = total

    def _disable(self, reason: str) -> None:
        with self._lock:
            warn = self._usable is not False
            self._usable = False
        if warn:
            warnings.warn(
                f"binglide cache disabled: cache directory {str(self._directory)!r} cannot be "
                f"used because {reason}. Results are computed without caching. To fix it, "
                "make that directory writable, or point BINGLIDE_CACHE_DIR (or the "
                "cache directory option) at a writable directory.",
                CacheDisabledWarning,
                stacklevel=4,
            )

    def _scan(self) -> list[_Entry]:
        """List the entries on disk, removing stale temporary files on the way."""
        entries = []
        stale_before = time.time() - self._temp_timeout
        for item in self._walk():
            try:
                status = item.stat(follow_symlinks=False)
            except OSError:
                continue  # removed meanwhile
            if item.name.startswith(_TEMP_PREFIX):
                if item.name.endswith(_TEMP_SUFFIX) and status.st_mtime < stale_before:
                    with contextlib.suppress(OSError):
                        os.unlink(item.path)
                continue
            if ChunkKey.from_filename(item.name) is not None and item.is_file(
                follow_symlinks=False
            ):
                entries.append(_Entry(item.name, status.st_size, status.st_mtime))
        return entries

    def _walk(self) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(self._directory) as scan:
                yield from scan
        except OSError as exc:
            logger.debug("cannot list cache directory %s: %s", self._directory, exc)

    def _remove_if_same(self, path: Path, status: os.stat_result) -> None:
        # Only remove the file that was read: a writer may have replaced it
        # with a good entry since (the window left is tiny and costs only a miss).
        try:
            current = os.stat(path)
            if (current.st_dev, current.st_ino) == (status.st_dev, status.st_ino):
                os.unlink(path)
        except OSError:
            pass
