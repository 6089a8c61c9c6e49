"""Bodies and reports as frames: a JSON header, then one raw frame per array.

This is the only place payload arrays are serialized. The header says, for
each array, its dtype and shape; the array's bytes travel as a frame of their
own without copies (a memoryview of the array on the way out, but for a
report's one small array, whose few bytes are cheaper copied;
`numpy.frombuffer` on the frame on the way in). Bodies are encoded as
canonical JSON (sorted keys), so that equal questions have equal bytes, which
is what loop detection compares. See docs/protocol.md for the layout.

A report crosses the in-process transport as a `DeferredReport`: what the
receiver will decode (its arrays, read-only views; its meta, copied), checked
as `encode_report` checks a report, and encoded only if something reads it
as frames (a ZeroMQ socket: `binglide.core.frames.encode` iterates it). In
one process nobody does, so a report is neither encoded nor parsed there.
A report whose meta JSON would change (tuples, nested values, int keys)
crosses as the frames it was encoded to, parsed at the other end, so that
the receiver gets what a remote one would. Over ZeroMQ, frames arrive as
plain frames and are parsed.

An array a peer receives is read-only, however it came: a client cannot
change the worker's array through the report it got, nor a worker the
client's through the request's arrays.
"""

from __future__ import annotations

import functools
import json
import json.encoder
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import RemoteProtocolError
from .report import (
    Data,
    Report,
    _completion,
    _set_completion,
    _set_data,
    _set_final,
    _set_meta,
    _set_precision,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .core import Frame

__all__ = (
    "REPEAT_LAST",
    "DeferredReport",
    "decode_body",
    "decode_report",
    "defer_report",
    "encode_body",
    "encode_report",
    "is_repeat_last",
)

_VERSION = 1


#: The payload of a FINAL that says "the last PARTIAL was the final report".
#: A worker sends it when it had already sent its last report as a PARTIAL
#: (the handler took long to end after yielding it), so that the data does not
#: travel twice.
REPEAT_LAST: tuple[Frame, ...] = (b'{"data":"repeat","v":1}',)


def is_repeat_last(frames: Sequence[Frame]) -> bool:
    """Return whether `frames` is the `REPEAT_LAST` payload."""
    return len(frames) == 1 and bytes(frames[0]) == REPEAT_LAST[0]


def _unserializable(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False),
# with its C encoder made once instead of at every call (half the time for a
# small header). No circular check: a cycle raises RecursionError instead.
try:
    from _json import make_encoder as _make_encoder
except ImportError:  # no C accelerator (as json.encoder itself allows)
    _encoder = None
else:
    _encoder = _make_encoder(
        None,
        _unserializable,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        True,
        False,
        False,
    )
_decoder = json.JSONDecoder()
_decode = _decoder.decode
# The scanner `_decode` runs, called directly: `_decode` is a Python method
# around it that also skips whitespace with two regex matches; a header
# binglide wrote has none, so the scanner alone reads all of it.
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def _dump(obj: Any) -> bytes:
    """Return `obj` as canonical JSON (sorted keys, no spaces, no NaN).

    Raises:
        TypeError: something in `obj` is not JSON-able.
        ValueError: a float is not finite, or `obj` refers to itself.
    """
    return _dump_str(obj).encode()


def _dump_str(obj: Any) -> str:
    """`_dump`, as text."""
    try:
        if _encoder is not None:
            return "".join(_encoder(obj, 0))
        return json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except RecursionError as exc:
        raise ValueError("the value refers to itself (or nests too deep)") from exc


# The headers binglide itself lays out are written here by hand, as `_dump`
# would write them (keys in sorted order): the C encoder costs about 2,000
# instructions per value it writes, several times what the whole rest of a
# header costs (bench/RESULTS.md, issue 13). Only what a caller gave (a
# body, a report's meta, a mapping's keys) goes through the encoder.
_quote = json.encoder.encode_basestring_ascii


#: The start of an array's spec for its dtype, ``{"dtype":"<i8","shape":[``, by dtype
#: (numpy builds ``dtype.str`` anew at each read). Only built-in dtypes are kept, a
#: bounded number of them.
_SPEC_STARTS: dict[np.dtype[Any], str] = {}


def _spec_json(array: np.ndarray[Any, Any]) -> str:
    """`_dump_str` of an array's spec, ``{"dtype": str, "shape": [int, ...]}``."""
    dtype = array.dtype
    start = _SPEC_STARTS.get(dtype)
    if start is None:
        start = f'{{"dtype":{_quote(dtype.str)},"shape":['
        if dtype.isbuiltin == 1 and len(_SPEC_STARTS) < 64:
            _SPEC_STARTS[dtype] = start
    return start + ",".join(map(str, array.shape)) + "]}"


def _byte_view(array: np.ndarray[Any, Any]) -> memoryview:
    """The bytes of a C-contiguous array, viewed without a copy."""
    try:
        return memoryview(array).cast("B")  # type: ignore[arg-type, unused-ignore]
    except (TypeError, ValueError, NotImplementedError):
        # A dtype the buffer protocol cannot express (datetime64, say).
        return array.reshape(-1).view(np.uint8).data


@functools.lru_cache(maxsize=64)
def _dtype(spec: str) -> np.dtype[Any]:
    return np.dtype(spec)


def _array_frames(arrays: Sequence[np.ndarray[Any, Any]]) -> tuple[str, list[Frame]]:
    """Return the specs of `arrays` as JSON, and their frames."""
    specs: list[str] = []
    frames: list[Frame] = []
    for array in arrays:
        # Not np.ascontiguousarray: it makes a 0-d array 1-d, and the shape
        # is part of what the receiver must get back.
        array = np.asarray(array, order="C")
        if array.dtype.hasobject:
            raise TypeError("object arrays cannot be sent; use numeric dtypes")
        specs.append(_spec_json(array))
        frames.append(_byte_view(array) if array.size else b"")
    return "[" + ",".join(specs) + "]", frames


#: An array's spec, read and checked: its dtype and shape.
_Spec = tuple[np.dtype[Any], tuple[int, ...]]


def _specs(specs: Any) -> list[_Spec]:
    """Read and check the array specs of a payload header."""
    if not isinstance(specs, list):
        raise RemoteProtocolError("the payload header does not describe its array frames")
    out = []
    for spec in specs:
        try:
            dtype = _dtype(spec["dtype"])
            shape = tuple(int(n) for n in spec["shape"])
            if dtype.hasobject or any(n < 0 for n in shape):
                raise ValueError("bad array spec")
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteProtocolError(f"an array frame does not match its spec {spec!r}") from exc
        out.append((dtype, shape))
    return out


def _views(specs: Sequence[_Spec], frames: Sequence[Frame]) -> tuple[np.ndarray[Any, Any], ...]:
    """The arrays that `frames` hold, as `specs` say (views, no copies)."""
    if len(specs) != len(frames):
        raise RemoteProtocolError("the payload header does not describe its array frames")
    out = []
    # By index, not zip(..., strict=True) (its keyword is parsed at every
    # call), and no reshape of a 1-d array that already has its shape:
    # every report a client receives comes here, most with one such array.
    for i in range(len(specs)):
        dtype, shape = specs[i]
        frame = frames[i]
        try:
            array = _frombuffer(frame, dtype) if len(frame) else np.empty(0, dtype)
            if len(shape) != 1 or len(array) != shape[0]:
                array = array.reshape(shape)
        except (TypeError, ValueError) as exc:
            spec = {"dtype": dtype.str, "shape": list(shape)}
            raise RemoteProtocolError(f"an array frame does not match its spec {spec!r}") from exc
        if type(frame) is memoryview and not frame.readonly:
            # A view of the sender's own array (in one process): the receiver
            # must not write through it. Frames off a socket are read-only.
            # write=False, positionally (numpy's stubs say keyword only; its
            # signature takes it positionally too): half the keyword's cost.
            array.setflags(False)  # type: ignore[call-arg]
        out.append(array)
    return tuple(out)


#: ``numpy.frombuffer``, called positionally (a keyword doubles its argument parsing).
_frombuffer = np.frombuffer


def _arrays(specs: Any, frames: Sequence[Frame]) -> tuple[np.ndarray[Any, Any], ...]:
    if not isinstance(specs, list) or len(specs) != len(frames):
        raise RemoteProtocolError("the payload header does not describe its array frames")
    return _views(_specs(specs), frames)


def _header(frames: Sequence[Frame]) -> dict[str, Any]:
    if not frames:
        raise RemoteProtocolError("the payload is empty: it needs a header frame")
    try:
        text = bytes(frames[0]).decode()
        try:
            header, end = _scan(text, 0)
        except StopIteration:  # not a value at 0: whitespace first, or not JSON
            end = -1
        if end != len(text):
            header = _decode(text)  # what json.loads accepts, or its error
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nested too deep
        raise RemoteProtocolError("the payload header is not JSON") from exc
    if not isinstance(header, dict) or header.get("v") != _VERSION:
        raise RemoteProtocolError(f"the payload header is not a binglide v{_VERSION} header")
    return header


def encode_body(
    body: Mapping[str, Any] | None, arrays: Sequence[np.ndarray[Any, Any]] = ()
) -> tuple[Frame, ...]:
    """Return the frames of a request body and its arrays.

    Raises:
        TypeError: the body is not JSON-able, or an array has an object dtype.
    """
    if len(arrays):
        specs_json, frames = _array_frames(arrays)
    else:
        specs_json, frames = "[]", []  # the usual body: no arrays
    try:
        # _dump({"v": _VERSION, "body": body, "arrays": specs}), by hand
        # (`_dump_str`, inline: every request comes here).
        if body is None:
            body_json = "null"
        elif _encoder is not None:
            body_json = "".join(_encoder(body, 0))
        else:
            body_json = _dump_str(body)
    except RecursionError as exc:
        raise TypeError(
            "the request body is not JSON-able: the value refers to itself (or nests too deep)"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the request body is not JSON-able: {exc}") from exc
    head = f'{{"arrays":{specs_json},"body":{body_json},"v":{_VERSION}}}'.encode()
    return (head, *frames) if frames else (head,)


def decode_body(frames: Sequence[Frame]) -> tuple[Any, tuple[np.ndarray[Any, Any], ...]]:
    """Return the body and arrays of a request's frames.

    Raises:
        RemoteProtocolError: the frames are not a binglide body.
    """
    if len(frames) == 1:
        # The usual request: no arrays, its header as `encode_body` writes it.
        # Only the body between the header's fixed start and end is parsed
        # (what a parse of the whole would find there: the rest is known);
        # anything else (other layouts, bad JSON) takes the general way below.
        head = frames[0]
        try:
            text = (head if type(head) is bytes else bytes(head)).decode()
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError("the payload header is not JSON") from exc
        if text.startswith(_PLAIN_BODY_START) and text.endswith(_PLAIN_BODY_END):
            try:
                body, end = _scan(text, _PLAIN_BODY_AT)
            except (StopIteration, ValueError, RecursionError):
                end = -1
            if end == len(text) - _PLAIN_BODY_END_LEN:
                return body, ()
    header = _header(frames)
    specs = header.get("arrays", [])
    if type(specs) is list and not specs and len(frames) == 1:
        return header.get("body"), ()  # no arrays, another layout
    return header.get("body"), _arrays(specs, frames[1:])


#: What `encode_body` writes around the body of a request without arrays.
_PLAIN_BODY_START = '{"arrays":[],"body":'
_PLAIN_BODY_END = f',"v":{_VERSION}}}'
_PLAIN_BODY_AT = len(_PLAIN_BODY_START)
_PLAIN_BODY_END_LEN = len(_PLAIN_BODY_END)


#: The headers of one-array reports without meta lately encoded, by the
#: array's dtype and shape and the report's completion and precision (what
#: such a header says): at most `_MAX_ARRAY_HEADS`.
_array_heads: dict[tuple[np.dtype[Any], tuple[int, ...], float, float], Frame] = {}
_MAX_ARRAY_HEADS = 256
#: The largest one-array report whose bytes travel as a copy (bytes), not a view.
_SMALL_ARRAY = 1024


def encode_report(report: Report) -> tuple[Frame, ...]:
    """Return the frames of `report` (its `final` flag travels as the command).

    Raises:
        TypeError: an array has an object dtype, or the meta is not JSON-able.
    """
    data: Any = report.data
    if type(data) is np.ndarray and not report.meta:
        # The usual report: one array, no meta. Its header is the same for
        # the same dtype, shape, completion and precision: made once.
        array = np.asarray(data, order="C")
        key = (array.dtype, array.shape, report.completion, report.precision)
        head = _array_heads.get(key)
        if head is None:
            head = _report_frames("array", [], [array], *key[2:], {})[0]  # checks it too
            if len(_array_heads) >= _MAX_ARRAY_HEADS:
                _array_heads.clear()
            _array_heads[key] = head
        if array.nbytes <= _SMALL_ARRAY:
            # Copied: for a few bytes a copy is cheaper to make than a view,
            # and a bytes frame cheaper to send (ZeroMQ copies one this small
            # anyway). Empty arrays too: their frame is b"".
            return (head, array.tobytes())
        try:  # `_byte_view`, inline (every report over ZeroMQ comes here)
            return (head, memoryview(array).cast("B"))  # type: ignore[arg-type, unused-ignore]
        except (TypeError, ValueError, NotImplementedError):
            return (head, _byte_view(array))
    keys: list[str] = []
    arrays: list[np.ndarray[Any, Any]] = []
    if data is None:
        kind = "none"
    elif not isinstance(data, np.ndarray) and isinstance(data, Mapping):
        kind, keys, arrays = "mapping", list(data), [np.asarray(v) for v in data.values()]
    else:
        kind, arrays = "array", [np.asarray(data)]
    return _report_frames(kind, keys, arrays, report.completion, report.precision, report.meta)


def _report_frames(
    kind: str,
    keys: list[Any],
    arrays: Sequence[np.ndarray[Any, Any]],
    completion: float,
    precision: float,
    meta: Mapping[str, Any],
) -> tuple[Frame, ...]:
    specs_json, frames = _array_frames(arrays)
    try:
        head = _report_header(completion, precision, meta, kind, keys, specs_json)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"report meta is not JSON-able: {exc}") from exc
    return (head, *frames)


def _plain_meta(meta: Mapping[str, Any]) -> bool:
    """Whether `meta` comes back from JSON as it is: str keys, and scalars JSON writes."""
    for key, value in meta.items():
        if type(key) is not str:
            return False
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return False  # JSON has no NaN: encode_report refuses it
        elif kind not in _PLAIN_SCALARS:
            return False
    return True


#: The types of meta values JSON gives back as they were (floats checked apart).
_PLAIN_SCALARS = frozenset((str, int, bool, type(None)))


def _readonly(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """`array` as the receiver gets it: C-contiguous, and a read-only view of the sender's.

    Raises:
        TypeError: an object array (what `encode_report` refuses).
    """
    array = np.asarray(array, order="C")
    if array.dtype.hasobject:
        raise TypeError("object arrays cannot be sent; use numeric dtypes")
    view = array.view()
    view.setflags(False)  # type: ignore[call-arg]  # write=False (as in `_views`)
    return view


class DeferredReport(tuple["Frame", ...]):
    """A report's payload within one process (see the module docstring).

    Its tuple holds nothing of its own: read as a sequence of frames (its
    length, iteration, indexing: what `binglide.core.frames.encode` does
    before a ZeroMQ socket sends a message) it is the report's frames,
    encoded at the first read. In one process nobody reads them:
    `decode_report` returns a report of `decoded` directly. (No broker
    routes between the in-process transport and ZeroMQ today; this keeps a
    payload correct wherever it goes.)

    Attributes:
        decoded: ``(data, completion, precision, meta)``: what parsing the
            frames would give (the arrays C-contiguous and read-only, the
            meta a snapshot of plain scalars).
    """

    decoded: tuple[Data, float, float, dict[str, Any]]
    _frames: tuple[Frame, ...] | None

    def __new__(cls, decoded: tuple[Data, float, float, dict[str, Any]]) -> DeferredReport:
        self = tuple.__new__(cls)
        self.decoded = decoded
        self._frames = None
        return self

    def frames(self) -> tuple[Frame, ...]:
        """Return the report's frames, encoding them at the first call."""
        frames = self._frames
        if frames is None:
            data, completion, precision, meta = self.decoded
            if data is None:
                frames = _report_frames("none", [], [], completion, precision, meta)
            elif isinstance(data, np.ndarray):
                frames = _report_frames("array", [], [data], completion, precision, meta)
            else:
                keys, arrays = list(data), list(data.values())
                frames = _report_frames("mapping", keys, arrays, completion, precision, meta)
            self._frames = frames
        return frames

    def __len__(self) -> int:
        return len(self.frames())

    def __bool__(self) -> bool:
        return True  # a report's frames start with its header

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames())

    def __getitem__(self, index: Any) -> Any:
        return self.frames()[index]

    def __contains__(self, item: object) -> bool:
        return item in self.frames()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeferredReport):
            other = other.frames()
        return self.frames() == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.frames())

    def __repr__(self) -> str:
        return f"DeferredReport({self.decoded!r})"


