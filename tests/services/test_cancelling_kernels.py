"""A cancelled request leaves no kernel thread computing behind it.

Kernel threads cannot be interrupted; they check for a cancellation between
pieces of bounded work (`binglide.services.threads.checkpoint`), and the
handler waits for its thread to stop. These tests hold a kernel at its
first check until its request is cancelled, then see the thread leave the
kernel by the cancellation, not by finishing its work. (How soon after a
cancel the work stops is measured by bench/cancel.py.)
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import numpy as np
import pytest

import binglide
from binglide.services import resources, segments, sources, threads

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

MiB = 1 << 20


class KernelWatch:
    """Hold the first kernel that checks for cancellation until it is cancelled; watch it end."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.ended = threading.Event()
        self.ending: list[BaseException | None] = []
        self.checks_after_end = 0
        self._lock = threading.Lock()
        self._held = False

    def checkpoint(self) -> None:
        if self.ended.is_set():
            self.checks_after_end += 1
        with self._lock:
            hold, self._held = not self._held, True
        if hold:
            self.started.set()
            # Mid-run: keep checking (as the kernel does between pieces)
            # until the cancellation of its request reaches this thread.
            while True:
                threads.checkpoint()
                self.ended.wait(0.001)
        threads.checkpoint()

    def kernel(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any, **kwargs: Any) -> Any:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._end(exc)
                raise
            self._end(None)
            return result

        return watched

    def _end(self, exc: BaseException | None) -> None:
        if self.started.is_set() and not self.ended.is_set():
            self.ending.append(exc)
            self.ended.set()


async def _cancel_once_started(
    client: binglide.Client, call: binglide.Call, watch: KernelWatch
) -> None:
    outcome: list[BaseException] = []

    async def wait() -> None:
        try:
            await call
        except binglide.JobCancelled as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        assert await anyio.to_thread.run_sync(watch.started.wait, 20)
        call.cancel()
        assert await anyio.to_thread.run_sync(watch.ended.wait, 20)
    assert len(outcome) == 1
    # The thread left the kernel through the cancellation: the work stopped.
    (exc,) = watch.ending
    assert isinstance(exc, anyio.get_cancelled_exc_class())
    assert watch.checks_after_end == 0
    # And the workers go on serving.
    assert (await client.histogram(__file__)).array.sum() > 0


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    rng = np.random.default_rng(3)
    path.write_bytes(rng.integers(0, 256, 24 * MiB, dtype=np.uint8).tobytes())
    return path


async def test_a_cancelled_sliding_entropy_stops_its_kernel_thread(
    tmp_path: Path, big_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = KernelWatch()
    monkeypatch.setattr(segments, "checkpoint", watch.checkpoint)
    monkeypatch.setattr(segments, "sliding_windows", watch.kernel(segments.sliding_windows))
    with anyio.fail_after(60):
        async with binglide.connect(workers=1, cache_dir=tmp_path / "cache") as client:
            call = client.entropy(
                big_file,
                mode="sliding",
                window=65536,
                resolution=65536,
                reports={"estimate": False},
            )
            await _cancel_once_started(client, call, watch)


async def test_a_cancelled_chunk_stops_its_kernel_thread(
    tmp_path: Path, big_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The chunked analyses check between the pieces they read.
    watch = KernelWatch()
    monkeypatch.setattr(sources, "checkpoint", watch.checkpoint)
    monkeypatch.setattr(resources.NGrams, "compute", watch.kernel(resources.NGrams.compute))
    with anyio.fail_after(60):
        async with binglide.connect(workers=1, cache_dir=tmp_path / "cache") as client:
            call = client.ngrams(big_file, n=3, reports={"estimate": False})
            await _cancel_once_started(client, call, watch)
