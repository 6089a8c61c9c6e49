"""The page protocol: JSON control messages from the page, binary frames to it.

Theory of operation
-------------------
One WebSocket per page. The page sends small JSON text messages::

    {"id": 7, "op": "ngrams", "slot": "bigram", "file": 0, "start": 0, "stop": 4096, "n": 2}
    {"cancel": 7}

and the server answers every request with binary frames, each one report
(or the request's end)::

    uint32 LE   header length H
    H bytes     header, JSON: {"id", "kind", "final", "completion", "precision",
                               "meta", "arrays": [{"name", "dtype", "shape",
                               "offset", "length"}]}
    padding     to a multiple of 8
    arrays      each at its "offset" past the padding (a multiple of 8), raw
                little-endian values: typed arrays on the page, no copy

``kind`` is ``report`` (``final`` says whether it is the last one),
``error`` (the request failed or the message was refused; ``message`` says
why), ``cancelled`` (a newer request took its slot, or the page cancelled it)
or ``info``/``file``. Every request ends with exactly one final report, error
or cancelled frame. `parse` checks a message against `OPS` and raises
`MessageError` with a sentence for the page; the server then sends an error
frame and goes on serving. docs/viewer.md documents the protocol.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = (
    "DTYPES",
    "MAX_ID",
    "OPS",
    "Cancel",
    "MessageError",
    "Request",
    "decode_frame",
    "encode_frame",
    "parse",
)

#: Request ids are integers the page counts up; JavaScript numbers are exact to 2**53.
MAX_ID = (1 << 53) - 1
#: The dtypes a frame may carry, by their names on the wire (JavaScript's typed arrays).
DTYPES: dict[str, np.dtype[Any]] = {
    "u8": np.dtype("<u1"),
    "i8": np.dtype("<i1"),
    "u16": np.dtype("<u2"),
    "i16": np.dtype("<i2"),
    "u32": np.dtype("<u4"),
    "i32": np.dtype("<i4"),
    "f32": np.dtype("<f4"),
    "f64": np.dtype("<f8"),
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}
_HEADER = struct.Struct("<I")

#: The largest offset or length the page may name (2**62: past any file).
_MAX_OFFSET = 1 << 62
#: Each op's parameters: name -> (kind, required, default, lo, hi).
_INT = "int"
_STR = "str"
_DICT = "dict"

Spec = dict[str, tuple[str, bool, Any, Any, Any]]
_RANGE: Spec = {
    "file": (_INT, True, None, 0, 1 << 16),
    "start": (_INT, False, 0, 0, _MAX_OFFSET),
    "stop": (_INT, False, None, 0, _MAX_OFFSET),
}
#: Every op the page may send, with its parameters.
OPS: dict[str, Spec] = {
    "info": {},
    "tile": {
        "file": (_INT, True, None, 0, 1 << 16),
        "level": (_INT, True, None, 0, 50),
        "index": (_INT, True, None, 0, _MAX_OFFSET),
        "layer": (_STR, True, None, ("entropy", "classes"), None),
    },
    "histogram": _RANGE,
    "stats": _RANGE,
    "ngrams": {**_RANGE, "n": (_INT, False, 2, 2, 3), "preview": (_INT, False, 0, 0, 1)},
    "entropy": {**_RANGE, "resolution": (_INT, False, 1024, 1, 1 << 16)},
    "data": {
        "file": (_INT, True, None, 0, 1 << 16),
        "start": (_INT, True, None, 0, _MAX_OFFSET),
        "size": (_INT, False, 4096, 1, 1 << 16),
    },
    "diff": {
        "start": (_INT, False, 0, 0, _MAX_OFFSET),
        "stop": (_INT, False, None, 0, _MAX_OFFSET),
        "resolution": (_INT, False, 1024, 1, 1 << 16),
    },
    "finddiff": {
        "offset": (_INT, True, None, 0, _MAX_OFFSET),
        "direction": (_INT, True, None, -1, 1),
    },
    "search": {
        **_RANGE,
        "pattern": (_STR, True, None, None, None),
    },
    "export": {
        "request": (_DICT, True, None, None, None),
        "format": (_STR, True, None, ("json", "npz", "csv"), None),
    },
    "list": {"path": (_STR, False, "", None, None)},
    "open": {"path": (_STR, True, None, None, None)},
}
#: The ops an export may name: the analyses, whose results the CLI writes.
EXPORTABLE = ("histogram", "stats", "ngrams", "entropy", "data", "diff")


class MessageError(Exception):
    """A message from the page that the server refuses; the text says why.

    Attributes:
        id: the request id, when the message had a usable one.
    """

    def __init__(self, message: str, id: int | None = None) -> None:
        super().__init__(message)
        self.id = id


@attrs.frozen
class Request:
    """A checked request: its id, op, optional slot and parameters."""

    id: int
    op: str
    params: Mapping[str, Any]
    slot: str | None = None


@attrs.frozen
class Cancel:
    """The page cancels request `id`."""

    id: int


def _check_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise MessageError(f"a request id must be an integer from 1 to 2**53-1, not {value!r}")
    return value


def _params(op: str, message: Mapping[str, Any], id: int | None) -> dict[str, Any]:
    spec = OPS[op]
    unknown = set(message) - set(spec) - {"id", "op", "slot"}
    if unknown:
        raise MessageError(f"{op}: unknown parameters {', '.join(sorted(unknown))}", id)
    out: dict[str, Any] = {}
    for name, (kind, required, default, lo, hi) in spec.items():
        if name not in message:
            if required:
                raise MessageError(f"{op}: parameter {name!r} is required", id)
            out[name] = default
            continue
        value = message[name]
        if kind == _INT:
            if value is None and not required and default is None:
                out[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise MessageError(
                    f"{op}: {name} must be an integer from {lo} to {hi}, not {value!r}", id
                )
        elif kind == _STR:
            if not isinstance(value, str) or len(value) > 4096:
                raise MessageError(f"{op}: {name} must be a string", id)
            if lo is not None and value not in lo:
                raise MessageError(f"{op}: {name} must be one of {', '.join(lo)}", id)
        elif not isinstance(value, dict):
            raise MessageError(f"{op}: {name} must be an object", id)
        out[name] = value
    start, stop = out.get("start"), out.get("stop")
    if isinstance(start, int) and isinstance(stop, int) and stop < start:
        raise MessageError(f"{op}: the range ({start}, {stop}) is reversed", id)
    return out


def parse(text: str | bytes, *, max_length: int = 1 << 16) -> Request | Cancel:
    """Check one message from the page.

    Raises:
        MessageError: the message is not JSON, too long, or not a valid request or cancel.
    """
    if isinstance(text, bytes):
        raise MessageError("the page sends JSON text messages, not binary ones")
    if len(text) > max_length:
        raise MessageError(f"a message may be at most {max_length} characters")
    try:
        message = json.loads(text)
    except ValueError:
        raise MessageError("a message must be a JSON object") from None
    if not isinstance(message, dict):
        raise MessageError("a message must be a JSON object")
    if "cancel" in message:
        if set(message) != {"cancel"}:
            raise MessageError('a cancel message is {"cancel": ID} alone')
        return Cancel(_check_id(message["cancel"]))
    id = _check_id(message.get("id"))
    op = message.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise MessageError(f"unknown op {op!r}: expected one of {', '.join(OPS)}", id)
    slot = message.get("slot")
    if slot is not None and (not isinstance(slot, str) or not 0 < len(slot) <= 64):
        raise MessageError("a slot is a short string", id)
    params = _params(op, message, id)
    if op == "export":
        inner = params["request"]
        if inner.get("op") not in EXPORTABLE:
            raise MessageError(f"export: the request's op must be one of {EXPORTABLE}", id)
        params["request"] = _params(inner["op"], {**inner, "id": id}, id) | {"op": inner["op"]}
    return Request(id, op, params, slot)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if f == f and f not in (float("inf"), float("-inf")) else None
    return value


def encode_frame(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray[Any, Any]]) -> bytes:
    """Return one binary frame: the header (JSON) and the arrays, 8-byte aligned.

    Raises:
        TypeError: an array's dtype has no typed array on the page (see `DTYPES`).
    """
    described: list[dict[str, Any]] = []
    blobs = []
    position = 0
    for name, array in arrays.items():
        wire = _NAMES.get(array.dtype.newbyteorder("<"))
        if wire is None:
            raise TypeError(f"array {name!r}: dtype {array.dtype} has no typed array on the page")
        blob = np.ascontiguousarray(array, dtype=DTYPES[wire]).tobytes()
        described.append(
            {
                "name": name,
                "dtype": wire,
                "shape": list(array.shape),
                "offset": position,
                "length": len(blob),
            }
        )
        blobs.append(blob)
        position = _align(position + len(blob))
    head = json.dumps(
        {**_jsonable(dict(header)), "arrays": described}, separators=(",", ":"), allow_nan=False
    ).encode()
    out = bytearray(_HEADER.pack(len(head)))
    out += head
    base = _align(len(out))
    for item, blob in zip(described, blobs, strict=True):
        out += bytes(base + item["offset"] - len(out))
        out += blob
    return bytes(out)


def _align(n: int) -> int:
    return (n + 7) // 8 * 8


def decode_frame(frame: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    """Return the header and arrays of a frame (what the page does; for tests and tools).

    Raises:
        ValueError: the frame is malformed.
    """
    if len(frame) < _HEADER.size:
        raise ValueError("a frame starts with a 4-byte header length")
    (n,) = _HEADER.unpack_from(frame)
    header = json.loads(frame[_HEADER.size : _HEADER.size + n])
    arrays = {}
    base = _align(_HEADER.size + n)
    for item in header.pop("arrays", []):
        dtype = DTYPES[item["dtype"]]
        start, length = base + int(item["offset"]), int(item["length"])
        if start % 8 or start + length > len(frame):
            raise ValueError(f"array {item['name']!r} lies outside the frame")
        arrays[item["name"]] = np.frombuffer(
            frame, dtype=dtype, count=length // dtype.itemsize, offset=start
        ).reshape(item["shape"])
    return header, arrays
