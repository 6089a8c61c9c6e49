"""The runtime's clock: the running event loop's (what ``anyio.current_time`` reads).

``anyio.current_time()`` finds the backend on every call (sniffio, the
current task): a few microseconds that the hot paths paid once or twice per
message. binglide runs on asyncio, so it asks the loop directly.
"""

from __future__ import annotations

import asyncio

__all__ = ("loop_time",)


def loop_time() -> float:
    """Return the running event loop's time in seconds (monotonic)."""
    return asyncio.get_running_loop().time()
