"""Payload frames: canonical JSON bodies, and reports that survive the in-process shortcut."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import binglide
from binglide.payload import (
    DeferredReport,
    decode_body,
    decode_report,
    defer_report,
    encode_body,
    encode_report,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values))
def test_bodies_are_canonical_json(body: dict[str, Any]) -> None:
    # The exact bytes json.dumps gives: loop detection compares them, and a
    # peer in another language must be able to produce them.
    head = encode_body(body)[0]
    expected = json.dumps(
        {"v": 1, "body": body, "arrays": []}, separators=(",", ":"), sort_keys=True
    )
    assert head == expected.encode()
    assert decode_body([head]) == (body, ())


def test_bodies_that_are_not_json_are_refused() -> None:
    with pytest.raises(TypeError, match=r"not JSON-able.*set"):
        encode_body({"x": {1, 2}})
    with pytest.raises(TypeError, match="not JSON-able"):
        encode_body({"x": float("nan")})
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(TypeError, match="not JSON-able"):
        encode_body(looped)


def _parsed(report: binglide.Report, *, final: bool) -> binglide.Report:
    """What a peer in another process decodes: the frames as plain frames."""
    return decode_report(tuple(bytes(f) for f in encode_report(report)), final=final)


def _same(a: binglide.Report, b: binglide.Report) -> None:
    assert (a.completion, a.precision, a.meta, a.final) == (
        b.completion,
        b.precision,
        b.meta,
        b.final,
    )
    assert type(a.meta) is type(b.meta) is dict
    if a.data is None or b.data is None:
        assert a.data is b.data is None
        return
    if isinstance(a.data, np.ndarray) or isinstance(b.data, np.ndarray):
        pairs = [(a.data, b.data)]
    else:
        assert isinstance(a.data, dict)
        assert isinstance(b.data, dict)
        assert list(a.data) == list(b.data)
        pairs = [(a.data[k], b.data[k]) for k in a.data]
    for x, y in pairs:
        assert isinstance(x, np.ndarray)
        assert isinstance(y, np.ndarray)
        assert (x.dtype, x.shape) == (y.dtype, y.shape)
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "report",
    [
        binglide.Report(np.arange(6, dtype=np.uint64).reshape(2, 3), completion=0.25),
        binglide.Report(np.arange(12, dtype=">i4").reshape(3, 4)[:, ::2], meta={"n": 1.5}),
        binglide.Report([1, 2, 3], precision=0.5, meta={"s": "x", "z": None, "b": True}),  # type: ignore[arg-type]
        binglide.Report({"a": np.zeros(0, np.float32), "b": [[1, 2]]}),  # type: ignore[dict-item]
        binglide.Report(None, meta={"k": 7}),
        binglide.Report(np.ones(3), meta={"offsets": (1, 2)}),  # JSON makes the tuple a list
        binglide.Report(np.ones(3), meta={"nested": {"a": [1]}}),
        binglide.Report(np.float64(2.5)),  # type: ignore[arg-type]
        binglide.Report({"total": np.array(7, np.int64), "counts": np.ones(2)}),
    ],
)
@pytest.mark.parametrize("final", [False, True])
def test_a_report_decoded_in_process_is_what_parsing_gives(
    report: binglide.Report, final: bool
) -> None:
    payload = defer_report(report)
    decoded = decode_report(payload, final=final)
    _same(decoded, _parsed(report, final=final))
    for array in _arrays_of(decoded):
        assert not array.flags.writeable  # as an array parsed off a socket
    # Read as frames (at a ZeroMQ socket), it is what encode_report makes.
    wire = tuple(bytes(f) for f in payload)
    assert wire == tuple(bytes(f) for f in encode_report(report))
    _same(decode_report(wire, final=final), _parsed(report, final=final))


def _arrays_of(report: binglide.Report) -> list[np.ndarray[Any, Any]]:
    if report.data is None:
        return []
    if isinstance(report.data, np.ndarray):
        return [report.data]
    return list(report.data.values())


def test_the_in_process_shortcut_is_taken_when_it_is_exact() -> None:
    assert isinstance(defer_report(binglide.Report(np.ones(2), meta={"a": 1})), DeferredReport)
    assert isinstance(defer_report(binglide.Report(meta={"a": True, "b": None})), DeferredReport)
    # JSON would change these: only parsing can tell what the peer sees.
    for report in (
        binglide.Report(np.ones(2), meta={"a": (1,)}),
        binglide.Report(np.ones(2), meta={"a": {"b": 1}}),
        binglide.Report(np.ones(2), meta={1: "a"}),  # type: ignore[dict-item]
        binglide.Report({1: np.ones(2)}),  # type: ignore[dict-item]
    ):
        payload = defer_report(report)
        assert type(payload) is tuple
        assert payload == encode_report(report)
    # The decoded report owns its meta: the handler's dict may change afterwards.
    meta = {"a": 1}
    report = binglide.Report(np.ones(2), meta=meta)
    payload = defer_report(report)
    report.meta["a"] = 2
    assert decode_report(payload, final=True).meta == {"a": 1}
    first = decode_report(payload, final=False)
    first.meta["a"] = 3
    assert decode_report(payload, final=True).meta == {"a": 1}
    # ... and so the frames made later at a socket say what was yielded.
    assert json.loads(bytes(payload[0]))["meta"] == {"a": 1}


@pytest.mark.parametrize(
    "report",
    [
        binglide.Report(np.array([object()])),
        binglide.Report({"a": np.array([None])}),
        binglide.Report(np.ones(1), meta={"x": float("nan")}),
        binglide.Report(np.ones(1), meta={"x": {"y": float("inf")}}),
        binglide.Report(np.ones(1), meta={"x": object()}),
        binglide.Report(np.ones(1), precision=float("inf")),
    ],
)
def test_a_report_deferred_is_checked_as_one_encoded(report: binglide.Report) -> None:
    with pytest.raises(TypeError) as encoded:
        encode_report(report)
    with pytest.raises(TypeError) as deferred:
        defer_report(report)
    assert str(deferred.value) == str(encoded.value)


def test_a_receiver_cannot_write_the_senders_arrays() -> None:
    sent = np.arange(4096)  # 32 KiB: larger than a report's arrays copied when sent
    for payload in (defer_report(binglide.Report(sent)), encode_report(binglide.Report(sent))):
        got = decode_report(payload, final=True).array
        assert np.shares_memory(got, sent)  # no copy
        with pytest.raises(ValueError, match="read-only"):
            got[0] = 9
    assert sent.flags.writeable  # the sender's own array is as it was
    body_array = np.arange(3.0)
    _, (received,) = decode_body(encode_body({}, [body_array]))
    with pytest.raises(ValueError, match="read-only"):
        received[0] = 1.0
    np.testing.assert_array_equal(body_array, [0.0, 1.0, 2.0])
    mapping = binglide.Report({"a": np.ones(2)})
    payload = defer_report(mapping)
    first = decode_report(payload, final=False)
    assert isinstance(first.data, dict)
    first.data["b"] = np.zeros(1)
    again = decode_report(payload, final=True)
    assert isinstance(again.data, dict)
    assert list(again.data) == ["a"]


def test_a_deferred_report_is_a_sequence_of_its_frames() -> None:
    report = binglide.Report({"b": np.arange(3), "a": np.zeros(0)}, completion=0.5, meta={"k": 1})
    payload = defer_report(report)
    frames = encode_report(report)
    assert len(payload) == len(frames) == 3
    assert payload
    assert [bytes(f) for f in payload] == [bytes(f) for f in frames]
    assert bytes(payload[0]) == frames[0]
    assert frames[0] in payload
    assert payload == defer_report(report)
    assert payload != encode_report(binglide.Report())
    assert [*payload] == list(frames)  # as frames.encode reads it


_dtypes = st.sampled_from(
    ["<u1", ">i4", "<f8", "<c16", "|b1", "<U3", "|S2", "<M8[ns]", "|V4", "<f2", ">u8"]
)
_shapes = st.lists(st.integers(0, 3), max_size=3)
_arrays = st.builds(lambda dtype, shape: np.zeros(shape, dtype=dtype), _dtypes, _shapes)


@given(
    data=st.none() | _arrays | st.dictionaries(st.text() | st.integers(), _arrays, max_size=3),
    completion=st.floats(0.0, 1.0) | st.sampled_from([0, 1, True]),
    precision=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-5, 5),
    meta=st.dictionaries(st.text(), json_values, max_size=4),
)
def test_report_headers_are_canonical_json(
    data: Any, completion: float, precision: float, meta: dict[str, Any]
) -> None:
    # Written by hand for speed: the bytes must be those json.dumps gives.
    report = binglide.Report(data, completion=completion, precision=precision, meta=meta)
    arrays: list[np.ndarray[Any, Any]]
    if data is None:
        kind, keys, arrays = "none", [], []
    elif isinstance(data, dict):
        kind, keys, arrays = "mapping", list(data), list(data.values())
    else:
        kind, keys, arrays = "array", [], [data]
    expected = {
        "v": 1,
        "completion": report.completion,
        "precision": report.precision,
        "meta": meta,
        "data": kind,
        "keys": keys,
        "arrays": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays],
    }
    head = encode_report(report)[0]
    assert head == json.dumps(expected, separators=(",", ":"), sort_keys=True).encode()


@pytest.mark.parametrize("precision", [float("nan"), float("inf"), -float("inf")])
def test_a_report_whose_precision_is_not_finite_is_refused(precision: float) -> None:
    with pytest.raises(TypeError, match="not JSON-able"):
        encode_report(binglide.Report(np.ones(2), precision=precision))


def test_a_0d_array_keeps_its_shape_in_a_body_and_a_report() -> None:
    # A scalar total is an array of shape (), not (1,): np.ascontiguousarray
    # once made it 1-d on the way.
    _, (total,) = decode_body(encode_body({}, [np.array(7, np.int64)]))
    assert total.shape == ()
    assert total == 7
    report = decode_report(encode_report(binglide.Report(np.array(2.5))), final=True)
    assert isinstance(report.data, np.ndarray)
    assert report.data.shape == ()
    assert report.data == 2.5


@given(st.lists(_arrays, max_size=3), st.dictionaries(st.text(), json_values, max_size=3))
def test_bodies_with_arrays_are_canonical_json(
    arrays: list[np.ndarray[Any, Any]], body: dict[str, Any]
) -> None:
    head = encode_body(body, arrays)[0]
    specs = [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays]
    expected = json.dumps(
        {"v": 1, "body": body, "arrays": specs}, separators=(",", ":"), sort_keys=True
    )
    assert head == expected.encode()


@pytest.mark.parametrize(
    ("head", "ok"),
    [
        (b'{"arrays":[],"body":{"n":1},"v":1}', True),
        (b' \n{"v":1,"body":{"n":1}} \t', True),  # whitespace json.loads allows
        (b'{"v":1,"body":{"n":1}}x', False),  # trailing garbage
        (b'{"v":1,"body":{"n":1}}{}', False),  # two values
        (b'{"v":1,"body":{"n":1}', False),  # cut short
        (b"", False),
        (b"  ", False),
        (b"[" * 100_000, False),  # nested too deep
        (b'{"arrays":[],"body":"\xff","v":1}', False),  # not UTF-8
        (b'{"arrays":[],"body":' + b"[" * 100_000 + b',"v":1}', False),
    ],
)
def test_a_body_header_is_read_as_json_loads_reads_it(head: bytes, ok: bool) -> None:
    # The header is read by the JSON scanner alone when it can be: exactly
    # what json.loads accepts is accepted.
    if ok:
        assert decode_body([head]) == ({"n": 1}, ())
    else:
        with pytest.raises(binglide.errors.RemoteProtocolError, match="not JSON"):
            decode_body([head])


_MIDDLES = st.one_of(
    json_values.map(lambda v: json.dumps(v, separators=(",", ":"))),
    st.sampled_from(
        [
            '1,"v":2',  # another key after the body: the header's end is its own
            '{"n":1},"body":2',  # the body twice: json.loads keeps the last
            '{"n":1},"arrays":[{"dtype":"<i8","shape":[1]}]',  # arrays after all
            ' {"n":1}',  # whitespace json.loads allows
            '{"n":1} ',
            "",
            "{",
            '{"n":1}}',
            "NaN",
            "[" * 5000,
            r'"\u00e9\ud83d\ude00"',  # JSON escapes, a surrogate pair
        ]
    ),
    st.text(alphabet='{}[]",:0123456789 tnrufalse\\', max_size=12),
)


@given(_MIDDLES)
def test_a_body_between_the_usual_start_and_end_is_read_as_json_loads_reads_it(
    middle: str,
) -> None:
    # `decode_body` parses only the body when the header starts and ends as
    # `encode_body` writes them: what json.loads makes of the whole header
    # is the reference, whatever lies between.
    head = ('{"arrays":[],"body":' + middle + ',"v":1}').encode()
    try:
        header = json.loads(head)
    except (ValueError, RecursionError):
        header = None
    if isinstance(header, dict) and header.get("v") == 1 and header.get("arrays") == []:
        assert decode_body([head]) == (header.get("body"), ())
        assert decode_body([memoryview(head)]) == (header.get("body"), ())
    else:
        with pytest.raises(binglide.errors.RemoteProtocolError):
            decode_body([head])


def test_a_body_whose_array_specs_are_not_a_list_is_refused() -> None:
    for specs in ("{}", "0", '""', "null"):
        head = b'{"arrays":%s,"body":null,"v":1}' % specs.encode()
        with pytest.raises(binglide.errors.RemoteProtocolError):
            decode_body([head])


@given(st.lists(_arrays, min_size=1, max_size=3), st.integers(0, 2**32 - 1))
def test_arrays_of_every_dtype_arrive_as_they_left(
    arrays: list[np.ndarray[Any, Any]], seed: int
) -> None:
    # Their bytes travel as views (a memoryview cast to bytes, or a uint8 view
    # for the dtypes the buffer protocol cannot express, such as datetime64).
    rng = np.random.default_rng(seed)
    filled = [
        rng.integers(0, 256, a.nbytes, dtype=np.uint8).view(a.dtype).reshape(a.shape)
        if a.nbytes
        else a
        for a in arrays
    ]
    frames = tuple(bytes(f) for f in encode_body({"n": 1}, filled))
    body, got = decode_body(frames)
    assert body == {"n": 1}
    assert len(got) == len(filled)
    for sent, received in zip(filled, got, strict=True):
        assert received.dtype == sent.dtype
        assert received.shape == sent.shape
        assert received.tobytes() == sent.tobytes()


def test_a_small_reports_array_travels_as_a_copy_of_its_bytes() -> None:
    # At most 1 KiB: the frame is the array's bytes (cheaper to make than a
    # view, and ZeroMQ copies a frame this small anyway), larger a view of it.
    for sent, copied in ((np.arange(128), True), (np.arange(129), False), (np.arange(0), True)):
        head, frame = encode_report(binglide.Report(sent))
        assert (type(frame) is bytes) is copied
        assert bytes(frame) == sent.tobytes()
        got = decode_report((head, frame), final=True).array
        np.testing.assert_array_equal(got, sent)
    sent = np.arange(3)
    _, frame = encode_report(binglide.Report(sent))
    sent[0] = 7  # the sender may change a copied array: what was sent stays
    assert frame == np.arange(3).tobytes()


def test_an_array_frame_must_hold_exactly_its_spec() -> None:
    # A one-dimensional array is taken as numpy reads the frame, unreshaped,
    # only when the frame holds exactly the elements its shape says.
    for array in (np.arange(3), np.arange(6).reshape(2, 3), np.array(5), np.arange(0)):
        head, frame = encode_report(binglide.Report(array))
        got = decode_report((head, bytes(frame)), final=True).array
        assert got.shape == array.shape
        np.testing.assert_array_equal(got, array)
        for wrong in (bytes(frame) + bytes(8), bytes(frame)[8:] if array.size else None):
            if wrong is None:
                continue
            with pytest.raises(binglide.errors.RemoteProtocolError, match="does not match"):
                decode_report((head, wrong), final=True)


def test_a_report_header_seen_again_decodes_as_the_first_time() -> None:
    # decode_report keeps the plan of a header it has read: a report decoded
    # from it again must be a new one, the arrays its own frames', nothing shared.
    wire = [bytes(f) for f in encode_report(binglide.Report(np.arange(3), meta={"k": "v"}))]
    first = decode_report(wire, final=False)
    first.meta["k"] = "changed by the caller"
    again = [wire[0], np.arange(3, 6).tobytes()]
    second = decode_report(again, final=True)
    assert second.meta == {"k": "v"}
    assert second.final
    assert not first.final
    np.testing.assert_array_equal(second.array, [3, 4, 5])
    np.testing.assert_array_equal(first.array, [0, 1, 2])
    # What the frames themselves say is checked every time.
    with pytest.raises(binglide.errors.RemoteProtocolError, match="array frames"):
        decode_report([wire[0]], final=True)
    with pytest.raises(binglide.errors.RemoteProtocolError, match="does not match its spec"):
        decode_report([wire[0], b"\x00" * 5], final=True)
    mapping = binglide.Report({"a": np.ones(2), "b": np.zeros(1)})
    wire = [bytes(f) for f in encode_report(mapping)]
    for _ in range(2):
        got = decode_report(wire, final=True)
        assert isinstance(got.data, dict)
        assert sorted(got.data) == ["a", "b"]
        np.testing.assert_array_equal(got.data["b"], [0.0])


def test_a_one_array_report_encodes_alike_whether_its_header_was_made_before_or_not() -> None:
    cases = [
        (np.arange(3, dtype=np.int64), 1.0, 1.0),
        (np.arange(4, dtype=np.int64), 1.0, 1.0),  # another shape, same dtype
        (np.arange(3, dtype=">i8"), 1.0, 1.0),  # another byte order, same shape
        (np.zeros((2, 3), np.float32), 0.5, 0.25),
        (np.zeros((0,), np.uint8), 1.0, 0.5),
        (np.asfortranarray(np.arange(6.0).reshape(2, 3)), 0.75, 1.0),
        (np.array(7, dtype=np.int16), 1.0, 1.0),  # 0-d
    ]
    for _ in range(2):  # the second time, every header was made before
        for array, completion, precision in cases:
            frames = encode_report(
                binglide.Report(array, completion=completion, precision=precision)
            )
            assert json.loads(bytes(frames[0])) == {
                "arrays": [{"dtype": array.dtype.str, "shape": list(array.shape)}],
                "completion": completion,
                "data": "array",
                "keys": [],
                "meta": {},
                "precision": precision,
                "v": 1,
            }
            got = decode_report(frames, final=True)
            assert got.array.dtype == array.dtype
            np.testing.assert_array_equal(got.array, array)
            assert (got.completion, got.precision) == (completion, precision)
        with pytest.raises(TypeError, match="object arrays"):
            encode_report(binglide.Report(np.array([object()])))
        with pytest.raises(TypeError, match="not JSON-able"):
            encode_report(binglide.Report(np.arange(3), precision=float("nan")))


@pytest.mark.parametrize(
    ("field", "value"),
    [("completion", 2.0), ("completion", -0.5), ("completion", "most"), ("precision", "high")],
)
def test_a_report_header_with_a_bad_completion_or_precision_is_refused(
    field: str, value: Any
) -> None:
    header = {
        "arrays": [],
        "completion": 1.0,
        "data": "none",
        "keys": [],
        "meta": {},
        "precision": 1.0,
        "v": 1,
        field: value,
    }
    frames = (json.dumps(header).encode(),)
    for _ in range(2):  # refused every time: a bad header is never remembered
        with pytest.raises(binglide.errors.RemoteProtocolError, match="report header is invalid"):
            decode_report(frames, final=True)
