"""Bigram and trigram pictures: which bytes follow which."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize, to_rgb
from matplotlib.patches import Rectangle

from binglide.cli.pictures.figure import (
    byte_ticks,
    check_counts,
    new_figure,
    set_title,
    themed,
    truncated_colormap,
)
from binglide.cli.pictures.palette import PRINTABLE, PRINTABLE_TINT

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike, NDArray

__all__ = ("TRIGRAM_POINTS", "bigram_picture", "trigram_picture")


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
    check_counts(table, "bigram counts")
    values = table.astype(np.float64)
    nonzero = values > 0
    level = np.zeros_like(values)
    level[nonzero], norm, ticks, tick_labels = _count_levels(values[nonzero], leveling)

    printable = np.zeros((256, 256), dtype=np.bool_)
    printable[PRINTABLE[0] : PRINTABLE[1], PRINTABLE[0] : PRINTABLE[1]] = True
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
    lo, hi = PRINTABLE
    axes.add_patch(
        Rectangle((lo - 0.5, lo - 0.5), hi - lo, hi - lo, fill=False, edgecolor="#5a8fd0", lw=0.6)
    )
    byte_ticks(axes.xaxis)
    byte_ticks(axes.yaxis)
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
    check_counts(table, "trigram counts")
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
    lo, hi = PRINTABLE
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
