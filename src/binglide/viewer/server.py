"""The viewer's web server: the page, its WebSocket, and one session per page.

Theory of operation
-------------------
`serve` starts an aiohttp server on 127.0.0.1 (by default) that answers only
under ``/<token>/``: the page (``index.html``), its static files, and the
WebSocket ``/<token>/ws``. The token is random (``secrets``) and part of the
printed URL, as Jupyter's is; a request without it gets 403. A request whose
``Host`` is not this server's address, or whose ``Origin`` is another site's,
gets 403 too (DNS rebinding: a page of another site that resolves its own
name to 127.0.0.1 cannot talk to the viewer).

Each WebSocket is a `Session`: it parses the page's messages
(`binglide.viewer.protocol`), runs each request as a task of its own over the
shared `binglide.Client` (`binglide.viewer.views`), and sends the reports back
as binary frames through one sender task (`binglide.viewer.outbox`: a
refinement that a newer one of its request overtakes before it is sent is
dropped). A request that names a *slot*
(``"bigram"``, ``"overview:3"``...) cancels the request that held that slot:
the page's view has moved on, so the CANCEL goes to the workers at once.
Every request ends with one final report, error or ``cancelled`` frame; a
malformed message gets an error frame and the session goes on. Closing the
page cancels every request of its session.

The page names files by their index in the list given to `serve` (or, with a
root, by a path the server resolves and checks under that root): never by a
path it made up.
"""

from __future__ import annotations

import contextlib
import hmac
import importlib.resources
import logging
import os
import secrets
import socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import attrs

import binglide

from .outbox import Outbox
from .protocol import Cancel, MessageError, Request, parse
from .views import FileEntry, Out, ReportCache, Views

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from aiohttp import web
    from anyio.abc import TaskGroup

__all__ = ("Viewer", "ViewerStatistics", "serve")

log = logging.getLogger("binglide.viewer")

#: The most requests one page may have open at once.
MAX_OPEN_REQUESTS = 256
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


@attrs.frozen
class ViewerStatistics:
    """A snapshot of the viewer's sessions and requests.

    Attributes:
        sessions: pages connected now.
        open: requests running now, all sessions.
        completed: requests that ended with their final report.
        cancelled: requests cancelled (superseded, cancelled by the page, or
            their page closed).
        failed: requests that ended with an error.
        refused: messages refused as malformed.
        cache_hits: answers sent from the viewer's cache of final reports.
    """

    sessions: int
    open: int
    completed: int
    cancelled: int
    failed: int
    refused: int
    cache_hits: int


