"""Batch runs: `binglide.analyse_files` over files and directories."""

from __future__ import annotations

import os
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import binglide
from binglide.services import resources, sources

from .services import references as ref

MiB = 1 << 20


def _write(path: Path, data: bytes) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, bytes]:
    """A small tree: nested files of several sizes and kinds, symlinks, an empty file."""
    rng = np.random.default_rng(5)
    root = tmp_path / "corpus"
    files = {
        "a/random.bin": rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes(),
        "a/b/text.txt": b"the quick brown fox jumps over the lazy dog\n" * 2000,
        "a/b/zeros.bin": bytes(70_000),
        "c/one": b"\x7f",
        "c/empty": b"",
        "top.bin": rng.integers(0, 4, 5000, dtype=np.uint8).tobytes(),
    }
    for name, data in files.items():
        _write(root / name, data)
    # Symlinks inside the tree are not followed: not to a directory (a loop
    # here), nor to a file (counted once, under its own name). A hard link is
    # the same file under two names: counted once, under the first.
    os.symlink(root / "a", root / "c" / "loop")
    os.symlink(root / "top.bin", root / "c" / "same-as-top")
    os.link(root / "top.bin", root / "top2.bin")
    return {str(root / name): data for name, data in files.items()}


async def _all(run: binglide.CorpusRun) -> list[binglide.FileResult]:
    return [result async for result in run]


async def test_every_file_once_with_exact_stats(tmp_path: Path, corpus: dict[str, bytes]) -> None:
    with anyio.fail_after(60):
        async with binglide.connect(workers=2, cache_dir=tmp_path / "cache") as client:
            root = tmp_path / "corpus"
            async with binglide.analyse_files(client, [root], recursive=True) as run:
                results = await _all(run)
                stats = run.statistics()
    by_path = {r.path: r for r in results}
    assert len(results) == len(by_path) == len(corpus)  # none lost, none twice
    assert set(by_path) == set(corpus)
    for path, data in corpus.items():
        result = by_path[path]
        assert result.ok, result.error
        assert result.size == len(data)
        st = os.stat(path)
        assert result.identity == f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        meta = result.reports["stats"].meta
        expected = ref.ent(data)
        assert meta["size"] == len(data)
        if data:
            assert meta["entropy"] == pytest.approx(expected["entropy"], abs=1e-9)
            assert meta["mean"] == pytest.approx(expected["mean"], abs=1e-9)
    assert stats.files_found == stats.files_done == len(corpus)
    assert stats.files_failed == 0
    assert stats.bytes_found == stats.bytes_done == sum(map(len, corpus.values()))
    assert not stats.walking


async def test_bad_names_are_one_error_record_each_and_the_run_goes_on(
    tmp_path: Path, corpus: dict[str, bytes]
) -> None:
    root = tmp_path / "corpus"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outside = _write(tmp_path / "elsewhere" / "secret.bin", b"x" * 100)
    names = [
        tmp_path / "missing.bin",
        root / "a",  # a directory, without recursive
        fifo,  # not a regular file: never opened (it would block)
        tmp_path / "elsewhere" / "secret.bin",  # outside the workers' roots
        root / "top.bin",
    ]
    with anyio.fail_after(60):
        async with binglide.connect(
            workers=1, cache_dir=tmp_path / "cache", roots=[root]
        ) as client:
            async with binglide.analyse_files(client, names) as run:
                results = {r.path: r for r in await _all(run)}
    assert len(results) == len(names)
    missing, directory, pipe, secret, good = (results[str(n)] for n in names)
    assert isinstance(missing.error, binglide.RequestError)
    assert "no such file" in str(missing.error)
    assert isinstance(directory.error, binglide.RequestError)
    assert "recursive" in str(directory.error)
    assert isinstance(pipe.error, binglide.RequestError)
    assert "not a regular file" in str(pipe.error)
    assert isinstance(secret.error, binglide.RequestError)  # refused by the worker
    assert secret.size == len(outside)
    assert good.ok
    assert good.reports["stats"].meta["size"] == len(corpus[str(root / "top.bin")])


