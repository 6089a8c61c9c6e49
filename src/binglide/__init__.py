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

import importlib
import sys
import types
import typing

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

if typing.TYPE_CHECKING:
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
    from .report import Report as Report
    from .report import Task as Task
    from .service import Context as Context
    from .service import Service as Service
    from .service import Settings as Settings
    from .services.files import FileServer as FileServer
    from .services.files import FileServerStatistics as FileServerStatistics
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
    "FileServer",
    "FileServerStatistics",
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

# The runtime is imported on first use, not by ``import binglide``: it brings
# numpy, anyio and ZeroMQ's bindings, a tenth of a second or more that a
# program which only names an error, or a command that answers ``--help``,
# should not pay. (The errors above cost nothing and are always there.)
_LAZY = {
    "Broker": ".broker",
    "BrokerConfig": ".core",
    "Call": ".call",
    "CancelMode": ".core",
    "Client": ".client",
    "Context": ".service",
    "CorpusRun": ".corpus",
    "CorpusStatistics": ".corpus",
    "FileResult": ".corpus",
    "FileServer": ".services.files",
    "FileServerStatistics": ".services.files",
    "InprocNetwork": ".transports",
    "Report": ".report",
    "Service": ".service",
    "Settings": ".service",
    "Task": ".report",
    "Then": ".call",
    "Worker": ".worker",
    "analyse_files": ".corpus",
    "connect": ".connect",
}


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'binglide' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is a plain one
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """binglide's module object: a submodule never hides the public name it shares.

    Importing ``binglide.connect`` (the module) sets the package's attribute
    ``connect`` to that module; ``binglide.connect`` must stay the function.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return  # reach the submodule through sys.modules, as imports do
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
