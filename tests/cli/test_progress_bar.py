"""The command's progress bar (rich's): what it shows, and that it stays away from non-terminals.

(The progress *guarantee* of the runtime is tests/test_progress.py.)
"""

from __future__ import annotations

import io
import re
import subprocess
import sys

from binglide.cli.progress import ProgressBar

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def frames(stream: io.StringIO) -> list[str]:
    """The lines drawn, in order, without terminal control codes."""
    text = ANSI.sub("", stream.getvalue())
    return [f.rstrip() for f in text.split("\r") if f.strip()]


def forced(clock: FakeClock) -> tuple[io.StringIO, ProgressBar]:
    stream = io.StringIO()
    bar = ProgressBar(
        stream, force=True, clock=clock, width=120, auto_refresh=False, description="histogram"
    )
    return stream, bar


def test_shows_completion_throughput_and_time_left():
    clock = FakeClock()
    stream, bar = forced(clock)
    bar.update(0.0)
    mib = 10_000_000
    clock.now += 1.0
    bar.update(0.1, bytes_done=mib, total_bytes=10 * mib, precision=0.5)
    clock.now += 1.0
    bar.update(0.2, bytes_done=2 * mib, total_bytes=10 * mib, precision=0.5)
    last = frames(stream)[-1]
    assert last.startswith("histogram ")
    # 10 MB a second over the last second; 80 MB to go: 8 seconds.
    assert re.search(r" 20% 10\.0 MB/s ETA 0:00:08 precision 50%$", last), last
    clock.now += 2.0
    bar.update(0.6, bytes_done=6 * mib, total_bytes=10 * mib, precision=1.0)
    last = frames(stream)[-1]
    # rich's speed: the bytes since the first sample over the time since: 50 MB in 3 s.
    assert re.search(r" 60% 16\.7 MB/s ETA 0:00:03$", last), last  # exact: no precision
    bar.close()


def test_without_a_byte_count_it_shows_completion_only():
    clock = FakeClock()
    stream, bar = forced(clock)
    bar.update(0.25)
    clock.now += 1
    bar.update(0.5)
    last = frames(stream)[-1]
    assert " 50%" in last
    assert "B/s" not in last
    bar.close()


def test_completion_is_clamped():
    clock = FakeClock()
    stream, bar = forced(clock)
    bar.update(7.0)
    assert " 100%" in frames(stream)[-1]
    bar.update(float("nan"))
    assert " 0%" in frames(stream)[-1]
    bar.close()


def test_a_forced_bar_on_a_pipe_is_plain_text_and_close_wipes_it():
    clock = FakeClock()
    stream, bar = forced(clock)
    bar.update(0.3, bytes_done=3, total_bytes=10)
    drawn = stream.getvalue()
    assert not COLOUR.search(drawn), repr(drawn)
    with bar:
        pass
    bar.close()  # twice: harmless
    wiped = stream.getvalue()[len(drawn) :]
    assert "\x1b[?25h" in wiped  # the cursor is shown again...
    assert wiped.endswith("\x1b[2K")  # ...and the bar's line erased
    bar.update(0.9)  # after close: ignored
    assert stream.getvalue() == drawn + wiped


def test_nothing_is_drawn_on_a_non_terminal_unless_forced():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    assert not bar.enabled
    bar.update(0.5, bytes_done=5, total_bytes=10)
    bar.close()
    assert stream.getvalue() == ""
    assert ProgressBar(TTY()).enabled


def test_rich_is_imported_only_for_a_bar_that_is_drawn():
    script = """
import io, sys
from binglide.cli.progress import ProgressBar
import binglide.cli.main
with ProgressBar(io.StringIO()) as bar:
    bar.update(0.5)
print("rich" in sys.modules)
with ProgressBar(io.StringIO(), force=True, auto_refresh=False) as bar:
    bar.update(0.5)
print("rich" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "True"]
