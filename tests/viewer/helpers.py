"""What the viewer's tests share: files to look at, a running viewer, a page's socket."""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import numpy as np

import binglide
from binglide.services import ANALYSES, HELPERS, ChunkService
from binglide.viewer import ClassesService, serve
from binglide.viewer.protocol import decode_frame

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from aiohttp import ClientSession, ClientWebSocketResponse

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: The synthetic file's blocks: text, zeros, random bytes, each BLOCK long.
BLOCK = 1 << 20


def synthetic(path: os.PathLike[str] | str) -> bytes:
    """Write a file of a text block, a zero block and a random block; return its bytes."""
    rng = np.random.default_rng(7)
    words = b"the quick brown fox jumps over the lazy dog; binglide shows text as text.\n"
    text = (words * (BLOCK // len(words) + 1))[:BLOCK]
    data = text + bytes(BLOCK) + rng.integers(0, 256, BLOCK, dtype=np.uint8).tobytes()
    with open(path, "wb") as stream:
        stream.write(data)
    return data


class BlockingChunk(ChunkService):
    """The ``chunk`` service, held until released; records what reaches it and what is cancelled.

    Shared state lives on the class (one test at a time): `started` and
    `cancelled` hold the job ids of the chunk tasks.
    """

    started: ClassVar[list[str]] = []
    cancelled: ClassVar[list[str]] = []
    release: ClassVar[anyio.Event | None] = None

    @classmethod
    def reset(cls) -> None:
        cls.started = []
        cls.cancelled = []
        cls.release = anyio.Event()

    async def handle(self, task: binglide.Task, ctx: binglide.Context) -> Any:
        type(self).started.append(task.job)
        release = type(self).release
        try:
            if release is not None:
                await release.wait()
        except anyio.get_cancelled_exc_class():
            type(self).cancelled.append(task.job)
            raise
        async for report in super().handle(task, ctx):
            yield report


def services(*, blocking: bool = False) -> list[type[binglide.Service]]:
    """The services a viewer test runs: the built-ins (chunk held if asked) and classes."""
    helpers = [BlockingChunk if s is ChunkService and blocking else s for s in HELPERS]
    return [*ANALYSES, *helpers, ClassesService]


@asynccontextmanager
async def running(
    paths: Iterable[os.PathLike[str] | str],
    cache_dir: os.PathLike[str] | str,
    *,
    blocking: bool = False,
    **options: Any,
) -> AsyncIterator[tuple[binglide.Client, binglide.viewer.Viewer]]:
    """A client (2 workers a service) and a viewer of `paths` over it."""
    async with (
        binglide.connect(
            builtins=False, services=services(blocking=blocking), workers=2, cache_dir=cache_dir
        ) as client,
        serve(client, list(paths), **options) as viewer,
    ):
        yield client, viewer


def idle(client: binglide.Client) -> bool:
    """Whether the embedded broker holds no task (every one finished or cancelled)."""
    assert client.broker is not None
    stats = client.broker.statistics()
    return not stats.dispatched and not stats.pending


def ws_url(viewer: binglide.viewer.Viewer) -> str:
    return viewer.url.replace("http://", "ws://") + "ws"


async def frames_until_final(
    ws: ClientWebSocketResponse, ids: Iterable[int]
) -> dict[int, list[tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]]]:
    """Read frames until each of `ids` has its final one; return them by id."""
    waiting = set(ids)
    got: dict[int, list[tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]]] = {}
    while waiting:
        message = await ws.receive()
        header, arrays = decode_frame(message.data)
        got.setdefault(header["id"], []).append((header, arrays))
        if header.get("final"):
            waiting.discard(header["id"])
    return got


async def ask(
    ws: ClientWebSocketResponse, message: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    """Send one request; return its final frame."""
    await ws.send_str(json.dumps(message))
    got = await frames_until_final(ws, [message["id"]])
    return got[message["id"]][-1]


@asynccontextmanager
async def page_socket(
    session: ClientSession, viewer: binglide.viewer.Viewer
) -> AsyncIterator[ClientWebSocketResponse]:
    origin = f"http://127.0.0.1:{viewer.port}"
    async with session.ws_connect(ws_url(viewer), headers={"Origin": origin}) as ws:
        yield ws
