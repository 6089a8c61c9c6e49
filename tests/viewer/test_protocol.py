"""The page protocol: what the server accepts from a page, and the frames it sends."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from binglide.viewer.protocol import (
    MAX_ID,
    Cancel,
    MessageError,
    Request,
    decode_frame,
    encode_frame,
    parse,
)


def test_a_request_is_parsed_with_its_defaults() -> None:
    message = parse(json.dumps({"id": 3, "op": "ngrams", "file": 0, "start": 16, "slot": "b"}))
    expected = {"file": 0, "start": 16, "stop": None, "n": 2, "preview": 0}
    assert message == Request(3, "ngrams", expected, "b")


def test_a_cancel_is_parsed() -> None:
    assert parse('{"cancel": 9}') == Cancel(9)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not json", "JSON object"),
        ("[1, 2]", "JSON object"),
        ('{"op": "info"}', "request id"),
        ('{"id": 0, "op": "info"}', "request id"),
        (f'{{"id": {MAX_ID + 1}, "op": "info"}}', "request id"),
        ('{"id": true, "op": "info"}', "request id"),
        ('{"id": 1, "op": "rm -rf"}', "unknown op"),
        ('{"id": 1, "op": "histogram"}', "'file' is required"),
        ('{"id": 1, "op": "histogram", "file": "/etc/passwd"}', "file must be an integer"),
        ('{"id": 1, "op": "histogram", "file": 0, "path": "/etc/passwd"}', "unknown parameters"),
        ('{"id": 1, "op": "histogram", "file": 0, "start": -1}', "start must be"),
        ('{"id": 1, "op": "histogram", "file": 0, "start": 9, "stop": 3}', "reversed"),
        ('{"id": 1, "op": "ngrams", "file": 0, "n": 4}', "n must be"),
        (
            '{"id": 1, "op": "tile", "file": 0, "level": 99, "index": 0, "layer": "classes"}',
            "level",
        ),
        ('{"id": 1, "op": "tile", "file": 0, "level": 1, "index": 0, "layer": "x"}', "layer"),
        ('{"id": 1, "op": "data", "file": 0, "start": 0, "size": 100000000}', "size"),
        ('{"id": 1, "op": "info", "slot": 5}', "slot"),
        ('{"cancel": 1, "id": 2}', "cancel message"),
        ('{"cancel": "x"}', "request id"),
        ('{"id": 1, "op": "export", "request": {"op": "tile"}, "format": "json"}', "export"),
        (
            '{"id": 1, "op": "export", "request": {"op": "stats", "file": 0}, "format": "exe"}',
            "format",
        ),
    ],
)
def test_a_bad_message_is_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(MessageError, match=words):
        parse(text)


def test_a_refusal_keeps_the_id_when_there_was_one() -> None:
    with pytest.raises(MessageError) as caught:
        parse('{"id": 5, "op": "nope"}')
    assert caught.value.id == 5


def test_binary_and_oversized_messages_are_refused() -> None:
    with pytest.raises(MessageError, match="text"):
        parse(b'{"id": 1, "op": "info"}')
    with pytest.raises(MessageError, match="at most"):
        parse(json.dumps({"id": 1, "op": "info", "pad": "x" * 70000}))


def test_a_frame_round_trips_its_header_and_arrays_aligned() -> None:
    arrays: dict[str, np.ndarray[Any, Any]] = {
        "a": np.arange(5, dtype=np.float32),
        "b": np.arange(6, dtype=np.uint8).reshape(3, 2),
        "c": np.array([1.5, -2.0]),
    }
    frame = encode_frame({"id": 1, "kind": "report", "nan": float("nan")}, arrays)
    (length,) = struct.unpack_from("<I", frame)
    head = json.loads(frame[4 : 4 + length])
    base = (4 + length + 7) // 8 * 8
    for item in head["arrays"]:
        assert (base + item["offset"]) % 8 == 0  # a typed array over the frame needs it
    header, got = decode_frame(frame)
    assert header == {"id": 1, "kind": "report", "nan": None}
    for name, array in arrays.items():
        np.testing.assert_array_equal(got[name], array)
        assert got[name].dtype == array.dtype


def test_a_frame_refuses_a_dtype_the_page_cannot_read() -> None:
    with pytest.raises(TypeError, match="typed array"):
        encode_frame({}, {"x": np.arange(3, dtype=np.int64)})
