"""The command's progress bar on standard error: rich's, drawn only on a terminal (or when asked).

The bar shows the completion, the throughput, the time left and, while the
answer is still an estimate, how precise it already is::

    histogram ━━━━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━━━━━━━━━  31% 1.2 GB/s ETA 0:00:03 precision 98%

It is rich's `rich.progress.Progress`, chosen over tqdm because it takes its
clock as an argument (tests drive it with a fake one through public API),
its columns compose (our precision is one more column), and its console
knows terminals: the bar fits the terminal's width, is wiped when it ends,
and stays still on a dumb terminal. rich is imported only when a bar is
actually drawn: a run whose standard error is a pipe or a file (and that
did not ask for ``--progress``) never loads it and writes nothing.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Self

    from rich.progress import Progress, TaskID

__all__ = ("ProgressBar",)


class ProgressBar:
    """A progress bar on a text stream, or nothing when the stream is not a terminal.

    Use it as a context manager, or call `close` at the end: the bar is wiped.

    Args:
        stream: Where to draw; standard error by default.
        force: Draw even when the stream is not a terminal (then without colours).
        description: A word shown before the bar (the analysis).
        clock: Returns the current time in seconds; tests pass a fake one.
        width: The line's width in characters; by default the terminal's.
        auto_refresh: Redraw a few times a second from a thread (the time left
            moves between reports); tests turn it off and get one frame per `update`.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        force: bool = False,
        description: str = "",
        clock: Callable[[], float] | None = None,
        width: int | None = None,
        auto_refresh: bool = True,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        isatty = getattr(self._stream, "isatty", None)
        self._terminal = callable(isatty) and bool(isatty())
        self._enabled = force or self._terminal
        self._description = description
        self._clock = clock
        self._width = width
        self._auto_refresh = auto_refresh
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        """Whether the bar draws at all (a terminal, or ``force=True``)."""
        return self._enabled

    def _start(self) -> Progress:
        # Here, not at the top: only a bar that is drawn pays for rich.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.text import Text

        class Throughput(TransferSpeedColumn):
            """Bytes a second, when the bytes are known."""

            def render(self, task: Any) -> Text:
                return super().render(task) if task.fields.get("bytes") else Text("")

        console = Console(
            file=self._stream,
            # A terminal is detected as rich does (TERM=dumb stays still);
            # a forced bar on a pipe or a file is plain text.
            force_terminal=True if not self._terminal else None,
            color_system="auto" if self._terminal else None,
            width=self._width,
            highlight=False,
        )
        progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            Throughput(),
            TextColumn("ETA", markup=False),
            TimeRemainingColumn(),
            TextColumn("{task.fields[precision]}", markup=False),
            TextColumn("{task.fields[note]}", markup=False),
            console=console,
            transient=True,
            auto_refresh=self._auto_refresh,
            refresh_per_second=5,
            get_time=self._clock,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = progress.add_task(
            self._description, total=None, precision="", note="", bytes=False
        )
        progress.start()
        return progress

    def update(
        self,
        completion: float,
        *,
        precision: float | None = None,
        bytes_done: int | None = None,
        total_bytes: int | None = None,
        note: str | None = None,
    ) -> None:
        """Record progress; the bar shows it at its next redraw (at once without auto-refresh).

        Args:
            completion: The fraction done, 0 to 1 (clamped).
            precision: How exact the partial result already is, 0 to 1
                (binglide refines results progressively); shown below 100%.
            bytes_done: The bytes processed so far (with `total_bytes`: the throughput).
            total_bytes: The bytes of the whole job.
            note: A few words shown after the bar (a batch run's files done).
        """
        if not self._enabled or self._closed:
            return
        if self._progress is None:
            self._progress = self._start()
        assert self._task is not None
        done = min(max(completion, 0.0), 1.0) if completion == completion else 0.0
        fields: dict[str, Any] = {"precision": ""}
        if note is not None:
            fields["note"] = note
        if precision is not None and precision < 1.0:
            fields["precision"] = f"precision {int(max(precision, 0.0) * 100)}%"
        if total_bytes:
            # Counted in bytes, so rich's speed is the throughput.
            completed = bytes_done if bytes_done is not None else done * total_bytes
            self._progress.update(
                self._task, total=total_bytes, completed=completed, bytes=True, **fields
            )
        else:
            self._progress.update(self._task, total=1.0, completed=done, bytes=False, **fields)
        if not self._auto_refresh:
            self._progress.refresh()

    def close(self) -> None:
        """Wipe the bar and give the terminal its cursor back. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._progress is not None:
            self._progress.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
