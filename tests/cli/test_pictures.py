"""The command's pictures, read back with Pillow: their colours where the data says they go."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from binglide.cli.pictures import (
    CLASS_COLORS,
    NO_DATA,
    PRINTABLE_TINT,
    TRIGRAM_POINTS,
    bigram_picture,
    byte_class_picture,
    byte_classes,
    diff_picture,
    entropy_picture,
    hilbert_d2xy,
    hilbert_entropy_picture,
    sample_note,
    stats_picture,
    trigram_picture,
)
from binglide.cli.pictures.figure import PLOT_BACKGROUND
from tests.cli.picture_helpers import (
    at,
    close,
    colorbars,
    legend_texts,
    pixels,
    render,
    rgb255,
    where,
)

# ../shared/samples beside the repository (or beside the worktrees' folder).
SAMPLES = next(
    (
        path
        for path in (p / "shared" / "samples" for p in Path(__file__).resolve().parents[3:5])
        if path.is_dir()
    ),
    Path("shared-samples-absent"),
)
BLACK = rgb255(PLOT_BACKGROUND)
TEXT = b"The quick brown fox jumps over the lazy dog; 0123456789 (quoth she). " * 50


def bigrams(data: bytes) -> np.ndarray:
    b = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    return np.bincount(b[:-1] * 256 + b[1:], minlength=65536).reshape(256, 256)


def block_entropy(data: np.ndarray, size: int) -> np.ndarray:
    """Entropy in bits per byte of consecutive blocks of `size` bytes, with numpy alone."""
    blocks = data[: len(data) // size * size].reshape(-1, size)
    out = []
    for block in blocks:
        p = np.bincount(block, minlength=256) / size
        p = p[p > 0]
        out.append(float(-(p * np.log2(p)).sum()) + 0.0)
    return np.array(out)


def details(figure) -> str:
    """Return the line of details under the title (as one line)."""
    return " ".join(figure.axes[0].get_title(loc="left").split())


def blue(color: tuple[int, int, int]) -> bool:
    r, _, b = color
    return b > r + 10


def warm(color: tuple[int, int, int]) -> bool:
    r, _, b = color
    return r > b + 40


def brightness(color: tuple[int, int, int]) -> int:
    return sum(color)


# -- bigrams ---------------------------------------------------------------------------------


def test_bigram_of_text_lights_the_printable_square_only():
    figure = bigram_picture(bigrams(TEXT), title="text.txt")
    image = render(figure)
    plot = figure.axes[0]
    # Pairs that occur in the text are lit, in the blue of printable pairs.
    for pair in (b"Th", b"he", b"qu", b"x ", b"9 "):
        color = at(image, plot, pair[0], pair[1])
        assert blue(color), (pair, color)
        assert brightness(color) > brightness(rgb255(PRINTABLE_TINT)) + 60
    # Printable pairs that never occur keep the square's tint; every pair
    # outside the square is black.
    assert close(at(image, plot, ord("Q"), ord("Z")), rgb255(PRINTABLE_TINT))
    for first, second in ((0x01, 0x02), (0x10, 0x41), (0x41, 0x90), (0xC3, 0xF0), (0x7F, 0x7E)):
        assert at(image, plot, first, second) == BLACK, (first, second)
    everything = pixels(image)
    left, top = where(image, plot, 0x80, 0x00)
    right, bottom = where(image, plot, 0xFF, 0xFF)
    assert (everything[top + 2 : bottom - 2, left + 2 : right - 2] == BLACK).all()


def test_bigram_colours_code_warm_and_keeps_single_pairs_visible():
    counts = np.zeros((256, 256), dtype=np.int64)
    counts[0x48, 0x89] = 10**6
    counts[0x90, 0x05] = 1
    counts[0x05, 0x90] = 1000
    figure = bigram_picture(counts)
    image = render(figure)
    plot = figure.axes[0]
    single, middle, top = (at(image, plot, *p) for p in ((0x90, 0x05), (0x05, 0x90), (0x48, 0x89)))
    assert single != BLACK
    assert warm(middle)
    assert brightness(single) < brightness(middle) < brightness(top)
    # Cells are drawn where they belong: x is the first byte, y the second.
    assert at(image, plot, 0x89, 0x48) == BLACK


def test_bigram_rank_levelling_lifts_small_counts():
    counts = np.zeros((256, 256), dtype=np.int64)
    counts[0x90, 0x90] = 1
    counts[0x91, 0x90] = 2
    counts[0x92, 0x90] = 10**9
    log, rank = bigram_picture(counts, leveling="log"), bigram_picture(counts, leveling="rank")
    two_log = at(render(log), log.axes[0], 0x91, 0x90)
    two_rank = at(render(rank), rank.axes[0], 0x91, 0x90)
    # Log crushes 2 next to 10**9; rank puts it half way up the colours.
    assert brightness(two_rank) > brightness(two_log) + 100


def test_bigram_has_a_colour_bar_for_each_colour_map():
    figure = bigram_picture(bigrams(TEXT), leveling="rank", bits=6, title="t")
    render(figure)
    labels = sorted(bar.get_ylabel() for bar in colorbars(figure))
    assert labels == ["pairs: count, by rank", "printable pairs (0x20-0x7E): count, by rank"]
    # Rank ticks are labelled with the counts they stand for.
    ticks = [t.get_text() for t in colorbars(figure)[0].get_yticklabels()]
    assert str(int(bigrams(TEXT).max())) in [t.replace(",", "") for t in ticks]
    assert "each cell stands for a 4x4 square" in details(figure)


def test_bigram_refuses_bad_tables():
    with pytest.raises(ValueError, match="256, 256"):
        bigram_picture(np.zeros((255, 256)))
    with pytest.raises(ValueError, match="leveling"):
        bigram_picture(np.ones((256, 256)), leveling="loud")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        bigram_picture(-np.ones((256, 256)))
    render(bigram_picture(np.zeros((256, 256)), leveling="rank"))


# -- trigrams --------------------------------------------------------------------------------


def lit(figure) -> int:
    """How many pixels of the picture are neither background nor grey."""
    p = pixels(render(figure)).astype(int)
    return int((p.max(axis=2) - p.min(axis=2) > 30).sum())


def test_trigram_noise_fills_the_cube_and_text_a_corner_of_it():
    rng = np.random.default_rng(1)
    noise = np.bincount(rng.integers(0, 64**3, 200_000), minlength=64**3).reshape(64, 64, 64)
    text = np.zeros((64, 64, 64), dtype=np.int64)
    text[0x60 // 4 : 0x7B // 4, 0x60 // 4 : 0x7B // 4, 0x60 // 4 : 0x7B // 4] = 50
    empty = lit(trigram_picture(np.zeros_like(text)))
    assert lit(trigram_picture(noise)) - empty > 3 * (lit(trigram_picture(text)) - empty)
    assert lit(trigram_picture(text)) > empty + 200


@pytest.mark.parametrize("bits", [2, 4, 7])
def test_trigram_legend_colour_bar_and_details(bits):
    n = 1 << bits
    counts = np.zeros((n, n, n), dtype=np.int64)
    counts[n // 2, n // 3, n - 1] = 5
    counts[0, 0, 0] = 7
    figure = trigram_picture(counts, title="t")
    render(figure)
    assert legend_texts(figure) == ["printable ASCII (0x20-0x7E)"]
    assert [bar.get_ylabel() for bar in colorbars(figure)] == ["count of the triple"]
    said = details(figure)
    assert said.startswith(f"12 triples, 2 distinct of {n**3:,} cells; {bits} bits a byte")


def test_trigram_draws_a_sample_of_huge_clouds():
    counts = np.ones((128, 128, 128), dtype=np.int64)
    figure = trigram_picture(counts)
    said = details(figure)
    assert f"{TRIGRAM_POINTS:,} cells drawn, chosen at random" in said
    assert len(np.asarray(figure.axes[0].collections[0].get_offsets())) == TRIGRAM_POINTS


def test_trigram_refuses_non_cubes():
    for shape in ((4, 4, 8), (6, 6, 6), (16, 16)):
        with pytest.raises(ValueError, match="cube"):
            trigram_picture(np.zeros(shape))


# -- entropy ---------------------------------------------------------------------------------


def profile(values: np.ndarray, size: int, **options):
    starts = np.arange(len(values), dtype=np.int64) * size
    return entropy_picture(values, starts=starts, stops=starts + size, **options)


def test_entropy_of_random_data_is_high_and_of_zeros_low():
    rng = np.random.default_rng(7)
    data = np.concatenate([np.zeros(64 * 4096, np.uint8), rng.integers(0, 256, 64 * 4096)])
    values = block_entropy(data.astype(np.uint8), 4096)
    figure = profile(values, 4096)
    image = render(figure)
    plot = figure.axes[0]
    zeros, noise = 32 * 4096, 96 * 4096
    # Zeros: nothing above the axis. Random: a red bar up to nearly 8 bits.
    assert at(image, plot, zeros, 0.3) == BLACK
    assert at(image, plot, zeros, 5) == BLACK  # (4 is on a grid line)
    high = at(image, plot, noise, 7.6)
    assert warm(high)
    assert at(image, plot, noise, 8.2) == BLACK
    # Low bars are blue.
    low = profile(np.full(8, 1.5), 4096)
    assert blue(at(render(low), low.axes[0], 4 * 4096, 1.0))
    assert [bar.get_ylabel() for bar in colorbars(figure)] == ["bits per byte"]
    assert details(figure) == "128 points of 4.00 KiB each"


def hatched(figure, x: float) -> int:
    """How many non-black pixels the column at offset `x` has between 6.2 and 7.8 bits."""
    image = render(figure)
    plot = figure.axes[0]
    column, top = where(image, plot, x, 7.8)
    _, bottom = where(image, plot, x, 6.2)
    strip = pixels(image)[top:bottom, column - 3 : column + 3]
    return int((strip != BLACK).any(axis=2).sum())


def test_entropy_marks_points_too_short_to_reach_8_bits():
    short = profile(np.full(100, 3.9), 16)
    assert hatched(short, 50 * 16) > 10
    said = details(short)
    assert said.startswith("100 points of 16 B each; every point under 256 B")
    assert "at most log2(bytes) bits (4.0 for 16 B): biased low" in said
    assert any(t.startswith("out of reach") for t in legend_texts(short))
    full = profile(np.full(100, 3.9), 256)
    assert hatched(full, 50 * 256) == 0
    assert "biased" not in details(full)
    # Only the short points are marked: a block profile's last block.
    starts = np.array([0, 4096, 8192])
    mixed = entropy_picture(
        [5.0, 5.0, 3.0], starts=starts, stops=starts + np.array([4096, 4096, 10])
    )
    assert hatched(mixed, 4096) == 0
    assert hatched(mixed, 8195) > 10
    assert "1 points under 256 B" in details(mixed)


def test_entropy_keeps_a_lone_spike_when_points_outnumber_columns():
    values = np.zeros(200_000)
    values[123_457] = 8.0
    figure = profile(values, 4096)
    image = render(figure)
    column, row = where(image, figure.axes[0], 123_457.5 * 4096, 7.5)
    assert (pixels(image)[row, column - 2 : column + 3] != BLACK).any()
    assert "highest point in a column" in legend_texts(figure)


def test_entropy_shows_missing_points_and_refuses_bad_input():
    figure = profile(np.array([2.0, np.nan, 6.0]), 1024)
    image = render(figure)
    assert close(at(image, figure.axes[0], 1536, 4.0), rgb255(NO_DATA))
    assert "no data" in legend_texts(figure)
    render(entropy_picture([], starts=[], stops=[]))
    with pytest.raises(ValueError, match="3 values for 2 starts"):
        entropy_picture([1, 2, 3], starts=[0, 1], stops=[1, 2])
    with pytest.raises(ValueError, match="end before"):
        entropy_picture([1], starts=[5], stops=[4])
    with pytest.raises(ValueError, match="at least 320x200"):
        profile(np.zeros(3), 10, width=100)


# -- Hilbert maps ----------------------------------------------------------------------------


@pytest.mark.parametrize("order", [0, 1, 2, 3, 5, 8])
def test_hilbert_is_a_path_of_adjacent_cells_through_every_cell(order):
    x, y = hilbert_d2xy(order, np.arange(4**order))
    side = 1 << order
    assert len(set(zip(x.tolist(), y.tolist(), strict=True))) == 4**order
    assert max(x.max(), y.max()) < side
    assert (np.abs(np.diff(x)) + np.abs(np.diff(y)) == 1).all()
    assert (x[0], y[0]) == (0, 0)
    assert (x[-1], y[-1]) == (side - 1, 0)


def test_hilbert_known_values_and_errors():
    x, y = hilbert_d2xy(1, [0, 1, 2, 3])
    assert list(zip(x.tolist(), y.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 1), (1, 0)]
    with pytest.raises(ValueError):
        hilbert_d2xy(2, [16])
    with pytest.raises(ValueError):
        hilbert_d2xy(-1, [0])


def test_byte_classes():
    values = [0, 1, 9, 10, 0x1F, 0x20, 0x41, 0x7E, 0x7F, 0x80, 0xFE, 0xFF]
    assert byte_classes(values).tolist() == [0, 1, 2, 2, 1, 2, 2, 2, 1, 3, 3, 4]


def cell(image, figure, order: int, d: int) -> tuple[int, int, int]:
    x, y = hilbert_d2xy(order, [d])
    return at(image, figure.axes[0], float(x[0]), float(y[0]))


def test_byte_class_map_colours_each_cell_by_its_class():
    data = np.array([0x00] * 16 + [0x41] * 16 + [0xC3] * 16 + [0xFF] * 10, dtype=np.uint8)
    figure = byte_class_picture(data, note="a note")
    image = render(figure)
    for d, klass in ((0, 0), (20, 2), (40, 3), (57, 4)):
        assert close(cell(image, figure, 3, d), rgb255(CLASS_COLORS[klass])), d
    # 58 bytes on 64 cells: the last six are past the end.
    assert close(cell(image, figure, 3, 60), rgb255(NO_DATA))
    entries = legend_texts(figure)
    assert "0x00  27.6%" in entries
    assert "printable ASCII  27.6%" in entries
    assert "control  0.0%" in entries
    assert {"past the end", "start of the data", "end"} <= set(entries)
    assert details(figure) == "a note"


def test_byte_class_map_subsamples_past_its_largest_order():
    data = np.repeat(np.array([0x00, 0xFF], dtype=np.uint8), 4**5)
    figure = byte_class_picture(data, order=2, note="n")
    image = render(figure)
    assert close(cell(image, figure, 2, 0), rgb255(CLASS_COLORS[0]))
    assert close(cell(image, figure, 2, 15), rgb255(CLASS_COLORS[4]))
    assert "every 128th byte drawn" in details(figure)


def test_sample_note_says_what_the_view_holds():
    assert sample_note(64, [[0, 64]], start=0, stop=64) == "all 64 bytes of 0x0..0x40"
    note = sample_note(1024, [[i * 4096, 256] for i in range(4)], start=0, stop=16384)
    assert note == (
        "a sample: 1,024 bytes in 4 runs of 256 B spread evenly over 0x0..0x4000 (16.0 KiB),"
        " 6.2% of it"
    )


def test_hilbert_entropy_map_colours_and_marks_short_points():
    values = np.concatenate([np.zeros(32), np.full(32, 8.0)])
    figure = hilbert_entropy_picture(values, point_bytes=4096)
    image = render(figure)
    assert blue(cell(image, figure, 3, 3))
    assert warm(cell(image, figure, 3, 60))
    assert [bar.get_ylabel() for bar in colorbars(figure)] == ["bits per byte"]
    assert details(figure) == "64 points of 4.00 KiB each"
    short = hilbert_entropy_picture(values[:40], point_bytes=32)
    image = render(short)
    assert close(cell(image, short, 3, 50), rgb255(NO_DATA))
    assert "can show at most log2(bytes) bits (5.0 for 32 B)" in details(short)
    # The colour bar hatches the colours short points cannot reach.
    bar = colorbars(short)[0]
    assert any(p.get_hatch() == "///" for p in bar.patches)


# -- diff ------------------------------------------------------------------------------------


def test_diff_shows_a_single_byte_and_the_longer_file():
    counts = np.zeros(500)
    counts[100] = 1
    counts[300:310] = 4096
    starts = np.arange(500) * 4096
    figure = diff_picture(
        counts, starts=starts, stops=starts + 4096, total=40961, sizes=[2048000, 2000000]
    )
    image = render(figure)
    strip = figure.axes[0]
    same, one, all_ = (at(image, strip, p * 4096 + 2048, 0.5) for p in (50, 100, 305))
    assert close(same, rgb255("#123a22"))
    assert one != same
    assert brightness(all_) > brightness(one)
    assert details(figure).startswith("40,961 bytes differ (2.05%); sizes 2,048,000 vs 2,000,000")
    assert "only in the longer file" in legend_texts(figure)
    assert len(colorbars(figure)) == 1
    # More points than columns: a lone byte still shows.
    many = np.zeros(100_000)
    many[77_777] = 1
    starts = np.arange(100_000) * 64
    wide = diff_picture(many, starts=starts, stops=starts + 64, total=1, sizes=[6_400_000] * 2)
    image = render(wide)
    column, row = where(image, wide.axes[0], 77_777.5 * 64, 0.5)
    assert any(not close(tuple(p), same) for p in pixels(image)[row, column - 2 : column + 3])
    with pytest.raises(ValueError, match="counts for"):
        diff_picture([1], starts=[], stops=[], total=1, sizes=[1, 1])


# -- stats -----------------------------------------------------------------------------------


def test_stats_picture_shows_ent_numbers():
    counts = np.zeros(256, dtype=np.int64)
    counts[0x41] = 10
    meta = {
        "entropy": 0.0,
        "chi_square": 2550.0,
        "mean": 65.0,
        "monte_carlo_pi": 4.0,
        "serial_correlation": None,
        "size": 10,
    }
    figure = stats_picture(counts, meta, title="ten A")
    render(figure)
    texts = [t.get_text() for t in figure.axes[1].texts]
    rows = dict(zip(texts[::2], texts[1::2], strict=True))
    assert rows["entropy"] == "0.000000 bits per byte"
    assert rows["optimum compression"] == "would reduce the size by 100%"
    assert rows["chi square"].startswith("2550.00; random data would exceed it less than 0.01%")
    assert rows["arithmetic mean"].startswith("65.0000")
    assert rows["Monte Carlo pi"] == f"4.000000000  (error {100 * (4 - math.pi) / math.pi:.2f}%)"
    assert rows["serial correlation"] == "undefined (all values equal)"


# -- titles and the command ------------------------------------------------------------------


def test_long_and_strange_titles_fit_the_picture():
    name = "firmware-" + "x" * 300 + ".bin  0x0..0x1000 (4.00 KiB)"
    for title in (name, "price$1$2.bin", "日本語のファイル.bin", "a " * 200):
        figure = bigram_picture(np.ones((256, 256)), title=title)
        render(figure)
        heading = figure.get_suptitle()
        assert len(heading.splitlines()) <= 2
        (drawn,) = (t for t in figure.texts if t.get_text() == heading)
        box = drawn.get_window_extent()
        assert box.x0 >= 0
        assert box.x1 <= figure.bbox.width
    assert figure.get_suptitle().endswith("…")
    dollars = bigram_picture(np.ones((256, 256)), title="price$1$2.bin")
    assert dollars.get_suptitle() == "price$1$2.bin"


def test_pictures_load_only_when_drawn(tmp_path):
    data = tmp_path / "d.bin"
    data.write_bytes(TEXT)
    script = f"""
