"""Serving a client's own files to workers that cannot see them: the ``source`` service.

A `FileServer` belongs to one client. It names a service ``source.<token>``
(the token is random: 128 bits, unguessable) that workers of that client's
process serve (`binglide.connect(..., serve_files=True)` starts them), and
it rewrites the client's request bodies (`FileServer.route`) so that each
input says where its bytes come from and which version of the file it
means (``via`` and ``identity``, `binglide.services.remote`). Only the
files the client named are served, each only in the version it named: a
read of any other path, or of a file changed since, is refused with a
`RequestError` that says so.

A read request (docs/protocol.md, "The source service")::

    {"path": PATH, "identity": {"device": D, "inode": I, "size": S, "mtime_ns": M},
     "start": START, "stop": STOP}

is answered by one FINAL whose data is the bytes ``[START, STOP)``, one raw
uint8 frame, with ``meta = {"identity": ...}``, the identity as read.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import RequestError
from ..report import Report
from ..service import Service
from .remote import READ_MAX, SOURCE_PREFIX, identity_from_json, identity_to_json
from .sources import FileVersion, changed_error, open_source
from .threads import run_kernel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import numpy as np

    from ..report import Task
    from ..service import Context

__all__ = ("FileServer", "FileServerStatistics", "SourceService")


@attrs.frozen
class FileServerStatistics:
    """A snapshot of a `FileServer`.

    Attributes:
        files: files named so far (each in its latest version).
        reads: read requests answered.
        bytes: bytes sent in those answers.
        refused: read requests refused (a path not named, a changed file, a bad range).
    """

    files: int
    reads: int
    bytes: int
    refused: int


class FileServer:
    """The files one client serves, and the service that serves them.

    Args:
        token: the service's name after ``source.`` (default: 32 random hex digits).
    """

    def __init__(self, token: str | None = None) -> None:
        self.service_name = SOURCE_PREFIX + (token or secrets.token_hex(16))
        self._named: dict[str, FileVersion] = {}
        self._reads = self._bytes = self._refused = 0

    def statistics(self) -> FileServerStatistics:
        """Return what was named and served so far."""
        return FileServerStatistics(len(self._named), self._reads, self._bytes, self._refused)

    def name(self, path: str | os.PathLike[str]) -> tuple[str, FileVersion] | None:
        """Serve the file at `path` in its current version; return its name and identity.

        Returns:
            The absolute path it is served under and its identity; None when
            it is not a regular file this process can see (the input then
            goes as it is, and its worker says what is wrong).
        """
        shown = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(shown)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        version = self._named[shown] = FileVersion.of(st)
        return shown, version

    def route(self, service: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return `body` with every input served from here (``via`` and ``identity`` added).

        Bodies without inputs (and inputs that already name their source)
        are returned unchanged, as are those of this service itself.
        """
        inputs = body.get("inputs")
        if service.startswith(SOURCE_PREFIX) or not isinstance(inputs, list):
            return body
        routed = []
        for item in inputs:
            named = None
            if isinstance(item, Mapping) and isinstance(item.get("source"), str):
                named = None if "via" in item else self.name(item["source"])
            if named is not None:
                path, version = named
                item = {
                    **item,
                    "source": path,
                    "via": self.service_name,
                    "identity": identity_to_json(version),
                }
            routed.append(item)
        return {**body, "inputs": routed}

    def service(self) -> SourceService:
        """Return a new instance of the service that serves these files (one per worker)."""
        cls: type[SourceService] = type(
            "SourceService", (SourceService,), {"name": self.service_name}
        )
        return cls(self)

    async def answer(self, body: Any) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
        """Answer one read request: the bytes and the meta of the reply.

        Raises:
            RequestError: the request is malformed, names a path this client
                did not name or another version of it, the file changed, or
                the range is not within the file or too long.
        """
        try:
            data, meta = await run_kernel(self._read, body)
        except RequestError:
            self._refused += 1
            raise
        self._reads += 1
        self._bytes += len(data)
        return data, meta

    def _read(self, body: Any) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
        if not isinstance(body, Mapping) or not isinstance(body.get("path"), str):
            raise RequestError(
                'a source read is {"path": PATH, "identity": {...}, "start": A, "stop": B}'
            )
        path: str = body["path"]
        asked = identity_from_json(body.get("identity"))
        start, stop = body.get("start"), body.get("stop")
        if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start <= stop):
            raise RequestError(f"a source read needs 0 <= start <= stop, not {start!r}, {stop!r}")
        if stop - start > READ_MAX:
            raise RequestError(f"a source read is at most {READ_MAX} bytes, not {stop - start}")
        named = self._named.get(path)
        if named is None:
            raise RequestError(
                f"{path}: refused, this source serves only the files its client named"
            )
        if named != asked:
            raise changed_error(path)
        with open_source(path) as source:
            if source.version != asked:
                raise changed_error(path)
            if stop > source.size:
                raise RequestError(f"{path}: [{start}, {stop}) is past its end ({source.size})")
            data = source.read(start, stop)
            source.check_unchanged()
        return data, {"identity": identity_to_json(source.version)}


class SourceService(Service):
    """Serve the reads of the files a `FileServer` names (see the module docstring)."""

    def __init__(self, server: FileServer) -> None:
        self.server = server

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        data, meta = await self.server.answer(task.body)
        yield Report(data, meta=meta)
