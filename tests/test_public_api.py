"""The public API: ``binglide.__all__`` is a sorted tuple of exactly the public names."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

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
    # The runtime's names are imported on first use: use them all first.
    for name in binglide.__all__:
        getattr(binglide, name)
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


def test_importing_binglide_leaves_the_runtime_for_later():
    # numpy alone takes longer to import than the whole start-up budget of
    # `import binglide`; a program that only names an error should not pay.
    code = (
        "import sys, binglide; "
        "assert binglide.JobError; "
        "heavy = {'numpy', 'anyio', 'zmq', 'binglide.client', 'binglide.core'}; "
        "heavy &= set(sys.modules); "
        "assert not heavy, heavy; "
        "assert binglide.Client.__name__ == 'Client' and 'numpy' in sys.modules; "
        # The submodule named like the function does not hide the function.
        "import binglide.connect; from binglide.connect import connect_remote; "
        "assert callable(binglide.connect) and binglide.connect.__module__ == 'binglide.connect'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        binglide.Nope  # noqa: B018
    assert set(binglide.__all__) <= set(dir(binglide))