import sys
from binglide.cli.main import main
code = main(["histogram", {str(data)!r}, "-q", "--no-cache", "--cache-dir", {str(tmp_path)!r}])
heavy = sorted(m for m in ("matplotlib", "PIL", "rich") if m in sys.modules)
print(code, heavy)
code = main(["histogram", {str(data)!r}, "-q", "--png", {str(tmp_path / "h.png")!r},
             "--cache-dir", {str(tmp_path)!r}])
print(code, sorted(m for m in ("matplotlib", "PIL", "rich") if m in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["0 []", "0 ['PIL', 'matplotlib']"], done.stderr
    assert done.stderr == ""


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="no sample binaries in ../shared/samples")
def test_bigram_of_arm_code():
    data = (SAMPLES / "busybox-armv4l").read_bytes()
    counts = bigrams(data)
    figure = bigram_picture(counts, title="busybox-armv4l")
    image = render(figure)
    # ARM code: 0x00 pairs with everything; the most frequent pair is the brightest cell.
    first, second = (int(i) for i in np.unravel_index(int(counts.argmax()), counts.shape))
    brightest = at(image, figure.axes[0], first, second)
    assert brightness(brightest) >= max(
        brightness(at(image, figure.axes[0], a, b)) for a, b in ((0x41, 0x42), (0x90, 0x33))
    )


def test_entropy_bars_meet_when_a_sliding_window_is_narrower_than_their_spacing():
    starts = np.arange(10) * 4096
    figure = entropy_picture(np.full(10, 3.0), starts=starts, stops=starts + 4096, point_bytes=128)
    image = render(figure)
    assert at(image, figure.axes[0], 3 * 4096 + 4000, 1.5) != BLACK
    assert details(figure).startswith("10 points of 128 B each")
    assert hatched(figure, 3 * 4096 + 2048) > 10


def test_the_entropy_command_draws_sliding_windows_over_the_whole_range():
    import argparse

    from PIL import Image

    from binglide import Report
    from binglide.cli.commands import ANALYSES
    from binglide.cli.pictures.palette import entropy_colormap

    analysis = ANALYSES["entropy"]
    args = argparse.Namespace(files=["fw.bin"], hilbert=False)
    meta = {"mode": "sliding", "window": 64, "resolution": 8, "start": 0, "stop": 8 * 4096}
    sliding = Report(np.full(8, 5.5), meta=meta)
    png = analysis.picture(sliding, args)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.info["Title"].startswith("fw.bin")
    # The bars cover the whole range (not 64-byte slivers 4 KiB apart).
    colour = np.array(entropy_colormap()(5.5 / 8)[:3]) * 255
    row = np.asarray(image.convert("RGB"), dtype=float)[image.height // 2]
    assert (np.abs(row - colour).max(axis=1) < 4).sum() > 800
    resolution = {"mode": "resolution", "resolution": 8, "start": 0, "stop": 8 * 16}
    untold = Report(np.full(8, 3.0), meta=resolution)
    hilbert = argparse.Namespace(files=["fw.bin"], hilbert=True)
    assert Image.open(io.BytesIO(analysis.picture(untold, hilbert))).size == (760, 660)
