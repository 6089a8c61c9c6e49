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
import json.encoder
import math
import re
from collections.abc import Callable
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
# MDP/0.1's members as module names: a member read off its enum class is a
# call of `EnumType.__getattr__`'s hook on 3.11 (~1,100 instructions), and
# `decode` compares every message's protocol with both.
_CLIENT_01, _WORKER_01 = Protocol.CLIENT_01, Protocol.WORKER_01

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


# The request metadata, written by hand as `_json_frame` writes it (keys in
# sorted order): every request crosses two hops with one, and ``json.dumps``
# with sorted keys costs more than the rest of the message's frames together
# (bench/RESULTS.md, issue 13). A value these helpers would not write as JSON
# does (a bool where an int goes, a float that is not finite, anything but a
# str where a string goes) raises TypeError here and goes through `_json_frame`.
_quote = json.encoder.encode_basestring_ascii


def _strings_json(values: Sequence[str]) -> str:
    return "[" + ",".join(map(_quote, values)) + "]"


def _int_json(value: int) -> str:
    if type(value) is not int:
        raise TypeError("not a plain int")
    return str(value)


def _timeout_json(value: float | None) -> str:
    if value is None:
        return "null"
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return _int_json(value)  # type: ignore[arg-type]


#: The metadata of a top-level request (no job, ancestry or parent) by its
#: timeout: None or a positive float, whose bytes are those of no other value
#: equal to it (not -0.0, NaN, a bool or an int). A client's requests mostly
#: share one timeout; at most `_TOP_METAS_BOUND` are kept (then it starts over).
_TOP_METAS: dict[float | None, bytes] = {}
_TOP_METAS_BOUND = 64


def _client_meta(msg: Request) -> bytes:
    """The XREQUEST metadata a client sends: job, ancestry, parent, timeout."""
    timeout = msg.timeout
    if (
        not msg.ancestry
        and msg.job == ""
        and type(msg.parent) is int
        and msg.parent == 0
        and (timeout is None or (type(timeout) is float and timeout > 0))
    ):
        meta = _TOP_METAS.get(timeout)
        if meta is None:
            if len(_TOP_METAS) >= _TOP_METAS_BOUND:
                _TOP_METAS.clear()
            meta = _TOP_METAS[timeout] = _written_client_meta(msg)
        return meta
    return _written_client_meta(msg)


def _written_client_meta(msg: Request) -> bytes:
    try:
        return (
            f'{{"ancestry":{_strings_json(msg.ancestry)},"job":{_quote(msg.job)},'
            f'"parent":{_int_json(msg.parent)},"timeout":{_timeout_json(msg.timeout)}}}'
        ).encode()
    except TypeError:
        meta = {
            "job": msg.job,
            "ancestry": list(msg.ancestry),
            "parent": msg.parent,
            "timeout": msg.timeout,
        }
        return _json_frame(meta)


def _worker_meta(msg: Request) -> bytes:
    """The XREQUEST metadata the broker sends a worker: service, job, ancestry."""
    try:
        return (
            f'{{"ancestry":{_strings_json(msg.ancestry)},"job":{_quote(msg.job)},'
            f'"service":{_quote(msg.service)}}}'
        ).encode()
    except TypeError:
        return _json_frame(
            {"service": msg.service, "job": msg.job, "ancestry": list(msg.ancestry)}
        )


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


# -- MDP/0.2 and binglide's extensions: one encoder per (hop, direction, message type) --
#
# A table rather than one ``match``: the common messages (a request, a report)
# came after a dozen cases, each a tuple compared or a class checked.
_C, _W = Protocol.CLIENT.value, Protocol.WORKER.value


def _e_heartbeat(head: bytes, msg: Heartbeat, extended: bool) -> list[Frame]:
    return [head, _HEARTBEAT]


def _e_broker_heartbeat(head: bytes, msg: Heartbeat, extended: bool) -> list[Frame]:
    if msg.instance:
        return [head, _HEARTBEAT, msg.instance.encode()]
    return [head, _HEARTBEAT]


def _e_disconnect(head: bytes, msg: Disconnect, extended: bool) -> list[Frame]:
    return [head, _DISCONNECT]


