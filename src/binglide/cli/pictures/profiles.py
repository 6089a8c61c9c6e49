"""Pictures along the file's offsets: the entropy profile and the diff strip."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from matplotlib import ticker
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.patches import Patch

from binglide.cli.pictures.figure import (
    hex_axis,
    new_figure,
    set_title,
    themed,
    truncated_colormap,
)
from binglide.cli.pictures.palette import ENTROPY_NORM, NO_DATA, entropy_colormap
from binglide.cli.text import human_bytes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike, NDArray

__all__ = (
    "FULL_ENTROPY_BYTES",
    "bias_note",
    "diff_picture",
    "entropy_picture",
    "merge_points",
    "reduce_runs",
    "size_text",
)

#: A point needs at least this many bytes to be able to show 8 bits per byte
#: (a point of b bytes holds at most b distinct values: log2(b) bits).
FULL_ENTROPY_BYTES = 256


def merge_points(count: int, columns: int) -> NDArray[np.intp]:
    """Return the index edges that group `count` points into at most `columns` runs."""
    groups = min(count, columns)
    return np.arange(groups + 1) * count // max(groups, 1)


def reduce_runs(
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


def size_text(sizes: NDArray[np.int64]) -> str:
    lo, hi = human_bytes(int(sizes.min())), human_bytes(int(sizes.max()))
    return f"of {lo} each" if lo == hi else f"of {lo} to {hi}"


def bias_note(sizes: NDArray[np.int64]) -> str:
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
    point_bytes: ArrayLike | None = None,
    title: str = "Entropy",
    width: int = 1024,
    height: int = 420,
) -> Figure:
    """Draw an entropy profile along the file, coloured as binwalk's plot.

    Points are bars over the offsets they stand for, coloured blue
    (low) to red (high) with a colour bar. When there are more points than
    columns, a column shows their mean and a light line their maximum. A
    point of ``b`` bytes can show at most ``log2(b)`` bits per byte: where
    points are shorter than 256 bytes, that ceiling is drawn and the area
    above it hatched as out of reach, and the heading says so.

    Args:
        values: The entropy of each point, 0 to 8 bits per byte (NaN: no data).
        starts: Where each point's bar starts.
        stops: Where each point's bar ends.
        point_bytes: The bytes each value was computed over (one number, or
            one per point); by default its bar's span. They differ for a
            sliding window smaller than the points' spacing.
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
    sizes = np.broadcast_to(
        np.asarray(hi - lo if point_bytes is None else point_bytes, dtype=np.int64), data.shape
    )
    details = "no points"
    if len(data):
        edges = merge_points(len(data), width - 150)
        mean = reduce_runs(np.clip(data, 0.0, 8.0), edges, "mean")
        left, right = lo[edges[:-1]], hi[edges[1:] - 1]
        shown = ~np.isnan(mean)
        cmap = entropy_colormap()
        # Not antialiased: neighbouring bars would leave hairlines between them.
        axes.bar(
            left[shown],
            mean[shown],
            width=(right - left)[shown],
            align="edge",
            color=cmap(ENTROPY_NORM(mean[shown])),
            linewidth=0,
            antialiased=False,
        )
        if len(edges) - 1 < len(data):
            high = reduce_runs(np.clip(data, 0.0, 8.0), edges, "max")
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
            column_ceiling = reduce_runs(ceiling.astype(np.float64), edges, "min")
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
        details = f"{len(data):,} points {size_text(sizes)}" + bias_note(sizes)
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
        ScalarMappable(norm=ENTROPY_NORM, cmap=entropy_colormap()),
        ax=axes,
        pad=0.01,
        aspect=15,
    )
    bar.set_label("bits per byte")
    set_title(figure, axes, title, details, details_width=width - 140)
    return figure


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
        edges = merge_points(len(share), width - 150)
        column = reduce_runs(share, edges, "max")
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
