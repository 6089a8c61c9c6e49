"""The renderings the command adds: hex dumps, n-gram listings, the histogram chart."""

from __future__ import annotations

import numpy as np
import pytest

from binglide.cli.pictures import histogram_picture
from binglide.cli.text import hexdump_text, ngrams_text


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


def test_histogram_picture_bars():
    counts = np.zeros(256, dtype=np.uint64)
    counts[0x41] = 1000
    counts[0xC0] = 1
    image = histogram_picture(counts)
    assert image.dtype == np.uint8
    assert image.shape == (14 + 256 + 40, 16 + 768 + 16, 3)
    bottom = 14 + 255
    assert image[bottom, 16 + 0x41 * 3].any()  # a bar
    assert image[bottom, 16 + 0xC0 * 3].any()  # a single byte still shows
    assert not image[bottom, 16 + 0x42 * 3].any()  # absent bytes draw nothing
    with pytest.raises(ValueError, match="256 counts"):
        histogram_picture(np.zeros(10))
