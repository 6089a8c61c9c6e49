"""The rooms of the package and which may import which (docs/architecture.md).

Every ``import`` and ``from ... import`` of every module under src/binglide is
read (lazy imports inside functions and ``TYPE_CHECKING`` blocks included:
a lazy import is still a dependency) and checked against `ALLOWED`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

#: The runtime: what drives the machines over transports, and what it hands to handlers.
RUNTIME = frozenset(
    {
        "_groups",
        "analyses",
        "broker",
        "call",
        "client",
        "outbox",
        "payload",
        "report",
        "requester",
        "service",
        "worker",
    }
)
#: What puts the runtime and the services together, for a user of the library.
ASSEMBLY = frozenset({"binglide", "connect", "corpus", "supervisor"})
#: The modules of the library that the command and the viewer may use: the
#: public ones (no leading underscore) of the runtime and the assembly, the
#: cache, the ZeroMQ transport (for its keys) and the errors.
PUBLIC = frozenset(
    {"binglide", "errors", "cachefs", "transports.zeromq"}
    | {m for m in RUNTIME | ASSEMBLY if not m.startswith("_")}
)

#: room -> the rooms its modules may import (besides their own room).
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "core": frozenset({"errors"}),
    "cachefs": frozenset({"errors"}),
    # The asyncio-only speed-ups: below every room that runs on the loop.
    "aio": frozenset(),
    "transports": frozenset({"core", "errors", "aio"}),
    "runtime": frozenset({"core", "transports", "cachefs", "errors", "aio"}),
    "services": frozenset({"runtime", "core", "transports", "cachefs", "errors"}),
    "assembly": frozenset(
        {"runtime", "services", "core", "transports", "cachefs", "errors", "aio"}
    ),
    # The command and the viewer are clients of the public API like any other.
    "cli": frozenset({"public", "viewer"}),
    "viewer": frozenset({"public", "cli.export"}),
    "main": frozenset({"cli"}),
}


def room(module: str) -> str:
    """Return the room of a module named relative to ``binglide`` ("" for the package)."""
    first = module.split(".")[0] if module else "binglide"
    if first in ("core", "cachefs", "transports", "services", "cli", "viewer", "errors"):
        return first
    if first == "__main__":
        return "main"
    if first == "_aio":
        return "aio"
    if first in RUNTIME:
        return "runtime"
    if first in ASSEMBLY:
        return "assembly"
    raise AssertionError(f"binglide.{module} is in no room: add it to tests/test_architecture.py")


def may_import(importer: str, imported: str) -> bool:
    """Return whether module `importer` may import module `imported` (relative names)."""
    mine, theirs = room(importer), room(imported)
    if mine == theirs:
        return True
    allowed = ALLOWED[mine]
    if theirs in allowed:
        return True
    if "public" in allowed and any(
        imported == p or imported.startswith(p + ".") for p in PUBLIC if p != "binglide"
    ):
        return True
    if "public" in allowed and imported == "":
        return True
    return any(imported == a or imported.startswith(a + ".") for a in allowed if "." in a)


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted((SRC / "binglide").rglob("*.py")):
        parts = path.relative_to(SRC / "binglide").with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """Return (line, module relative to binglide) of every binglide import in `path`."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = [p for p in package if p]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
                absolute = f"binglide.{target}" if target else "binglide"
            else:
                absolute = node.module or ""
            names = (
                [absolute] if node.module else [f"{absolute}.{alias.name}" for alias in node.names]
            )
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name == "binglide" or name.startswith("binglide."):
                found.append((node.lineno, name.removeprefix("binglide").lstrip(".")))
    return found


MODULES = _modules()


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m or "binglide" for m, _ in MODULES])
def test_imports_point_the_allowed_way(module: str, path: Path) -> None:
    wrong = [
        f"{path.relative_to(SRC)}:{line}: binglide.{module or ''} ({room(module)}) imports"
        f" binglide.{imported} ({room(imported)})"
        for line, imported in _imports(module, path)
        if not may_import(module, imported)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_rules_refuse_what_they_should() -> None:
    # The checker itself: a few imports that must be refused, and allowed.
    assert not may_import("core.broker", "client")
    assert not may_import("core.frames", "transports.zeromq")
    assert not may_import("transports.inproc", "services.sources")
    assert not may_import("cachefs.store", "core")
    assert not may_import("cli.main", "core.broker")
    assert not may_import("cli.main", "services.kernels")
    assert not may_import("viewer.server", "_aio")
    assert not may_import("_aio", "core")
    assert may_import("transports.zeromq", "_aio")
    assert not may_import("client", "services")
    assert may_import("cli.main", "")  # import binglide
    assert may_import("cli.deploy", "broker")
    assert may_import("viewer.server", "cli.export")
    assert may_import("services.chunked", "service")
    assert may_import("connect", "services")