async def test_several_analyses_with_options(tmp_path: Path, corpus: dict[str, bytes]) -> None:
    path = str(tmp_path / "corpus" / "a" / "random.bin")
    with anyio.fail_after(60):
        async with binglide.connect(workers=2, cache_dir=tmp_path / "cache") as client:
            analyses = {"histogram": {}, "entropy": {"resolution": 8}, "stats": {}}
            async with binglide.analyse_files(client, [path], analyses=analyses) as run:
                [result] = await _all(run)
    assert set(result.reports) == {"histogram", "entropy", "stats"}
    data = np.frombuffer(corpus[path], dtype=np.uint8)
    np.testing.assert_array_equal(result.reports["histogram"].array, ref.byte_histogram(data))
    assert len(result.reports["entropy"].array) == 8


class TouchingStats(binglide.Service):
    """Answer like `stats`, but change the file's modification time first."""

    name = "stats"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        path = task.body["inputs"][0]["source"]
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        yield binglide.Report(None, meta={"size": st.st_size})


async def test_a_file_that_changes_while_analysed_is_an_error_record(tmp_path: Path) -> None:
    path = tmp_path / "moving.bin"
    path.write_bytes(b"abc" * 100)
    with anyio.fail_after(30):
        async with binglide.connect(services=[TouchingStats], builtins=False, workers=1) as client:
            async with binglide.analyse_files(client, [path]) as run:
                [result] = await _all(run)
    assert isinstance(result.error, binglide.RequestError)
    assert "changed while it was analysed" in str(result.error)


class Forever(binglide.Service):
    """Never answer: it waits until cancelled, and counts its cancellations."""

    name = "stats"
    started = 0
    cancelled = 0
    all_started = anyio.Event()
    all_cancelled = anyio.Event()

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        Forever.started += 1
        if Forever.started == 3:
            Forever.all_started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            Forever.cancelled += 1
            if Forever.cancelled == 3:
                Forever.all_cancelled.set()
            raise
        yield binglide.Report(None)  # pragma: no cover - never reached


async def test_leaving_the_run_early_cancels_its_work_everywhere(tmp_path: Path) -> None:
    Forever.started = Forever.cancelled = 0
    Forever.all_started = anyio.Event()
    Forever.all_cancelled = anyio.Event()
    names = [tmp_path / f"f{i}" for i in range(3)]
    for name in names:
        _write(name, b"x")
    with anyio.fail_after(30):
        async with binglide.connect(services=[Forever], builtins=False, workers=3) as client:
            async with binglide.analyse_files(client, names, in_flight=3):
                await Forever.all_started.wait()
            # Out of the block: the three requests are cancelled at the workers.
            await Forever.all_cancelled.wait()
            await anyio.wait_all_tasks_blocked()
            assert client.broker is not None
            assert client.broker.statistics().dispatched == 0


