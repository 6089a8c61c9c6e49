"""matplotlib set up for the command's pictures: a themed figure, axes, titles that fit, PNG.

The pictures import matplotlib, which takes a good fraction of a second; the
command imports them only when ``--png`` asks for a picture, so every other
run starts without it.

Pictures are drawn on a `matplotlib.figure.Figure` with the non-interactive
Agg canvas attached explicitly: pyplot (its global state and its choice of
an interactive backend) is never involved, as matplotlib recommends for
programs that only write files. The theme is applied over matplotlib's own
defaults rather than the user's ``matplotlibrc``, so a picture looks the
same on every machine; titles are never read as mathtext, so a file named
``a$b$.bin`` is titled as it is named.

matplotlib keeps its font list in its cache directory (``MPLCONFIGDIR``, or
the user cache directory: ``~/.cache/matplotlib``); it ships the DejaVu fonts
the pictures use and downloads nothing.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import textwrap
import warnings
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import matplotlib as mpl
import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, ListedColormap
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from PIL import Image, PngImagePlugin

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from numpy.typing import NDArray

__all__ = (
    "BYTE_TICKS",
    "DPI",
    "FIGURE_BACKGROUND",
    "PLOT_BACKGROUND",
    "byte_ticks",
    "check_counts",
    "fit_text",
    "hex_axis",
    "hex_label",
    "new_figure",
    "set_title",
    "themed",
    "to_png",
    "truncated_colormap",
)

#: Pixels per inch: a figure of ``w`` by ``h`` inches is ``100 w`` by ``100 h`` pixels.
DPI = 100
FIGURE_BACKGROUND = "#16161a"
#: Black: in every map and chart, what is absent is black.
PLOT_BACKGROUND = "#000000"
_FOREGROUND = "#c8c8cd"
_FRAME = "#6e6e78"
_DIM = "#a0a0aa"
_DETAILS_SIZE = 9.5

# A dark theme: the maps show "nothing here" as black, and a light frame
# around a black plot would glare. Images are not smoothed (a cell is a byte
# value, not a sample of a continuous field).
_THEME: dict[str, Any] = {
    "figure.facecolor": FIGURE_BACKGROUND,
    "figure.edgecolor": FIGURE_BACKGROUND,
    "figure.dpi": DPI,
    "figure.titlesize": 14,
    "savefig.facecolor": FIGURE_BACKGROUND,
    "savefig.dpi": DPI,
    "axes.facecolor": PLOT_BACKGROUND,
    "axes.edgecolor": _FRAME,
    "axes.labelcolor": _FOREGROUND,
    "axes.titlecolor": _FOREGROUND,
    "axes.formatter.useoffset": False,
    "text.color": _FOREGROUND,
    "xtick.color": _FOREGROUND,
    "ytick.color": _FOREGROUND,
    "grid.color": "#3c3c46",
    "grid.linewidth": 0.6,
    "legend.facecolor": FIGURE_BACKGROUND,
    "legend.edgecolor": _FRAME,
    "legend.labelcolor": _FOREGROUND,
    "legend.framealpha": 0.9,
    "legend.fontsize": 9,
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "image.interpolation": "nearest",
    "image.resample": False,
    "hatch.color": "#8c8c96",
}

# matplotlib logs this after five seconds of building its font list on its
# first import: true, but not the command's business to print.
_FONT_CACHE_MESSAGE = "building the font cache"


class _QuietFontCache(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _FONT_CACHE_MESSAGE not in record.getMessage()


logging.getLogger("matplotlib.font_manager").addFilter(_QuietFontCache())


@contextlib.contextmanager
def _theme() -> Iterator[None]:
    with mpl.rc_context(), warnings.catch_warnings():
        # Start from matplotlib's defaults, not the user's matplotlibrc.
        mpl.rcdefaults()
        # (matplotlib types rcParams' keys as literals; the theme's are checked at run time.)
        mpl.rcParams.update(cast("dict[Any, Any]", _THEME))
        # DejaVu has no CJK glyphs: such a file name draws boxes, which is
        # enough to see that the name is there; the warning is noise.
        warnings.filterwarnings(
            "ignore", message=r"Glyph \d+ .*missing from", category=UserWarning
        )
        yield


P = ParamSpec("P")
R = TypeVar("R")


def themed(draw: Callable[P, R]) -> Callable[P, R]:
    """Run `draw` under the pictures' theme (over matplotlib's defaults, not the user's)."""

    @functools.wraps(draw)
    def themed_draw(*args: P.args, **kwargs: P.kwargs) -> R:
        with _theme():
            return draw(*args, **kwargs)

    return themed_draw


