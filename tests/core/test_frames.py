"""The frame codec: round trips, MDP/0.2 layouts, and malformed input."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binglide.core import (
    Cancel,
    Disconnect,
    Failure,
    Final,
    Heartbeat,
    Partial,
    Protocol,
    Ready,
    Request,
    Waiting,
    decode,
    encode,
    job_id_for,
    origin_of,
)
from binglide.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

CASES = [
    (Protocol.CLIENT, False, Request(7, "histogram", (b"body", b"\x00\x01"), "", (), 0, 2.5)),
    (Protocol.CLIENT, False, Request(8, "h", (), "3:abc1", ("a/1", "b/2"), 4, None)),
    (Protocol.CLIENT, False, Cancel(rid=7)),
    (Protocol.CLIENT, False, Heartbeat()),
    (Protocol.CLIENT, False, Disconnect()),
    (Protocol.CLIENT, True, Partial(7, (b"p",), "histogram")),
    (Protocol.CLIENT, True, Heartbeat("4f2a")),
    (Protocol.CLIENT, True, Heartbeat()),
    (Protocol.CLIENT, True, Final(7, (b"f", b""), "histogram")),
    (Protocol.CLIENT, True, Failure(7, "loop", "cycle", "", ("a/1", "a/1"), "svc")),
    (Protocol.WORKER, False, Ready("histogram")),
    (Protocol.WORKER, False, Ready("histogram", extended=False)),
    (Protocol.WORKER, False, Partial(3, (b"x",))),
    (Protocol.WORKER, False, Final(3, (b"x", b"y"))),
    (Protocol.WORKER, False, Failure(3, "failed", "boom", "ValueError")),
    (Protocol.WORKER, False, Waiting(3, True)),
    (Protocol.WORKER, False, Heartbeat()),
    (Protocol.WORKER, True, Request(3, "histogram", (b"b",), "1:c1", ("x/1",))),
    (Protocol.WORKER, True, Cancel("1:c1", 0)),
    (Protocol.WORKER, True, Cancel("1:c1", 5)),
    (Protocol.WORKER, True, Disconnect()),
]


@pytest.mark.parametrize(("protocol", "from_broker", "msg"), CASES)
def test_round_trip(protocol: Protocol, from_broker: bool, msg: object) -> None:
    frames = encode(msg, protocol=protocol, from_broker=from_broker)  # type: ignore[arg-type]
    got_protocol, got = decode(frames, from_broker=from_broker)
    assert got_protocol is protocol
    assert got == msg


def test_plain_mdp_layouts_follow_rfc18() -> None:
    # Client REQUEST: "MDPC02", 0x01, service, body... (MDP/0.2 has no empty delimiter)
    assert decode([b"MDPC02", b"\x01", b"echo", b"hi"], from_broker=False) == (
        Protocol.CLIENT,
        Request(0, "echo", (b"hi",), extended=False),
    )
    # Broker -> plain client FINAL: "MDPC02", 0x03, service, body...
    frames = encode(
        Final(0, (b"ho",), "echo"), protocol=Protocol.CLIENT, from_broker=True, extended=False
    )
    assert frames == [b"MDPC02", b"\x03", b"echo", b"ho"]
    # Broker -> plain worker REQUEST: "MDPW02", 0x02, client address, empty, body...
    frames = encode(
        Request(9, "echo", (b"hi",)), protocol=Protocol.WORKER, from_broker=True, extended=False
    )
    assert frames == [b"MDPW02", b"\x02", b"9", b"", b"hi"]
    # Worker FINAL echoes the address: "MDPW02", 0x04, address, empty, body...
    assert decode([b"MDPW02", b"\x04", b"9", b"", b"ho"], from_broker=False) == (
        Protocol.WORKER,
        Final(9, (b"ho",)),
    )
    # READY without the extension frame is a plain worker.
    assert decode([b"MDPW02", b"\x01", b"echo"], from_broker=False)[1] == Ready("echo", False)
    # An MDP/0.1-style leading empty frame is tolerated.
    assert decode([b"", b"MDPW02", b"\x01", b"echo"], from_broker=False)[1] == Ready("echo", False)


def test_mdp01_layouts_follow_rfc7() -> None:
    # Every MDP/0.1 command starts with an empty frame (a REQ socket adds and
    # strips it on the client side); the client protocol has no command frame.
    assert decode([b"", b"MDPC01", b"echo", b"hi", b"there"], from_broker=False) == (
        Protocol.CLIENT_01,
        Request(0, "echo", (b"hi", b"there"), extended=False),
    )
    frames = encode(Final(-3, (b"ho",), "echo"), protocol=Protocol.CLIENT_01, from_broker=True)
    assert frames == [b"", b"MDPC01", b"echo", b"ho"]
    failure = Failure(-3, "unavailable", "no worker", "", (), "echo")
    frames = encode(failure, protocol=Protocol.CLIENT_01, from_broker=True)
    assert frames[:4] == [b"", b"MDPC01", b"echo", b"binglide-error"]
    # Worker: READY 0x01, REQUEST 0x02, REPLY 0x03, HEARTBEAT 0x04, DISCONNECT 0x05.
    assert decode([b"", b"MDPW01", b"\x01", b"echo"], from_broker=False) == (
        Protocol.WORKER_01,
        Ready("echo", extended=False),
    )
    frames = encode(Request(9, "echo", (b"hi",)), protocol=Protocol.WORKER_01, from_broker=True)
    assert frames == [b"", b"MDPW01", b"\x02", b"9", b"", b"hi"]
    assert decode([b"", b"MDPW01", b"\x03", b"9", b"", b"ho"], from_broker=False) == (
        Protocol.WORKER_01,
        Final(9, (b"ho",)),
    )
    for msg, command in ((Heartbeat(), b"\x04"), (Disconnect(), b"\x05")):
        for from_broker in (True, False):
            frames = encode(msg, protocol=Protocol.WORKER_01, from_broker=from_broker)
            assert frames == [b"", b"MDPW01", command]
            assert decode(frames, from_broker=from_broker) == (Protocol.WORKER_01, msg)
    # The binglide extension frame means nothing to MDP/0.1.
    ready = decode([b"", b"MDPW01", b"\x01", b"echo", b"binglide/1"], from_broker=False)
    assert ready[1] == Ready("echo", extended=False)


def test_mdp01_has_no_partial_failure_or_extensions() -> None:
    for msg, protocol, from_broker in [
        (Partial(1, (b"p",), "s"), Protocol.CLIENT_01, True),
        (Waiting(1, True), Protocol.WORKER_01, False),
        (Failure(1, "failed", "x"), Protocol.WORKER_01, False),
        (Partial(1, (b"p",)), Protocol.WORKER_01, False),
        (Cancel("1:c1", 0), Protocol.WORKER_01, True),
    ]:
        with pytest.raises(LocalProtocolError, match=r"MDP/0\.1"):
            encode(msg, protocol=protocol, from_broker=from_broker)  # type: ignore[arg-type]


def test_an_extended_request_numbered_zero_decodes_as_extended() -> None:
    # The broker refuses it at once (core.broker); the codec says what it is.
    frames = [b"MDPC02", b"\x11", b"svc", b"0", b"{}"]
    assert decode(frames, from_broker=False)[1] == Request(0, "svc", ())
    plain = encode(
        Request(0, "svc", (b"x",), extended=False), protocol=Protocol.CLIENT, from_broker=False
    )
    assert plain == [b"MDPC02", b"\x01", b"svc", b"x"]


MALFORMED = [
    [],
    [b"", b"MDPC01"],
    [b"", b"MDPC01", b"\xff\xfe"],
    [b"", b"MDPW01", b"\x06"],  # MDP/0.2's DISCONNECT byte: not an MDP/0.1 command
    [b"", b"MDPW01", b"\x03", b"1", b"not-empty"],
    [b"", b"MDPW01", b"\x03", b"x", b""],
    [b"", b"MDPW01", b"\x02", b"1", b"", b"x"],  # a REQUEST never goes to the broker
    [b"", b"MDPW01", b"\x01"],
    [b"", b"MDPC02"],
    [b"x", b"MDPC02", b"\x01", b"svc"],
    [b"", b"HTTP/1", b"\x01", b"svc"],
    [b"", b"MDPC02", b"\x7f", b"svc"],
    [b"", b"MDPC02", b"\x01"],
    [b"", b"MDPC02", b"\x11", b"svc", b"notanumber", b"{}"],
    [b"", b"MDPC02", b"\x11", b"svc", b"1", b"not json"],
    [b"", b"MDPC02", b"\x11", b"svc", b"1", b"[1]"],
    [b"", b"MDPC02", b"\x11", b"svc", b"1", b'{"ancestry": "x"}'],
    [b"", b"MDPC02", b"\x11", b"svc", b"1", b'{"timeout": -1}'],
    [b"", b"MDPC02", b"\x11", b"svc", b"1", b'{"parent": "p"}'],
    [b"", b"MDPC02", b"\x11", b"\xff\xfe", b"1", b"{}"],
    [b"", b"MDPW02", b"\x03", b"1", b"not-empty", b"body"],
    [b"", b"MDPW02", b"\x16", b"1", b"2"],
    [b"", b"MDPW02", b"\x15", b"1", b'{"kind": 3}'],
    [
        b"",
        b"MDPW02",
        b"\x02",
        b"1",
        b"",
        b"x",
    ],  # a REQUEST is never sent *to* the broker by a worker
]


@pytest.mark.parametrize("frames", MALFORMED)
def test_malformed_frames_raise_remote_protocol_error(frames: list[bytes]) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(frames, from_broker=False)


@given(st.lists(st.binary(max_size=40), max_size=8))
def test_random_frames_never_raise_anything_else(frames: list[bytes]) -> None:
    for from_broker in (False, True):
        with contextlib.suppress(RemoteProtocolError):
            decode(frames, from_broker=from_broker)


def test_encode_refuses_a_message_in_the_wrong_direction() -> None:
    with pytest.raises(LocalProtocolError):
        encode(Ready("x"), protocol=Protocol.WORKER, from_broker=True)
    with pytest.raises(LocalProtocolError):
        encode(Waiting(1, True), protocol=Protocol.CLIENT, from_broker=False)


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError):
        ProtocolError("whose fault?")
    assert isinstance(RemoteProtocolError("x"), ProtocolError)


def test_job_id_format_and_origin() -> None:
    assert job_id_for("abc", 42) == "3:abc42"
    assert origin_of(job_id_for("a:9", 1)) == "a:9"
    assert origin_of(job_id_for("", 5)) == ""
    assert origin_of("garbage") == "garbage"  # type: ignore[arg-type]


def _dumped(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@given(
    st.lists(_TEXT, max_size=3),
    _TEXT,
    st.integers(min_value=0, max_value=2**70) | st.booleans(),
    st.none()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.booleans(),
    _TEXT,
)
def test_request_metadata_is_written_exactly_as_json_dumps_writes_it(
    ancestry: list[str], job: str, parent: int, timeout: float | None, service: str
) -> None:
    # The metadata is written by hand for speed; the bytes must stay what the
    # sorted-keys json.dumps wrote, whatever the values (a bool, an int, NaN).
    msg = Request(5, service, (b"b",), job, tuple(ancestry), parent, timeout)
    client = encode(msg, protocol=Protocol.CLIENT, from_broker=False)
    meta = {"ancestry": ancestry, "job": job, "parent": parent, "timeout": timeout}
    assert client[4] == _dumped(meta)
    worker = encode(msg, protocol=Protocol.WORKER, from_broker=True)
    assert worker[3] == _dumped({"ancestry": ancestry, "job": job, "service": service})


@pytest.mark.parametrize(
    "meta",
    [
        b' {"job": "1:a", "ancestry": ["x/1"]} ',  # whitespace around and inside
        '{"job":"1:\u00e9","ancestry":[]}'.encode("utf-16"),  # json.loads detects UTF-16
        b'\xef\xbb\xbf{"job":"1:a"}',  # a UTF-8 byte-order mark
    ],
)
def test_request_metadata_is_read_as_json_loads_reads_it(meta: bytes) -> None:
    frames = [b"MDPC02", b"\x11", b"svc", b"4", meta]
    _protocol, request = decode(frames, from_broker=False)
    expected = json.loads(meta)
    assert isinstance(request, Request)
    assert (request.job, list(request.ancestry)) == (
        expected["job"],
        expected.get("ancestry", []),
    )


_ANY_TEXT = st.text(max_size=12)  # every code point: quotes, backslashes, controls too


def _read_as_json_reads_it(meta: bytes) -> tuple[str, str, tuple[str, ...]] | None:
    """What a worker's request metadata says by a parse of the whole (None: refused)."""
    from binglide.core import frames as codec

    try:
        value = json.loads(meta)
        if not isinstance(value, dict) or not isinstance(value.get("service"), str):
            return None
        job, ancestry, parent, timeout = codec._request_fields(value)
    except (ValueError, RecursionError, RemoteProtocolError):
        return None
    assert (parent, timeout) == (value.get("parent", 0), value.get("timeout"))
    return value["service"], job, ancestry


