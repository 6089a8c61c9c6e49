"""The session's outbox: superseded refinements dropped, estimates and answers kept."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np

from binglide.viewer.outbox import Outbox
from binglide.viewer.protocol import encode_frame


def report(id: int, precision: float, *, final: bool = False) -> dict[str, Any]:
    return {"id": id, "kind": "report", "precision": precision, "final": final}


def counts(value: float) -> dict[str, Any]:
    return {"counts": np.full(4, value, dtype=np.float32)}


async def drain(outbox: Outbox) -> list[bytes]:
    outbox.close()
    frames = []
    while (frame := await outbox.get()) is not None:
        frames.append(frame)
    return frames


async def test_a_refinement_overtaken_unsent_is_replaced_in_place() -> None:
    with anyio.fail_after(5):
        outbox = Outbox()
        outbox.put(report(1, 0.01), counts(1))  # the estimate: always sent
        outbox.put(report(2, 0.01), counts(20))  # another request's estimate
        for precision in (0.125, 0.25, 0.5):
            outbox.put(report(1, precision), counts(precision))
        outbox.put(report(2, 0.5), counts(21))
        frames = await drain(outbox)
        assert frames == [
            encode_frame(report(1, 0.01), counts(1)),
            encode_frame(report(2, 0.01), counts(20)),
            # The newest refinement of 1, where its first unsent one stood.
            encode_frame(report(1, 0.5), counts(0.5)),
            encode_frame(report(2, 0.5), counts(21)),
        ]
        assert outbox.dropped == 2


async def test_the_exact_answer_supersedes_the_unsent_refinement_and_is_kept() -> None:
    with anyio.fail_after(5):
        outbox = Outbox()
        outbox.put(report(1, 0.01), counts(1))
        outbox.put(report(1, 0.25), counts(2))
        outbox.put(report(1, 1.0, final=True), counts(3))
        assert await drain(outbox) == [
            encode_frame(report(1, 0.01), counts(1)),
            encode_frame(report(1, 1.0, final=True), counts(3)),
        ]
        assert outbox.dropped == 1


async def test_a_refinement_already_sent_is_not_dropped_and_a_cancel_keeps_it() -> None:
    with anyio.fail_after(5):
        outbox = Outbox()
        outbox.put(report(1, 0.01), counts(1))
        outbox.put(report(1, 0.25), counts(2))
        assert await outbox.get() == encode_frame(report(1, 0.01), counts(1))
        assert await outbox.get() == encode_frame(report(1, 0.25), counts(2))
        # Sent: the next refinement queues anew rather than replacing it.
        outbox.put(report(1, 0.5), counts(3))
        cancelled = {"id": 1, "kind": "cancelled", "final": True, "reason": "cancelled"}
        outbox.put(cancelled)
        # A new request with the same id starts afresh: its first report is kept.
        outbox.put(report(1, 0.01), counts(4))
        outbox.put({"id": 3, "kind": "error", "final": True, "message": "no"})
        assert await drain(outbox) == [
            encode_frame(report(1, 0.5), counts(3)),
            encode_frame(cancelled, {}),
            encode_frame(report(1, 0.01), counts(4)),
            encode_frame({"id": 3, "kind": "error", "final": True, "message": "no"}, {}),
        ]
        assert outbox.dropped == 0


async def test_get_waits_for_a_frame_and_ends_once_closed() -> None:
    with anyio.fail_after(5):
        outbox = Outbox()
        got: list[bytes | None] = []

        async def take() -> None:
            got.append(await outbox.get())
            got.append(await outbox.get())

        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
            await anyio.wait_all_tasks_blocked()
            assert got == []
            outbox.put(report(5, 1.0, final=True))
            await anyio.wait_all_tasks_blocked()
            assert got == [encode_frame(report(5, 1.0, final=True), {})]
            outbox.close()
        assert got[1] is None
        outbox.put(report(6, 0.1))  # closed: ignored
        assert len(outbox) == 0
