"""The sans-IO core: messages, frames, ids and the protocol machines.

Nothing here opens a socket, starts a task or reads a clock: time arrives as
``now`` and ids come from an injected `IdSource` (as h11 does for HTTP). The
runtime (`binglide.Broker`, `Client`, `Worker`) drives these machines over a
transport.
"""

from __future__ import annotations

from .broker import (
    BrokerConfig as BrokerConfig,
)
from .broker import (
    BrokerMachine as BrokerMachine,
)
from .broker import (
    BrokerStatistics as BrokerStatistics,
)
from .broker import (
    CancelMode as CancelMode,
)
from .broker import (
    Outgoing as Outgoing,
)
from .broker import (
    ServiceStatistics as ServiceStatistics,
)
from .broker import (
    TaskState as TaskState,
)
from .broker import (
    request_digest as request_digest,
)
from .client import BrokerLost as BrokerLost
from .client import BrokerPlain as BrokerPlain
from .client import ClientMachine as ClientMachine
from .client import Reply as Reply
from .frames import (
    EXTENSION_TAG as EXTENSION_TAG,
)
from .frames import (
    Protocol as Protocol,
)
from .frames import (
    decode as decode,
)
from .frames import (
    encode as encode,
)
from .ids import (
    IdSource as IdSource,
)
from .ids import (
    JobId as JobId,
)
from .ids import (
    PeerId as PeerId,
)
from .ids import (
    ServiceName as ServiceName,
)
from .ids import (
    job_id_for as job_id_for,
)
from .ids import (
    origin_of as origin_of,
)
from .messages import (
    Cancel as Cancel,
)
from .messages import (
    Disconnect as Disconnect,
)
from .messages import (
    Failure as Failure,
)
from .messages import (
    Final as Final,
)
from .messages import (
    Frame as Frame,
)
from .messages import (
    Heartbeat as Heartbeat,
)
from .messages import (
    Message as Message,
)
from .messages import (
    Partial as Partial,
)
from .messages import (
    Ready as Ready,
)
from .messages import (
    Request as Request,
)
from .messages import (
    Waiting as Waiting,
)
from .worker import (
    TaskCancelled as TaskCancelled,
)
from .worker import (
    TaskStarted as TaskStarted,
)
from .worker import (
    WorkerLost as WorkerLost,
)
from .worker import (
    WorkerMachine as WorkerMachine,
)

__all__ = (
    "EXTENSION_TAG",
    "BrokerConfig",
    "BrokerLost",
    "BrokerMachine",
    "BrokerPlain",
    "BrokerStatistics",
    "Cancel",
    "CancelMode",
    "ClientMachine",
    "Disconnect",
    "Failure",
    "Final",
    "Frame",
    "Heartbeat",
    "IdSource",
    "JobId",
    "Message",
    "Outgoing",
    "Partial",
    "PeerId",
    "Protocol",
    "Ready",
    "Reply",
    "Request",
    "ServiceName",
    "ServiceStatistics",
    "TaskCancelled",
    "TaskStarted",
    "TaskState",
    "Waiting",
    "WorkerLost",
    "WorkerMachine",
    "decode",
    "encode",
    "job_id_for",
    "origin_of",
    "request_digest",
)
