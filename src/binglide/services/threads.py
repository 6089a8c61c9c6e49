"""Running kernels in worker threads, and stopping them soon after a cancel.

The kernels release the GIL, so worker threads use every core. A kernel
thread cannot be interrupted from outside; instead every long kernel works in
pieces of bounded duration (the pieces `binglide.services.sources.Source`
reads) and calls `checkpoint` between them, which raises the cancellation of
the task that started the thread. `run_kernel` waits for the thread to stop
rather than abandoning it, so a cancelled request leaves no thread computing
behind it (a cancelled task's CPU goes to the next task within a piece).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import anyio.from_thread
import anyio.to_thread

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("checkpoint", "run_kernel")

T = TypeVar("T")


async def run_kernel(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking kernel in a worker thread, and return its result.

    On cancellation the caller waits for the thread to reach its next
    `checkpoint` (one piece of work, a few milliseconds), then the
    cancellation goes on as usual.
    """
    return await anyio.to_thread.run_sync(fn, *args)


def checkpoint() -> None:
    """Raise the cancellation of the task running this kernel thread, if it was cancelled.

    A no-op in a thread that `run_kernel` did not start (a kernel called
    directly, in a test or a script).
    """
    try:
        anyio.from_thread.check_cancelled()
    except RuntimeError:  # anyio's NoEventLoopError: not a run_kernel thread
        return
