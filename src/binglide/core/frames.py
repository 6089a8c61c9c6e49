"""The frame codec: messages to ZeroMQ multipart frames and back.

Theory of operation: every message starts with a protocol header frame that
names the sub-protocol and its version:

- ``MDPC02`` and ``MDPW02``, MDP/0.2 (ZeroMQ RFC 18), between clients and
  the broker and between workers and the broker. The second frame is a
  one-byte command. MDP/0.2 removed MDP/0.1's leading empty frame, so none is
  sent; one received (a habit of MDP/0.1 code) is tolerated and skipped.
  Commands 0x01-0x06 are MDP/0.2's own and keep its frame layout exactly, so
  a plain MDP/0.2 client or worker works against the broker unchanged.
  binglide's additions use commands from 0x11 up (which an MDP/0.2 peer never
  sends) and are only sent to peers that announced them (an extended READY,
  or an extended request).
- ``MDPC01`` and ``MDPW01``, MDP/0.1 (ZeroMQ RFC 7, the *stable* one that the
  ZeroMQ guide's Majordomo examples implement): every command starts with an
  empty frame, which is sent; the client protocol has no command frame (a
  REQUEST and its one REPLY), and the worker protocol numbers its commands
  READY 0x01, REQUEST 0x02, REPLY 0x03, HEARTBEAT 0x04, DISCONNECT 0x05. A
  REPLY decodes as a `Final`: an MDP/0.1 worker answers exactly once.

``docs/protocol.md`` is the reference; this module is its implementation.

The routing envelope (a ROUTER's peer identity) is the transport's business;
frames here start at the protocol header (or MDP/0.1's empty frame). Payload
frames pass through as they are, without copies.
"""

from __future__ import annotations

import enum
import json
from typing import TYPE_CHECKING, Any

