"""The command's pictures, drawn with matplotlib: one function a picture, each returning a Figure.

Each function takes the numpy arrays an analysis returns (and what the
picture must say about them) and returns a `matplotlib.figure.Figure` on an
Agg canvas; `binglide.cli.figures.to_png` makes the PNG file. The pictures
follow the tools reverse engineers already read: the bigram plot of binglide
v1 and Cantor Dust, the Hilbert-curve maps of scurve and binvis, and the
entropy plot of binwalk. Every coloured picture has a colour bar or a legend
that says what its colours mean.

Imported only when a picture is drawn (see `binglide.cli.figures`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import matplotlib as mpl
import numpy as np
from matplotlib import ticker
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, LogNorm, Normalize, to_rgb
from matplotlib.patches import Patch, Rectangle

from binglide.cli.figures import (
    hex_axis,
    hex_label,
    new_figure,
    set_title,
    themed,
    truncated_colormap,
)
from binglide.cli.text import chi_square_upper_tail, human_bytes

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike, NDArray

__all__ = (
    "CLASS_COLORS",
    "CLASS_NAMES",
    "FULL_ENTROPY_BYTES",
    "bigram_picture",
    "byte_class_picture",
    "byte_classes",
    "diff_picture",
    "entropy_picture",
    "hilbert_d2xy",
    "hilbert_entropy_picture",
    "histogram_picture",
    "sample_note",
    "stats_picture",
    "trigram_picture",
)

#: The byte classes of scurve and binvis, in the order `byte_classes` numbers them.
CLASS_NAMES = ("0x00", "control", "printable ASCII", "0x80-0xFE", "0xFF")
#: Their colours: ColorBrewer "Set1" for the three ranges, black and white for the two bytes.
CLASS_COLORS = ("#000000", "#4daf4a", "#377eb8", "#e41a1c", "#ffffff")
#: Cells past the end of the data, in the maps.
NO_DATA = "#3a3a40"
#: Zero pairs inside the printable square of the bigram plot: a tint, so the square shows.
PRINTABLE_TINT = "#0e1a2e"
#: A point needs at least this many bytes to be able to show 8 bits per byte
#: (a point of b bytes holds at most b distinct values: log2(b) bits).
FULL_ENTROPY_BYTES = 256

_ENTROPY_CMAP = "turbo"  # blue (padding, tables) to red (compressed, encrypted), as binwalk's
_ENTROPY_NORM = Normalize(0.0, 8.0)
_PRINTABLE = (0x20, 0x7F)  # [start, stop) of printable ASCII


def _check_counts(table: NDArray[Any], what: str) -> None:
    if table.size and table.min() < 0:
        raise ValueError(f"{what} cannot be negative")


def _hex_ticks(axis: Literal["x", "y"], axes: Axes, values: Sequence[int]) -> None:
    getattr(axes, f"set_{axis}ticks")(list(values), [f"0x{v:02X}" for v in values])


_BYTE_TICKS = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0, 0xE0, 0xFF)


# -- bigrams and trigrams --------------------------------------------------------------------


def _count_levels(
    counts: NDArray[np.float64], leveling: str
) -> tuple[NDArray[np.float64], Normalize, list[float] | None, list[str] | None]:
    """Return each nonzero count's level in [0, 1], the norm behind it, and colour-bar ticks.

    ``log``: levels by log(count) from 1 to the largest count.
    ``rank`` (binglide v1): the k-th smallest distinct count gets level
    k / K, which spreads a huge dynamic range evenly over the colours; the
    colour bar then labels ranks with the counts they stand for.
    """
    if leveling == "log":
        top = float(counts.max()) if counts.size else 1.0
        norm: Normalize = LogNorm(vmin=1.0, vmax=max(top, 1.0 + 1e-9))
        return np.asarray(norm(counts), dtype=np.float64), norm, None, None
    if leveling != "rank":
        raise ValueError(f"leveling must be 'log' or 'rank', not {leveling!r}")
    distinct = np.unique(counts)
    ranks = np.searchsorted(distinct, counts) + 1
    k = max(len(distinct), 1)
    norm = Normalize(vmin=1.0, vmax=max(k, 2))
    picks = sorted({round(r) for r in np.linspace(1, k, min(k, 6))})
    labels = [f"{int(distinct[r - 1]):,}" for r in picks] if len(distinct) else None
    return np.asarray(norm(ranks), dtype=np.float64), norm, [float(p) for p in picks], labels


@themed
def bigram_picture(
    counts: ArrayLike,
    *,
    leveling: Literal["log", "rank"] = "log",
    bits: int = 8,
    title: str = "Bigrams",
) -> Figure:
    """Draw a 256x256 bigram table as binglide v1 did.

    Column x, row y is how often byte ``x`` is followed by byte ``y``, 0x00 at
    the top left. Pairs that never occur are black. Pairs of printable ASCII
    bytes (0x20 to 0x7E both) have a blue colour map of their own on a tinted
    square, so text stands out from code and from compressed data (which
    fills the whole plot evenly). Two colour bars give the counts.

    Args:
        counts: A ``(256, 256)`` array of counts, indexed ``[first, second]``.
        leveling: ``"log"``: brightness by log(count); ``"rank"``: by the rank
            of each distinct count.
        bits: The bits kept of each byte when the table was counted; below 8
            each cell stands for a square of pairs (said under the title).
        title: The heading.

    Raises:
        ValueError: If `counts` is not 256x256, has negative values, or
            `leveling` is unknown.
    """
    table = np.asarray(counts)
    if table.shape != (256, 256):
        raise ValueError(f"a bigram table has shape (256, 256), not {table.shape}")
    _check_counts(table, "bigram counts")
    values = table.astype(np.float64)
    nonzero = values > 0
    level = np.zeros_like(values)
    level[nonzero], norm, ticks, tick_labels = _count_levels(values[nonzero], leveling)

    printable = np.zeros((256, 256), dtype=np.bool_)
    printable[_PRINTABLE[0] : _PRINTABLE[1], _PRINTABLE[0] : _PRINTABLE[1]] = True
    # The darkest colours are kept for "never": one occurrence must show.
    pair_cmap = truncated_colormap("inferno", 0.18)
    text_cmap = truncated_colormap("Blues_r", 0.0, 0.92)
    rgb = np.zeros((256, 256, 3))
    rgb[printable] = to_rgb(PRINTABLE_TINT)
    other = nonzero & ~printable
    rgb[other] = pair_cmap(level[other])[:, :3]
    text = nonzero & printable
    rgb[text] = text_cmap(level[text])[:, :3]

    figure = new_figure(840, 680)
    axes = figure.add_subplot()
    # Rows are the second byte: transpose so that x is the first.
    axes.imshow(rgb.transpose(1, 0, 2), origin="upper", interpolation="nearest")
    lo, hi = _PRINTABLE
    axes.add_patch(
        Rectangle((lo - 0.5, lo - 0.5), hi - lo, hi - lo, fill=False, edgecolor="#5a8fd0", lw=0.6)
    )
    _hex_ticks("x", axes, _BYTE_TICKS)
    _hex_ticks("y", axes, _BYTE_TICKS)
    axes.set_xlabel("first byte")
    axes.set_ylabel("second byte (the one that follows)")
    scale = "log(count)" if leveling == "log" else "rank of the count"
    for cmap, label in ((pair_cmap, "pairs"), (text_cmap, "printable pairs (0x20-0x7E)")):
        bar = figure.colorbar(
            ScalarMappable(norm=norm, cmap=cmap), ax=axes, fraction=0.05, pad=0.015, aspect=30
        )
        bar.set_label(f"{label}: count" + ("" if leveling == "log" else ", by rank"))
        if ticks is not None and tick_labels is not None:
            bar.set_ticks(ticks, labels=tick_labels)
    total, distinct = int(table.sum()), int(nonzero.sum())
    details = f"{total:,} pairs, {distinct:,} distinct; brightness: {scale}"
    if bits < 8:
        side = 1 << (8 - bits)
        details += f"; {bits} bits a byte: each cell stands for a {side}x{side} square of pairs"
    set_title(figure, axes, title, details, details_width=560)
    return figure


#: At most this many occupied cells are drawn in the trigram cloud (a random
#: choice past it): matplotlib's 3-D scatter takes about 4 us a point.
TRIGRAM_POINTS = 200_000


@themed
def trigram_picture(counts: ArrayLike, *, title: str = "Trigrams") -> Figure:
    """Draw a trigram table as a 3-D point cloud with matplotlib's 3-D axes.

    Each occupied cell ``(a, b, c)`` is a point, coloured by its log count.
    Text is a small dense block inside the printable-ASCII cube (outlined),
    machine code draws planes and lines of recurring opcodes, and compressed
    or encrypted data fills the whole cube as an even haze.

    Args:
        counts: A cube of counts ``(n, n, n)``, ``n = 2**bits``, indexed
            ``[first, second, third]``.
        title: The heading.

    Raises:
        ValueError: If `counts` is not a cube with a power-of-two side, or
            has negative values.
    """
    table = np.asarray(counts)
    n = table.shape[0] if table.ndim == 3 else 0
    if table.ndim != 3 or table.shape != (n, n, n) or n < 2 or n & (n - 1):
        raise ValueError(f"a trigram table is a cube with a power-of-two side, not {table.shape}")
    _check_counts(table, "trigram counts")
    cells = np.nonzero(table)
    occupied = len(cells[0])
    drawn = occupied
    # A fixed seed: the same table draws the same picture.
    rng = np.random.default_rng(0)
    if occupied > TRIGRAM_POINTS:
        keep = np.sort(rng.choice(occupied, TRIGRAM_POINTS, replace=False))
        cells = tuple(c[keep] for c in cells)
        drawn = TRIGRAM_POINTS
    weights = table[cells].astype(np.float64)
    # Spread each point inside its cell: lattice points would line up in
    # moire stripes. Coordinates are byte values (0 to 256) whatever the bits.
    width = 256 / n
    position = [(c + rng.random(len(c))) * width for c in cells]

    figure = new_figure(860, 720)
    axes = figure.add_subplot(projection="3d", computed_zorder=False)
    cmap = truncated_colormap("inferno", 0.35)
    norm = LogNorm(vmin=1.0, vmax=max(float(weights.max()) if drawn else 1.0, 2.0))
    axes.scatter(
        *position,
        c=weights,
        cmap=cmap,
        norm=norm,
        s=2.0,
        marker="s",
        linewidths=0,
        alpha=0.7,
        depthshade=False,
    )
    lo, hi = _PRINTABLE
    for start, stop in _cube_edges(lo, hi):
        axes.plot(*zip(start, stop, strict=True), color="#5a8fd0", lw=0.8)
    axes.plot([], [], color="#5a8fd0", lw=0.8, label="printable ASCII (0x20-0x7E)")
    axes.legend(loc="upper left", fontsize=8)
    axes.set_facecolor(figure.get_facecolor())
    for axis, name in zip(
        (axes.xaxis, axes.yaxis, axes.zaxis), ("1st", "2nd", "3rd"), strict=True
    ):
        axis.set_pane_color((0.05, 0.05, 0.07, 1.0))
        # The 1st byte's 0x00 would print over the 2nd's, at their shared corner.
        ticks = [0x40, 0x80, 0xC0, 0x100] if name == "1st" else [0, 0x40, 0x80, 0xC0, 0x100]
        axis.set_ticks(ticks, [f"0x{t:02X}" for t in ticks])
        axis.set_label_text(f"{name} byte")
    axes.set(xlim=(0, 256), ylim=(0, 256), zlim=(0, 256))
    axes.view_init(elev=22, azim=-128)
    bar = figure.colorbar(
        ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.6, pad=0.02, aspect=30
    )
    bar.set_label("count of the triple")
    bits = int(math.log2(n))
    details = f"{int(table.sum()):,} triples, {occupied:,} distinct of {n**3:,} cells"
    if bits < 8:
        details += f"; {bits} bits a byte"
    if drawn < occupied:
        details += f"; {drawn:,} cells drawn, chosen at random"
    set_title(figure, axes, title, details)
    return figure


def _cube_edges(lo: float, hi: float) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    corners = [(x, y, z) for x in (lo, hi) for y in (lo, hi) for z in (lo, hi)]
    return [
        (a, b)
        for i, a in enumerate(corners)
        for b in corners[i + 1 :]
        if sum(p != q for p, q in zip(a, b, strict=True)) == 1
    ]


# -- entropy ---------------------------------------------------------------------------------


def _merge(count: int, columns: int) -> NDArray[np.intp]:
    """Return the index edges that group `count` points into at most `columns` runs."""
    groups = min(count, columns)
    return np.arange(groups + 1) * count // max(groups, 1)


def _reduce(
    values: NDArray[np.float64], edges: NDArray[np.intp], how: Literal["mean", "max", "min"]
) -> NDArray[np.float64]:
    """Reduce each run ``values[edges[i]:edges[i + 1]]`` (non-empty) to one number, NaN aside.

    A run of NaN only gives NaN.
    """
    starts = edges[:-1]
    valid = ~np.isnan(values)
    present = np.add.reduceat(valid.astype(np.float64), starts) > 0
    if how == "mean":
        sums = np.add.reduceat(np.where(valid, values, 0.0), starts)
        counts = np.add.reduceat(valid.astype(np.float64), starts)
        out = sums / np.maximum(counts, 1.0)
    elif how == "max":
        out = np.maximum.reduceat(np.where(valid, values, -np.inf), starts)
    else:
        out = np.minimum.reduceat(np.where(valid, values, np.inf), starts)
    return np.where(present, out, np.nan)


def _size_text(sizes: NDArray[np.int64]) -> str:
    lo, hi = human_bytes(int(sizes.min())), human_bytes(int(sizes.max()))
    return f"of {lo} each" if lo == hi else f"of {lo} to {hi}"


def _bias_note(sizes: NDArray[np.int64]) -> str:
    """Say what a profile of points of `sizes` bytes can show."""
    short = sizes < FULL_ENTROPY_BYTES
    if not short.any():
        return ""
    smallest = max(int(sizes.min()), 1)
    which = "every point" if short.all() else f"{int(short.sum()):,} points"
    return (
        f"; {which} under {FULL_ENTROPY_BYTES} B can show at most log2(bytes) bits"
        f" ({math.log2(smallest):.1f} for {human_bytes(smallest)}): biased low"
    )


@themed
def entropy_picture(
    values: ArrayLike,
    *,
    starts: ArrayLike,
    stops: ArrayLike,
    title: str = "Entropy",
    width: int = 1024,
    height: int = 420,
) -> Figure:
    """Draw an entropy profile along the file, coloured as binwalk's plot.

    Points are bars from their first to their last offset, coloured blue
    (low) to red (high) with a colour bar. When there are more points than
    columns, a column shows their mean and a light line their maximum. A
    point of ``b`` bytes can show at most ``log2(b)`` bits per byte: where
    points are shorter than 256 bytes, that ceiling is drawn and the area
    above it hatched as out of reach, and the heading says so.

    Args:
        values: The entropy of each point, 0 to 8 bits per byte (NaN: no data).
        starts: The first offset of each point.
        stops: The offset just past each point.
        title: The heading.
        width: The picture's width in pixels.
        height: The picture's height in pixels.

    Raises:
        ValueError: If the arrays differ in length, a point ends before it
            starts, or the picture is smaller than 320x200.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    lo = np.asarray(starts, dtype=np.int64).ravel()
    hi = np.asarray(stops, dtype=np.int64).ravel()
    if not len(data) == len(lo) == len(hi):
        raise ValueError(f"{len(data)} values for {len(lo)} starts and {len(hi)} stops")
    if (hi < lo).any():
        raise ValueError("a point cannot end before it starts")
    if width < 320 or height < 200:
        raise ValueError(f"an entropy picture needs at least 320x200 pixels, not {width}x{height}")
    figure = new_figure(width, height)
    axes = figure.add_subplot()
    first = int(lo.min()) if len(lo) else 0
    last = int(hi.max()) if len(hi) else 0
    sizes = hi - lo
    details = "no points"
    if len(data):
        edges = _merge(len(data), width - 150)
        mean = _reduce(np.clip(data, 0.0, 8.0), edges, "mean")
        left, right = lo[edges[:-1]], hi[edges[1:] - 1]
        shown = ~np.isnan(mean)
        cmap = mpl.colormaps[_ENTROPY_CMAP]
        # Not antialiased: neighbouring bars would leave hairlines between them.
        axes.bar(
            left[shown],
            mean[shown],
            width=(right - left)[shown],
            align="edge",
            color=cmap(_ENTROPY_NORM(mean[shown])),
            linewidth=0,
            antialiased=False,
        )
        if len(edges) - 1 < len(data):
            high = _reduce(np.clip(data, 0.0, 8.0), edges, "max")
            axes.stairs(
                high,
                np.append(left, right[-1]),
                color="#e8e8f0",
                lw=0.7,
                label="highest point in a column",
            )
        if (~shown).any():
            axes.bar(
                left[~shown],
                8.0,
                width=(right - left)[~shown],
                align="edge",
                color=NO_DATA,
                linewidth=0,
                antialiased=False,
                label="no data",
            )
        short = sizes < FULL_ENTROPY_BYTES
        if short.any():
            ceiling = np.where(short, np.log2(np.maximum(sizes, 1)), 8.0)
            # Columns keep the lowest ceiling of their points: the strictest.
            column_ceiling = _reduce(ceiling.astype(np.float64), edges, "min")
            steps = np.append(left, right[-1])
            axes.stairs(
                np.full_like(column_ceiling, 8.0),
                steps,
                baseline=column_ceiling,
                fill=True,
                facecolor="none",
                hatch="///",
                edgecolor="#8c8c96",
                lw=0,
                label="out of reach: a point of b bytes shows at most log2(b) bits",
            )
            axes.stairs(column_ceiling, steps, color="#f0f0f0", lw=1.0, ls="--")
        details = f"{len(data):,} points {_size_text(sizes)}" + _bias_note(sizes)
        if axes.get_legend_handles_labels()[0]:
            figure.legend(loc="outside lower center", fontsize=8, ncols=3)
    axes.set_xlim(first, max(last, first + 1))
    axes.set_ylim(0, 8.4 if len(data) else 8)
    axes.set_yticks([0, 2, 4, 6, 8])
    axes.grid(axis="y")
    axes.set_axisbelow(True)
    axes.set_ylabel("bits per byte")
    axes.set_xlabel("offset")
    hex_axis(axes.xaxis, first, last)
    bar = figure.colorbar(
        ScalarMappable(norm=_ENTROPY_NORM, cmap=mpl.colormaps[_ENTROPY_CMAP]),
        ax=axes,
        pad=0.01,
        aspect=15,
    )
    bar.set_label("bits per byte")
    set_title(figure, axes, title, details, details_width=width - 140)
    return figure


