"""The renderings the command adds: hex dumps, n-gram listings, the histogram chart (read back)."""

from __future__ import annotations

import numpy as np
import pytest

from binglide.cli.pictures import CLASS_COLORS, histogram_picture
from binglide.cli.text import hexdump_text, ngrams_text
from tests.cli.picture_helpers import at, close, legend_texts, pixels, render, rgb255, where
from tests.cli.test_pictures import BLACK, details


def test_hexdump_of_one_run_matches_hexdump_c():
    data = np.frombuffer(b"\x7fELF" + bytes(range(0x41, 0x41 + 16)), dtype=np.uint8)
    assert hexdump_text(data, [[0, 20]]).splitlines() == [
        "00000000  7f 45 4c 46 41 42 43 44  45 46 47 48 49 4a 4b 4c  |.ELFABCDEFGHIJKL|",
        "00000010  4d 4e 4f 50                                       |MNOP            |",
    ]


def test_hexdump_runs_keep_file_columns_and_mark_gaps():
    data = np.arange(6, dtype=np.uint8)
    lines = hexdump_text(data, [[0x13, 3], [0x40, 3]]).splitlines()
    assert lines[0].startswith("00000010           00 01 02")
    assert lines[0].endswith("|   ...          |")
    assert lines[1] == "--"
    assert lines[2].startswith("00000040  03 04 05")


def test_hexdump_limits_lines_and_checks_runs():
    data = np.zeros(100, dtype=np.uint8)
    lines = hexdump_text(data, [[0, 100]], max_lines=2).splitlines()
    assert len(lines) == 3
    assert lines[-1].startswith("... 5 more lines")
    with pytest.raises(ValueError, match="runs hold 99 bytes"):
        hexdump_text(data, [[0, 99]])
    assert hexdump_text(np.zeros(0, dtype=np.uint8), []) == "no bytes"


def test_ngrams_listing_full_and_reduced_bytes():
    table = np.zeros((256, 256), dtype=np.uint64)
    table[0x48, 0x69] = 30
    table[0x00, 0x00] = 10
    lines = ngrams_text(table, top=5).splitlines()
    assert lines[0] == "40 2-grams, 2 distinct; the 2 most frequent:"
    assert lines[1].startswith("48 69  Hi")
    assert lines[1].endswith("75.00%")
    reduced = np.zeros((4, 4, 4), dtype=np.uint64)
    reduced[1, 2, 3] = 1
    assert "40-7f 80-bf c0-ff" in ngrams_text(reduced, bits=2)
    assert ngrams_text(np.zeros((4, 4), dtype=np.uint64), bits=2) == "0 2-grams: empty table"
    with pytest.raises(ValueError, match="cells a side"):
        ngrams_text(reduced, bits=3)


def histogram_of(data: bytes, **options):
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    figure = histogram_picture(counts, **options)
    return figure, render(figure)


def bar_widths(image, axes, value: int, height: float) -> tuple[int, int]:
    """Return the width in pixels of the bar of `value` at `height`, and its gap to the frame."""
    column, row = where(image, axes, value, height)
    line = pixels(image)[row]
    colour = line[column]
    left = column
    while (line[left - 1] == colour).all():
        left -= 1
    right = column
    while (line[right + 1] == colour).all():
        right += 1
    frame_left, _ = where(image, axes, axes.get_xlim()[0], height)
    frame_right, _ = where(image, axes, axes.get_xlim()[1], height)
    return right - left + 1, min(left - frame_left, frame_right - right)


@pytest.mark.parametrize("log", [True, False])
def test_histogram_of_only_0x00_and_0xff_shows_both_bars(log):
    figure, image = histogram_of(bytes(3000) + b"\xff" * 1000, log=log)
    plot = figure.axes[0]
    for value, count in ((0x00, 3000), (0xFF, 1000)):
        width, gap = bar_widths(image, plot, value, count / 2)
        assert width >= 3, value
        assert gap >= 5, value  # a bar, not a line along the frame
        assert at(image, plot, value, count / 2) != BLACK
    above = 3000 * (1.3 if log else 1.03)
    assert at(image, plot, 0x00, above) == BLACK  # the bar stops at its count
    for value in (0x01, 0x80, 0xFE):
        assert at(image, plot, value, 700) == BLACK
    assert close(at(image, plot, 0xFF, 700), rgb255(CLASS_COLORS[4]))


def test_histogram_has_count_values_on_its_axis_log_or_linear():
    data = bytes(range(256)) * 10 + b"A" * 10_000
    figure, _ = histogram_of(data)
    plot = figure.axes[0]
    assert plot.get_yscale() == "log"
    assert plot.get_ylabel() == "count (log scale)"
    visible = [t for t in plot.get_yticks() if plot.get_ylim()[0] <= t <= plot.get_ylim()[1]]
    assert [int(t) for t in visible] == [1, 10, 100, 1000, 10000]
    linear, image = histogram_of(data, log=False)
    plot = linear.axes[0]
    assert plot.get_yscale() == "linear"
    labels = [t.get_text() for t in plot.get_yticklabels()]
    assert "10,000" in labels
    # Linear: the bar of "A" is a thousand times the others.
    assert at(image, plot, 0x41, 9000) != BLACK
    assert at(image, plot, 0x42, 9000) == BLACK


def test_histogram_legend_gives_the_share_of_each_class():
    figure, _ = histogram_of(b"\x00" * 50 + b"text" * 10 + b"\x80" * 10)
    assert legend_texts(figure) == [
        "0x00  50.0%",
        "control  0.0%",
        "printable ASCII  40.0%",
        "0x80-0xFE  10.0%",
        "0xFF  0.0%",
        "uniform (total / 256)",
    ]
    assert details(figure) == "100 bytes, 5 distinct values"


def test_histogram_refuses_bad_counts():
    with pytest.raises(ValueError, match="256 counts"):
        histogram_picture(np.zeros(10))
    with pytest.raises(ValueError, match="negative"):
        histogram_picture(-np.ones(256))
