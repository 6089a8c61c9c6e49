from __future__ import annotations

import io

import pytest

from binglide.cli.progress import ProgressBar, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def frames(stream: io.StringIO) -> list[str]:
    return stream.getvalue().split("\r")[1:]


def test_format_duration():
    assert format_duration(3) == "0:03"
    assert format_duration(765.4) == "12:45"
    assert format_duration(7200) == "2:00:00"
    assert format_duration(-5) == "0:00"
    assert format_duration(float("inf")) == "?"


def test_render():
    bar = ProgressBar(io.StringIO(), width=10)
    assert bar.render(0.42) == "[####......]   42%"
    line = bar.render(0.5, bytes_done=3 * 2**30, elapsed=2.5, precision=0.25)
    assert line == "[#####.....]   50%  precision 25%  1.20 GiB/s  ETA 0:02"
    assert bar.render(1.0, elapsed=61.0) == "[##########]  100%  in 1:01"
    assert bar.render(7.0).startswith("[##########]  100%")
    assert bar.render(-1.0).startswith("[..........]    0%")


def test_silent_unless_tty_or_forced():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    assert not bar.enabled
    bar.update(0.5)
    bar.close()
    assert stream.getvalue() == ""
    tty = TTY()
    assert ProgressBar(tty).enabled


def test_updates_are_rate_limited():
    stream, clock = io.StringIO(), FakeClock()
    bar = ProgressBar(stream, force=True, clock=clock, width=10, min_interval=0.5)
    bar.update(0.1, bytes_done=100)
    clock.now += 0.2
    bar.update(0.2, bytes_done=200)  # too soon: skipped
    clock.now += 0.4
    bar.update(0.3, bytes_done=300)
    clock.now += 0.1
    bar.update(1.0, bytes_done=1000)  # the final state always draws
    shown = frames(stream)
    assert [f.split("]")[0] for f in shown] == ["[#.........", "[###.......", "[##########"]
    assert "ETA" in shown[1]
    assert "500 B/s" in shown[1]  # 300 bytes in 0.6 s
    assert "in 0:01" in shown[2]


def test_shorter_lines_wipe_longer_ones_and_close_clears():
    stream, clock = TTY(), FakeClock()
    bar = ProgressBar(stream, clock=clock, width=4, min_interval=0)
    bar.update(0.5)
    clock.now += 10
    bar.update(0.6, bytes_done=10**9, precision=0.5)
    long = frames(stream)[-1]
    clock.now += 10
    bar.update(0.7)
    last = frames(stream)[-1]
    assert len(last) == len(long)
    assert last.startswith("[##..]   70%  ETA")
    assert last.endswith(" ")
    drawn = len(last.rstrip())
    before = stream.getvalue()
    bar.close()
    bar.close()
    assert stream.getvalue() == before + "\r" + " " * drawn + "\r"
    bar.update(0.9)  # after close: ignored
    assert stream.getvalue().endswith("\r")


def test_leave_ends_the_line_and_context_manager():
    stream = io.StringIO()
    with ProgressBar(stream, force=True, clock=FakeClock(), leave=True) as bar:
        bar.update(1.0)
    assert stream.getvalue().endswith("100%\n")


def test_close_without_drawing_writes_nothing():
    stream = io.StringIO()
    ProgressBar(stream, force=True).close()
    assert stream.getvalue() == ""


@pytest.mark.parametrize("completion", [0.0, 0.999])
def test_no_eta_without_progress_or_time(completion):
    stream, clock = io.StringIO(), FakeClock()
    bar = ProgressBar(stream, force=True, clock=clock)
    bar.update(completion)
    assert "ETA" not in stream.getvalue()
