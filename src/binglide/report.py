"""`Report`, one answer to a request, and `Task`, one request as a handler sees it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .core import Frame, JobId

__all__ = ("Data", "Report", "Task")

#: What a report carries: one array, named arrays, or nothing.
Data: TypeAlias = "np.ndarray[Any, Any] | Mapping[str, np.ndarray[Any, Any]] | None"


@attrs.frozen(eq=False, init=False)
class Report:
    """One answer to a request.

    A handler yields any number of them; the last one is the final answer.
    Reports are immutable: make a changed copy with ``attrs.evolve(report,
    ...)``.

    Attributes:
        data: a numpy array, a mapping of names to arrays, or None.
        completion: how much of the work is done, 0..1 (never decreases
            within one request).
        precision: the fraction of the bytes actually read for this answer;
            1.0 is exact.
        meta: JSON-able scalars that go with the data.
        final: set by the runtime: whether this is the last report.

    Raises:
        ValueError: `completion` is not within 0..1.
    """

    data: Data = None
    completion: float = attrs.field(default=1.0, kw_only=True)
    precision: float = attrs.field(default=1.0, kw_only=True)
    meta: dict[str, Any] = attrs.field(factory=dict, kw_only=True)
    final: bool = attrs.field(default=False, kw_only=True)

    def __init__(
        self,
        data: Data = None,
        *,
        completion: float = 1.0,
        precision: float = 1.0,
        meta: Mapping[str, Any] | None = None,
        final: bool = False,
    ) -> None:
        # Written by hand: attrs' own, with a converter per field, made three
        # Python calls of each report (two a request in one process: the
        # handler's, the caller's), for what a few lines do here.
        completion = float(completion)
        if not 0.0 <= completion <= 1.0:
            raise ValueError(f"completion must be within 0..1, not {completion}")
        set_field = object.__setattr__  # frozen: what attrs' own __init__ does
        set_field(self, "data", data)
        set_field(self, "completion", completion)
        set_field(self, "precision", float(precision))
        set_field(self, "meta", dict(meta or {}))
        set_field(self, "final", final)

    @property
    def array(self) -> np.ndarray[Any, Any]:
        """`data` as a single array.

        Raises:
            TypeError: the report carries a mapping of arrays, or nothing.
        """
        if not isinstance(self.data, np.ndarray):
            raise TypeError(f"this report carries {type(self.data).__name__}, not one array")
        return self.data


@attrs.frozen(eq=False)
class Task:
    """A request as a `Service` handler receives it.

    Attributes:
        service: the service asked.
        body: the JSON-able body the client sent (None if it sent none).
        arrays: the numpy arrays the client sent with it.
        job: the job id of the whole request tree.
        frames: the raw payload frames, for peers that speak plain MDP/0.2.
    """

    service: str
    body: Any
    arrays: tuple[np.ndarray[Any, Any], ...]
    job: JobId
    frames: tuple[Frame, ...] = ()
