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
from .call import Call as Call
from .call import Then as Then
from .client import Client as Client
from .connect import connect as connect
from .core import BrokerConfig as BrokerConfig
from .core import CancelMode as CancelMode
from .corpus import CorpusRun as CorpusRun
from .corpus import CorpusStatistics as CorpusStatistics
from .corpus import FileResult as FileResult
from .corpus import analyse_files as analyse_files
from .errors import (
    BinglideError as BinglideError,
)
from .errors import (
    CacheCorrupted as CacheCorrupted,
)
from .errors import (
    CacheError as CacheError,
)
from .errors import (
    JobCancelled as JobCancelled,
)
from .errors import (
    JobError as JobError,
)
from .errors import (
    JobFailed as JobFailed,
)
from .errors import (
    LocalProtocolError as LocalProtocolError,
)
from .errors import (
    LoopError as LoopError,
)
from .errors import (
    ProtocolError as ProtocolError,
)
from .errors import (
    RemoteProtocolError as RemoteProtocolError,
)
from .errors import (
    RequestError as RequestError,
)
from .errors import (
    ServiceUnavailable as ServiceUnavailable,
)
from .errors import (
    TransportBroken as TransportBroken,
)
from .errors import (
    TransportClosed as TransportClosed,
)
from .errors import (
    TransportError as TransportError,
)
from .errors import (
    TransportRefused as TransportRefused,
)
from .report import Report as Report
from .report import Task as Task
from .service import Context as Context
from .service import Service as Service
from .service import Settings as Settings
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
    "CorpusRun",
    "CorpusStatistics",
    "FileResult",
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
    "TransportRefused",
    "Worker",
    "analyse_files",
    "connect",
)