def _worker_request(meta: bytes) -> tuple[str, str, tuple[str, ...]] | None:
    try:
        request = decode([b"MDPW02", b"\x11", b"7", meta, b"body"], from_broker=True)[1]
    except RemoteProtocolError:
        return None
    assert isinstance(request, Request)
    assert (request.rid, request.payload, request.parent, request.timeout) == (
        7,
        (b"body",),
        0,
        None,
    )
    return request.service, request.job, tuple(request.ancestry)


@given(st.lists(_ANY_TEXT, max_size=3), _ANY_TEXT, _ANY_TEXT)
def test_a_workers_request_metadata_reads_as_it_was_written(
    ancestry: list[str], job: str, service: str
) -> None:
    # The usual metadata is matched, not parsed: whatever the strings hold,
    # what a worker reads is what the broker wrote.
    msg = Request(5, service, (b"b",), job, tuple(ancestry), 0, None)
    meta = bytes(encode(msg, protocol=Protocol.WORKER, from_broker=True)[3])
    assert _worker_request(meta) == (service, job, tuple(ancestry))


@given(
    st.lists(st.sampled_from(["a/1", "", "x y", "é", '"', "\\", "\n"]), max_size=3),
    st.sampled_from(["1:j", "", '"', "\\"]),
    st.integers(0, 200),
    st.binary(max_size=3),
    st.integers(0, 3),
)
def test_a_workers_request_metadata_changed_reads_as_json_reads_it(
    ancestry: list[str], job: str, at: int, insert: bytes, cut: int
) -> None:
    # Near the usual layout (bytes inserted or cut anywhere: quotes, brackets,
    # escapes, keys), a worker reads what json.loads reads, or refuses it.
    msg = Request(5, "echo", (), job, tuple(ancestry), 0, None)
    written = bytes(encode(msg, protocol=Protocol.WORKER, from_broker=True)[3])
    at = min(at, len(written))
    meta = written[:at] + insert + written[at + cut :]
    assert _worker_request(meta) == _read_as_json_reads_it(meta)


