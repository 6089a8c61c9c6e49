"""The message classes: values made by hand-written ``__init__``s, still attrs classes."""

from __future__ import annotations

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
)

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
