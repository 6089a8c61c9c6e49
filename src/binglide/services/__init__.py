"""The built-in analyses and the helpers they share (sources, chunks, kernels).

The analyses clients ask for are ``histogram``, ``ngrams``, ``entropy``,
``diff``, ``data`` and ``stats``; ``chunk`` and ``segments`` are the helper
services they fan their work out to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .chunk_service import ChunkService
from .counting import HistogramService, NGramsService, StatsService
from .data import DataService
from .profiles import DiffService, EntropyService
from .segments import SegmentsService

if TYPE_CHECKING:
    from ..service import Service

__all__ = (
    "ANALYSES",
    "BUILTIN_SERVICES",
    "HELPERS",
    "ChunkService",
    "DataService",
    "DiffService",
    "EntropyService",
    "HistogramService",
    "NGramsService",
    "SegmentsService",
    "StatsService",
)

#: The analyses clients ask for.
ANALYSES: tuple[type[Service], ...] = (
    HistogramService,
    NGramsService,
    EntropyService,
    DiffService,
    DataService,
    StatsService,
)
#: The helper services the analyses fan their work out to.
HELPERS: tuple[type[Service], ...] = (ChunkService, SegmentsService)
#: Every service `binglide.connect()` starts by default.
BUILTIN_SERVICES: tuple[type[Service], ...] = ANALYSES + HELPERS