def _e_client_request(head: bytes, msg: Request, extended: bool) -> list[Frame]:
    service = msg.service.encode()
    if not (extended and msg.extended):
        return [head, _C_REQUEST, service, *msg.payload]
    return [head, _X_REQUEST, service, b"%d" % msg.rid, _client_meta(msg), *msg.payload]


def _e_client_cancel(head: bytes, msg: Cancel, extended: bool) -> list[Frame]:
    return [head, _X_CANCEL, _rid_frame(msg.rid), msg.job.encode()]


def _e_client_report(head: bytes, msg: Partial | Final, extended: bool) -> list[Frame]:
    final = isinstance(msg, Final)
    service = msg.service.encode()
    if not extended:
        return [head, _C_FINAL if final else _C_PARTIAL, service, *msg.payload]
    return [head, _X_FINAL if final else _X_PARTIAL, service, b"%d" % msg.rid, *msg.payload]


def _e_client_failure(head: bytes, msg: Failure, extended: bool) -> list[Frame]:
    service = msg.service.encode()
    if not extended:
        # A plain MDP/0.2 client knows no failures: it gets a FINAL whose body
        # says so (documented in docs/protocol.md).
        return [head, _C_FINAL, service, *_failure_body(msg)]
    return [head, _X_FAILURE, service, _rid_frame(msg.rid), _failure_json(msg)]


def _e_ready(head: bytes, msg: Ready, extended: bool) -> list[Frame]:
    if msg.extended:
        return [head, _W_READY, msg.service.encode(), EXTENSION_TAG]
    return [head, _W_READY, msg.service.encode()]


def _e_worker_report(head: bytes, msg: Partial | Final, extended: bool) -> list[Frame]:
    command = _W_FINAL if isinstance(msg, Final) else _W_PARTIAL
    return [head, command, b"%d" % msg.rid, b"", *msg.payload]


def _e_worker_failure(head: bytes, msg: Failure, extended: bool) -> list[Frame]:
    return [head, _X_FAILURE, _rid_frame(msg.rid), _failure_json(msg)]


def _e_waiting(head: bytes, msg: Waiting, extended: bool) -> list[Frame]:
    return [head, _X_WAITING, _rid_frame(msg.rid), b"1" if msg.waiting else b"0"]


def _e_worker_request(head: bytes, msg: Request, extended: bool) -> list[Frame]:
    if not extended:
        return [head, _W_REQUEST, b"%d" % msg.rid, b"", *msg.payload]
    return [head, _X_REQUEST, b"%d" % msg.rid, _worker_meta(msg), *msg.payload]


def _e_worker_cancel(head: bytes, msg: Cancel, extended: bool) -> list[Frame]:
    return [head, _X_CANCEL, msg.job.encode(), _rid_frame(msg.rid)]


_Encoder = Callable[[bytes, Any, bool], list[Frame]]
#: (header frame, from_broker, message type) -> encoder. Keyed by the header's bytes
#: (``Protocol._value_``): an enum member hashes in Python (``Enum.__hash__``).
_ENCODERS: dict[tuple[bytes, bool, type], _Encoder] = {
    (_C, True, Heartbeat): _e_broker_heartbeat,
    (_C, False, Heartbeat): _e_heartbeat,
    (_W, True, Heartbeat): _e_heartbeat,
    (_W, False, Heartbeat): _e_heartbeat,
    (_C, True, Disconnect): _e_disconnect,
    (_C, False, Disconnect): _e_disconnect,
    (_W, True, Disconnect): _e_disconnect,
    (_W, False, Disconnect): _e_disconnect,
    # Client -> broker.
    (_C, False, Request): _e_client_request,
    (_C, False, Cancel): _e_client_cancel,
    # Broker -> client.
    (_C, True, Partial): _e_client_report,
    (_C, True, Final): _e_client_report,
    (_C, True, Failure): _e_client_failure,
    # Worker -> broker.
    (_W, False, Ready): _e_ready,
    (_W, False, Partial): _e_worker_report,
    (_W, False, Final): _e_worker_report,
    (_W, False, Failure): _e_worker_failure,
    (_W, False, Waiting): _e_waiting,
    # Broker -> worker.
    (_W, True, Request): _e_worker_request,
    (_W, True, Cancel): _e_worker_cancel,
}


