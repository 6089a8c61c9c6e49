"""Files the workers cannot see: the client serves them through its ``source`` service.

The workers here are confined to an empty directory (``roots``): they cannot
open the test's files themselves, so every byte they compute on must come
through the client's `binglide.FileServer`. The results are checked against
numpy references over the bytes written, and the server's statistics show
the bytes really went through it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import binglide
from binglide.services.segments import point_edges

from .helpers import wait_until
from .services import references as ref

MiB = 1 << 20


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    """Two files of several chunks each (mixed content), and a small one."""
    rng = np.random.default_rng(16)
    text = b"the client serves its own files\n" * (MiB // 32)
    big = rng.integers(0, 256, 3 * MiB, dtype=np.uint8).tobytes() + text + bytes(MiB // 2)
    other = bytearray(big)
    for pos in rng.integers(0, len(big), 500):
        other[pos] ^= 0x55
    out = {}
    for name, data in (("big.bin", big), ("other.bin", bytes(other)), ("small.txt", text[:5000])):
        path = tmp_path / "files" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        out[str(path)] = data
    return out


@pytest.fixture
def jail(tmp_path: Path) -> Path:
    """The only directory the workers may read: empty."""
    path = tmp_path / "jail"
    path.mkdir()
    return path


def _u8(data: bytes) -> np.ndarray[Any, Any]:
    return np.frombuffer(data, np.uint8)


async def test_workers_that_cannot_see_the_files_compute_through_the_source(
    tmp_path: Path, files: dict[str, bytes], jail: Path
) -> None:
    big, other, _ = files
    data, data2 = _u8(files[big]), _u8(files[other])
    server = binglide.FileServer()
    with anyio.fail_after(60):
        async with binglide.connect(
            workers=2, roots=[jail], cache_dir=tmp_path / "cache", serve_files=server
        ) as client:
            hist = await client.histogram(big)
            bigrams = await client.ngrams(big, (1000, 2 * MiB + 77), n=2, bits=4)
            profile = await client.entropy(big, resolution=64)
            sliding = await client.entropy(big, mode="sliding", window=4096, resolution=32)
            diff = await client.diff(big, other, resolution=16)
            view = await client.data(big, (10, 5010), size=65536)
            stats = await client.stats(big)
            served = server.statistics()
            again = await client.histogram(big)  # from the cache
            after_cache = server.statistics()
    np.testing.assert_array_equal(hist.array, ref.byte_histogram(data))
    np.testing.assert_array_equal(
        bigrams.array, ref.ngram_histogram(data[1000 : 2 * MiB + 77], 2, 4)
    )
    edges = point_edges(0, len(data), 64)
    expected = [
        ref.entropy(np.bincount(data[a:b], minlength=256)) for a, b in itertools.pairwise(edges)
    ]
    np.testing.assert_allclose(profile.array, expected, atol=1e-9)
    points = point_edges(0, len(data), 32)
    centres = (points[:-1] + points[1:]) // 2
    np.testing.assert_allclose(sliding.array, ref.sliding_entropy(data, 4096, centres), atol=1e-9)
    np.testing.assert_array_equal(
        diff.array, ref.diff_counts(data, data2, point_edges(0, len(data), 16))
    )
    np.testing.assert_array_equal(view.array, data[10:5010])
    assert stats.meta["entropy"] == pytest.approx(ref.ent(files[big])["entropy"], abs=1e-9)
    # Every byte came through the client's source, and only through it.
    assert served.files == 2
    assert served.bytes >= len(data) + len(data2)
    assert served.refused == 0
    np.testing.assert_array_equal(again.array, hist.array)
    # The cache answered (by the named identity): at most a sample was read again.
    assert after_cache.bytes - served.bytes < len(data) // 4


async def test_without_serving_the_same_workers_are_refused(
    tmp_path: Path, files: dict[str, bytes], jail: Path
) -> None:
    big = next(iter(files))
    with anyio.fail_after(30):
        async with binglide.connect(workers=1, roots=[jail], cache_dir=tmp_path / "c") as client:
            with pytest.raises(binglide.RequestError, match="outside the allowed roots"):
                await client.histogram(big)


async def test_workers_that_see_the_same_file_read_it_themselves(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    big = next(iter(files))
    server = binglide.FileServer()
    with anyio.fail_after(30):
        async with binglide.connect(
            workers=2, cache_dir=tmp_path / "cache", serve_files=server
        ) as client:
            hist = await client.histogram(big)
    np.testing.assert_array_equal(hist.array, ref.byte_histogram(_u8(files[big])))
    assert server.statistics().files == 1
    assert server.statistics().reads == 0  # same size and mtime here: read locally


class _ChangingServer(binglide.FileServer):
    """Rewrites `victim` (same size, new mtime) just before its first read is answered."""

    def __init__(self, victim: str) -> None:
        super().__init__()
        self.victim = victim
        self.changed = False

    async def answer(self, body: Any) -> Any:
        if body.get("path") == self.victim and not self.changed:
            self.changed = True
            st = os.stat(self.victim)
            os.utime(self.victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        return await super().answer(body)


async def test_a_file_changed_mid_run_is_one_error_record(
    tmp_path: Path, files: dict[str, bytes], jail: Path
) -> None:
    big = next(iter(files))
    server = _ChangingServer(big)
    with anyio.fail_after(60):
        async with binglide.connect(
            workers=2, roots=[jail], cache_dir=tmp_path / "cache", serve_files=server
        ) as client:
            paths = list(files)
            async with binglide.analyse_files(client, paths, in_flight=1) as run:
                results = {r.path: r async for r in run}
    assert server.changed
    assert set(results) == set(files)
    assert not results[big].ok
    assert isinstance(results[big].error, binglide.RequestError)
    assert "changed" in str(results[big].error)
    for path in paths[1:]:
        assert results[path].ok, results[path].error
        meta = results[path].reports["stats"].meta
        assert meta["entropy"] == pytest.approx(ref.ent(files[path])["entropy"], abs=1e-9)
    assert server.statistics().refused >= 1


async def test_the_source_refuses_what_its_client_did_not_name(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    big, other, small = files
    server = binglide.FileServer()
    with anyio.fail_after(30):
        async with binglide.connect(
            workers=1, cache_dir=tmp_path / "cache", serve_files=server
        ) as client:
            await client.stats(small)  # names small only
            identity = _identity(other)
            with pytest.raises(binglide.RequestError, match="serves only the files its client"):
                await client.request(
                    server.service_name,
                    {"path": other, "identity": identity, "start": 0, "stop": 10},
                )
            with pytest.raises(binglide.RequestError, match="serves only the files its client"):
                await client.request(
                    server.service_name,
                    {"path": "/etc/passwd", "identity": identity, "start": 0, "stop": 10},
                )
            # A named file, but another version than the one named.
            wrong = {**_identity(small), "mtime_ns": 12345}
            with pytest.raises(binglide.RequestError, match="changed"):
                await client.request(
                    server.service_name,
                    {"path": small, "identity": wrong, "start": 0, "stop": 10},
                )
            with pytest.raises(binglide.RequestError, match="past its end"):
                await client.request(
                    server.service_name,
                    {"path": small, "identity": _identity(small), "start": 0, "stop": 10**6},
                )
            good = await client.request(
                server.service_name,
                {"path": small, "identity": _identity(small), "start": 100, "stop": 200},
            )
    assert good.array.tobytes() == files[small][100:200]
    assert good.meta["identity"] == _identity(small)
    assert server.statistics().refused == 4
    del big


def _identity(path: str) -> dict[str, int]:
    st = os.stat(path)
    return {
        "device": st.st_dev,
        "inode": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }


class _LyingSource(binglide.Service):
    """A source service that answers one byte short."""

    name = "source.liar"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        body = task.body
        yield binglide.Report(
            np.zeros(body["stop"] - body["start"] - 1, np.uint8),
            meta={"identity": body["identity"]},
        )


def _served_body(path: str, via: str) -> dict[str, Any]:
    return {
        "inputs": [{"source": path, "via": via, "identity": _identity(path)}],
        "options": {},
    }


async def test_the_worker_checks_what_the_source_answered(
    tmp_path: Path, files: dict[str, bytes], jail: Path
) -> None:
    small = list(files)[2]
    with anyio.fail_after(30):
        async with binglide.connect(
            workers=1, roots=[jail], cache_dir=tmp_path / "c", services=[_LyingSource]
        ) as client:
            with pytest.raises(binglide.RequestError, match="changed while it was read"):
                await client.request("histogram", _served_body(small, "source.liar"))


async def test_a_source_that_is_gone_is_a_request_error_naming_the_file(
    tmp_path: Path, files: dict[str, bytes], jail: Path
) -> None:
    small = list(files)[2]
    config = binglide.BrokerConfig(service_timeout=0.5)
    with anyio.fail_after(30):
        async with binglide.connect(
            workers=1, roots=[jail], cache_dir=tmp_path / "c", config=config
        ) as client:
            with pytest.raises(binglide.RequestError, match="is gone") as caught:
                await client.request("histogram", _served_body(small, "source.nobody"))
            assert small in str(caught.value)
            # A malformed via is refused up front.
            with pytest.raises(binglide.RequestError, match="source service"):
                await client.request("histogram", _served_body(small, "histogram"))


class _StuckSource(binglide.Service):
    """A source service that never answers; says when it was asked and when cancelled."""

    name = "source.stuck"
    asked = anyio.Event()
    cancelled = anyio.Event()

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        type(self).asked.set()
        try:
            await anyio.sleep_forever()
        finally:
            type(self).cancelled.set()
        yield binglide.Report(None)  # pragma: no cover


async def test_a_task_waiting_on_its_source_is_waiting_and_cancellable(
    tmp_path: Path, files: dict[str, bytes], jail: Path
) -> None:
    small = list(files)[2]
    _StuckSource.asked, _StuckSource.cancelled = anyio.Event(), anyio.Event()
    with anyio.fail_after(30):
        async with binglide.connect(
            workers=1, roots=[jail], cache_dir=tmp_path / "c", services=[_StuckSource]
        ) as client:
            call = client.request("stats", _served_body(small, "source.stuck"))
            await _StuckSource.asked.wait()
            broker = client.broker
            assert broker is not None
            # The task reading through its source counts as waiting: the
            # broker may give its worker other tasks meanwhile.
            await wait_until(lambda: _waiting(broker, "stats") == 1)
            call.cancel()
            with pytest.raises(binglide.JobCancelled):
                await call
            await _StuckSource.cancelled.wait()


def _waiting(broker: binglide.Broker, service: str) -> int:
    return sum(s.waiting for s in broker.statistics().services if s.name == service)


async def test_the_command_serves_its_files_to_worker_processes_that_cannot_see_them(
    tmp_path: Path, files: dict[str, bytes], jail: Path
) -> None:
    """Real processes over ipc://: a broker, workers confined to `jail`, the command."""
    import json
    import subprocess
    import sys

    from .zmq_helpers import child_env, ipc_address, processes, spawn

    with ipc_address() as address, processes() as procs, anyio.fail_after(120):
        broker = spawn(["broker", address], stdout=subprocess.PIPE)
        procs.append(broker)
        assert broker.stdout is not None
        line = await anyio.to_thread.run_sync(broker.stdout.readline)
        assert line.startswith(b"listening on "), line
        worker_args = ["worker", address, "stats", "chunk", "--root", str(jail)]
        procs.append(spawn([*worker_args, "--cache-dir", str(tmp_path / "wcache")]))
        command = [sys.executable, "-m", "binglide", "stats", *files, "--connect", address]
        command += ["--jsonl", "-", "--no-progress"]
        refused = await anyio.run_process(command, env=child_env(), check=False)
        served = await anyio.run_process([*command, "--serve-files"], env=child_env())
    # Without --serve-files the workers cannot read the files: one error each.
    lines = [json.loads(x) for x in refused.stdout.decode().splitlines()]
    assert refused.returncode != 0
    assert len(lines) == len(files)
    assert all("outside the allowed roots" in doc["error"]["message"] for doc in lines)
    docs = {doc["path"]: doc for doc in map(json.loads, served.stdout.decode().splitlines())}
    assert set(docs) == set(files)
    for path, data in files.items():
        assert docs[path]["error"] is None, docs[path]
        expected = ref.ent(data)
        assert docs[path]["meta"]["entropy"] == pytest.approx(expected["entropy"], abs=1e-9)
        assert docs[path]["meta"]["mean"] == pytest.approx(expected["mean"], abs=1e-9)
