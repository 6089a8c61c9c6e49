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


def _completion(value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"completion must be within 0..1, not {value}")
    return value


def _meta(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen(eq=False, init=False)  # `__init__` by hand: the fields' converters, inline
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
    """

    data: Data = None
    completion: float = attrs.field(default=1.0, kw_only=True, converter=_completion)
    precision: float = attrs.field(default=1.0, kw_only=True, converter=float)
    meta: dict[str, Any] = attrs.field(factory=dict, kw_only=True, converter=_meta)
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
        # What attrs' frozen `__init__` does with the fields' converters, by
        # hand: it sets each field through `object.__setattr__` and calls each
        # converter; a slot's own setter, and no call for the usual values,
        # cost a third less (a handler makes a report per answer; the runtime
        # one per report received: bench/RESULTS.md, issue 13, tenth pass).
        _set_data(self, data)
        _set_completion(
            self,
            completion
            if type(completion) is float and 0.0 <= completion <= 1.0
            else _completion(completion),
        )
        _set_precision(self, precision if type(precision) is float else float(precision))
        _set_meta(self, dict(meta) if meta else {})
        _set_final(self, final)

    @property
    def array(self) -> np.ndarray[Any, Any]:
        """`data` as a single array.

        Raises:
            TypeError: the report carries a mapping of arrays, or nothing.
        """
        if not isinstance(self.data, np.ndarray):
            raise TypeError(f"this report carries {type(self.data).__name__}, not one array")
        return self.data


@attrs.frozen(eq=False, init=False)  # `__init__` by hand, as `Report`'s
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

    def __init__(
        self,
        service: str,
        body: Any,
        arrays: tuple[np.ndarray[Any, Any], ...],
        job: JobId,
        frames: tuple[Frame, ...] = (),
    ) -> None:
        # By the slots' own setters, as `Report`'s (one a task).
        _set_service(self, service)
        _set_body(self, body)
        _set_arrays(self, arrays)
        _set_job(self, job)
        _set_frames(self, frames)


# The slots' setters of the frozen classes above (what their `__init__` write with).
_set_data = Report.__dict__["data"].__set__
_set_completion = Report.__dict__["completion"].__set__
_set_precision = Report.__dict__["precision"].__set__
_set_meta = Report.__dict__["meta"].__set__
_set_final = Report.__dict__["final"].__set__
_set_service = Task.__dict__["service"].__set__
_set_body = Task.__dict__["body"].__set__
_set_arrays = Task.__dict__["arrays"].__set__
_set_job = Task.__dict__["job"].__set__
_set_frames = Task.__dict__["frames"].__set__
