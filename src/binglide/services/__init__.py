"""The built-in analyses and the helpers they share (sources, chunks, kernels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..service import Service

#: The services `binglide.connect()` starts by default (filled as analyses land).
BUILTIN_SERVICES: tuple[type[Service], ...] = ()
