"""Typed helpers that build request bodies for the built-in analyses.

Shared by `Client` and `Context` (a worker's sub-requests), so both offer
``histogram(...)``, ``entropy(...)``, ... with the same signatures. Each builds
the common request format::

    {"inputs": [{"source": PATH, "start": START, "stop": STOP}, ...],
     "options": {...}}

and sends it with ``request(service, body)``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from .call import Call

__all__ = ("AnalysisMethods", "Range", "Source", "make_body")

#: A byte range ``(start, stop)``; either may be None for "from the start" / "to the end".
Range = tuple[int | None, int | None]
#: A source file: a path.
Source = str | os.PathLike[str]


def _input(source: Source, range: Range | None) -> dict[str, Any]:
    start, stop = range if range is not None else (None, None)
    # Workers may run in another process with another working directory.
    return {"source": os.path.abspath(os.fspath(source)), "start": start, "stop": stop}


def make_body(
    sources: list[Source],
    range: Range | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    reports: Any = None,
    cache: Any = None,
    spread: bool | None = None,
) -> dict[str, Any]:
    """Return a request body in the common format."""
    body: dict[str, Any] = {
        "inputs": [_input(s, range) for s in sources],
        "options": dict(options or {}),
    }
    if reports is not None:
        body["reports"] = reports
    if cache is not None:
        body["cache"] = cache
    if spread is not None:
        body["spread"] = spread
    return body


class AnalysisMethods(ABC):
    """Mixin of `Client` and `Context`: the typed helpers, on top of their ``request``."""

    @abstractmethod
    def request(
        self,
        service: str,
        body: Mapping[str, Any] | None = None,
        *arrays: np.ndarray[Any, Any],
        timeout: float | None = None,
    ) -> Call:
        """Send a request; see `Client.request`."""

    def histogram(self, source: Source, range: Range | None = None, **extra: Any) -> Call:
        """Count the bytes of `source` in `range`: 256 uint64 counts."""
        return self.request("histogram", make_body([source], range, **extra))

    def ngrams(
        self,
        source: Source,
        range: Range | None = None,
        *,
        n: int = 2,
        bits: int | None = None,
        **extra: Any,
    ) -> Call:
        """Count the n-grams (n in {2, 3}) of `source`, bytes reduced to their top `bits`."""
        options: dict[str, Any] = {"n": n}
        if bits is not None:
            options["bits"] = bits
        return self.request("ngrams", make_body([source], range, options, **extra))

    def entropy(
        self,
        source: Source,
        range: Range | None = None,
        *,
        mode: Literal["resolution", "block", "sliding"] = "resolution",
        resolution: int | None = None,
        block: int | None = None,
        window: int | None = None,
        **extra: Any,
    ) -> Call:
        """Compute an entropy profile (bits per byte) of `source`.

        Unset options take the service's defaults: 1024 points, but none of
        fewer than 256 bytes (a small range gets fewer points), and windows
        of 256 bytes. Points asked for explicitly are honoured even when they
        cover fewer bytes; the report's meta marks them (``biased_points``).
        """
        options: dict[str, Any] = {"mode": mode}
        for name, value in (("resolution", resolution), ("block", block), ("window", window)):
            if value is not None:
                options[name] = value
        return self.request("entropy", make_body([source], range, options, **extra))

    def diff(
        self,
        a: Source,
        b: Source,
        range: Range | None = None,
        *,
        resolution: int = 1024,
        **extra: Any,
    ) -> Call:
        """Count the differing bytes of `a` and `b`, per point of `resolution`."""
        body = make_body([a, b], range, {"resolution": resolution}, **extra)
        return self.request("diff", body)

    def data(
        self, source: Source, range: Range | None = None, *, size: int = 65536, **extra: Any
    ) -> Call:
        """Return a view of at most `size` bytes of the range (decimated when larger)."""
        return self.request("data", make_body([source], range, {"size": size}, **extra))

    def stats(self, source: Source, range: Range | None = None, **extra: Any) -> Call:
        """Compute the statistics `ent` prints for the range."""
        return self.request("stats", make_body([source], range, **extra))
