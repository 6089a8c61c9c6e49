"""The frame codec: round trips, MDP/0.2 layouts, and malformed input."""

from __future__ import annotations

import contextlib

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
        Request(0, "echo", (b"hi",)),
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


MALFORMED = [
    [],
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
