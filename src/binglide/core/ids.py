"""Job ids, task ids and the counters that number requests.

Theory of operation:

- A *task* is one hop of a request: the pair (sender, request id). Every
  client, and every worker acting as a client, numbers its own requests with an
  `IdSource`, so a request id means something only together with its sender.
- A *job* is a whole request tree. Its id is set once, by the broker, when a
  real client's request arrives without one: ``"%d:%s%s" % (len(cid), cid,
  rid)``. Every sub-request carries it unchanged, so a cancellation that names
  the job reaches every task of the tree. A client cancelling its own request
  sends only the request id; the broker computes the same job id again.
- The length prefix makes the id unambiguous: the client id can be recovered
  from a job id (`origin_of`), which the broker uses to be fair across the
  real clients behind the jobs.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, NewType

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = (
    "IdSource",
    "JobId",
    "PeerId",
    "ServiceName",
    "job_id_for",
    "job_prefix",
    "origin_of",
)

#: The id of a whole request tree (see the module docstring).
JobId = NewType("JobId", str)
#: The name of a service, as workers register it and clients ask for it.
ServiceName = NewType("ServiceName", str)
#: A peer as the transport names it (a ZeroMQ routing id decoded as latin-1).
PeerId = NewType("PeerId", str)


def job_id_for(cid: str, rid: int) -> JobId:
    """Return the job id of request `rid` of the real client `cid`.

    Args:
        cid: the client's identity as the broker sees it.
        rid: the client's number for the request.
    """
    # Not JobId(...): a NewType's call is a Python call on 3.11, and the
    # broker makes a job id a request.
    return "%d:%s%d" % (len(cid), cid, rid)  # type: ignore[return-value]  # noqa: UP031 - the id is defined by this format


def job_prefix(cid: str) -> str:
    """Return what every job id of the real client `cid` starts with: `job_id_for` less the rid.

    ``job_prefix(cid) + str(rid) == job_id_for(cid, rid)``: the broker keeps
    it per client, and makes a job id with one concatenation.
    """
    return "%d:%s" % (len(cid), cid)  # noqa: UP031 - as `job_id_for`


def origin_of(job: JobId) -> str:
    """Return the client id that started `job` (the ``cid`` of `job_id_for`).

    A malformed job id is its own origin: it still groups its tasks together.
    """
    head, sep, rest = job.partition(":")
    if sep and head.isdigit() and int(head) <= len(rest):
        return rest[: int(head)]
    return job


class IdSource:
    """Hand out increasing request ids, starting at `first`.

    Injected into the machines so that tests can predict ids.
    """

    __slots__ = ("_count",)

    def __init__(self, first: int = 1) -> None:
        self._count = itertools.count(first)

    def __call__(self) -> int:
        return next(self._count)

    def taker(self) -> Callable[[], int]:
        """Return a function that does what calling this source does, for a caller that takes many.

        For an `IdSource` itself, its counter's own ``__next__`` (a C call,
        no Python frame); for a subclass that defines ``__call__``, that.
        """
        if type(self).__call__ is IdSource.__call__:
            return self._count.__next__
        return self.__call__
