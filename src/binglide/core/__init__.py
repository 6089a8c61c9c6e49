"""The sans-IO core: messages, frames, ids and the protocol machines.

Nothing here opens a socket, starts a task or reads a clock: time arrives as
``now`` and ids come from an injected `IdSource` (as h11 does for HTTP). The
runtime (`binglide.Broker`, `Client`, `Worker`) drives these machines over a
transport.
"""

from __future__ import annotations

from .broker import (
    BrokerConfig as BrokerConfig,
    BrokerMachine as BrokerMachine,
    BrokerStatistics as BrokerStatistics,
    CancelMode as CancelMode,
    Outgoing as Outgoing,
    ServiceStatistics as ServiceStatistics,
    TaskState as TaskState,
    request_digest as request_digest,
)
from .client import BrokerLost as BrokerLost, ClientMachine as ClientMachine, Reply as Reply
from .frames import (
    EXTENSION_TAG as EXTENSION_TAG,
    Protocol as Protocol,
    decode as decode,
    encode as encode,
)
from .ids import (
    IdSource as IdSource,
    JobId as JobId,
    PeerId as PeerId,
    ServiceName as ServiceName,
    job_id_for as job_id_for,
    origin_of as origin_of,
)
from .messages import (
    Cancel as Cancel,
    Disconnect as Disconnect,
    Failure as Failure,
    Final as Final,
    Frame as Frame,
    Heartbeat as Heartbeat,
    Message as Message,
    Partial as Partial,
    Ready as Ready,
    Request as Request,
    Waiting as Waiting,
)
from .worker import (
    TaskCancelled as TaskCancelled,
    TaskStarted as TaskStarted,
    WorkerLost as WorkerLost,
    WorkerMachine as WorkerMachine,
)

__all__ = (
    "EXTENSION_TAG",
    "BrokerConfig",
    "BrokerLost",
    "BrokerMachine",
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
