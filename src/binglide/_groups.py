"""Exception groups, as binglide's callers want to see them.

anyio's task groups wrap whatever their body raises in exception groups; a
caller who writes ``except binglide.RequestError`` around ``async with
binglide.connect()`` (or any context manager of binglide that runs tasks)
should catch it. This is the one home of the unwrapping.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ("leaves", "single_errors")


def leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    """Yield the exceptions of `group` and of the groups nested in it, depth first."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from leaves(exc)
        else:
            yield exc


@contextmanager
def single_errors() -> Iterator[None]:
    """Let one error raised in the block escape as itself, not wrapped in groups.

    Cancellations of the block's tasks are not errors; several real errors
    stay grouped.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        cancelled = anyio.get_cancelled_exc_class()
        real = [e for e in leaves(group) if not isinstance(e, cancelled)]
        if len(real) == 1:
            raise real[0] from None
        raise