def _encoder(head: bytes, from_broker: bool, kind: type) -> _Encoder | None:
    """The table's entry for `kind` or, for a subclass of a message, its base's."""
    for base in kind.__mro__:
        entry = _ENCODERS.get((head, from_broker, base))
        if entry is not None:
            return entry
    return None


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
    head: bytes = protocol._value_
    encoder = _ENCODERS.get((head, from_broker, type(msg)))
    if encoder is None:
        if protocol is Protocol.CLIENT_01 or protocol is Protocol.WORKER_01:
            return _encode_01(msg, protocol=protocol, from_broker=from_broker)
        encoder = _encoder(head, from_broker, type(msg))
        if encoder is None:
            side = "the broker" if from_broker else "a peer"
            raise LocalProtocolError(
                f"{type(msg).__name__} cannot be sent by {side} on the {protocol.name.lower()} hop"
            )
    return encoder(head, msg, extended)


def _bytes(frame: Frame) -> bytes:
    return frame if type(frame) is bytes else bytes(frame)


def _text(frame: Frame, what: str) -> str:
    try:
        return (frame if type(frame) is bytes else bytes(frame)).decode()
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"{what} is not UTF-8 text") from exc


def _rid(frame: Frame) -> int:
    raw = frame if type(frame) is bytes else bytes(frame)
    if not raw.isdigit() or len(raw) > 19:
        raise RemoteProtocolError(f"request id {raw[:24]!r} is not a decimal number")
    return int(raw)


#: The scanner ``json.loads`` ends in, called directly: a compact object that
#: binglide wrote needs neither its encoding detection nor its whitespace skips.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json(frame: Frame, what: str) -> dict[str, Any]:
    raw = frame if type(frame) is bytes else bytes(frame)
    try:
        # The usual compact UTF-8 text is scanned at once; anything else goes
        # to json.loads, which reads it or says why not. (Inline, not a
        # helper: a worker parses every task's metadata here.)
        try:
            text = raw.decode()
            value, end = _scan(text, 0)
            whole = end == len(text)
        except (ValueError, StopIteration):  # not UTF-8, whitespace first, or not JSON
            whole = False
        if not whole:
            value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays from a rogue peer must not
        # take the broker down with them.
        raise RemoteProtocolError(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what} is not a JSON object")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise RemoteProtocolError(f"{what} is not a list of strings")
    for item in value:  # a loop, not all(...): no generator for a list of one or two
        if not isinstance(item, str):
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


def _need(have: int, count: int, what: str) -> None:
    if have < count:
        raise RemoteProtocolError(f"{what} has {have} frames, needs at least {count}")


def decode(
    frames: Sequence[Frame], *, from_broker: bool, start: int = 0
) -> tuple[Protocol, Message]:
    """Return the protocol and message that `frames` carry.

    Args:
        frames: the frames, from the protocol header on (one leading empty
            frame, which MDP/0.1 had, is skipped).
        from_broker: whether the broker sent them (else a client or worker).
        start: where the message begins in `frames` (a ROUTER's routing id
            before it, say): read in place, without a copy of the rest.

    Raises:
        RemoteProtocolError: the frames are malformed or not allowed in that
            direction; the message says what is wrong.
    """
    # The frames are read where they are, by index: no list is copied to drop
    # an envelope, a header or a command (a message crosses the codec twice
    # in each process it goes through, bench/RESULTS.md, issue 13).
    # The usual message (MDP/0.2 or binglide's): its header and command frames
    # name its decoder, in one lookup. Anything else (MDP/0.1, its leading
    # empty frame, fewer than two frames, an unknown header or command, a
    # frame that is not bytes-like) takes the general path below, which
    # decodes the usual message exactly so too.
    try:
        entry = _DIRECT.get((frames[start], frames[start + 1], from_broker))
    except (IndexError, TypeError, ValueError):  # (a view that cannot be hashed)
        entry = None
    if entry is not None:
        known, code, direct = entry
        return known, direct(code, frames, start + 2)
    have = len(frames) - start
    if have and len(frames[start]) == 0:
        start += 1  # MDP/0.1's empty delimiter: tolerated, never sent
        have -= 1
    if have < 2:
        _need(have, 2, "a message")
    header = frames[start]
    if type(header) is not bytes:
        header = bytes(header)
    protocol = _PROTOCOLS.get(header)
    if protocol is None:
        raise RemoteProtocolError(f"unknown protocol header {header[:16]!r}")
    if protocol is _CLIENT_01:
        # MDP/0.1's client protocol has no command: the service, then the body.
        service = _text(frames[start + 1], "service name")
        if from_broker:
            return protocol, Final(0, tuple(frames[start + 2 :]), service)
        return protocol, Request(0, service, tuple(frames[start + 2 :]), extended=False)
    command = frames[start + 1]
    if type(command) is not bytes:
        command = bytes(command)
    if protocol is _WORKER_01:
        body = frames[start + 2 :]
        return protocol, _decode_worker_01(command, body, from_broker=from_broker)
    decoder = _DECODERS.get((header, from_broker, command))
    if decoder is None:
        who = "the broker" if from_broker else "a peer"
        raise RemoteProtocolError(
            f"command {command[:4]!r} is not allowed from {who} on the {protocol.name.lower()} hop"
        )
    return protocol, decoder(command, frames, start + 2)


