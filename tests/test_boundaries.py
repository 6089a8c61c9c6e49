"""The runtime's boundaries: composition, immutable reports, asyncio in one module."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import anyio
import attrs
import numpy as np
import pytest

import binglide
from binglide.analyses import AnalysisMethods

from .helpers import Echo, deployment

HELPERS = ("histogram", "ngrams", "entropy", "diff", "data", "stats")


def test_typed_helpers_are_on_clients_and_contexts_only() -> None:
    for name in HELPERS:
        assert callable(getattr(binglide.Client, name))
        assert callable(getattr(binglide.Context, name))
        # A worker has a requester for its handlers' sub-requests; it is not one.
        assert not hasattr(binglide.Worker, name)
    assert not issubclass(binglide.Worker, AnalysisMethods)


def test_reports_are_immutable() -> None:
    report = binglide.Report(np.zeros(2), completion=0.5, meta={"k": 1})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        report.final = True  # type: ignore[misc]
    final = attrs.evolve(report, final=True)
    assert final.final
    assert not report.final
    assert final.completion == 0.5
    assert final.meta == {"k": 1}
    with pytest.raises(ValueError, match="completion"):
        attrs.evolve(report, completion=2.0)


def test_a_report_owns_plain_copies_of_what_it_was_given() -> None:
    meta = {"k": 1}
    report = binglide.Report(None, completion=np.float32(0.25), precision=1, meta=meta)  # type: ignore[arg-type]
    meta["k"] = 2  # the caller's mapping changes later: the report's does not
    assert report.meta == {"k": 1}
    assert type(report.completion) is float
    assert report.completion == 0.25
    assert type(report.precision) is float
    assert report.precision == 1.0
    assert binglide.Report().meta == {}
    assert binglide.Report(meta=None).meta == {}
    assert binglide.Report().completion == 1.0
    assert not binglide.Report().final
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"completion must be within 0\.\.1"):
            binglide.Report(completion=bad)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_asyncio_is_spoken_in_one_module_only() -> None:
    root = Path(binglide.__file__).parent
    speakers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if any(name == "asyncio" or name.startswith("asyncio.") for name in _imports(path))
    )
    assert speakers == ["_aio.py"]


async def test_an_error_in_a_client_body_escapes_as_itself() -> None:
    with anyio.fail_after(5):
        async with deployment([Echo]) as d:
            with pytest.raises(LookupError, match="mine"):
                async with d.client() as client:
                    assert (await client.request("echo", {"x": 1, "parts": 0})).array[0] == 1
                    raise LookupError("mine")
            # The client said goodbye: the broker forgot it.
            assert d.broker.statistics().clients == 0


async def test_a_client_is_entered_once() -> None:
    with anyio.fail_after(5):
        async with deployment([Echo]) as d:
            client = d.client()
            with pytest.raises(RuntimeError, match="not open"):
                client.request("echo", {"x": 1})
            async with client:
                with pytest.raises(RuntimeError, match="already been entered"):
                    await client.__aenter__()


@pytest.mark.parametrize(
    ("completion", "precision", "meta"),
    [
        (1.0, 1.0, None),
        (0.0, 0.5, {}),
        (0.25, 2, {"k": 1}),
        (np.float32(0.5), np.float64(0.125), {"a": "b", "c": None}),
        (1, True, (("k", 1),)),
        (True, "0.5", {"k": [1]}),
    ],
)
def test_a_report_holds_what_its_fields_converters_make(
    completion: Any, precision: Any, meta: Any
) -> None:
    # `Report.__init__` is written by hand (issue 13): it must make what the
    # fields' declared converters make, whatever the input's type.
    fields = attrs.fields(binglide.Report)
    data = np.arange(3)
    report = binglide.Report(data, completion=completion, precision=precision, meta=meta)
    assert report.data is data
    for name, given in (("completion", completion), ("precision", precision), ("meta", meta)):
        converter = getattr(fields, name).converter
        expected = converter(given)
        assert getattr(report, name) == expected
        assert type(getattr(report, name)) is type(expected)
    assert report.meta is not meta
    assert report.final is False
    assert binglide.Report(final=True).final is True
    with pytest.raises(TypeError):
        binglide.Report(data, 0.5)  # type: ignore[call-arg]  # completion is keyword-only
    for bad in (2, -1, float("inf"), "most"):
        with pytest.raises(ValueError):
            binglide.Report(completion=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        binglide.Report(precision="high")  # type: ignore[arg-type]


def test_a_task_is_immutable_and_holds_what_it_was_given() -> None:
    body = {"n": 1}
    task = binglide.Task("echo", body, (), "1:c1", (b"x",))  # type: ignore[arg-type]
    assert (task.service, task.body, task.arrays, task.job, task.frames) == (
        "echo",
        body,
        (),
        "1:c1",
        (b"x",),
    )
    assert binglide.Task("echo", None, (), "j").frames == ()  # type: ignore[arg-type]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        task.body = {}  # type: ignore[misc]
