from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from binglide.cli.pictures import (
    CLASS_COLORS,
    bigram_picture,
    byte_classes,
    diff_picture,
    entropy_picture,
    hex_ticks,
    hilbert_d2xy,
    hilbert_picture,
    trigram_picture,
)
from binglide.cli.png import encode_png
from tests.cli.pngdecode import decode

if TYPE_CHECKING:
    from numpy.typing import NDArray

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"


def rgb(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    assert image.dtype == np.uint8
    assert image.ndim == 3
    assert image.shape[2] == 3
    return image


def bigrams(data: bytes) -> NDArray[np.int64]:
    b = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    return np.bincount(b[:-1] * 256 + b[1:], minlength=65536).reshape(256, 256)


# The bigram plot is drawn at a known place: 58 pixels from the left, 14 from
# the top without a title, two pixels per cell.
def cell(image: NDArray[np.uint8], first: int, second: int, top: int = 14) -> NDArray[np.uint8]:
    return np.asarray(image[top + 2 * second, 58 + 2 * first])


@pytest.mark.parametrize("leveling", ["log", "rank"])
def test_bigram_shape_and_cells(leveling):
    counts = np.zeros((256, 256), dtype=np.int64)
    counts[0x41, 0x42] = 1000
    counts[0x90, 0x05] = 1
    counts[0x05, 0x90] = 10
    image = rgb(bigram_picture(counts, leveling=leveling))
    assert image.shape[0] >= 512
    assert image.shape[1] >= 512
    assert (cell(image, 0x90, 0x10) == 0).all()  # a zero cell outside text is black
    assert cell(image, 0x90, 0x05).any()  # a single occurrence is visible
    assert cell(image, 0x05, 0x90).sum() > cell(image, 0x90, 0x05).sum()
    # Text pairs use a blue ramp, other pairs a warm one.
    text_cell = cell(image, 0x41, 0x42).astype(int)
    assert text_cell[2] > text_cell[0]
    other = cell(image, 0x05, 0x90).astype(int)
    assert other[0] > other[2]


def test_bigram_highlights_printable_square():
    image = bigram_picture(np.zeros((256, 256), dtype=np.int64))
    inside, outside = cell(image, 0x50, 0x50), cell(image, 0x10, 0x50)
    assert inside.any()
    assert not outside.any()
    # The square runs from 0x20 to 0x7E inclusive.
    assert cell(image, 0x20, 0x7E).any()
    assert not cell(image, 0x7F, 0x7E).any()
    assert not cell(image, 0x1F, 0x20).any()


def test_bigram_all_zero_and_errors():
    image = rgb(bigram_picture(np.zeros((256, 256)), leveling="rank", title="empty"))
    decode(encode_png(image))
    with pytest.raises(ValueError):
        bigram_picture(np.zeros((255, 256)))
    with pytest.raises(ValueError):
        bigram_picture(np.zeros((256, 256)), leveling="loud")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        bigram_picture(-np.ones((256, 256)))


def test_bigram_rank_spreads_levels():
    counts = np.zeros((256, 256), dtype=np.int64)
    counts[0x90, 0x90] = 1
    counts[0x91, 0x90] = 2
    counts[0x92, 0x90] = 10**9
    log = bigram_picture(counts, leveling="log")
    rank = bigram_picture(counts, leveling="rank")
    # Log crushes 1 and 2 together next to 10**9; rank puts 2 two thirds up.
    assert cell(rank, 0x91, 0x90).sum() > cell(log, 0x91, 0x90).sum()


@pytest.mark.parametrize("bits", [2, 4, 6])
def test_trigram_shapes(bits):
    n = 1 << bits
    counts = np.zeros((n, n, n), dtype=np.int64)
    empty = rgb(trigram_picture(counts))
    counts[n // 2, n // 3, n - 1] = 5
    image = rgb(trigram_picture(counts, title="t"))
    assert image.shape[1] == empty.shape[1]
    assert image.shape[0] > empty.shape[0]  # room for the title


def test_trigram_text_and_noise_differ():
    rng = np.random.default_rng(1)
    noise = np.bincount(rng.integers(0, 64**3, 200_000), minlength=64**3).reshape(64, 64, 64)
    text = np.zeros((64, 64, 64), dtype=np.int64)
    text[0x60 // 4 : 0x7B // 4, 0x60 // 4 : 0x7B // 4, 0x60 // 4 : 0x7B // 4] = 50
    empty = trigram_picture(np.zeros_like(text))
    lit_noise = (trigram_picture(noise) != empty).any(axis=2).sum()
    lit_text = (trigram_picture(text) != empty).any(axis=2).sum()
    assert lit_noise > 3 * lit_text


def test_trigram_rejects_non_cubes():
    with pytest.raises(ValueError):
        trigram_picture(np.zeros((4, 4, 8)))
    with pytest.raises(ValueError):
        trigram_picture(np.zeros((6, 6, 6)))
    with pytest.raises(ValueError):
        trigram_picture(np.zeros((16, 16)))


def test_entropy_picture():
    values = np.concatenate([np.zeros(100), np.full(100, 8.0), np.full(56, np.nan)])
    image = rgb(entropy_picture(values, start=0x1000, stop=0x41000, width=800, height=200))
    assert image.shape == (200, 800, 3)
    # Plot area: left 36, top 32, bottom 30; the low half's columns stay dark
    # near the top, the high half is red there.
    row = 32 + 10
    assert (image[row, 36 + 100] < 80).all()
    red = image[row, 36 + 500].astype(int)
    assert red[0] > 150
    assert red[2] < 100
    decode(encode_png(image))


def test_entropy_picture_edge_cases():
    rgb(entropy_picture(np.array([]), start=0, stop=0))
    rgb(entropy_picture(np.array([3.0]), start=0, stop=10, title=""))
    rgb(entropy_picture(np.random.default_rng(0).uniform(0, 8, 10_000), start=5, stop=10**9))
    with pytest.raises(ValueError):
        entropy_picture(np.zeros(3), start=10, stop=0)
    with pytest.raises(ValueError):
        entropy_picture(np.zeros(3), start=0, stop=10, width=20)


def test_hex_ticks():
    assert hex_ticks(0, 0x100000) == [0, 0x40000, 0x80000, 0xC0000, 0x100000]
    ticks = hex_ticks(0x1234, 0x98765)
    assert 2 <= len(ticks) <= 6
    assert all(0x1234 <= t <= 0x98765 for t in ticks)
    assert hex_ticks(7, 7) == [7]


@pytest.mark.parametrize("order", [0, 1, 2, 3, 5, 8])
def test_hilbert_is_a_bijective_path_of_adjacent_cells(order):
    d = np.arange(4**order)
    x, y = hilbert_d2xy(order, d)
    side = 1 << order
    assert x.min() >= 0
    assert y.min() >= 0
    assert max(x.max(), y.max()) < side
    assert len(set(zip(x.tolist(), y.tolist(), strict=True))) == 4**order
    steps = np.abs(np.diff(x)) + np.abs(np.diff(y))
    assert (steps == 1).all()
    assert (x[0], y[0]) == (0, 0)
    assert (x[-1], y[-1]) == (side - 1, 0)


def test_hilbert_known_values_and_errors():
    x, y = hilbert_d2xy(1, [0, 1, 2, 3])
    assert list(zip(x.tolist(), y.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 1), (1, 0)]
    sx, sy = hilbert_d2xy(4, 37)
    assert sx.shape == ()
    assert (int(sx), int(sy)) == (
        int(hilbert_d2xy(4, [37])[0][0]),
        int(hilbert_d2xy(4, [37])[1][0]),
    )
    with pytest.raises(ValueError):
        hilbert_d2xy(2, [16])
    with pytest.raises(ValueError):
        hilbert_d2xy(-1, [0])


def test_byte_classes():
    values = [0, 1, 9, 10, 0x1F, 0x20, 0x41, 0x7E, 0x7F, 0x80, 0xFE, 0xFF]
    assert byte_classes(values).tolist() == [0, 1, 2, 2, 1, 2, 2, 2, 1, 3, 3, 4]


def test_hilbert_picture_class_mode():
    data = np.array([0x00] * 16 + [0x41] * 16 + [0xC3] * 16 + [0xFF] * 16, dtype=np.uint8)
    image = rgb(hilbert_picture(data, mode="class", size=64))
    # Order 3 (64 cells), 8 pixels a cell, the map at (12, 12) without a title.
    x, y = hilbert_d2xy(3, np.arange(64))
    for d, name in [(0, "0x00"), (20, "ascii"), (40, "high"), (63, "0xFF")]:
        px, py = 12 + 8 * int(x[d]) + 4, 12 + 8 * int(y[d]) + 4
        assert tuple(image[py, px]) == CLASS_COLORS[name]


def test_hilbert_picture_entropy_mode_and_padding():
    values = np.linspace(0, 8, 40)
    image = rgb(hilbert_picture(values, size=32, title="h"))
    decode(encode_png(image))
    # 40 values need order 3; too many values for an explicit order are averaged.
    rgb(hilbert_picture(np.linspace(0, 8, 1000), order=2))
    rgb(hilbert_picture(np.arange(1000) % 256, order=2, mode="class"))
    rgb(hilbert_picture(np.array([]), mode="class"))
    with pytest.raises(ValueError):
        hilbert_picture(values, mode="colour")  # type: ignore[arg-type]


def test_diff_picture():
    counts = np.zeros(500)
    counts[100] = 1
    counts[300:310] = 4096
    image = rgb(diff_picture(counts, 4096, total=40961, sizes=[2048000, 2048001]))
    decode(encode_png(image))
    top, left, pw = 48, 12, 1000
    strip = image[top + 10, left : left + pw].astype(int).sum(axis=1)
    at = (left + np.array([100, 305, 0]) * pw // 500) - left
    assert strip[at[1]] > strip[at[0]] > strip[at[2]]
    rgb(diff_picture(np.zeros(0), np.zeros(0), total=0, sizes=[0, 0], title="none"))
    rgb(diff_picture(np.ones(3000), np.full(3000, 2), total=3000, sizes=[6000, 6000]))


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="no sample binaries")
def test_pictures_of_a_real_sample(tmp_path):
    data = (SAMPLES / "busybox-armv4l").read_bytes()
    image = bigram_picture(bigrams(data), title="busybox-armv4l")
    png = encode_png(image)
    assert len(png) < 300_000
    assert np.array_equal(decode(png), image)
    # ARM code: many distinct pairs; 0x00 is the most frequent first byte.
    counts = bigrams(data)
    assert int(counts.sum(axis=1).argmax()) == 0
