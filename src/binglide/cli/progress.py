"""A one-line progress bar for the terminal, testable with a fake clock.

The bar redraws itself in place with a carriage return, and only when the
stream is a terminal (or when forced), so piping ``binglide`` into a file
never fills it with bar frames.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, TextIO

from binglide.cli.text import human_bytes

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Self

__all__ = ("ProgressBar", "format_duration")


def format_duration(seconds: float) -> str:
    """Format a duration as ``m:ss``, or ``h:mm:ss`` from an hour on.

    Args:
        seconds: The duration; negative counts as zero.

    Returns:
        Text such as ``"0:03"``, ``"12:45"`` or ``"2:00:00"``; ``"?"`` if not finite.
    """
    if not math.isfinite(seconds):
        return "?"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


class ProgressBar:
    """Draw ``[#####.....]  42%  1.2 GiB/s  ETA 0:03`` on one line of a text stream.

    Call `update` as often as convenient: redraws are limited to one per
    ``min_interval`` seconds (the first and the final one always draw).  Use
    it as a context manager, or call `close` at the end to clear the line.

    Args:
        stream: Where to draw; standard error by default.
        width: The number of cells between the brackets.
        force: Draw even when the stream is not a terminal.
        clock: Returns the current time in seconds; tests pass a fake one.
        min_interval: The least time between two redraws, in seconds.
        leave: On `close`, end the line with the final bar instead of erasing it.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        width: int = 30,
        force: bool = False,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.1,
        leave: bool = False,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._clock = clock
        self._min_interval = min_interval
        self._leave = leave
        isatty = getattr(self._stream, "isatty", None)
        self._enabled = force or (callable(isatty) and bool(isatty()))
        self._started: float | None = None
        self._last_draw: float | None = None
        self._last_length = 0
        self._last_line = ""
        self._closed = False

    @property
    def enabled(self) -> bool:
        """Whether the bar draws at all (a terminal, or ``force=True``)."""
        return self._enabled

    def render(
        self,
        completion: float,
        *,
        precision: float | None = None,
        bytes_done: int | None = None,
        elapsed: float | None = None,
    ) -> str:
        """Return the bar's text for a state, without drawing it.

        Args:
            completion: The fraction done, 0 to 1 (clamped).
            precision: How exact the partial result already is, 0 to 1
                (binglide refines results progressively); shown as a percentage.
            bytes_done: The bytes processed so far, for the rate.
            elapsed: Seconds since the start, for the rate and the ETA.

        Returns:
            One line, without carriage return or newline.
        """
        done = 0.0 if math.isnan(completion) else min(max(completion, 0.0), 1.0)
        cells = int(done * self._width)
        parts = [f"[{'#' * cells}{'.' * (self._width - cells)}]", f"{int(done * 100):3d}%"]
        if precision is not None:
            parts.append(f"precision {int(min(max(precision, 0.0), 1.0) * 100)}%")
        if elapsed is not None and elapsed > 0:
            if bytes_done is not None:
                parts.append(f"{human_bytes(bytes_done / elapsed)}/s")
            if 0 < done < 1:
                parts.append(f"ETA {format_duration(elapsed * (1 - done) / done)}")
            elif done >= 1:
                parts.append(f"in {format_duration(elapsed)}")
        return "  ".join(parts)

    def update(
        self,
        completion: float,
        *,
        precision: float | None = None,
        bytes_done: int | None = None,
    ) -> None:
        """Record progress, and redraw the bar if it is due.

        Args:
            completion: The fraction done, 0 to 1.
            precision: How exact the partial result already is, 0 to 1.
            bytes_done: The bytes processed so far, to show a rate.
        """
        if not self._enabled or self._closed:
            return
        now = self._clock()
        if self._started is None:
            self._started = now
        due = (
            self._last_draw is None
            or completion >= 1.0
            or now - self._last_draw >= self._min_interval
        )
        if not due:
            return
        line = self.render(
            completion,
            precision=precision,
            bytes_done=bytes_done,
            elapsed=now - self._started,
        )
        self._draw(line)
        self._last_draw = now

    def _draw(self, line: str) -> None:
        # Pad with spaces to wipe what a longer previous line left behind.
        padding = " " * max(self._last_length - len(line), 0)
        self._stream.write(f"\r{line}{padding}")
        self._stream.flush()
        self._last_length = len(line)
        self._last_line = line

    def close(self) -> None:
        """End the bar: erase its line (or keep it, with ``leave=True``, and end the line).

        Closing twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        if not self._enabled or self._last_draw is None:
            return
        if self._leave:
            self._stream.write("\n")
        else:
            self._stream.write("\r" + " " * self._last_length + "\r")
        self._stream.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