def test_a_top_level_request_s_metadata_is_parsed_once_and_read_again_as_parsed() -> None:
    from binglide.core import frames as codec

    codec._CLIENT_METAS.clear()
    meta = b'{"ancestry":[],"job":"","parent":0,"timeout":2.5}'
    first = decode([b"MDPC02", b"\x11", b"svc", b"1", meta, b"body"], from_broker=False)[1]
    assert first == Request(1, "svc", (b"body",), "", (), 0, 2.5)
    assert {meta: ("", (), 0, 2.5)} == codec._CLIENT_METAS
    # The same bytes again (another id, another body): the same fields, without a parse.
    again = decode([b"MDPC02", b"\x11", b"other", b"2", meta], from_broker=False)[1]
    assert again == Request(2, "other", (), "", (), 0, 2.5)
    # A sub-request's metadata (a job, a parent) differs each time: never kept.
    sub = b'{"ancestry":["a/1"],"job":"3:abc1","parent":4,"timeout":null}'
    decode([b"MDPC02", b"\x11", b"svc", b"3", sub], from_broker=False)
    assert list(codec._CLIENT_METAS) == [meta]
    # Malformed metadata is refused every time, and never kept.
    bad = b'{"ancestry":[],"job":"","parent":0,"timeout":-1}'
    for _ in range(2):
        with pytest.raises(RemoteProtocolError, match="timeout is not a positive number"):
            decode([b"MDPC02", b"\x11", b"svc", b"4", bad], from_broker=False)
    assert list(codec._CLIENT_METAS) == [meta]