def _decode_worker_01(command: bytes, f: Sequence[Frame], *, from_broker: bool) -> Message:
    if command == _V1_HEARTBEAT:
        return Heartbeat()
    if command == _V1_DISCONNECT:
        return Disconnect()
    match from_broker, command:
        case False, b"\x01":
            _need(len(f), 1, "READY")
            return Ready(_text(f[0], "service name"), extended=False)
        case False, b"\x03":
            _need(len(f), 2, "REPLY")
            if len(_bytes(f[1])) != 0:
                raise RemoteProtocolError("REPLY needs an empty frame after the address")
            return Final(_rid(f[0]), tuple(f[2:]))
        case True, b"\x02":
            _need(len(f), 2, "REQUEST")
            return Request(_rid(f[0]), "", tuple(f[2:]), extended=False)
    who = "the broker" if from_broker else "a peer"
    raise RemoteProtocolError(
        f"command {command[:4]!r} is not allowed from {who} on the MDP/0.1 worker hop"
    )


# -- MDP/0.2 and binglide's extensions: one decoder per (hop, direction, command) --------
#
# Each takes the command, the whole frame sequence and the index of the frame
# after the command (``f[i:]`` is the command's body).


def _d_heartbeat(command: bytes, f: Sequence[Frame], i: int) -> Message:
    return Heartbeat()


def _d_broker_heartbeat(command: bytes, f: Sequence[Frame], i: int) -> Message:
    return Heartbeat(_text(f[i], "broker instance id")) if len(f) > i else Heartbeat()


def _d_disconnect(command: bytes, f: Sequence[Frame], i: int) -> Message:
    return Disconnect()


def _d_client_request(command: bytes, f: Sequence[Frame], i: int) -> Message:
    _need(len(f) - i, 1, "REQUEST")
    return Request(0, _text(f[i], "service name"), tuple(f[i + 1 :]), extended=False)


def _d_client_xrequest(command: bytes, f: Sequence[Frame], i: int) -> Message:
    if len(f) - i < 3:
        _need(len(f) - i, 3, "XREQUEST")
    raw = f[i + 2]
    fields = _CLIENT_METAS.get(raw) if type(raw) is bytes else None
    if fields is None:
        fields = _request_fields(_json(raw, "request metadata"))
        if not fields[2] and not fields[0] and len(raw) <= _CLIENT_META_SIZE:
            # A top-level request: its metadata repeats.
            if len(_CLIENT_METAS) >= _CLIENT_METAS_BOUND:
                _CLIENT_METAS.clear()
            _CLIENT_METAS[_bytes(raw)] = fields
    return Request(_rid(f[i + 1]), _text(f[i], "service name"), tuple(f[i + 3 :]), *fields)


def _d_client_cancel(command: bytes, f: Sequence[Frame], i: int) -> Message:
    _need(len(f) - i, 2, "CANCEL")
    return Cancel(job=_text(f[i + 1], "job id"), rid=_rid(f[i]))


def _d_client_report(command: bytes, f: Sequence[Frame], i: int) -> Message:
    _need(len(f) - i, 1, "PARTIAL/FINAL")
    cls = Final if command == _C_FINAL else Partial
    return cls(0, tuple(f[i + 1 :]), _text(f[i], "service name"))


