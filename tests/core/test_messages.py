"""The message classes: values made by hand-written ``__init__``s, still attrs classes."""

from __future__ import annotations

import hashlib

import attrs
import pytest

from binglide.core import (
    Cancel,
    Disconnect,
    Failure,
    Final,
    Heartbeat,
    Message,
    Partial,
    Ready,
    Request,
    Waiting,
    request_digest,
)
from binglide.core.frames import Protocol, encode
from binglide.core.messages import LazyAncestry

# Every class with every field given, by keyword: the fields attrs knows are
# exactly the constructor's parameters, in order.
FULL: list[Message] = [
    Ready(service="s", extended=False),
    Request(
        rid=3,
        service="s",
        payload=(b"a",),
        job="1:c3",
        ancestry=("x/1",),
        parent=9,
        timeout=1.5,
        extended=False,
    ),
    Partial(rid=3, payload=(b"p",), service="s"),
    Final(rid=3, payload=(b"f",), service="s"),
    Failure(rid=3, kind="loop", message="m", remote_type="T", cycle=("a", "a"), service="s"),
    Cancel(job="1:c3", rid=4),
    Waiting(rid=3, waiting=True),
    Heartbeat(instance="i"),
    Disconnect(),
]


@pytest.mark.parametrize("msg", FULL, ids=lambda m: type(m).__name__)
def test_every_field_is_set_as_given_and_known_to_attrs(msg: Message) -> None:
    fields = attrs.fields(type(msg))
    values = attrs.asdict(msg, recurse=False)
    assert list(values) == [f.name for f in fields]
    # The same values given positionally make an equal message, with the same hash.
    again = type(msg)(*values.values())
    assert again == msg
    assert hash(again) == hash(msg)
    assert attrs.evolve(msg) == msg


def test_defaults_are_the_documented_ones() -> None:
    assert Request(1, "s") == Request(1, "s", (), "", (), 0, None, True)
    assert Ready("s").extended is True
    assert Failure(1, "failed", "m") == Failure(1, "failed", "m", "", (), "")
    assert Cancel() == Cancel("", 0)
    assert Heartbeat().instance == ""


def test_equality_is_by_class_and_fields() -> None:
    # A Final and a Partial with the same fields are different messages.
    final: Message = Final(1, (b"x",), "s")
    assert final != Partial(1, (b"x",), "s")
    assert Final(1, (b"x",), "s") != Final(2, (b"x",), "s")
    assert len({Final(1), Final(1), Partial(1)}) == 2


def test_evolve_makes_a_changed_copy() -> None:
    # binglide.core.client rewrites a reply's rid and service this way.
    reply = Final(7, (b"x",), "")
    changed = attrs.evolve(reply, rid=1, service="s")
    assert changed == Final(1, (b"x",), "s")
    assert reply == Final(7, (b"x",), "")


def test_repr_names_the_class_and_fields() -> None:
    assert repr(Cancel("j", 2)) == "Cancel(job='j', rid=2)"


class _CountingHasher:
    """A blake2b that counts its copies (each is one computation of the entry)."""

    def __init__(self, service: str) -> None:
        self.hasher = hashlib.blake2b(service.encode(), digest_size=8)
        self.copies = 0

    def copy(self) -> hashlib.blake2b:
        self.copies += 1
        return self.hasher.copy()


@pytest.mark.parametrize("payload", [(), (b"{}",), (b"{}", b"x" * 300)])
def test_a_lazy_ancestry_is_the_eager_one_its_entry_computed_once_when_read(
    payload: tuple[bytes, ...],
) -> None:
    counting = _CountingHasher("s")
    ancestry = LazyAncestry("s", payload, counting)  # type: ignore[arg-type]
    lazy = Request(7, "s", payload, "1:c1", ancestry)
    assert (len(ancestry), bool(ancestry), counting.copies) == (1, True, 0)  # not computed
    eager = Request(7, "s", payload, "1:c1", (request_digest("s", payload),))
    for protocol in (Protocol.WORKER, Protocol.WORKER_01):
        for extended in (True, False):
            assert encode(lazy, protocol=protocol, from_broker=True, extended=extended) == (
                encode(eager, protocol=protocol, from_broker=True, extended=extended)
            )
    assert (lazy, hash(lazy), repr(lazy)) == (eager, hash(eager), repr(eager))
    assert eager == lazy  # (the tuple on the left too)
    assert attrs.asdict(lazy) == attrs.asdict(eager)
    [entry] = eager.ancestry
    assert (ancestry[0], ancestry[-1:], list(ancestry), tuple(ancestry)) == (
        entry,
        (entry,),
        [entry],
        (entry,),
    )
    assert entry in ancestry
    assert "s/0" not in ancestry
    assert ancestry.index(entry) == 0
    assert ancestry != [entry]  # as a tuple: never equal to a list
    assert ancestry == LazyAncestry("s", payload, hashlib.blake2b(b"s", digest_size=8))
    assert ancestry != LazyAncestry("s", (b"other",), hashlib.blake2b(b"s", digest_size=8))
    assert counting.copies == 1  # computed once, then kept
    # The hasher given is only copied (every request of a service shares it).
    assert counting.hasher.hexdigest() == hashlib.blake2b(b"s", digest_size=8).hexdigest()