def defer_report(report: Report) -> tuple[Frame, ...]:
    """Return the payload of `report` for a receiver in this process.

    A `DeferredReport` when its meta survives JSON as it is (else the frames
    `encode_report` makes, which the receiver parses). Either way the report
    is checked as `encode_report` checks it.

    Raises:
        TypeError: an array has an object dtype, or the meta is not JSON-able.
    """
    meta = report.meta
    if (meta and not _plain_meta(meta)) or not math.isfinite(report.precision):
        return encode_report(report)  # JSON changes the meta, or it raises
    data: Any = report.data
    decoded: Data
    try:
        if data is None:
            decoded = None
        elif type(data) is np.ndarray and data.flags.c_contiguous and not data.dtype.hasobject:
            # `_readonly`, inline (the usual report: one array).
            decoded = data.view()
            decoded.setflags(False)  # type: ignore[call-arg]  # write=False (as in `_views`)
        elif isinstance(data, np.ndarray):
            decoded = _readonly(data)
        elif isinstance(data, Mapping):
            if not all(type(k) is str for k in data):
                return encode_report(report)  # JSON makes the keys strings
            decoded = {k: _readonly(v) for k, v in data.items()}
        else:
            decoded = _readonly(data)
    except TypeError:
        return encode_report(report)  # raises as a report that travels does
    # `DeferredReport(...)`, without its `__new__` call (one a report).
    deferred = _new_tuple(DeferredReport)
    deferred.decoded = (decoded, report.completion, report.precision, dict(meta) if meta else {})
    deferred._frames = None
    return deferred


