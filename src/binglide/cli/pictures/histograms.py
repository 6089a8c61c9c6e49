"""The byte histogram, alone or with the statistics Fourmilab's ent prints."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import ticker
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch

from binglide.cli.pictures.figure import byte_ticks, check_counts, new_figure, set_title, themed
from binglide.cli.pictures.palette import CLASS_COLORS, CLASS_NAMES, byte_classes
from binglide.cli.text import chi_square_upper_tail

if TYPE_CHECKING:
    from collections.abc import Mapping

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike, NDArray

__all__ = ("histogram_picture", "stats_picture")


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
    byte_ticks(axes.xaxis)
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
    check_counts(table, "byte counts")
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