def test_a_peer_sending_many_request_metadata_never_grows_what_the_codec_keeps() -> None:
    from binglide.core import frames as codec

    codec._CLIENT_METAS.clear()
    for timeout in range(1, 5 * codec._CLIENT_METAS_BOUND):
        meta = b'{"timeout":%d}' % timeout
        got = decode([b"MDPC02", b"\x11", b"svc", b"1", meta], from_broker=False)[1]
        assert got == Request(1, "svc", (), "", (), 0, timeout)
        assert len(codec._CLIENT_METAS) <= codec._CLIENT_METAS_BOUND
    # Nor does a long one stay: each is no longer than the bound says.
    long = b'{"ancestry":[],"job":"","parent":0,"timeout":1' + b"0" * 600 + b"}"
    decode([b"MDPC02", b"\x11", b"svc", b"1", long], from_broker=False)
    assert long not in codec._CLIENT_METAS


@given(
    st.lists(_TEXT, max_size=2),
    st.none() | st.floats(min_value=0.001, max_value=1e6) | st.integers(1, 10**6),
    st.integers(min_value=1, max_value=10**6),
)
def test_request_metadata_decodes_the_same_read_once_or_again(
    ancestry: list[str], timeout: float | None, rid: int
) -> None:
    msg = Request(rid, "svc", (b"b",), "", tuple(ancestry), 0, timeout)
    frames = encode(msg, protocol=Protocol.CLIENT, from_broker=False)
    for _ in range(2):  # parsed, then (kept) read again
        assert decode(frames, from_broker=False) == (Protocol.CLIENT, msg)
    # With a routing id before it, read in place (as a broker's ROUTER gives it).
    assert decode([b"peer", *frames], from_broker=False, start=1) == (Protocol.CLIENT, msg)


