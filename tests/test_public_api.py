"""The public API: ``binglide.__all__`` is a sorted tuple of exactly the public names."""

from __future__ import annotations

import types

import binglide
import binglide.errors


def test_all_is_a_sorted_tuple():
    assert isinstance(binglide.__all__, tuple)
    assert list(binglide.__all__) == sorted(binglide.__all__)
    assert len(set(binglide.__all__)) == len(binglide.__all__)


def test_every_name_in_all_exists():
    for name in binglide.__all__:
        assert hasattr(binglide, name), name


def test_nothing_public_is_missing_from_all():
    public = {
        name
        for name, value in vars(binglide).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        # ``from __future__ import annotations`` leaves a name behind.
        and type(value).__module__ != "__future__"
    }
    assert public == set(binglide.__all__)


def test_every_error_is_exported():
    for name in binglide.errors.__all__:
        assert name in binglide.__all__, name
        assert getattr(binglide, name) is getattr(binglide.errors, name)
        assert issubclass(getattr(binglide, name), binglide.BinglideError)


def test_the_documented_names_are_there():
    # The names ARCHITECTURE.md and the README promise.
    for name in ("connect", "Client", "Call", "Report", "Service", "Context", "BinglideError"):
        assert name in binglide.__all__
