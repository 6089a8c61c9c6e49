"""`Service`, the base of every analysis, and `Context`, what a handler gets.

A service is a class with a ``name`` and an async generator ``handle(task,
ctx)`` that yields `Report` objects: any number of intermediate ones, then the
final one (the last yielded). Through ``ctx`` a handler issues sub-requests
of the same job (``ctx.request(...)``, ``ctx.histogram(...)``): each returns a
`Call` to await, iterate or chain; awaiting never holds the service hostage
(the worker tells the broker it waits, and takes other tasks meanwhile).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from .analyses import AnalysisMethods
from .core.messages import LazyAncestry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Mapping

    import numpy as np

    from .cachefs import ChunkStore
    from .call import Call, WaitHooks
    from .core import JobId, Request
    from .core.worker import TaskStarted
    from .report import Report, Task
    from .requester import Requester

__all__ = ("Context", "Service", "Settings")


def _real_paths(roots: Iterable[str | os.PathLike[str]] | None) -> tuple[str, ...] | None:
    return None if roots is None else tuple(os.path.realpath(p) for p in roots)


@attrs.frozen
class Settings:
    """What every worker of a deployment shares.

    Attributes:
        roots: the directories whose files workers may read (None: any).
        cache: the on-disk chunk cache, or None for no caching.
        parallelism: how many workers compute chunks at once (a chunk-size hint).
        report_interval: the least seconds between two intermediate reports.
    """

    roots: tuple[str, ...] | None = attrs.field(default=None, converter=_real_paths)
    cache: ChunkStore | None = None
    parallelism: int = 1
    report_interval: float = 0.1


class Service:
    """The base class of every analysis: set `name`, implement `handle`."""

    #: The name clients ask for.
    name: ClassVar[str] = ""

    def handle(self, task: Task, ctx: Context) -> AsyncIterator[Report]:
        """Answer `task`: yield reports, the final one last.

        Raise `binglide.RequestError` for bad input; any other exception
        reaches the caller as `JobFailed`, and the worker goes on serving.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement handle()")


class Context(AnalysisMethods):
    """What a handler gets with its task: sub-requests of the same job, settings.

    Sub-requests a handler leaves open when it ends are cancelled.

    Attributes:
        job: the job id of the request tree.
        settings: the deployment's `Settings`.
    """

    def __init__(
        self,
        # Positional too: the worker makes one a task, and a class called
        # with keywords costs twice as much (its keywords made into a dict).
        requester: Requester,
        tid: int,
        job: JobId,
        started: Request | TaskStarted,
        settings: Settings,
        sub_request_hooks: Callable[[], tuple[WaitHooks, set[int]]],
    ) -> None:
        self._requester = requester
        self._tid = tid
        self.job = job
        #: The task's message: the sub-requests' ancestry is its, read at
        #: the first (the broker computes a root task's only when read).
        self._started = started
        self._ancestry: tuple[str, ...] = ()
        self.settings = settings
        #: Called at the first sub-request (most tasks issue none): the hooks
        #: told as the task starts and stops waiting on one, and the set that
        #: holds its open sub-requests.
        self._sub_request_hooks = sub_request_hooks
        self._on_wait: WaitHooks | None = None
        self._sub_requests: set[int] | None = None

    def request(
        self,
        service: str,
        body: Mapping[str, Any] | None = None,
        *arrays: np.ndarray[Any, Any],
        timeout: float | None = None,
    ) -> Call:
        """Issue a sub-request of this job and return its `Call` at once.

        Raises:
            TypeError: the body is not JSON-able.
        """
        if self._on_wait is None:
            self._on_wait, self._sub_requests = self._sub_request_hooks()
            ancestry = self._started.ancestry
            # (A root task's, the usual: its tuple at once, without the
            # sequence protocol's three calls.)
            self._ancestry = ancestry.value if type(ancestry) is LazyAncestry else tuple(ancestry)
        return self._requester.open(
            service,
            body,
            arrays,
            job=self.job,
            ancestry=self._ancestry,
            parent=self._tid,
            timeout=timeout,
            on_wait=self._on_wait,
            group=self._sub_requests,
        )
