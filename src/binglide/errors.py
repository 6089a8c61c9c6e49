"""Every exception binglide raises.

Every failure reaches the caller as one of these, with a message a person can
act on. Anything else escaping binglide is a bug::

    BinglideError(Exception)
    ├── ProtocolError              # abstract: cannot be instantiated directly
    │   ├── LocalProtocolError     # we tried an illegal send for the current state
    │   └── RemoteProtocolError    # a peer sent malformed or illegal frames
    ├── TransportError
    │   ├── TransportClosed        # *we* closed it
    │   └── TransportBroken        # the peer or socket went away (__cause__ has why)
    │       └── TransportRefused   # the broker refused us (a failed CURVE handshake)
    ├── JobError                   # carries .job_id and .service
    │   ├── RequestError           # bad input: file, range, root, option
    │   ├── ServiceUnavailable     # unknown service, or no worker before the deadline
    │   ├── LoopError              # repeats an ancestor, or the tree is too deep
    │   ├── JobFailed              # a remote handler raised: .remote_type, .remote_message
    │   └── JobCancelled           # the job was cancelled (a remote outcome)
    └── CacheError
        └── CacheCorrupted         # an unreadable chunk on disk

Local cancellation (anyio's cancelled exception) is never one of these: it is
not caught by ``except Exception`` and never turned into `JobCancelled`.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = (
    "BinglideError",
    "CacheCorrupted",
    "CacheError",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "LocalProtocolError",
    "LoopError",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestError",
    "ServiceUnavailable",
    "TransportBroken",
    "TransportClosed",
    "TransportError",
    "TransportRefused",
)


class BinglideError(Exception):
    """The base of every error binglide raises."""


class ProtocolError(BinglideError):
    """A protocol rule was broken; see the two subclasses for whose fault it is."""

    def __new__(cls, *args: Any, **kwargs: Any) -> ProtocolError:
        # As in h11: the abstract class says nothing about whose fault it is,
        # so it cannot be raised; raise one of the two subclasses.
        if cls is ProtocolError:
            raise TypeError(
                "ProtocolError is abstract: raise LocalProtocolError or RemoteProtocolError"
            )
        return super().__new__(cls, *args, **kwargs)


class LocalProtocolError(ProtocolError):
    """We tried to send or do something the protocol does not allow now (a caller bug)."""


class RemoteProtocolError(ProtocolError):
    """A peer sent malformed frames or a message the protocol does not allow now."""


class TransportError(BinglideError):
    """A transport could not move frames."""


class TransportClosed(TransportError):
    """The transport was closed by us; nothing more can be sent or received on it."""


class TransportBroken(TransportError):
    """The peer or the socket went away; ``__cause__`` holds the underlying error."""


class TransportRefused(TransportBroken):
    """The broker answered the connection and refused it: the security handshake failed.

    Our CURVE key is not among those the broker admits, one side uses CURVE
    and the other does not, or the broker's public key we hold is not its
    own. Trying again unchanged fails the same way; the message says which.
    """


class JobError(BinglideError):
    """A request ended without a result.

    Attributes:
        job_id: the job id of the request tree, if known.
        service: the service that was asked, if known.
    """

    #: The wire name of this outcome, carried by a ``Failure`` message.
    kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, job_id: str | None = None, service: str | None = None):
        super().__init__(message)
        self.message = message
        self.job_id = job_id
        self.service = service


class RequestError(JobError):
    """The request itself is wrong: a missing file, a bad range, a bad option.

    Sending it again unchanged gives the same error; fix what the message names.
    """

    kind = "request"


class ServiceUnavailable(JobError):
    """No worker of the service took the request before its deadline.

    Either no such service is registered (check the name; `binglide worker`
    starts workers), or every worker stayed busy or unreachable.
    """

    kind = "unavailable"


class LoopError(JobError):
    """The request repeats one of its ancestors, or the request tree is too deep.

    Attributes:
        cycle: the services and argument digests from the repeated ancestor
            down to the refused request, when the cause is a loop.
    """

    kind = "loop"

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        service: str | None = None,
        cycle: tuple[str, ...] = (),
    ):
        super().__init__(message, job_id=job_id, service=service)
        self.cycle = cycle


class JobFailed(JobError):
    """A remote handler raised an exception.

    Attributes:
        remote_type: the qualified name of the exception type the handler raised.
        remote_message: its message.
    """

    kind = "failed"

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        service: str | None = None,
        remote_type: str = "",
        remote_message: str = "",
    ):
        super().__init__(message, job_id=job_id, service=service)
        self.remote_type = remote_type
        self.remote_message = remote_message


class JobCancelled(JobError):
    """The job was cancelled (by ``call.cancel()``, or its client closed)."""

    kind = "cancelled"


class CacheError(BinglideError):
    """The on-disk cache could not do what was asked."""


class CacheCorrupted(CacheError):
    """An entry on disk is torn, truncated or corrupt (it is removed and recomputed)."""


#: Every `JobError` subclass by its wire ``kind``, for decoding ``Failure`` messages.
JOB_ERRORS_BY_KIND: dict[str, type[JobError]] = {
    cls.kind: cls
    for cls in (JobError, RequestError, ServiceUnavailable, LoopError, JobFailed, JobCancelled)
}