def new_figure(width: int, height: int) -> Figure:
    """Return an empty figure of `width` by `height` pixels on an Agg canvas.

    Call it under `themed` (the theme's colours are taken when artists are made).
    """
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def to_png(figure: Figure, *, title: str | None = None) -> bytes:
    """Render `figure` as an RGB PNG file, with `title` in its metadata.

    The picture is opaque, so the alpha channel matplotlib draws with is
    dropped: a smaller file that every viewer shows the same way.
    """
    with _theme():
        canvas = FigureCanvasAgg(figure)
        canvas.draw()  # type: ignore[no-untyped-call]  # (matplotlib's stubs leave it bare)
        rgba = Image.frombuffer(
            "RGBA",
            canvas.get_width_height(),
            canvas.buffer_rgba(),  # type: ignore[no-untyped-call]
            "raw",
            "RGBA",
            0,
            1,
        )
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"binglide (matplotlib {mpl.__version__})")
    if title:
        info.add_text("Title", title)
    out = io.BytesIO()
    rgba.convert("RGB").save(out, format="PNG", optimize=True, pnginfo=info)
    return out.getvalue()


def hex_label(value: float) -> str:
    """Format an offset as hexadecimal: ``0x1A2B`` (``-0x10`` below zero)."""
    number = round(value)
    return f"{'-' if number < 0 else ''}0x{abs(number):X}"


def hex_axis(axis: Axis, start: int, stop: int, *, count: int = 6) -> None:
    """Put about `count` ticks at round hexadecimal offsets between `start` and `stop`.

    The step is a power of two, so labels read as a hex editor's offsets
    (``0x40000``, ``0x80000``) rather than as decimal round numbers.
    """
    span = max(stop - start, 1)
    step = 1 << max(math.ceil(math.log2(span / max(count, 1))), 0)
    axis.set_major_locator(ticker.MultipleLocator(step))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: hex_label(v)))


#: Byte values worth a tick on a 0x00 to 0xFF axis.
BYTE_TICKS = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0, 0xE0, 0xFF)


def byte_ticks(axis: Axis, values: Sequence[int] = BYTE_TICKS) -> None:
    """Tick a byte-value axis at `values`, labelled ``0x00`` to ``0xFF``."""
    axis.set_ticks(list(values), [f"0x{v:02X}" for v in values])


def check_counts(table: NDArray[Any], what: str) -> None:
    """Refuse a table of counts with a negative value.

    Raises:
        ValueError: If `table` holds a negative value.
    """
    if table.size and table.min() < 0:
        raise ValueError(f"{what} cannot be negative")


@themed
def fit_text(text: str, *, width: float, size: float, lines: int = 2) -> str:
    """Wrap `text` into at most `lines` lines of `width` pixels; end with ``…`` if cut.

    Long words (paths) are broken where they must be. Widths are measured
    with the font the pictures use.

    Args:
        text: One line of text.
        width: The room, in pixels.
        size: The font size, in points.
        lines: The most lines to use.

    Returns:
        The lines joined by newlines.
    """
    prop = FontProperties(family=_THEME["font.family"], size=size)
    renderer = FigureCanvasAgg(Figure(dpi=DPI)).get_renderer()  # type: ignore[no-untyped-call]

    def fits(candidate: str) -> bool:
        w, _, _ = renderer.get_text_width_height_descent(candidate, prop, ismath=False)
        return bool(w <= width)

    if fits(text):
        return text
    # A first guess in characters from the average glyph width, then trimmed.
    average = renderer.get_text_width_height_descent("x" * 20, prop, ismath=False)[0] / 20
    columns = max(int(width / average), 4)
    while True:
        wrapped = textwrap.wrap(text, columns, break_long_words=True, break_on_hyphens=False)
        if all(fits(line) for line in wrapped[:lines]) or columns <= 4:
            break
        columns -= 1
    if len(wrapped) <= lines:
        return "\n".join(wrapped)
    last = wrapped[lines - 1]
    while last and not fits(last + "…"):
        last = last[:-1]
    return "\n".join([*wrapped[: lines - 1], last.rstrip() + "…"])


@themed
def set_title(
    figure: Figure,
    axes: Axes,
    text: str,
    details: str | None = None,
    *,
    details_width: float | None = None,
) -> None:
    """Title `figure` with `text`, and `axes` with up to three smaller lines of `details`.

    Both are wrapped, and cut with ``…`` past their lines: the title to the
    figure's width, the details to `details_width` pixels (the axes' width,
    which only the picture knows before the layout runs; default the figure's).
    """
    room = figure.get_figwidth() * DPI - 24
    size = float(_THEME["figure.titlesize"])
    # Never mathtext: a file may be named "a$b$.bin".
    figure.suptitle(fit_text(text, width=room, size=size), fontsize=size, parse_math=False)
    if details:
        axes.set_title(
            fit_text(details, width=details_width or room, size=_DETAILS_SIZE, lines=3),
            fontsize=_DETAILS_SIZE,
            color=_DIM,
            loc="left",
            parse_math=False,
        )


def truncated_colormap(name: str, low: float, high: float = 1.0) -> Colormap:
    """Return the part of matplotlib colormap `name` between `low` and `high` (0 to 1).

    Used to keep the darkest colours of a map for "none at all".
    """
    return ListedColormap(mpl.colormaps[name](np.linspace(low, high, 256)))
