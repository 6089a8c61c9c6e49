"""The viewer's server: its guards, its sessions, and answers that match the library's."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import numpy as np
import pytest

import binglide
from binglide.viewer import serve
from tests.helpers import wait_until

from .helpers import (
    BLOCK,
    BlockingChunk,
    ask,
    frames_until_final,
    idle,
    page_socket,
    running,
    synthetic,
)
from .test_tiles import reference_counts


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.bin"
    synthetic(path)
    return path


async def test_the_page_needs_the_token(sample: Path, tmp_path: Path) -> None:
    with anyio.fail_after(30):
        async with running([sample], tmp_path / "c") as (_, viewer), aiohttp.ClientSession() as s:
            base = f"http://127.0.0.1:{viewer.port}"
            async with s.get(viewer.url) as r:
                assert r.status == 200
                assert "static/app.js" in await r.text()
                assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
            async with s.get(viewer.url + "static/app.js") as r:
                assert r.status == 200
                assert r.content_type == "text/javascript"
            for path in ("/", "/static/app.js", "/wrong-token/", f"/{viewer.token}x/"):
                async with s.get(base + path) as r:
                    assert r.status in (403, 404), path
                    if r.status == 403:
                        assert "token" in await r.text()
            async with s.get(base + "/wrong/ws") as r:
                assert r.status == 403
            async with s.get(viewer.url + "static/..%2f..%2fserver.py") as r:
                assert r.status == 404
            async with s.get(viewer.url + "static/nothing.js") as r:
                assert r.status == 404


async def test_a_foreign_host_or_origin_is_refused(sample: Path, tmp_path: Path) -> None:
    with anyio.fail_after(30):
        async with running([sample], tmp_path / "c") as (_, viewer), aiohttp.ClientSession() as s:
            # DNS rebinding: a foreign name that resolves to 127.0.0.1.
            async with s.get(viewer.url, headers={"Host": f"evil.example:{viewer.port}"}) as r:
                assert r.status == 403
                assert "Host" in await r.text()
            async with s.get(viewer.url, headers={"Origin": "http://evil.example"}) as r:
                assert r.status == 403
            ws = viewer.url.replace("http://", "ws://") + "ws"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await s.ws_connect(ws, headers={"Origin": "http://evil.example"})
            assert refused.value.status == 403
            async with s.get(viewer.url, headers={"Host": f"localhost:{viewer.port}"}) as r:
                assert r.status == 200


async def test_the_server_binds_loopback_by_default(sample: Path, tmp_path: Path) -> None:
    with anyio.fail_after(30):
        async with running([sample], tmp_path / "c") as (_, viewer):
            assert viewer.host == "127.0.0.1"
            assert viewer.url.startswith(f"http://127.0.0.1:{viewer.port}/")
            assert len(viewer.token) >= 32


async def test_serve_refuses_what_it_cannot_show(tmp_path: Path) -> None:
    async with binglide.connect(workers=1, cache_dir=tmp_path / "c") as client:
        with pytest.raises(binglide.RequestError, match="not a readable file"):
            async with serve(client, [tmp_path / "missing"]):
                pass
        with pytest.raises(binglide.RequestError, match="not a directory"):
            async with serve(client, [], root=tmp_path / "missing"):
                pass


HOSTILE = [
    "not json at all",
    '{"id": 1, "op": "histogram", "file": "/etc/passwd"}',
    '{"id": 2, "op": "histogram", "file": 0, "source": "/etc/passwd"}',
    '{"id": 3, "op": "histogram", "file": 7}',
    '{"id": 4, "op": "__class__"}',
    '{"id": 5, "op": "tile", "file": 0, "level": 0, "index": 99999999, "layer": "classes"}',
    '{"id": 6, "op": "open", "path": "../../etc/passwd"}',
    '{"id": 7, "op": "search", "file": 0, "pattern": "zz"}',
    '{"id": 8, "op": "diff"}',
    '{"id": 9, "op": "histogram", "file": 0, "start": 1e300}',
    "[]",
    '{"cancel": -4}',
]


async def test_hostile_messages_get_error_frames_and_the_session_goes_on(
    sample: Path, tmp_path: Path
) -> None:
    with anyio.fail_after(60):
        async with (
            running([sample], tmp_path / "c") as (client, viewer),
            aiohttp.ClientSession() as s,
            page_socket(s, viewer) as ws,
        ):
            for text in HOSTILE:
                await ws.send_str(text)
                header, _ = await frames_and_one(ws)
                assert header["kind"] == "error", text
                assert header["message"], text
            await ws.send_bytes(b"\x00\x01binary")
            header, _ = await frames_and_one(ws)
            assert header["kind"] == "error"
            assert "text" in header["message"]
            # Still serving, and the answer is the library's.
            header, arrays = await ask(
                ws, {"id": 100, "op": "histogram", "file": 0, "start": 0, "stop": 3 * BLOCK}
            )
            assert header["kind"] == "report"
            assert header["final"]
            expected = await client.histogram(str(sample))
            np.testing.assert_array_equal(arrays["counts"], expected.array.astype(np.float64))
            stats = viewer.statistics()
            assert stats.refused >= 6
            assert stats.failed >= 3
            assert stats.completed >= 1


async def frames_and_one(ws: aiohttp.ClientWebSocketResponse) -> tuple[dict[str, Any], Any]:
    from binglide.viewer.protocol import decode_frame

    message = await ws.receive()
    return decode_frame(message.data)


async def test_views_answer_what_the_library_answers(sample: Path, tmp_path: Path) -> None:
    data = sample.read_bytes()
    with anyio.fail_after(60):
        async with (
            running([sample], tmp_path / "c") as (client, viewer),
            aiohttp.ClientSession() as s,
            page_socket(s, viewer) as ws,
        ):
            info, _ = await ask(ws, {"id": 1, "op": "info"})
            assert info["meta"]["files"] == [{"index": 0, "name": "sample.bin", "size": len(data)}]
            header, arrays = await ask(
                ws, {"id": 2, "op": "ngrams", "file": 0, "start": 10, "stop": BLOCK, "n": 2}
            )
            bigram = await client.ngrams(str(sample), (10, BLOCK), n=2)
            np.testing.assert_array_equal(arrays["counts"], bigram.array)
            header, arrays = await ask(
                ws, {"id": 3, "op": "stats", "file": 0, "start": BLOCK, "stop": 3 * BLOCK}
            )
            stats = await client.stats(str(sample), (BLOCK, 3 * BLOCK))
            assert header["meta"]["entropy"] == pytest.approx(stats.meta["entropy"])
            header, arrays = await ask(
                ws, {"id": 4, "op": "data", "file": 0, "start": 5, "size": 64}
            )
            assert arrays["bytes"].tobytes() == data[5:69]
            # A tile: the classes of 4096 buckets of 2**10 bytes, exact at the end.
            header, arrays = await ask(
                ws, {"id": 5, "op": "tile", "file": 0, "level": 10, "index": 0, "layer": "classes"}
            )
            counts = reference_counts(data[: 4096 << 10], 1 << 10)
            shares = np.rint(counts * 255.0 / counts.sum(axis=1, keepdims=True))
            np.testing.assert_array_equal(arrays["shares"].astype(np.float64), shares)
            header, arrays = await ask(
                ws, {"id": 6, "op": "tile", "file": 0, "level": 10, "index": 0, "layer": "entropy"}
            )
            entropy = await client.entropy(str(sample), (0, 4096 << 10), mode="block", block=1024)
            np.testing.assert_allclose(arrays["entropy"], entropy.array, rtol=1e-6)
            # A search lands on the first occurrence of a pair.
            header, _ = await ask(
                ws,
                {"id": 7, "op": "search", "file": 0, "start": 0, "stop": BLOCK, "pattern": "6f78"},
            )
            assert header["meta"]["offset"] == data.index(b"ox")
            # Asked again: answered from the viewer's cache at once.
            header, _ = await ask(
                ws, {"id": 8, "op": "ngrams", "file": 0, "start": 10, "stop": BLOCK, "n": 2}
            )
            assert header.get("cached") is True
            assert viewer.statistics().cache_hits >= 1


def _tasks_ever(client: binglide.Client) -> int:
    """Every task the embedded broker has seen: ended or alive."""
    assert client.broker is not None
    stats = client.broker.statistics()
    return stats.completed + stats.failed + stats.cancelled + stats.pending + stats.dispatched


@pytest.mark.parametrize(
    "op",
    [
        {"op": "ngrams", "n": 2, "start": 10, "stop": BLOCK},
        {"op": "ngrams", "n": 3, "start": 10, "stop": BLOCK},
        {"op": "stats", "start": 0, "stop": BLOCK},
        {"op": "entropy", "start": 0, "stop": 2 * BLOCK, "resolution": 64},
        {"op": "tile", "level": 10, "index": 0, "layer": "classes"},
    ],
    ids=lambda op: f"{op['op']}{op.get('n', '')}{op.get('layer', '')}",
)
async def test_an_answer_from_the_viewers_cache_sends_no_request(
    sample: Path, tmp_path: Path, op: dict[str, Any]
) -> None:
    # Once, a call was made before the cache was asked: on a hit, it ran to
    # its end in the background, unseen and never cancelled.
    with anyio.fail_after(60):
        async with (
            running([sample], tmp_path / "c") as (client, viewer),
            aiohttp.ClientSession() as s,
            page_socket(s, viewer) as ws,
        ):
            first, _ = await ask(ws, {"id": 1, "file": 0, **op})
            assert not first.get("cached")
            await wait_until(lambda: idle(client))
            before = _tasks_ever(client)
            assert before > 0
            again, _ = await ask(ws, {"id": 2, "file": 0, **op})
            assert again.get("cached") is True
            await anyio.wait_all_tasks_blocked()
            await wait_until(lambda: idle(client))
            assert _tasks_ever(client) == before


async def test_a_slot_cancels_the_request_it_supersedes_at_the_workers(
    sample: Path, tmp_path: Path
) -> None:
    BlockingChunk.reset()
    with anyio.fail_after(60):
        async with (
            running([sample], tmp_path / "c", blocking=True) as (client, viewer),
            aiohttp.ClientSession() as s,
            page_socket(s, viewer) as ws,
        ):
            first = {"id": 1, "op": "ngrams", "slot": "bigram", "file": 0, "n": 2}
            await ws.send_str(json.dumps({**first, "start": 0, "stop": BLOCK}))
            await wait_until(lambda: bool(BlockingChunk.started))  # its chunks reached a worker
            held = set(BlockingChunk.started)
            await ws.send_str(json.dumps({**first, "id": 2, "start": BLOCK, "stop": 2 * BLOCK}))
            got = await frames_until_final(ws, [1])
            assert got[1][-1][0]["kind"] == "cancelled"
            assert got[1][-1][0]["reason"] == "superseded"
            with anyio.fail_after(10):
                await wait_until(lambda: held <= set(BlockingChunk.cancelled))
            assert BlockingChunk.release is not None
            BlockingChunk.release.set()
            got = await frames_until_final(ws, [2])
            assert got[2][-1][0]["kind"] == "report"
            assert got[2][-1][0]["precision"] == 1.0
            assert viewer.statistics().cancelled == 1
            assert client.broker is not None
            assert client.broker.statistics().cancelled >= len(held)


async def test_closing_the_page_cancels_its_work(sample: Path, tmp_path: Path) -> None:
    BlockingChunk.reset()
    with anyio.fail_after(60):
        async with running([sample], tmp_path / "c", blocking=True) as (client, viewer):
            async with aiohttp.ClientSession() as s, page_socket(s, viewer) as ws:
                for i, op in enumerate(("histogram", "stats")):
                    await ws.send_str(json.dumps({"id": i + 1, "op": op, "file": 0}))
                await wait_until(lambda: len(BlockingChunk.started) >= 2)
                held = set(BlockingChunk.started)
            # The socket is closed: everything of that page is cancelled, at the workers too.
            await wait_until(
                lambda: not viewer.statistics().sessions and held <= set(BlockingChunk.cancelled)
            )
            assert viewer.statistics().open == 0
            assert client.broker is not None
            await wait_until(lambda: idle(client))


async def test_a_cancel_message_ends_a_request_with_a_cancelled_frame(
    sample: Path, tmp_path: Path
) -> None:
    BlockingChunk.reset()
    with anyio.fail_after(60):
        async with (
            running([sample], tmp_path / "c", blocking=True) as (_, viewer),
            aiohttp.ClientSession() as s,
            page_socket(s, viewer) as ws,
        ):
            await ws.send_str(json.dumps({"id": 4, "op": "stats", "file": 0}))
            await wait_until(lambda: bool(BlockingChunk.started))
            await ws.send_str(json.dumps({"cancel": 4}))
            got = await frames_until_final(ws, [4])
            assert got[4][-1][0]["kind"] == "cancelled"
            # A second request with a used id is refused while the first runs; ids are new.
            await ws.send_str(json.dumps({"id": 5, "op": "stats", "file": 0}))
            await ws.send_str(json.dumps({"id": 5, "op": "info"}))
            got = await frames_until_final(ws, [5])
            assert got[5][0][0]["kind"] == "error"
            assert "already running" in got[5][0][0]["message"]


async def test_export_writes_what_the_command_writes(sample: Path, tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with (
            running([sample], tmp_path / "c") as (client, viewer),
            aiohttp.ClientSession() as s,
            page_socket(s, viewer) as ws,
        ):
            request = {"op": "histogram", "file": 0, "start": 0, "stop": 2 * BLOCK}
            header, arrays = await ask(
                ws, {"id": 1, "op": "export", "request": request, "format": "json"}
            )
            assert header["kind"] == "file"
            assert header["meta"]["name"].endswith(".json")
            doc = json.loads(arrays["bytes"].tobytes())
            expected = await client.histogram(str(sample), (0, 2 * BLOCK))
            assert doc["service"] == "histogram"
            assert doc["precision"] == 1.0
            assert doc["data"] == expected.array.tolist()
            assert doc["sources"] == [str(sample.resolve())]
            header, arrays = await ask(
                ws,
                {
                    "id": 2,
                    "op": "export",
                    "request": {"op": "entropy", "file": 0, "resolution": 16},
                    "format": "csv",
                },
            )
            lines = arrays["bytes"].tobytes().decode().splitlines()
            assert lines[0] == "index,start,stop,entropy"
            assert len(lines) == 17


async def test_root_lists_and_opens_only_files_under_it(sample: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "inner.bin").write_bytes(b"inside" * 100)
    (tmp_path / "secret.bin").write_bytes(b"secret")
    (root / "escape").symlink_to(tmp_path / "secret.bin")
    with anyio.fail_after(60):
        async with (
            running([sample], tmp_path / "c", root=root) as (_, viewer),
            aiohttp.ClientSession() as s,
            page_socket(s, viewer) as ws,
        ):
            header, _ = await ask(ws, {"id": 1, "op": "list", "path": ""})
            assert [e["name"] for e in header["meta"]["entries"]] == ["escape", "sub"]
            header, _ = await ask(ws, {"id": 2, "op": "open", "path": "sub/inner.bin"})
            assert header["meta"]["files"][1]["name"] == "inner.bin"
            assert header["meta"]["opened"] == 1
            # Opened again: the same file, not a second copy; every page sees it.
            header, _ = await ask(ws, {"id": 4, "op": "open", "path": "./sub/inner.bin"})
            assert header["meta"]["opened"] == 1
            assert len(viewer.files) == 2
            header, arrays = await ask(
                ws, {"id": 3, "op": "data", "file": 1, "start": 0, "size": 6}
            )
            assert arrays["bytes"].tobytes() == b"inside"
            for n, path in enumerate(("escape", "../secret.bin", "/etc/passwd", "sub/../..")):
                header, _ = await ask(ws, {"id": 10 + n, "op": "open", "path": path})
                assert header["kind"] == "error", path


async def test_two_files_diff_and_next_and_previous_difference(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    a = rng.bytes(3 << 20)
    changed = [7, 70_000, 1 << 20, (2 << 20) + 5]
    b = bytearray(a)
    for at in changed:
        b[at] ^= 0xFF
    b += b"tail"  # four bytes past the end of the shorter file: all differ
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(a)
    second.write_bytes(bytes(b))
    differing = [*changed, *range(len(a), len(b))]
    with anyio.fail_after(60):
        async with (
            running([first, second], tmp_path / "c") as (client, viewer),
            aiohttp.ClientSession() as s,
            page_socket(s, viewer) as ws,
        ):
            header, arrays = await ask(ws, {"id": 1, "op": "diff", "resolution": 64})
            expected = await client.diff(str(first), str(second), resolution=64)
            np.testing.assert_array_equal(arrays["counts"], expected.array)
            assert header["meta"]["total"] == len(differing)
            n = 2
            for offset in (0, 7, 8, 69_999, 1 << 20, len(a) - 1, len(a) + 1):
                for direction in (1, -1):
                    header, _ = await ask(
                        ws, {"id": n, "op": "finddiff", "offset": offset, "direction": direction}
                    )
                    n += 1
                    after = [d for d in differing if d > offset]
                    before = [d for d in differing if d < offset]
                    want = (
                        (after[0] if after else None)
                        if direction > 0
                        else (before[-1] if before else None)
                    )
                    assert header["meta"]["offset"] == want, (offset, direction)


async def test_a_preview_is_a_sampled_bigram_that_starts_no_chunk(
    sample: Path, tmp_path: Path
) -> None:
    data = sample.read_bytes()
    BlockingChunk.reset()
    with anyio.fail_after(60):
        async with (
            running([sample], tmp_path / "c", blocking=True) as (_, viewer),
            aiohttp.ClientSession() as s,
            page_socket(s, viewer) as ws,
        ):
            # A small range is read whole: the preview is exact.
            header, arrays = await ask(
                ws, {"id": 1, "op": "ngrams", "file": 0, "start": 100, "stop": 4196, "preview": 1}
            )
            part = np.frombuffer(data[100:4196], dtype=np.uint8).astype(np.int64)
            exact = np.bincount(part[:-1] * 256 + part[1:], minlength=65536).reshape(256, 256)
            np.testing.assert_array_equal(arrays["counts"], exact)
            assert header["precision"] == 1.0
            assert header["meta"]["preview"] is True
            # A large one is sampled: scaled to the range, its precision says how much.
            header, arrays = await ask(
                ws, {"id": 2, "op": "ngrams", "file": 0, "start": 0, "stop": BLOCK, "preview": 1}
            )
            assert header["final"]
            assert 0 < header["precision"] < 0.1
            assert arrays["counts"].sum() == pytest.approx(BLOCK - 1, rel=1e-3)
            text = {(a, b) for a, b in itertools.pairwise(data)}
            lit = {(int(a), int(b)) for a, b in zip(*np.nonzero(arrays["counts"]), strict=True)}
            assert lit <= text
            assert not BlockingChunk.started  # no exact work was started