_new_tuple = tuple.__new__


def _report_header(
    completion: float,
    precision: float,
    meta: Mapping[str, Any],
    kind: str,
    keys: list[Any],
    specs_json: str,
) -> bytes:
    """The header of a report: what `_dump` makes of its fields, written by hand.

    Raises:
        TypeError: something in `meta` or `keys` is not JSON-able.
        ValueError: a float is not finite, or `meta` refers to itself.
    """
    if not (math.isfinite(completion) and math.isfinite(precision)):
        raise ValueError("Out of range float values are not JSON compliant")
    return (
        f'{{"arrays":{specs_json},"completion":{_float_json(completion)},"data":"{kind}",'
        f'"keys":{_dump_str(keys) if keys else "[]"},"meta":{_dump_str(meta) if meta else "{}"},'
        f'"precision":{_float_json(precision)},"v":{_VERSION}}}'
    ).encode()


def _float_json(value: float) -> str:
    """A finite float as JSON writes it (its repr; 1.0, the usual value, without it)."""
    return "1.0" if value == 1.0 else repr(float(value))


#: What a report header says, read and checked: the data's kind, the mapping's
#: keys, the arrays' specs, completion, precision and meta.
_ReportPlan = tuple[str, list[str], list[_Spec], Any, Any, Any]
#: The plans of report headers seen lately, by the header's bytes: a service
#: answers with the same header again and again (the same dtypes, shapes and
#: meta), and parsing it was the larger half of decoding a small report.
#: Only plans whose meta holds plain scalars are kept (a report's meta is
#: copied from the plan: nothing a caller holds is shared), at most
#: `_MAX_REPORT_PLANS`.
_report_plans: dict[bytes, _ReportPlan] = {}
_MAX_REPORT_PLANS = 256