def _d_client_xreport(command: bytes, f: Sequence[Frame], i: int) -> Message:
    if len(f) - i < 2:
        _need(len(f) - i, 2, "XPARTIAL/XFINAL")
    cls = Final if command == _X_FINAL else Partial
    service = f[i]
    if type(service) is bytes and service.isascii():  # `_text`'s usual case, without its call
        return cls(_rid(f[i + 1]), tuple(f[i + 2 :]), service.decode())
    return cls(_rid(f[i + 1]), tuple(f[i + 2 :]), _text(service, "service name"))


def _d_client_failure(command: bytes, f: Sequence[Frame], i: int) -> Message:
    _need(len(f) - i, 3, "FAILURE")
    return _failure(_rid(f[i + 1]), _text(f[i], "service name"), f[i + 2])


def _d_ready(command: bytes, f: Sequence[Frame], i: int) -> Message:
    _need(len(f) - i, 1, "READY")
    extended = len(f) - i > 1 and _bytes(f[i + 1]) == EXTENSION_TAG
    return Ready(_text(f[i], "service name"), extended)


def _d_worker_report(command: bytes, f: Sequence[Frame], i: int) -> Message:
    if len(f) - i < 2:
        _need(len(f) - i, 2, "PARTIAL/FINAL")
    if len(f[i + 1]) != 0:
        raise RemoteProtocolError("PARTIAL/FINAL needs an empty frame after the address")
    cls = Final if command == _W_FINAL else Partial
    return cls(_rid(f[i]), tuple(f[i + 2 :]))


def _d_worker_failure(command: bytes, f: Sequence[Frame], i: int) -> Message:
    _need(len(f) - i, 2, "FAILURE")
    return _failure(_rid(f[i]), "", f[i + 1])


def _d_waiting(command: bytes, f: Sequence[Frame], i: int) -> Message:
    _need(len(f) - i, 2, "WAITING")
    flag = _bytes(f[i + 1])
    if flag not in (b"0", b"1"):
        raise RemoteProtocolError("WAITING flag must be '0' or '1'")
    return Waiting(_rid(f[i]), flag == b"1")


def _d_worker_request(command: bytes, f: Sequence[Frame], i: int) -> Message:
    _need(len(f) - i, 2, "REQUEST")
    return Request(_rid(f[i]), "", tuple(f[i + 2 :]), extended=False)


def _d_worker_xrequest(command: bytes, f: Sequence[Frame], i: int) -> Message:
    if len(f) - i < 2:
        _need(len(f) - i, 2, "XREQUEST")
    raw = f[i + 1]
    written = _WORKER_META.fullmatch(raw) if type(raw) is bytes else None
    if written is not None:
        # As `_worker_meta` writes it: what a parse of the whole would find.
        strings, job, service = written.groups()
        ancestry = tuple(strings[1:-1].decode().split('","')) if strings else ()
        return Request(
            _rid(f[i]), service.decode(), tuple(f[i + 2 :]), job.decode(), ancestry, 0, None
        )
    meta = _json(raw, "request metadata")
    service = meta.get("service")
    if not isinstance(service, str):
        raise RemoteProtocolError("request metadata lacks the service name")
    return Request(_rid(f[i]), service, tuple(f[i + 2 :]), *_request_fields(meta))


def _d_worker_cancel(command: bytes, f: Sequence[Frame], i: int) -> Message:
    _need(len(f) - i, 2, "CANCEL")
    return Cancel(job=_text(f[i], "job id"), rid=_rid(f[i + 1]))


#: The metadata the broker sends a worker, laid out as `_worker_meta` writes it
#: for strings of printable ASCII without a quote or a backslash (the usual
#: ones: services, job ids, ``service/digest`` entries). In such text every
#: quote delimits a string, and no escape changes one, so the groups are the
#: ancestry's quoted strings, the job and the service exactly as JSON reads
#: them (a worker's every task: the scanner and the fields' checks cost twice
#: this match). Anything else is parsed as JSON.
_PRINTABLE = rb"[ !#-\[\]-~]*"
_WORKER_META = re.compile(
    rb'\{"ancestry":\[((?:"%s"(?:,"%s")*)?)\],"job":"(%s)","service":"(%s)"\}'
    % (_PRINTABLE, _PRINTABLE, _PRINTABLE, _PRINTABLE)
)