from ..errors import LocalProtocolError, RemoteProtocolError
from .messages import (
    Cancel,
    Disconnect,
    Failure,
    Final,
    Frame,
    Heartbeat,
    Message,
    Partial,
    Ready,
    Request,
    Waiting,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = (
    "EXTENSION_TAG",
    "FAILURE_MARKER",
    "WORKER_PROTOCOLS",
    "Protocol",
    "decode",
    "encode",
    "plain_failure",
)

#: The extra READY frame by which a worker says it speaks binglide's extensions.
EXTENSION_TAG = b"binglide/1"


class Protocol(enum.Enum):
    """Which sub-protocol, and which version, a message belongs to, by its header frame."""

    CLIENT = b"MDPC02"  # MDP/0.2 (RFC 18) and binglide's extensions
    WORKER = b"MDPW02"
    CLIENT_01 = b"MDPC01"  # MDP/0.1 (RFC 7)
    WORKER_01 = b"MDPW01"

    @property
    def worker(self) -> bool:
        """Whether this is a worker sub-protocol (else a client one)."""
        return self in WORKER_PROTOCOLS


#: The worker sub-protocols, every version.
WORKER_PROTOCOLS = (Protocol.WORKER, Protocol.WORKER_01)


_PROTOCOLS = {p.value: p for p in Protocol}  # a dict: cheaper than Protocol(header)

# MDP/0.2 command bytes (RFC 18) and binglide's additions, per protocol and direction.
_C_REQUEST, _C_PARTIAL, _C_FINAL = b"\x01", b"\x02", b"\x03"
_W_READY, _W_REQUEST, _W_PARTIAL, _W_FINAL = b"\x01", b"\x02", b"\x03", b"\x04"
_HEARTBEAT, _DISCONNECT = b"\x05", b"\x06"
_X_REQUEST, _X_CANCEL = b"\x11", b"\x12"
_X_PARTIAL, _X_FINAL, _X_FAILURE, _X_WAITING = b"\x13", b"\x14", b"\x15", b"\x16"
# MDP/0.1 worker commands (RFC 7); its client protocol has none.
_V1_READY, _V1_REQUEST, _V1_REPLY, _V1_HEARTBEAT, _V1_DISCONNECT = (
    b"\x01",
    b"\x02",
    b"\x03",
    b"\x04",
    b"\x05",
)
#: The first body frame of a FINAL that carries a failure to a plain client.
FAILURE_MARKER = b"binglide-error"


def _rid_frame(rid: int) -> bytes:
    return b"%d" % rid


def _json_frame(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _failure_json(msg: Failure) -> bytes:
    return _json_frame(
        {
            "kind": msg.kind,
            "message": msg.message,
            "remote_type": msg.remote_type,
            "cycle": list(msg.cycle),
        }
    )


def _failure_body(msg: Failure) -> list[Frame]:
    # A plain client knows no failures: it gets a FINAL whose body says so.
    return [FAILURE_MARKER, _failure_json(msg)]


def _encode_01(msg: Message, *, protocol: Protocol, from_broker: bool) -> list[Frame]:
    head: list[Frame] = [b"", protocol.value]  # MDP/0.1 sends its empty frame
    match protocol, from_broker, msg:
        case Protocol.CLIENT_01, False, Request():
            return [*head, msg.service.encode(), *msg.payload]
        case Protocol.CLIENT_01, True, Final():
            return [*head, msg.service.encode(), *msg.payload]
        case Protocol.CLIENT_01, True, Failure():
            return [*head, msg.service.encode(), *_failure_body(msg)]
        case Protocol.WORKER_01, _, Heartbeat():
            return [*head, _V1_HEARTBEAT]
        case Protocol.WORKER_01, _, Disconnect():
            return [*head, _V1_DISCONNECT]
        case Protocol.WORKER_01, False, Ready():
            return [*head, _V1_READY, msg.service.encode()]
        case Protocol.WORKER_01, False, Final():
            return [*head, _V1_REPLY, _rid_frame(msg.rid), b"", *msg.payload]
        case Protocol.WORKER_01, True, Request():
            return [*head, _V1_REQUEST, _rid_frame(msg.rid), b"", *msg.payload]
    side = "the broker" if from_broker else "a peer"
    raise LocalProtocolError(
        f"{type(msg).__name__} cannot be sent by {side} on the MDP/0.1 "
        f"{'worker' if protocol.worker else 'client'} hop"
    )


def encode(
    msg: Message, *, protocol: Protocol, from_broker: bool, extended: bool = True
) -> list[Frame]:
    """Return the frames of `msg`.

    Args:
        msg: the message.
        protocol: `Protocol.CLIENT` on the client hop, `Protocol.WORKER` on
            the worker hop.
        from_broker: whether the broker sends it (else a client or worker).
        extended: whether the receiving peer speaks binglide's extensions;
            towards a plain MDP/0.2 peer, replies use MDP's own layout.
            (A client's `Request` says itself which form it takes.)

    Raises:
        LocalProtocolError: `msg` cannot travel in that direction (MDP/0.1
            has no PARTIAL, no failures and no extensions).
    """
    if protocol is Protocol.CLIENT_01 or protocol is Protocol.WORKER_01:
        return _encode_01(msg, protocol=protocol, from_broker=from_broker)
    head: list[Frame] = [protocol.value]
    match protocol, from_broker, msg:
        case Protocol.CLIENT, True, Heartbeat(instance=instance) if instance:
            return [*head, _HEARTBEAT, instance.encode()]
        case _, _, Heartbeat():
            return [*head, _HEARTBEAT]
        case _, _, Disconnect():
            return [*head, _DISCONNECT]
        # Client -> broker.
        case Protocol.CLIENT, False, Request():
            if not (extended and msg.extended):
                return [*head, _C_REQUEST, msg.service.encode(), *msg.payload]
            meta = {
                "job": msg.job,
                "ancestry": list(msg.ancestry),
                "parent": msg.parent,
                "timeout": msg.timeout,
            }
            return [
                *head,
                _X_REQUEST,
                msg.service.encode(),
                _rid_frame(msg.rid),
                _json_frame(meta),
                *msg.payload,
            ]
        case Protocol.CLIENT, False, Cancel():
            return [*head, _X_CANCEL, _rid_frame(msg.rid), msg.job.encode()]
        # Broker -> client.
        case Protocol.CLIENT, True, Partial() | Final():
            final = isinstance(msg, Final)
            service = msg.service.encode()
            if not extended:
                return [*head, _C_FINAL if final else _C_PARTIAL, service, *msg.payload]
            command = _X_FINAL if final else _X_PARTIAL
            return [*head, command, service, _rid_frame(msg.rid), *msg.payload]
        case Protocol.CLIENT, True, Failure():
            if not extended:
                # A plain MDP/0.2 client knows no failures: it gets a FINAL
                # whose body says so (documented in docs/protocol.md).
                return [*head, _C_FINAL, msg.service.encode(), *_failure_body(msg)]
            return [
                *head,
                _X_FAILURE,
                msg.service.encode(),
                _rid_frame(msg.rid),
                _failure_json(msg),
            ]
        # Worker -> broker.
        case Protocol.WORKER, False, Ready():
            tail = [EXTENSION_TAG] if msg.extended else []
            return [*head, _W_READY, msg.service.encode(), *tail]
        case Protocol.WORKER, False, Partial() | Final():
            command = _W_FINAL if isinstance(msg, Final) else _W_PARTIAL
            return [*head, command, _rid_frame(msg.rid), b"", *msg.payload]
        case Protocol.WORKER, False, Failure():
            return [*head, _X_FAILURE, _rid_frame(msg.rid), _failure_json(msg)]
        case Protocol.WORKER, False, Waiting():
            return [*head, _X_WAITING, _rid_frame(msg.rid), b"1" if msg.waiting else b"0"]
        # Broker -> worker.
        case Protocol.WORKER, True, Request():
            if not extended:
                return [*head, _W_REQUEST, _rid_frame(msg.rid), b"", *msg.payload]
            meta = {"service": msg.service, "job": msg.job, "ancestry": list(msg.ancestry)}
            return [*head, _X_REQUEST, _rid_frame(msg.rid), _json_frame(meta), *msg.payload]
        case Protocol.WORKER, True, Cancel():
            return [*head, _X_CANCEL, msg.job.encode(), _rid_frame(msg.rid)]
    side = "the broker" if from_broker else "a peer"
    raise LocalProtocolError(
        f"{type(msg).__name__} cannot be sent by {side} on the {protocol.name.lower()} hop"
    )


def _bytes(frame: Frame) -> bytes:
    return frame if isinstance(frame, bytes) else bytes(frame)


def _text(frame: Frame, what: str) -> str:
    try:
        return _bytes(frame).decode()
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"{what} is not UTF-8 text") from exc


def _rid(frame: Frame) -> int:
    raw = _bytes(frame)
    if not raw.isdigit() or len(raw) > 19:
        raise RemoteProtocolError(f"request id {raw[:24]!r} is not a decimal number")
    return int(raw)


def _json(frame: Frame, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_bytes(frame))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: deeply nested arrays from a rogue peer must not
        # take the broker down with them.
        raise RemoteProtocolError(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what} is not a JSON object")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RemoteProtocolError(f"{what} is not a list of strings")
    return tuple(value)


def _failure(rid: int, service: str, frame: Frame) -> Failure:
    info = _json(frame, "failure report")
    kind, message = info.get("kind"), info.get("message")
    if not isinstance(kind, str) or not isinstance(message, str):
        raise RemoteProtocolError("failure report lacks a string kind and message")
    remote_type = info.get("remote_type", "")
    if not isinstance(remote_type, str):
        raise RemoteProtocolError("failure report's remote_type is not a string")
    cycle = _strings(info.get("cycle", []), "failure report's cycle")
    return Failure(rid, kind, message, remote_type, cycle, service)


def plain_failure(msg: Final) -> Failure | None:
    """Return the failure a plain FINAL carries (`FAILURE_MARKER`), or None for a report.

    Raises:
        RemoteProtocolError: the marker is followed by no valid failure object.
    """
    payload = msg.payload
    if len(payload) != 2 or _bytes(payload[0]) != FAILURE_MARKER:
        return None
    return _failure(msg.rid, msg.service, payload[1])


def _need(frames: Sequence[Frame], count: int, what: str) -> None:
    if len(frames) < count:
        raise RemoteProtocolError(f"{what} has {len(frames)} frames, needs at least {count}")


def decode(frames: Sequence[Frame], *, from_broker: bool) -> tuple[Protocol, Message]:
    """Return the protocol and message that `frames` carry.

    Args:
        frames: the frames, from the protocol header on (one leading empty
            frame, which MDP/0.1 had, is skipped).
        from_broker: whether the broker sent them (else a client or worker).

    Raises:
        RemoteProtocolError: the frames are malformed or not allowed in that
            direction; the message says what is wrong.
    """
    if frames and len(frames[0]) == 0:
        frames = frames[1:]  # MDP/0.1's empty delimiter: tolerated, never sent
    _need(frames, 2, "a message")
    header = _bytes(frames[0])
    protocol = _PROTOCOLS.get(header)
    if protocol is None:
        raise RemoteProtocolError(f"unknown protocol header {header[:16]!r}")
    if protocol is Protocol.CLIENT_01:
        # MDP/0.1's client protocol has no command: the service, then the body.
        service = _text(frames[1], "service name")
        if from_broker:
            return protocol, Final(0, tuple(frames[2:]), service)
        return protocol, Request(0, service, tuple(frames[2:]), extended=False)
    command = _bytes(frames[1])
    body = frames[2:]
    if protocol is Protocol.WORKER_01:
        return protocol, _decode_worker_01(command, body, from_broker=from_broker)
    return protocol, _decode(protocol, command, body, from_broker=from_broker)


def _decode_worker_01(command: bytes, f: Sequence[Frame], *, from_broker: bool) -> Message:
    if command == _V1_HEARTBEAT:
        return Heartbeat()
    if command == _V1_DISCONNECT:
        return Disconnect()
    match from_broker, command:
        case False, b"\x01":
            _need(f, 1, "READY")
            return Ready(_text(f[0], "service name"), extended=False)
        case False, b"\x03":
            _need(f, 2, "REPLY")
            if len(_bytes(f[1])) != 0:
                raise RemoteProtocolError("REPLY needs an empty frame after the address")
            return Final(_rid(f[0]), tuple(f[2:]))
        case True, b"\x02":
            _need(f, 2, "REQUEST")
            return Request(_rid(f[0]), "", tuple(f[2:]), extended=False)
    who = "the broker" if from_broker else "a peer"
    raise RemoteProtocolError(
        f"command {command[:4]!r} is not allowed from {who} on the MDP/0.1 worker hop"
    )


def _decode(
    protocol: Protocol, command: bytes, f: Sequence[Frame], *, from_broker: bool
) -> Message:
    if command == _HEARTBEAT:
        if protocol is Protocol.CLIENT and from_broker and f:
            return Heartbeat(_text(f[0], "broker instance id"))
        return Heartbeat()
    if command == _DISCONNECT:
        return Disconnect()
    match protocol, from_broker, command:
        case Protocol.CLIENT, False, b"\x01":
            _need(f, 1, "REQUEST")
            return Request(0, _text(f[0], "service name"), tuple(f[1:]), extended=False)
        case Protocol.CLIENT, False, b"\x11":
            _need(f, 3, "XREQUEST")
            meta = _json(f[2], "request metadata")
            return _request(_rid(f[1]), _text(f[0], "service name"), meta, tuple(f[3:]))
        case Protocol.CLIENT, False, b"\x12":
            _need(f, 2, "CANCEL")
            return Cancel(job=_text(f[1], "job id"), rid=_rid(f[0]))
        case Protocol.CLIENT, True, b"\x02" | b"\x03":
            _need(f, 1, "PARTIAL/FINAL")
            cls = Final if command == _C_FINAL else Partial
            return cls(0, tuple(f[1:]), _text(f[0], "service name"))
        case Protocol.CLIENT, True, b"\x13" | b"\x14":
            _need(f, 2, "XPARTIAL/XFINAL")
            cls = Final if command == _X_FINAL else Partial
            return cls(_rid(f[1]), tuple(f[2:]), _text(f[0], "service name"))
        case Protocol.CLIENT, True, b"\x15":
            _need(f, 3, "FAILURE")
            return _failure(_rid(f[1]), _text(f[0], "service name"), f[2])
        case Protocol.WORKER, False, b"\x01":
            _need(f, 1, "READY")
            extended = len(f) > 1 and _bytes(f[1]) == EXTENSION_TAG
            return Ready(_text(f[0], "service name"), extended)
        case Protocol.WORKER, False, b"\x03" | b"\x04":
            _need(f, 2, "PARTIAL/FINAL")
            if len(_bytes(f[1])) != 0:
                raise RemoteProtocolError("PARTIAL/FINAL needs an empty frame after the address")
            cls = Final if command == _W_FINAL else Partial
            return cls(_rid(f[0]), tuple(f[2:]))
        case Protocol.WORKER, False, b"\x15":
            _need(f, 2, "FAILURE")
            return _failure(_rid(f[0]), "", f[1])
        case Protocol.WORKER, False, b"\x16":
            _need(f, 2, "WAITING")
            flag = _bytes(f[1])
            if flag not in (b"0", b"1"):
                raise RemoteProtocolError("WAITING flag must be '0' or '1'")
            return Waiting(_rid(f[0]), flag == b"1")
        case Protocol.WORKER, True, b"\x02":
            _need(f, 2, "REQUEST")
            return Request(_rid(f[0]), "", tuple(f[2:]), extended=False)
        case Protocol.WORKER, True, b"\x11":
            _need(f, 2, "XREQUEST")
            meta = _json(f[1], "request metadata")
            service = meta.get("service")
            if not isinstance(service, str):
                raise RemoteProtocolError("request metadata lacks the service name")
            return _request(_rid(f[0]), service, meta, tuple(f[2:]))
        case Protocol.WORKER, True, b"\x12":
            _need(f, 2, "CANCEL")
            return Cancel(job=_text(f[0], "job id"), rid=_rid(f[1]))
    who = "the broker" if from_broker else "a peer"
    raise RemoteProtocolError(
        f"command {command[:4]!r} is not allowed from {who} on the {protocol.name.lower()} hop"
    )


def _request(rid: int, service: str, meta: dict[str, Any], payload: tuple[Frame, ...]) -> Request:
    job = meta.get("job", "")
    parent = meta.get("parent", 0)
    timeout = meta.get("timeout")
    if not isinstance(job, str):
        raise RemoteProtocolError("request metadata: job is not a string")
    if not isinstance(parent, int) or isinstance(parent, bool) or parent < 0:
        raise RemoteProtocolError("request metadata: parent is not a task id")
    if timeout is not None and (
        not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0
    ):
        raise RemoteProtocolError("request metadata: timeout is not a positive number")
    ancestry = _strings(meta.get("ancestry", []), "request metadata: ancestry")
    return Request(rid, service, payload, job, ancestry, parent, timeout)
