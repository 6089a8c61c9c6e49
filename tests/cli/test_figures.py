"""matplotlib as the pictures use it: the PNG file, the theme, hex axes, titles that fit."""

from __future__ import annotations

import io
import logging

import matplotlib as mpl
import pytest
from matplotlib.font_manager import FontProperties
from PIL import Image

from binglide.cli.pictures.figure import (
    DPI,
    FIGURE_BACKGROUND,
    fit_text,
    hex_axis,
    new_figure,
    set_title,
    themed,
    to_png,
)
from tests.cli.picture_helpers import pixels, read_png, rgb255


@themed
def plain(width: int = 320, height: int = 200):
    figure = new_figure(width, height)
    figure.add_subplot()
    return figure


def test_png_is_an_opaque_rgb_picture_of_the_figure_size_with_its_title():
    data = to_png(plain(321, 203), title="fw.bin 0x0..0x10")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = read_png(data)
    assert image.size == (321, 203)
    assert image.info["Title"] == "fw.bin 0x0..0x10"
    assert image.info["Software"].startswith("binglide (matplotlib ")
    # The corner is the theme's background.
    assert tuple(pixels(image)[1, 1]) == rgb255(FIGURE_BACKGROUND)


def test_the_users_matplotlibrc_does_not_change_the_pictures():
    reference = to_png(plain())
    with mpl.rc_context({"figure.facecolor": "red", "axes.facecolor": "green", "font.size": 30}):
        assert to_png(plain()) == reference
    # And the pictures leave the user's settings as they were.
    before = dict(mpl.rcParams)
    plain()
    assert dict(mpl.rcParams) == before


def test_hex_axis_puts_ticks_on_round_hexadecimal_offsets():
    figure = plain()
    axes = figure.axes[0]
    axes.set_xlim(0, 0x100000)
    hex_axis(axes.xaxis, 0, 0x100000, count=4)
    to_png(figure)
    shown = [t.get_text() for t in axes.get_xticklabels() if 0 <= t.get_position()[0] <= 0x100000]
    assert shown == ["0x0", "0x40000", "0x80000", "0xC0000", "0x100000"]
    axes.set_xlim(0x1234, 0x98765)
    hex_axis(axes.xaxis, 0x1234, 0x98765)
    ticks = [v for v in axes.get_xticks() if 0x1234 <= v <= 0x98765]
    assert 3 <= len(ticks) <= 7
    step = ticks[1] - ticks[0]
    assert step == 1 << (int(step).bit_length() - 1)  # a power of two


def width_of(text: str, size: float) -> float:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    renderer = FigureCanvasAgg(Figure(dpi=DPI)).get_renderer()  # type: ignore[no-untyped-call]
    prop = FontProperties(family="DejaVu Sans", size=size)
    return float(renderer.get_text_width_height_descent(text, prop, ismath=False)[0])


def test_fit_text_keeps_what_fits_wraps_and_cuts():
    assert fit_text("short", width=300, size=12) == "short"
    words = "the quick brown fox jumps over the lazy dog " * 3
    wrapped = fit_text(words.strip(), width=300, size=12, lines=5)
    assert "…" not in wrapped
    assert wrapped.replace("\n", " ") == words.strip()
    assert all(width_of(line, 12) <= 300 for line in wrapped.splitlines())
    cut = fit_text("/very/long/" + "path" * 100 + ".bin", width=300, size=12)
    lines = cut.splitlines()
    assert len(lines) == 2
    assert lines[-1].endswith("…")
    assert all(width_of(line, 12) <= 300 for line in lines)


def test_titles_wrap_to_the_figure_and_details_to_their_width():
    figure = plain(400, 300)
    set_title(figure, figure.axes[0], "a fairly long title " * 10, "some details " * 40,
              details_width=250)  # fmt: skip
    image = Image.open(io.BytesIO(to_png(figure)))
    assert image.size == (400, 300)
    assert len(figure.get_suptitle().splitlines()) == 2
    details = figure.axes[0].get_title(loc="left").splitlines()
    assert len(details) == 3
    assert details[-1].endswith("…")
    assert all(width_of(line, 9.5) <= 250 for line in details)


def test_the_font_cache_message_is_not_printed(caplog):
    logger = logging.getLogger("matplotlib.font_manager")
    with caplog.at_level(logging.WARNING):
        logger.warning("Matplotlib is building the font cache; this may take a moment.")
        logger.warning("Could not save font_manager cache")
    assert [r.getMessage() for r in caplog.records] == ["Could not save font_manager cache"]


@pytest.mark.parametrize("name", ["日本語.bin", "a$b$.bin", "$"])
def test_titles_of_any_file_name_draw_without_warnings(name):
    # filterwarnings=error: a missing glyph or a mathtext error would fail here.
    figure = plain()
    set_title(figure, figure.axes[0], name, name)
    to_png(figure)
    assert figure.get_suptitle() == name