_Decoder = Callable[[bytes, "Sequence[Frame]", int], Message]
#: (header frame, from_broker, command) -> decoder of the frames after the command. Keyed
#: by bytes: an enum member hashes in Python (``Enum.__hash__``), bytes in C.
_DECODERS: dict[tuple[bytes, bool, bytes], _Decoder] = {
    (_C, True, _HEARTBEAT): _d_broker_heartbeat,
    (_C, False, _HEARTBEAT): _d_heartbeat,
    (_W, True, _HEARTBEAT): _d_heartbeat,
    (_W, False, _HEARTBEAT): _d_heartbeat,
    (_C, True, _DISCONNECT): _d_disconnect,
    (_C, False, _DISCONNECT): _d_disconnect,
    (_W, True, _DISCONNECT): _d_disconnect,
    (_W, False, _DISCONNECT): _d_disconnect,
    (_C, False, _C_REQUEST): _d_client_request,
    (_C, False, _X_REQUEST): _d_client_xrequest,
    (_C, False, _X_CANCEL): _d_client_cancel,
    (_C, True, _C_PARTIAL): _d_client_report,
    (_C, True, _C_FINAL): _d_client_report,
    (_C, True, _X_PARTIAL): _d_client_xreport,
    (_C, True, _X_FINAL): _d_client_xreport,
    (_C, True, _X_FAILURE): _d_client_failure,
    (_W, False, _W_READY): _d_ready,
    (_W, False, _W_PARTIAL): _d_worker_report,
    (_W, False, _W_FINAL): _d_worker_report,
    (_W, False, _X_FAILURE): _d_worker_failure,
    (_W, False, _X_WAITING): _d_waiting,
    (_W, True, _W_REQUEST): _d_worker_request,
    (_W, True, _X_REQUEST): _d_worker_xrequest,
    (_W, True, _X_CANCEL): _d_worker_cancel,
}

#: (header frame, command frame, from_broker) -> the protocol, the command and its decoder:
#: what `decode` reads from the usual message's first two frames, in one lookup.
_DIRECT: dict[tuple[Frame, Frame, bool], tuple[Protocol, bytes, _Decoder]] = {
    (header, command, from_broker): (_PROTOCOLS[header], command, decoder)
    for (header, from_broker, command), decoder in _DECODERS.items()
}

#: A request's metadata fields, as `Request` takes them after its payload:
#: job, ancestry, parent, timeout.
_Fields = tuple[str, tuple[str, ...], int, float | None]

#: The fields of the client request metadata seen lately, by its bytes: a
#: client's top-level requests carry the same few bytes again and again (no
#: job, no parent, its timeout), so the broker parses and checks them once,
#: not for every request. Only those are kept (a sub-request's job and parent
#: differ each time), at most `_CLIENT_METAS_BOUND` at once (then it starts
#: over, so a peer sending many never grows it; none longer than
#: `_CLIENT_META_SIZE`). The same bytes always decode
#: to the same fields, and these are immutable: an entry is exactly what a
#: parse would give.
_CLIENT_METAS: dict[bytes, _Fields] = {}
_CLIENT_METAS_BOUND = 64
#: The longest metadata kept there (a top-level request's is about 50 bytes).
_CLIENT_META_SIZE = 512


def _request_fields(meta: dict[str, Any]) -> _Fields:
    job = meta.get("job", "")
    parent = meta.get("parent", 0)
    timeout = meta.get("timeout")
    if not isinstance(job, str):
        raise RemoteProtocolError("request metadata: job is not a string")
    # JSON gives plain ints and floats: ``type() is`` answers the usual case at once.
    if type(parent) is not int or parent < 0:
        raise RemoteProtocolError("request metadata: parent is not a task id")
    if timeout is not None and not (type(timeout) in _NUMBERS and timeout > 0):
        raise RemoteProtocolError("request metadata: timeout is not a positive number")
    ancestry = _strings(meta.get("ancestry", []), "request metadata: ancestry")
    return job, ancestry, parent, timeout


#: What a JSON number decodes to (a bool is neither).
_NUMBERS = (int, float)