class Viewer:
    """A running viewer server (what `serve` yields).

    Attributes:
        url: the page's address, token included: open it in a browser.
        host: the address the server listens on.
        port: its port.
        token: the secret every request carries.
        files: the files the page may look at, by index.
    """

    def __init__(
        self,
        client: binglide.Client,
        files: Sequence[FileEntry],
        *,
        token: str,
        root: str | None,
    ) -> None:
        self.client = client
        self.files = list(files)
        self.token = token
        self.root = root
        self.host = ""
        self.port = 0
        self.cache = ReportCache()
        self._allowed_hosts: set[str] = set()
        self._sessions: set[Session] = set()
        self._counts = {"completed": 0, "cancelled": 0, "failed": 0, "refused": 0}

    @property
    def url(self) -> str:
        """The page's address, token included."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/{self.token}/"

    def statistics(self) -> ViewerStatistics:
        """Return a snapshot of the sessions and requests."""
        return ViewerStatistics(
            sessions=len(self._sessions),
            open=sum(len(s.running) for s in self._sessions),
            completed=self._counts["completed"],
            cancelled=self._counts["cancelled"],
            failed=self._counts["failed"],
            refused=self._counts["refused"],
            cache_hits=self.cache.hits,
        )

    def _bind(self, host: str, port: int, extra_hosts: Sequence[str]) -> None:
        self.host, self.port = host, port
        names = {*_LOOPBACK, *extra_hosts}
        if host not in ("0.0.0.0", "::", ""):
            names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
        else:
            names.add(socket.gethostname())
        self._allowed_hosts = {f"{name}:{port}" for name in names}

    # -- HTTP -------------------------------------------------------------------------------

    def _refusal(self, request: web.Request) -> str | None:
        """Return why `request` is refused, or None."""
        host = request.headers.get("Host", "")
        if host not in self._allowed_hosts:
            return f"refused: the Host {host!r} is not this viewer's address"
        origin = request.headers.get("Origin")
        if origin is not None and origin.removeprefix("http://") not in self._allowed_hosts:
            return f"refused: requests from {origin} are not allowed"
        if not hmac.compare_digest(request.match_info.get("token", ""), self.token):
            return "refused: this viewer needs the token of the URL it printed"
        return None

    def application(self) -> web.Application:
        """Return the aiohttp application: the page, its files and the WebSocket."""
        from aiohttp import web

        @web.middleware
        async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
            problem = self._refusal(request)
            if problem is not None:
                return web.Response(status=403, text=problem + "\n")
            response: web.StreamResponse = await handler(request)
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "no-referrer"
            response.headers["Cache-Control"] = "no-store"
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; img-src 'self' blob: data:; connect-src 'self';"
                " frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
            )
            return response

        app = web.Application(middlewares=[guard], client_max_size=1 << 16)
        app.router.add_get("/{token}/", self._index)
        app.router.add_get("/{token}/ws", self._websocket)
        app.router.add_get("/{token}/static/{name}", self._static)
        return app

    async def _index(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = _static_file("index.html")
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        name = request.match_info["name"]
        kinds = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        kind = kinds.get(os.path.splitext(name)[1])
        if kind is None or name not in _static_names():
            raise web.HTTPNotFound(text=f"no file {name}\n")
        return web.Response(body=_static_file(name), content_type=kind, charset="utf-8")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        ws = web.WebSocketResponse(max_msg_size=1 << 16, heartbeat=30.0, compress=False)
        await ws.prepare(request)
        session = Session(self, ws)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
        return ws

    # -- files under the root ---------------------------------------------------------------

    def resolve(self, relative: str) -> str:
        """Return the real path of `relative` under the root.

        Raises:
            binglide.RequestError: no root was given, or the path leaves it.
        """
        if self.root is None:
            raise binglide.RequestError("the viewer has no --root: only its files can be opened")
        if "\0" in relative or os.path.isabs(relative):
            raise binglide.RequestError("a path under the root is relative")
        real = os.path.realpath(os.path.join(self.root, relative))
        if real != self.root and not real.startswith(self.root + os.sep):
            raise binglide.RequestError(f"{relative} is outside the root")
        return real

    def open_file(self, relative: str) -> FileEntry:
        """Add the file `relative` under the root to the files every page may show.

        Returns:
            Its entry (the one already there, if it was opened before).

        Raises:
            binglide.RequestError: it is not a file under the root.
        """
        real = self.resolve(relative)
        if not os.path.isfile(real):
            raise binglide.RequestError(f"{relative} is not a file")
        for entry in self.files:
            if entry.path == real:
                return entry
        entry = FileEntry(len(self.files), real, os.path.basename(real))
        self.files.append(entry)
        return entry

    def listing(self, relative: str) -> dict[str, Any]:
        """Return the entries of a directory under the root."""
        real = self.resolve(relative)
        entries = []
        try:
            with os.scandir(real) as it:
                for item in sorted(it, key=lambda e: e.name):
                    with contextlib.suppress(OSError):
                        is_dir = item.is_dir()
                        if not is_dir and not item.is_file():
                            continue
                        size = None if is_dir else item.stat().st_size
                        entries.append({"name": item.name, "dir": is_dir, "size": size})
        except OSError as exc:
            raise binglide.RequestError(f"cannot list {relative or '.'}: {exc.strerror}") from None
        path = os.path.relpath(real, self.root) if self.root else ""
        return {"path": "" if path == "." else path, "entries": entries}


@attrs.define
class _Running:
    scope: anyio.CancelScope
    slot: str | None
    superseded: bool = False


class Session:
    """One page: its requests, their slots, and the frames sent back."""

    def __init__(self, viewer: Viewer, ws: web.WebSocketResponse) -> None:
        self.viewer = viewer
        self.ws = ws
        self.views = Views(viewer.client, viewer.files, cache=viewer.cache)
        self.running: dict[int, _Running] = {}
        self.slots: dict[str, int] = {}
        self.outbox = Outbox()

    async def run(self) -> None:
        """Serve the page until it closes; then cancel whatever it left running."""
        from aiohttp import WSMsgType

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._sender)
            try:
                async for message in self.ws:
                    if message.type == WSMsgType.TEXT or message.type == WSMsgType.BINARY:
                        self._receive(message.data, tg)
                    else:
                        break
            finally:
                # The page is gone: cancel everything of it, at the workers too.
                tg.cancel_scope.cancel()
                self.outbox.close()

    async def _sender(self) -> None:
        while (frame := await self.outbox.get()) is not None:
            try:
                await self.ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                return

    def _emit(self, header: dict[str, Any], arrays: dict[str, Any] | None = None) -> None:
        self.outbox.put(header, arrays)

    def _receive(self, data: str | bytes, tg: TaskGroup) -> None:
        try:
            message = parse(data)
        except MessageError as exc:
            self.viewer._counts["refused"] += 1
            self._emit({"id": exc.id, "kind": "error", "final": True, "message": str(exc)})
            return
        if isinstance(message, Cancel):
            running = self.running.get(message.id)
            if running is not None:
                running.scope.cancel()
            return
        if message.id in self.running:
            self.viewer._counts["refused"] += 1
            self._emit(
                {
                    "id": message.id,
                    "kind": "error",
                    "final": True,
                    "message": f"request {message.id} is already running: ids must be new",
                }
            )
            return
        if len(self.running) >= MAX_OPEN_REQUESTS:
            self.viewer._counts["refused"] += 1
            self._emit(
                {
                    "id": message.id,
                    "kind": "error",
                    "final": True,
                    "message": f"at most {MAX_OPEN_REQUESTS} requests may be open at once",
                }
            )
            return
        if message.slot is not None:
            old = self.slots.get(message.slot)
            if old is not None and old in self.running:
                self.running[old].superseded = True
                self.running[old].scope.cancel()
            self.slots[message.slot] = message.id
        running = _Running(anyio.CancelScope(), message.slot)
        self.running[message.id] = running
        tg.start_soon(self._serve, message, running)

    async def _serve(self, request: Request, running: _Running) -> None:
        counts = self.viewer._counts
        outcome = "cancelled"
        try:
            with running.scope:
                try:
                    outcome = await self._answer(request)
                except binglide.JobCancelled:
                    outcome = "cancelled"
                except binglide.BinglideError as exc:
                    outcome = "failed"
                    self._emit(
                        {"id": request.id, "kind": "error", "final": True, "message": str(exc)}
                    )
                except Exception as exc:  # a bug of ours: say so, and serve on
                    log.exception("request %s (%s) failed", request.id, request.op)
                    outcome = "failed"
                    self._emit(
                        {
                            "id": request.id,
                            "kind": "error",
                            "final": True,
                            "message": f"internal error: {type(exc).__name__}: {exc}",
                        }
                    )
        finally:
            self.running.pop(request.id, None)
            if running.slot is not None and self.slots.get(running.slot) == request.id:
                del self.slots[running.slot]
            counts[outcome] += 1
            if outcome == "cancelled":
                reason = "superseded" if running.superseded else "cancelled"
                self._emit(
                    {"id": request.id, "kind": "cancelled", "final": True, "reason": reason}
                )

    async def _answer(self, request: Request) -> str:
        params = request.params
        if request.op == "export":
            name, data = await self.views.export(params["request"], params["format"])
            import numpy as np

            self._emit(
                {"id": request.id, "kind": "file", "final": True, "meta": {"name": name}},
                {"bytes": np.frombuffer(data, dtype=np.uint8)},
            )
            return "completed"
        if request.op == "list":
            listing = await anyio.to_thread.run_sync(self.viewer.listing, params["path"])
            self._emit({"id": request.id, "kind": "info", "final": True, "meta": listing})
            return "completed"
        if request.op == "open":
            entry = self.viewer.open_file(params["path"])
            meta = {**self.views.info(), "opened": entry.index}
            self._emit({"id": request.id, "kind": "info", "final": True, "meta": meta})
            return "completed"
        async with contextlib.aclosing(self.views.run(request.op, params)) as outs:
            async for out in outs:
                self._send_out(request, out)
        return "completed"

    def _send_out(self, request: Request, out: Out) -> None:
        header = {"id": request.id, "kind": "report", "op": request.op, **out.header}
        if request.op == "info":
            header["kind"] = "info"
            header["meta"] = {**header["meta"], "root": self.viewer.root is not None}
        self._emit(header, out.arrays)


def _check_files(
    paths: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str] | None
) -> tuple[list[FileEntry], str | None]:
    """Return the files to show and the real root, checked.

    Raises:
        binglide.RequestError: a path is not a readable file, or root is not a directory.
    """
    entries = []
    for index, path in enumerate(paths):
        real = os.path.realpath(os.fspath(path))
        if not os.path.isfile(real) or not os.access(real, os.R_OK):
            raise binglide.RequestError(f"cannot read {os.fspath(path)}: not a readable file")
        entries.append(FileEntry(index, real, os.path.basename(os.fspath(path))))
    real_root = None
    if root is not None:
        real_root = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real_root):
            raise binglide.RequestError(f"--root {os.fspath(root)} is not a directory")
    return entries, real_root


_STATIC = importlib.resources.files("binglide.viewer") / "static"


def _static_names() -> frozenset[str]:
    return frozenset(p.name for p in _STATIC.iterdir() if p.is_file())


def _static_file(name: str) -> bytes:
    return (_STATIC / name).read_bytes()


@asynccontextmanager
async def serve(
    client: binglide.Client,
    paths: Sequence[str | os.PathLike[str]],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    root: str | os.PathLike[str] | None = None,
    token: str | None = None,
    allowed_hosts: Sequence[str] = (),
) -> AsyncIterator[Viewer]:
    """Serve the viewer of `paths` over `client` until the block exits.

    Runs on asyncio (aiohttp's loop). The overview's byte-class layer needs
    workers of `binglide.viewer.ClassesService` (``binglide.connect(services=
    [ClassesService])``); without them it shows an error and the entropy
    layer still works.

    Args:
        client: an open client (`binglide.connect`): every analysis goes through it.
        paths: the files the page may look at (one, or two for a diff).
        host: the address to listen on (default: loopback only).
        port: the port (0: any free one).
        root: a directory whose files the page may also open, by a path
            relative to it that the server checks.
        token: the secret of the URL (default: a new random one).
        allowed_hosts: more ``Host`` names to accept (besides loopback and `host`).

    Yields:
        The running `Viewer`; ``viewer.url`` is the address to open.

    Raises:
        binglide.RequestError: a path is not a readable file, or root is not a directory.
        OSError: the address cannot be listened on.
    """
    from aiohttp import web

    entries, real_root = _check_files(paths, root)
    viewer = Viewer(client, entries, token=token or secrets.token_urlsafe(24), root=real_root)
    runner = web.AppRunner(viewer.application(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        viewer._bind(host, int(bound), allowed_hosts)
        yield viewer
    finally:
        with anyio.CancelScope(shield=True):
            for session in list(viewer._sessions):
                await session.ws.close()
            await runner.cleanup()