@pytest.fixture
def ent_computed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every (start, stop) the ``stats`` resource computes from a file."""
    seen: list[tuple[int, int]] = []
    original = resources.EntResource.compute

    def spy(self: resources.EntResource, source: Any, start: int, stop: int) -> Any:
        seen.append((start, stop))
        return original(self, source, start, stop)

    monkeypatch.setattr(resources.EntResource, "compute", spy)
    return seen


async def test_a_rerun_is_answered_from_the_cache(
    tmp_path: Path, ent_computed: list[tuple[int, int]]
) -> None:
    rng = np.random.default_rng(1)
    paths = [_write(tmp_path / "c" / f"{i}.bin", rng.bytes(4 * MiB)) for i in range(2)]
    assert paths
    with anyio.fail_after(120):
        async with binglide.connect(workers=2, cache_dir=tmp_path / "cache") as client:
            assert client.broker is not None
            tasks, computed = [], []
            for _ in range(2):
                before = client.broker.statistics().completed
                ent_computed.clear()
                async with binglide.analyse_files(client, [tmp_path / "c"], recursive=True) as run:
                    results = await _all(run)
                assert all(r.ok for r in results)
                assert len(results) == 2
                tasks.append(client.broker.statistics().completed - before)
                computed.append(sum(b - a for a, b in ent_computed))
    # The first run computed every byte, the second none; both one task a
    # file (a batch's file is not spread over chunk sub-requests).
    assert computed == [8 * MiB, 0]
    assert tasks == [2, 2]


async def test_a_batch_file_is_one_task_opened_once_stored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Files of several MiB: spread over the workers, each would be cut into
    # chunks of 256 KiB to 1 MiB, one sub-request (and one more opening) each.
    rng = np.random.default_rng(2)
    data = {
        str(tmp_path / "c" / f"{i}.bin"): _write(tmp_path / "c" / f"{i}.bin", rng.bytes(size))
        for i, size in enumerate([300_000, 3 * MiB + 5, 6 * MiB, 20 * MiB - 77])
    }
    resolved: list[str] = []
    real_path = sources.real_path

    def spy(path: str) -> str:
        real = real_path(path)
        if real in data:
            resolved.append(real)
        return real

    monkeypatch.setattr(sources, "real_path", spy)
    with anyio.fail_after(120):
        async with binglide.connect(workers=2, cache_dir=tmp_path / "cache") as client:
            assert client.broker is not None
            before = client.broker.statistics().completed
            async with binglide.analyse_files(client, [tmp_path / "c"], recursive=True) as run:
                results = await _all(run)
            assert client.broker.statistics().completed - before == len(data)
            assert sorted(resolved) == sorted(data)  # one resolution (one opening) a file
    # One cache entry a file, the file's own range: what a rerun reads (the
    # finer blocks a viewer zooming in would read are not made for a batch),
    # and none for a file under the smallest block worth one (1 MiB). A
    # whole file counts the Monte Carlo groups of one residue: ENTA blocks.
    assert not list((tmp_path / "cache").glob("ENT_*"))
    entries = sorted(p.name.split(".", 1)[1] for p in (tmp_path / "cache").glob("ENTA_*"))
    assert entries == sorted(
        f"0_{len(content)}" for content in data.values() if len(content) > MiB
    )
    for result in results:
        assert result.ok, result.error
        expected = ref.ent(data[result.path])
        for name in ("entropy", "chi_square", "mean", "monte_carlo_pi"):
            assert result.reports["stats"].meta[name] == pytest.approx(expected[name], rel=1e-12)


async def test_the_walk_finds_many_files_per_thread_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(100):
        _write(tmp_path / "c" / f"{i // 10}" / f"{i}.bin", bytes([i]) * (i + 1))
    walk_hops = 0
    run_sync = anyio.to_thread.run_sync

    async def spy(fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal walk_hops
        walk_hops += bool(args) and isinstance(args[0], types.GeneratorType)
        return await run_sync(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", spy)
    with anyio.fail_after(60):
        async with binglide.connect(workers=2) as client:
            async with binglide.analyse_files(client, [tmp_path / "c"], recursive=True) as run:
                results = await _all(run)
    assert sorted(r.reports["stats"].meta["size"] for r in results) == list(range(1, 101))
    # A hop per 32 files (the last one short: the walk's end).
    assert walk_hops == -(-100 // 32)


async def test_bad_arguments_are_refused_before_anything_runs(tmp_path: Path) -> None:
    with anyio.fail_after(30):
        async with binglide.connect(workers=1) as client:
            with pytest.raises(ValueError, match="unknown analyses 'diff'"):
                async with binglide.analyse_files(client, [tmp_path], analyses=["diff"]):
                    pass  # pragma: no cover
            with pytest.raises(ValueError, match="in_flight"):
                async with binglide.analyse_files(client, [tmp_path], in_flight=0):
                    pass  # pragma: no cover
            with pytest.raises(TypeError):
                async with binglide.analyse_files(client, [tmp_path], analyses="stats"):
                    pass  # pragma: no cover


async def test_a_batch_starts_loading_the_kernels_when_it_finds_a_large_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from binglide.services import kernels

    preloads = 0

    def preload() -> None:
        nonlocal preloads
        preloads += 1

    monkeypatch.setattr(kernels, "preload_numba", preload)
    small = [_write(tmp_path / "small" / f"{i}.bin", bytes([i]) * 1000) for i in range(40)]
    large = _write(tmp_path / "large" / "big.bin", bytes(range(256)) * (MiB // 256))
    for i in range(40):
        _write(tmp_path / "large" / f"{i}.bin", bytes([i]) * 1000)
    with anyio.fail_after(60):
        async with binglide.connect(workers=2) as client:
            async with binglide.analyse_files(client, [tmp_path / "small"], recursive=True) as run:
                assert len(await _all(run)) == len(small)
            # Small files alone are counted by numpy: nothing to load.
            assert preloads == 0
            async with binglide.analyse_files(client, [tmp_path / "large"], recursive=True) as run:
                results = await _all(run)
    # Once for the run, however many walk batches follow the large file.
    assert preloads == 1
    sizes = sorted(r.reports["stats"].meta["size"] for r in results)
    assert sizes == [1000] * 40 + [len(large)]