# -- Hilbert-curve maps ----------------------------------------------------------------------


def hilbert_d2xy(order: int, d: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Map distances along a Hilbert curve to cell coordinates.

    The curve fills a square of side ``2**order``; consecutive distances are
    always adjacent cells, so neighbouring bytes of a file stay neighbours in
    the picture (which is why scurve and Cantor Dust use it). The curve
    starts at ``(0, 0)`` and ends at ``(2**order - 1, 0)``.

    Args:
        order: The curve's order; the square has ``4**order`` cells.
        d: Distances along the curve, ``0 <= d < 4**order`` (any shape).

    Returns:
        ``(x, y)`` arrays with the shape of ``d``.

    Raises:
        ValueError: If ``order`` is negative or ``d`` is out of range.
    """
    if order < 0:
        raise ValueError(f"the Hilbert curve order cannot be negative, not {order}")
    t = np.array(d, dtype=np.int64)
    if t.size and (t.min() < 0 or t.max() >= 4**order):
        raise ValueError(f"Hilbert distances must be in [0, {4**order}) for order {order}")
    x = np.zeros_like(t)
    y = np.zeros_like(t)
    s = 1
    # The classic iterative d2xy: at each scale, pick the quadrant from two
    # bits of d, then rotate/flip the sub-curve found so far into it.
    while s < (1 << order):
        rx = (t >> 1) & 1
        ry = (t ^ rx) & 1
        flip = (ry == 0) & (rx == 1)
        x = np.where(flip, s - 1 - x, x)
        y = np.where(flip, s - 1 - y, y)
        swap = ry == 0
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        x = x + s * rx
        y = y + s * ry
        t = t >> 2
        s <<= 1
    return x, y


def byte_classes(data: ArrayLike) -> NDArray[np.uint8]:
    """Classify bytes as scurve's and binvis's "class" colouring does.

    Args:
        data: Byte values.

    Returns:
        One class index per byte, indexing `CLASS_NAMES` and `CLASS_COLORS`:
        0 for 0x00, 1 for other control bytes (0x01-0x1F, 0x7F, except tab,
        newline and carriage return), 2 for printable ASCII and those three
        whitespace bytes, 3 for 0x80-0xFE, 4 for 0xFF.
    """
    b = np.asarray(data, dtype=np.uint8)
    classes = np.full(b.shape, 3, dtype=np.uint8)
    classes[b < 0x80] = 1
    ascii_ = ((b >= 0x20) & (b < 0x7F)) | (b == 0x09) | (b == 0x0A) | (b == 0x0D)
    classes[ascii_] = 2
    classes[b == 0x00] = 0
    classes[b == 0xFF] = 4
    return classes


#: The largest curve drawn: 512x512 cells, about one pixel each.
MAX_ORDER = 9
#: About the width of a map in pixels (its figure is 760 wide), to fit the details to.
_MAP_WIDTH = 540


def _curve_order(count: int, order: int | None) -> int:
    if order is None:
        order = min(max(math.ceil(math.log2(max(count, 1)) / 2), 0), MAX_ORDER)
    if order < 0:
        raise ValueError(f"the Hilbert curve order cannot be negative, not {order}")
    return order


def _hilbert_axes(
    figure: Figure, grid: NDArray[np.float64], count: int, cmap: Colormap, norm: Normalize
) -> Axes:
    """Draw `grid` (NaN: no data) as a map, and mark where the curve starts and ends."""
    axes = figure.add_subplot()
    side = grid.shape[0]
    axes.imshow(
        np.ma.masked_invalid(grid),
        cmap=cmap.with_extremes(bad=NO_DATA),
        norm=norm,
        interpolation="nearest",
        origin="upper",
    )
    axes.set_xticks([])
    axes.set_yticks([])
    if count:
        ends = hilbert_d2xy(int(math.log2(side)), [0, count - 1])
        for i, (marker, name) in enumerate((("o", "start of the data"), ("s", "end"))):
            x, y = int(ends[0][i]), int(ends[1][i])
            axes.plot(
                x, y, marker=marker, ms=7, mfc="none", mec="white", mew=1.4, ls="", label=name
            )
    axes.set_xlabel("along a Hilbert curve: bytes close in the file are close here")
    return axes


def _layout(values: NDArray[np.float64], order: int) -> NDArray[np.float64]:
    side = 1 << order
    grid = np.full((side, side), np.nan)
    x, y = hilbert_d2xy(order, np.arange(len(values)))
    grid[y, x] = values
    return grid


@themed
def hilbert_entropy_picture(
    values: ArrayLike,
    *,
    point_bytes: ArrayLike,
    order: int | None = None,
    title: str = "Entropy map",
) -> Figure:
    """Lay an entropy profile along a Hilbert curve, coloured as `entropy_picture`.

    Args:
        values: The entropy of consecutive points of the file (0 to 8 bits per byte).
        point_bytes: The bytes behind each point (one number, or one per point).
        order: The curve order (side ``2**order``); by default the smallest that
            holds every value, up to 9. Extra values are averaged to fit.
        title: The heading.

    Raises:
        ValueError: If `order` is negative.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    sizes = np.broadcast_to(np.asarray(point_bytes, dtype=np.int64), data.shape)
    order = _curve_order(len(data), order)
    cells = 4**order
    details = ""
    if len(data) > cells:
        edges = _merge(len(data), cells)
        data = _reduce(data, edges, "mean")
        details = f"; {cells:,} cells of about {len(sizes) // cells:,} points each (their mean)"
    figure = new_figure(760, 660)
    axes = _hilbert_axes(
        figure, _layout(data, order), len(data), mpl.colormaps[_ENTROPY_CMAP], _ENTROPY_NORM
    )
    bar = figure.colorbar(
        ScalarMappable(norm=_ENTROPY_NORM, cmap=mpl.colormaps[_ENTROPY_CMAP]),
        ax=axes,
        pad=0.02,
        aspect=30,
    )
    bar.set_label("bits per byte")
    if len(sizes):
        reach = math.log2(max(int(sizes.min()), 1))
        if reach < 8:
            # The colours above the ceiling cannot occur: hatch them on the bar.
            bar.ax.axhspan(reach, 8.0, facecolor="none", hatch="///", edgecolor="#8c8c96")
            bar.ax.axhline(reach, color="white", lw=1.0, ls="--")
        details = f"{len(sizes):,} points {_size_text(sizes)}{details}" + _bias_note(sizes)
    handles, _ = axes.get_legend_handles_labels()
    handles.append(Patch(facecolor=NO_DATA, edgecolor="#6e6e78", label="past the end"))
    figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    set_title(figure, axes, title, details, details_width=_MAP_WIDTH)
    return figure


def sample_note(count: int, runs: Sequence[Sequence[int]], *, start: int, stop: int) -> str:
    """Say which bytes a view holds: all of its range, or a sample of evenly spread runs.

    Args:
        count: The bytes in the view.
        runs: The view's runs as ``(offset, length)`` pairs.
        start: The first offset of the range the view was taken from.
        stop: The offset just past that range.
    """
    span = max(stop - start, 0)
    where = f"{hex_label(start)}..{hex_label(stop)}"
    if count >= span:
        return f"all {count:,} bytes of {where}"
    lengths = sorted({int(n) for _, n in runs})
    run = (
        human_bytes(lengths[0])
        if len(lengths) == 1
        else "about " + human_bytes(count / max(len(runs), 1))
    )
    share = 100.0 * count / span if span else 0.0
    return (
        f"a sample: {count:,} bytes in {len(runs):,} runs of {run} spread evenly over"
        f" {where} ({human_bytes(span)}), {share:.2g}% of it"
    )


@themed
def byte_class_picture(
    data: ArrayLike, *, order: int | None = None, note: str = "", title: str = "Byte classes"
) -> Figure:
    """Lay bytes along a Hilbert curve, coloured by class as scurve and binvis do.

    0x00 is black, 0xFF white, printable ASCII blue, other control bytes
    green and 0x80-0xFE red; the legend gives each class's share.

    Args:
        data: Bytes (``uint8``), in file order.
        order: The curve order; by default the smallest that holds every byte,
            up to 9. Extra bytes are subsampled evenly to fit.
        note: What the bytes are (see `sample_note`), said under the title.
        title: The heading.

    Raises:
        ValueError: If `order` is negative.
    """
    values = np.asarray(data).ravel()
    order = _curve_order(len(values), order)
    cells = 4**order
    classes = byte_classes(values)
    shares = np.bincount(classes, minlength=len(CLASS_NAMES)) / max(len(classes), 1)
    if len(values) > cells:
        classes = classes[(np.arange(cells) * len(values)) // cells]
        note += f"; every {len(values) / cells:.3g}th byte drawn"
    figure = new_figure(760, 660)
    cmap = ListedColormap(list(CLASS_COLORS))
    axes = _hilbert_axes(
        figure,
        _layout(classes.astype(np.float64), order),
        len(classes),
        cmap,
        Normalize(-0.5, len(CLASS_NAMES) - 0.5),
    )
    handles: list[Artist] = [
        Patch(facecolor=color, edgecolor="#6e6e78", label=f"{name}  {100 * share:.1f}%")
        for name, color, share in zip(CLASS_NAMES, CLASS_COLORS, shares, strict=True)
    ]
    handles.append(Patch(facecolor=NO_DATA, edgecolor="#6e6e78", label="past the end"))
    handles += axes.get_legend_handles_labels()[0]
    figure.legend(handles=handles, loc="outside right center", title="byte class", fontsize=9)
    set_title(figure, axes, title, note or None, details_width=_MAP_WIDTH)
    return figure


# -- diff ------------------------------------------------------------------------------------


@themed
def diff_picture(
    diff_counts: ArrayLike,
    *,
    starts: ArrayLike,
    stops: ArrayLike,
    total: int,
    sizes: Sequence[int],
    title: str = "Diff",
    width: int = 1024,
) -> Figure:
    """Draw where two files differ, as a strip along the offsets.

    Each point is coloured by the share of its bytes that differ, on a log
    scale so that one changed byte in a large point still shows; identical
    points are dark green. When there are more points than columns, a column
    keeps its points' largest share. Offsets past the end of the shorter file
    are hatched.

    Args:
        diff_counts: The number of differing bytes in each point.
        starts: The first offset of each point.
        stops: The offset just past each point.
        total: The total number of differing bytes.
        sizes: The sizes of the files compared.
        title: The heading.
        width: The picture's width in pixels.

    Raises:
        ValueError: If the arrays differ in length, or the picture is
            narrower than 320 pixels.
    """
    counts = np.asarray(diff_counts, dtype=np.float64).ravel()
    lo = np.asarray(starts, dtype=np.int64).ravel()
    hi = np.asarray(stops, dtype=np.int64).ravel()
    if not len(counts) == len(lo) == len(hi):
        raise ValueError(f"{len(counts)} counts for {len(lo)} starts and {len(hi)} stops")
    if width < 320:
        raise ValueError(f"a diff picture needs at least 320 pixels of width, not {width}")
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(hi > lo, counts / (hi - lo), 0.0)
    figure = new_figure(width, 300)
    axes = figure.add_subplot()
    first = int(lo.min()) if len(lo) else 0
    last = int(hi.max()) if len(hi) else 0
    identical = "#123a22"
    cmap = truncated_colormap("inferno", 0.2).with_extremes(under=identical)
    # The scale starts at the decade of the smallest share (one byte of a
    # large point), and spans at least 0.01% to 100%.
    smallest = float(share[share > 0].min()) if (share > 0).any() else 1.0
    decade = 10.0 ** math.floor(math.log10(smallest))
    floor = min(max(decade, 1e-9), 1e-4)
    norm = LogNorm(vmin=floor, vmax=1.0)
    if len(counts):
        edges = _merge(len(share), width - 150)
        column = _reduce(share, edges, "max")
        steps = np.append(lo[edges[:-1]], hi[edges[-1] - 1])
        # Zero is below the norm's range: drawn in the "under" colour.
        shown = np.where(column > 0, column, floor / 2)
        axes.pcolormesh(steps, [0, 1], shown[None, :], cmap=cmap, norm=norm)
    shorter = min(sizes) if len(sizes) else last
    if shorter < last:
        axes.axvspan(shorter, last, facecolor="none", hatch="///", edgecolor="#8c8c96", lw=0)
    axes.set_xlim(first, max(last, first + 1))
    axes.set_ylim(0, 1)
    axes.set_yticks([])
    axes.set_xlabel("offset")
    hex_axis(axes.xaxis, first, last)
    bar = figure.colorbar(
        ScalarMappable(norm=norm, cmap=cmap),
        ax=axes,
        location="bottom",
        aspect=60,
        pad=0.02,
        fraction=0.12,
    )
    bar.set_label("share of the point's bytes that differ")
    bar.ax.xaxis.set_major_locator(ticker.LogLocator(base=10.0))
    bar.ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{100 * v:g}%"))
    bar.ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    handles = [Patch(facecolor=identical, edgecolor="#6e6e78", label="identical")]
    if shorter < last:
        handles.append(
            Patch(
                facecolor="none", hatch="///", edgecolor="#8c8c96", label="only in the longer file"
            )
        )
    axes.legend(
        handles=handles, loc="upper right", bbox_to_anchor=(1.0, 1.32), ncols=2, fontsize=8
    )
    compared = min(sizes) if len(sizes) else 0
    percent = 100.0 * total / compared if compared else 0.0
    details = f"{total:,} bytes differ ({percent:.2f}%); sizes " + " vs ".join(
        f"{s:,}" for s in sizes
    )
    if len(set(sizes)) > 1:
        details += " (the files differ in length)"
    set_title(figure, axes, title, details, details_width=width - 40)
    return figure


# -- histogram and stats ---------------------------------------------------------------------


def _histogram_axes(axes: Axes, table: NDArray[np.float64], log: bool) -> None:
    """Draw 256 byte counts as bars coloured by byte class, with a legend of the classes."""
    classes = byte_classes(np.arange(256))
    colors = np.array([to_rgb(c) for c in CLASS_COLORS])[classes]
    # Black would vanish on the plot's black: 0x00 is grey here.
    zero_color = "#9a9aa4"
    colors[0] = to_rgb(zero_color)
    total = float(table.sum())
    present = table > 0
    axes.bar(
        np.arange(256)[present],
        table[present],
        width=1.0,
        color=colors[present],
        linewidth=0,
        bottom=0.5 if log else 0,
    )
    if total:
        axes.axhline(total / 256, color="#e8e8f0", lw=0.8, ls="--", label="uniform (total / 256)")
    # Room on both sides: 0x00 and 0xFF are bars, not lines along the frame.
    axes.set_xlim(-3, 259)
    _hex_ticks("x", axes, _BYTE_TICKS)
    axes.set_xlabel("byte value")
    if log:
        axes.set_yscale("log")
        axes.set_ylim(0.5, max(float(table.max()), 1.0) * 4)
        axes.set_ylabel("count (log scale)")
    else:
        axes.set_ylim(0, max(float(table.max()), 1.0) * 1.05)
        axes.set_ylabel("count")
        axes.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    axes.grid(axis="y")
    axes.set_axisbelow(True)
    sums = np.bincount(classes, weights=table, minlength=len(CLASS_NAMES))
    handles = [
        Patch(
            facecolor=zero_color if i == 0 else CLASS_COLORS[i],
            label=f"{name}  {100 * sums[i] / total if total else 0:.1f}%",
        )
        for i, name in enumerate(CLASS_NAMES)
    ]
    line_handles, _ = axes.get_legend_handles_labels()
    axes.legend(
        handles=[*handles, *line_handles],
        loc="upper center",
        ncols=6,
        fontsize=8,
        bbox_to_anchor=(0.5, -0.13),
    )


def _histogram_table(counts: ArrayLike) -> NDArray[np.float64]:
    table = np.asarray(counts).ravel()
    if table.shape != (256,):
        raise ValueError(f"a byte histogram has 256 counts, not {table.shape[0]}")
    _check_counts(table, "byte counts")
    return table.astype(np.float64)


@themed
def histogram_picture(counts: ArrayLike, *, log: bool = True, title: str = "Bytes") -> Figure:
    """Draw 256 byte counts as a bar chart, bars coloured by byte class.

    Bars use the colours of `byte_class_picture` (with 0x00 grey, since
    black would not show), and the legend gives each class's share; a dashed
    line marks the count every byte would have if all were equally frequent.

    Args:
        counts: 256 byte counts, indexed by byte value.
        log: A log count axis (rare bytes stay visible next to a padding
            byte that fills half the file); else a linear one.
        title: The heading.

    Raises:
        ValueError: If `counts` does not hold 256 values or has negative ones.
    """
    table = _histogram_table(counts)
    figure = new_figure(1024, 440)
    axes = figure.add_subplot()
    _histogram_axes(axes, table, log)
    total = int(table.sum())
    details = f"{total:,} bytes, {int((table > 0).sum())} distinct values"
    set_title(figure, axes, title, details)
    return figure


def _stats_rows(meta: Mapping[str, float | None]) -> list[tuple[str, str]]:
    """Return ent's statistics as (name, value and reading) rows."""

    def number(key: str) -> float:
        value = meta.get(key)
        return math.nan if value is None else float(value)

    entropy = max(number("entropy"), 0.0) + 0.0
    chi = number("chi_square")
    chance = chi_square_upper_tail(chi, 255) if not math.isnan(chi) else math.nan
    if math.isnan(chance):
        exceed = "an unknown share of"
    elif chance < 0.0001:
        exceed = "less than 0.01% of"
    elif chance > 0.9999:
        exceed = "more than 99.99% of"
    else:
        exceed = f"{chance * 100:.2f}% of"
    pi = number("monte_carlo_pi")
    correlation = number("serial_correlation")
    return [
        ("entropy", f"{entropy:.6f} bits per byte"),
        ("optimum compression", f"would reduce the size by {int(100 * (8 - entropy) / 8)}%"),
        ("chi square", f"{chi:.2f}; random data would exceed it {exceed} the times"),
        ("arithmetic mean", f"{number('mean'):.4f}  (127.5 = random)"),
        ("Monte Carlo pi", f"{pi:.9f}  (error {100 * abs(math.pi - pi) / math.pi:.2f}%)"),
        (
            "serial correlation",
            "undefined (all values equal)"
            if math.isnan(correlation)
            else f"{correlation:.6f}  (totally uncorrelated = 0.0)",
        ),
    ]


@themed
def stats_picture(
    counts: ArrayLike, meta: Mapping[str, float | None], *, title: str = "Statistics"
) -> Figure:
    """Draw the byte histogram with the statistics Fourmilab's ``ent`` prints beside it.

    Args:
        counts: 256 byte counts, indexed by byte value.
        meta: The statistics of the stats service: ``entropy``, ``chi_square``,
            ``mean``, ``monte_carlo_pi``, ``serial_correlation`` (None when
            undefined) and ``size``.
        title: The heading.

    Raises:
        ValueError: If `counts` does not hold 256 values or has negative ones.
    """
    table = _histogram_table(counts)
    figure = new_figure(1024, 600)
    plot, panel = figure.subplots(2, 1, height_ratios=[3, 1.15])
    _histogram_axes(plot, table, log=True)
    panel.set_axis_off()
    rows = _stats_rows(meta)
    for i, (name, value) in enumerate(rows):
        y = 1 - i / len(rows)
        panel.text(0.0, y, name, fontsize=10, va="top", ha="left", weight="bold")
        panel.text(0.22, y, value, fontsize=10, va="top", ha="left", family="DejaVu Sans Mono")
    size = int(meta.get("size") or table.sum())
    details = f"{size:,} bytes; the statistics of Fourmilab's ent, below"
    set_title(figure, plot, title, details)
    return figure
