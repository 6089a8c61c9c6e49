"""Reading files a worker cannot see: through the ``source`` service beside them.

A worker on another machine (no shared file system) cannot open the paths
its client names. A client that serves its files (`binglide.connect(...,
serve_files=True)`, ``--serve-files``; see `binglide.services.files`)
registers a service ``source.<token>`` and names, with each input, where
its bytes come from and which version of the file it means::

    {"source": PATH, "start": ..., "stop": ...,
     "via": "source.<token>",
     "identity": {"device": D, "inode": I, "size": S, "mtime_ns": M}}

`open_input` opens such an input: the local file when this worker sees the
very same version (same size and modification time: a shared file system),
else a `RemoteSource` whose reads are sub-requests to the ``via`` service,
a range of at most `READ_MAX` bytes each, answered as one raw frame. Both
ends check the identity: the serving end refuses a read of any other
version than the one named (so a file changed since is an error, never a
mix), and the reading end checks that the answer is of the version and
length it asked for. The cache names entries by the named identity (its
stat id, as the client's machine would), whichever way the bytes came.

Kernels read in worker threads (`binglide.services.threads`); a remote read
goes back to the event loop for its sub-request (``anyio.from_thread``), in
the kernel's task's cancel scope: a cancelled task stops its reads, and
while it awaits one the worker counts the task as waiting (the progress
guarantee holds as for any sub-request).
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio.from_thread
import attrs
import numpy as np

from ..errors import JobCancelled, JobError, RequestError, ServiceUnavailable
from .sources import FileVersion, Source, changed_error, open_source
from .threads import checkpoint

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from ..service import Context

__all__ = (
    "READ_AHEAD",
    "READ_MAX",
    "SOURCE_PREFIX",
    "Remote",
    "RemoteSource",
    "identity_from_json",
    "identity_to_json",
    "open_input",
)

#: The name of every source service starts with this.
SOURCE_PREFIX: Final = "source."
#: The most bytes one read request may ask for: one frame of a few MiB
#: crosses ZeroMQ in a few milliseconds, and bounds the cancel latency.
READ_MAX: Final = 4 << 20
#: Bytes read at once when reads go on where the last one ended (a kernel
#: reading a range piece by piece): a quarter of the round trips.
READ_AHEAD: Final = 4 << 20

_IDENTITY_KEYS: Final = ("device", "inode", "size", "mtime_ns")


def identity_to_json(version: FileVersion) -> dict[str, int]:
    """Return the JSON form of a file's identity (the ``identity`` of an input)."""
    return {
        "device": version.device,
        "inode": version.inode,
        "size": version.size,
        "mtime_ns": version.mtime_ns,
    }


def identity_from_json(value: Any) -> FileVersion:
    """Return the identity in its JSON form.

    Raises:
        RequestError: not an object of four non-negative integers.
    """
    if isinstance(value, Mapping):
        parts = [value.get(key) for key in _IDENTITY_KEYS]
        numbers = [p for p in parts if isinstance(p, int) and not isinstance(p, bool) and p >= 0]
        if len(numbers) == len(parts):
            return FileVersion(*numbers)
    raise RequestError(
        'an identity is {"device": D, "inode": I, "size": S, "mtime_ns": M}'
        f" (non-negative integers), not {value!r}"
    )


@attrs.frozen
class Remote:
    """Where the bytes of an input come from when the worker cannot see its file.

    Attributes:
        via: the source service that serves the file (``source.<token>``).
        version: the file's identity on the serving side.
    """

    via: str
    version: FileVersion

    @classmethod
    def from_input(cls, item: Mapping[str, Any]) -> Remote | None:
        """Return the remote part of an input (or sub-request body), None if it has none.

        Raises:
            RequestError: ``via`` is not a source service's name, or the
                identity is missing or malformed.
        """
        via = item.get("via")
        if via is None:
            return None
        if not isinstance(via, str) or not via.startswith(SOURCE_PREFIX) or via == SOURCE_PREFIX:
            raise RequestError(f"'via' must name a source service (source.NAME), not {via!r}")
        return cls(via, identity_from_json(item.get("identity")))

    def to_json(self) -> dict[str, Any]:
        """Return the keys that name it in an input or a sub-request body."""
        return {"via": self.via, "identity": identity_to_json(self.version)}