def test_a_top_level_request_s_metadata_is_written_once_a_timeout_and_stays_exact() -> None:
    from binglide.core import frames as codec

    codec._TOP_METAS.clear()
    # Each timeout twice in a row (written, then perhaps kept), values equal to
    # one another among them: every time the bytes json.dumps writes.
    timeouts = [None, 2.5, 1.0, 1, True, 0.0, -0.0, float("nan"), float("inf"), 2.5, None]
    for timeout in timeouts * 2:
        frames = encode(
            Request(1, "svc", (), "", (), 0, timeout), protocol=Protocol.CLIENT, from_broker=False
        )
        meta = {"ancestry": [], "job": "", "parent": 0, "timeout": timeout}
        assert frames[4] == _dumped(meta)
    assert set(codec._TOP_METAS) == {None, 2.5, 1.0, float("inf")}
    # A parent given as False (not a task id a client would send) is written as it is.
    frames = encode(
        Request(1, "svc", (), "", (), False, None), protocol=Protocol.CLIENT, from_broker=False
    )
    assert frames[4] == _dumped({"ancestry": [], "job": "", "parent": False, "timeout": None})
    for timeout in range(3 * codec._TOP_METAS_BOUND):
        encode(
            Request(1, "s", (), "", (), 0, timeout + 0.5),
            protocol=Protocol.CLIENT,
            from_broker=False,
        )
        assert len(codec._TOP_METAS) <= codec._TOP_METAS_BOUND