def _report_plan(frames: Sequence[Frame]) -> _ReportPlan:
    header = _header(frames)
    specs = _specs(header.get("arrays", []))
    kind = header.get("data")
    keys: list[str] = []
    if kind == "mapping":
        raw_keys = header.get("keys")
        if not isinstance(raw_keys, list) or len(raw_keys) != len(specs):
            raise RemoteProtocolError("the report's keys do not match its arrays")
        keys = [str(k) for k in raw_keys]
    elif not (kind == "none" or (kind == "array" and len(specs) == 1)):
        raise RemoteProtocolError(f"unknown report data kind {kind!r}")
    meta = header.get("meta") or {}
    try:
        # What `Report` makes of them, checked once a plan (see `decode_report`).
        completion = _completion(header.get("completion", 1.0))
        precision = float(header.get("precision", 1.0))
    except (TypeError, ValueError) as exc:
        raise RemoteProtocolError(f"the report header is invalid: {exc}") from exc
    return kind, keys, specs, completion, precision, meta


_new_report = object.__new__


def decode_report(frames: Sequence[Frame], *, final: bool) -> Report:
    """Return the `Report` that `frames` carry.

    Raises:
        RemoteProtocolError: the frames are not a binglide report.
    """
    if type(frames) is DeferredReport:
        known, completion, precision, known_meta = frames.decoded
        if type(known) is dict:
            known = dict(known)  # the receiver's own mapping
        # The sender's `Report` converted and checked these values already.
        meta = dict(known_meta) if known_meta else {}  # the receiver's own
        return _trusted_report(known, completion, precision, meta, final)
    if not frames:
        raise RemoteProtocolError("the payload is empty: it needs a header frame")
    head = frames[0]
    if type(head) is not bytes:
        head = bytes(head)
    plan = _report_plans.get(head)
    if plan is None:
        plan = _report_plan(frames)
        meta = plan[5]
        if isinstance(meta, dict) and _plain_meta(meta):
            if len(_report_plans) >= _MAX_REPORT_PLANS:
                _report_plans.clear()
            _report_plans[head] = plan
    kind, keys, specs, completion, precision, meta = plan
    arrays = _views(specs, frames[1:])
    data: Data
    if kind == "array":
        data = arrays[0]
    elif kind == "none":
        data = None
    else:
        data = dict(zip(keys, arrays, strict=True))
    if type(meta) is not dict:
        try:
            return Report(data, completion=completion, precision=precision, meta=meta, final=final)
        except (TypeError, ValueError) as exc:
            raise RemoteProtocolError(f"the report header is invalid: {exc}") from exc
    return _trusted_report(data, completion, precision, dict(meta) if meta else {}, final)


def _trusted_report(
    data: Data, completion: float, precision: float, meta: dict[str, Any], final: bool
) -> Report:
    """A `Report` of values its converters made already, made without them."""
    report: Report = _new_report(Report)
    # Its slots' own setters (what `Report.__init__` writes with).
    _set_data(report, data)
    _set_completion(report, completion)
    _set_precision(report, precision)
    _set_meta(report, meta)
    _set_final(report, final)
    return report