class RemoteSource(Source):
    """A file read through a source service, with the interface of a local `Source`.

    Reads are blocking and belong in a kernel thread (`run_kernel`), as for
    any `Source`; each is one or more sub-requests of at most `READ_MAX`
    bytes. Use `open_input` to make one.
    """

    def __init__(
        self, path: str, remote: Remote, fetch: Callable[[int, int], npt.NDArray[np.uint8]]
    ) -> None:
        # No descriptor: -1 stands for "open" to the base class.
        super().__init__(path, -1, remote.version)
        self.named = remote.version
        self.remote = remote
        self._fetch = fetch
        self._lock = threading.Lock()
        self._ahead: tuple[int, npt.NDArray[np.uint8]] | None = None
        self._last_end = -1

    def _read_into(self, fd: int, view: memoryview, offset: int) -> None:
        with self._lock:
            done, want = 0, len(view)
            out = np.frombuffer(view, np.uint8)
            while done < want:
                if done:
                    checkpoint()
                pos = offset + done
                got = self._take_ahead(out[done:], pos)
                if not got:
                    got = min(want - done, READ_MAX)
                    # A read that goes on where the last one ended reads ahead.
                    extra = READ_AHEAD if pos == self._last_end else got
                    data = self._fetch(pos, min(self.size, pos + max(got, extra)))
                    out[done : done + got] = data[:got]
                    if len(data) > got:
                        self._ahead = (pos + got, data[got:])
                done += got
                self._last_end = pos + got

    def _take_ahead(self, out: npt.NDArray[np.uint8], pos: int) -> int:
        """Copy what the read-ahead holds from `pos` into `out`; return how many bytes."""
        if self._ahead is None:
            return 0
        start, data = self._ahead
        if not start <= pos < start + len(data):
            return 0
        n = min(len(out), start + len(data) - pos)
        out[:n] = data[pos - start : pos - start + n]
        return n

    def check_unchanged(self) -> None:
        """Check nothing more: the serving end checked every read against the identity.

        It refuses a read of any other version than the one named, and the
        reading end checked each answer (see the module docstring): every
        byte read is of that version.

        Raises:
            ValueError: the source is closed.
        """
        self._descriptor()

    def close(self) -> None:
        """Forget the source (idempotent): nothing is held open on this side."""
        self._fd = None
        self._ahead = None

    def __repr__(self) -> str:
        return f"<RemoteSource {self.path!r} via {self.remote.via} size={self.size}>"


def _fetcher(
    ctx: Context, path: str, remote: Remote
) -> Callable[[int, int], npt.NDArray[np.uint8]]:
    """Return a blocking read of ``[start, stop)`` through `remote`, for kernel threads."""
    expected = identity_to_json(remote.version)

    async def fetch(start: int, stop: int) -> npt.NDArray[np.uint8]:
        body = {"path": path, "identity": expected, "start": start, "stop": stop}
        try:
            report = await ctx.request(remote.via, body)
        except ServiceUnavailable as exc:
            raise RequestError(
                f"{path}: the source that served it ({remote.via}) is gone: the client that"
                " named the file disconnected or stopped serving files; run it again"
            ) from exc
        except (RequestError, JobCancelled):
            raise
        except JobError as exc:
            raise RequestError(
                f"{path}: its source {remote.via} failed to read it: {exc}"
            ) from exc
        data = report.data
        if (
            not isinstance(data, np.ndarray)
            or data.dtype != np.uint8
            or data.shape != (stop - start,)
            or report.meta.get("identity") != expected
        ):
            # The other end read something else than what was asked.
            raise changed_error(path)
        return data

    def blocking(start: int, stop: int) -> npt.NDArray[np.uint8]:
        try:
            return anyio.from_thread.run(fetch, start, stop)
        except concurrent.futures.CancelledError:
            # The kernel's task was cancelled while it waited: raise its
            # cancellation in this thread, as a checkpoint does.
            checkpoint()
            raise

    return blocking


def open_input(
    path: str, remote: Remote | None, *, roots: tuple[str, ...] | None, ctx: Context
) -> Source:
    """Open the file of an input: locally when this worker sees that version, else remotely.

    Args:
        path: the path the client named.
        remote: where its bytes come from when this worker cannot see it
            (None: it must be local).
        roots: the directories this worker may read (see `open_source`).
        ctx: the task's context, for the reads' sub-requests.

    Returns:
        A local `Source`, or a `RemoteSource`; either way, with a `remote`,
        ``source.named`` is the named identity (which names cache entries).

    Raises:
        RequestError: without `remote`, as `open_source`.
    """
    if remote is None:
        return open_source(path, roots=roots)
    try:
        local = open_source(path, roots=roots)
    except RequestError:
        pass  # not here, or not allowed here: through the source
    else:
        # The same file when its size and modification time (to the
        # nanosecond) agree: device and inode numbers differ between hosts
        # of a shared file system.
        mine, named = local.version, remote.version
        if (mine.size, mine.mtime_ns) == (named.size, named.mtime_ns):
            local.named = named
            return local
        local.close()
    return RemoteSource(path, remote, _fetcher(ctx, path, remote))
