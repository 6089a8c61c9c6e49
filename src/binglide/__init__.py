"""binglide: the analyses reverse engineers look at, over files of any size.

Byte histograms, bigram/trigram histograms, entropy profiles, diffs and
sampled views of binaries, computed by single-purpose workers behind a broker
(in-process by default, over ZeroMQ across processes and machines), split into
aligned chunks, cached on disk, answered progressively and cancellable::

    import binglide

    async with binglide.connect() as client:
        report = await client.histogram("firmware.bin")
"""

from __future__ import annotations

from .broker import Broker as Broker
from .client import Call as Call, Client as Client, Then as Then
from .connect import connect as connect
from .core import BrokerConfig as BrokerConfig, CancelMode as CancelMode
from .errors import (
    BinglideError as BinglideError,
    CacheCorrupted as CacheCorrupted,
    CacheError as CacheError,
    JobCancelled as JobCancelled,
    JobError as JobError,
    JobFailed as JobFailed,
    LocalProtocolError as LocalProtocolError,
    LoopError as LoopError,
    ProtocolError as ProtocolError,
    RemoteProtocolError as RemoteProtocolError,
    RequestError as RequestError,
    ServiceUnavailable as ServiceUnavailable,
    TransportBroken as TransportBroken,
    TransportClosed as TransportClosed,
    TransportError as TransportError,
)
from .report import Report as Report, Task as Task
from .service import Context as Context, Service as Service, Settings as Settings
from .transports import InprocNetwork as InprocNetwork
from .worker import Worker as Worker

__version__ = "2.0.0.dev0"

__all__ = (
    "BinglideError",
    "Broker",
    "BrokerConfig",
    "CacheCorrupted",
    "CacheError",
    "Call",
    "CancelMode",
    "Client",
    "Context",
    "InprocNetwork",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "LocalProtocolError",
    "LoopError",
    "ProtocolError",
    "RemoteProtocolError",
    "Report",
    "RequestError",
    "Service",
    "ServiceUnavailable",
    "Settings",
    "Task",
    "Then",
    "TransportBroken",
    "TransportClosed",
    "TransportError",
    "Worker",
    "connect",
)
