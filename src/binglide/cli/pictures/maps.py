"""Maps along a Hilbert curve: entropy, and byte classes, as scurve and binvis draw them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.patches import Patch

from binglide.cli.pictures.figure import hex_label, new_figure, set_title, themed
from binglide.cli.pictures.palette import (
    CLASS_COLORS,
    CLASS_NAMES,
    ENTROPY_NORM,
    NO_DATA,
    byte_classes,
    entropy_colormap,
)
from binglide.cli.pictures.profiles import bias_note, merge_points, reduce_runs, size_text
from binglide.cli.text import human_bytes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike, NDArray

__all__ = (
    "MAX_ORDER",
    "byte_class_picture",
    "hilbert_d2xy",
    "hilbert_entropy_picture",
    "sample_note",
)


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
        edges = merge_points(len(data), cells)
        data = reduce_runs(data, edges, "mean")
        details = f"; {cells:,} cells of about {len(sizes) // cells:,} points each (their mean)"
    figure = new_figure(760, 660)
    axes = _hilbert_axes(figure, _layout(data, order), len(data), entropy_colormap(), ENTROPY_NORM)
    bar = figure.colorbar(
        ScalarMappable(norm=ENTROPY_NORM, cmap=entropy_colormap()),
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
        details = f"{len(sizes):,} points {size_text(sizes)}{details}" + bias_note(sizes)
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
