"""Draw analysis results as RGB pictures, ready for `binglide.cli.png.encode_png`.

Every function takes the numpy arrays an analysis returns and gives back a
``(h, w, 3)`` ``uint8`` array with its frame, axis labels and title drawn in.
The pictures follow the tools reverse engineers already read: the bigram plot
of binglide v1 and Cantor Dust, the Hilbert-curve maps of scurve and binvis,
and the entropy plot of binwalk.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np

from binglide.cli.png import GLYPH_HEIGHT, text, text_width

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray

__all__ = (
    "bigram_picture",
    "diff_picture",
    "entropy_picture",
    "hex_ticks",
    "hilbert_d2xy",
    "histogram_picture",
    "hilbert_picture",
    "trigram_picture",
)

BACKGROUND = (22, 22, 26)
PLOT_BACKGROUND = (0, 0, 0)
FRAME = (110, 110, 120)
LABEL = (200, 200, 205)
DIM_LABEL = (130, 130, 140)
GRID = (60, 60, 70)
NO_DATA = (40, 40, 44)

# Colour ramps as (position, (r, g, b)) stops, interpolated linearly.
# Approximates matplotlib's "inferno": dark purple to yellow-white, readable
# in print and by people with red-green colour blindness.
_INFERNO = (
    (0.0, (12, 6, 40)),
    (0.25, (87, 16, 110)),
    (0.5, (188, 55, 84)),
    (0.75, (249, 142, 9)),
    (1.0, (252, 255, 164)),
)
# Text bytes get a cool ramp of their own, so the printable square stands out
# from code and data the way binglide v1's highlight did.
_TEXT_RAMP = (
    (0.0, (8, 22, 60)),
    (0.3, (18, 62, 140)),
    (0.6, (28, 140, 200)),
    (0.8, (80, 210, 240)),
    (1.0, (225, 255, 255)),
)
# Entropy levels: blue (low, padding and tables) to red (high, compressed or
# encrypted), as binwalk's entropy plot reads.
_ENTROPY_RAMP = (
    (0.0, (40, 60, 200)),
    (0.3, (0, 150, 230)),
    (0.55, (30, 190, 90)),
    (0.75, (235, 215, 20)),
    (0.88, (250, 130, 10)),
    (1.0, (225, 25, 25)),
)

# Byte classes of scurve/binvis, in ColorBrewer "Set1" colours.
CLASS_COLORS = {
    "0x00": (0, 0, 0),
    "low": (77, 175, 74),
    "ascii": (55, 126, 184),
    "high": (228, 26, 28),
    "0xFF": (255, 255, 255),
}


def _ramp(
    values: NDArray[np.floating], stops: Sequence[tuple[float, tuple[int, int, int]]]
) -> NDArray[np.uint8]:
    """Map values in [0, 1] to RGB along a piecewise-linear colour ramp."""
    positions = np.array([p for p, _ in stops])
    colors = np.array([c for _, c in stops], dtype=np.float64)
    v = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
    out = np.stack([np.interp(v, positions, colors[:, i]) for i in range(3)], axis=-1)
    rgb: NDArray[np.uint8] = np.rint(out).astype(np.uint8)
    return rgb


def _canvas(h: int, w: int, color: tuple[int, int, int] = BACKGROUND) -> NDArray[np.uint8]:
    canvas = np.empty((h, w, 3), dtype=np.uint8)
    canvas[:] = color
    return canvas


def _rectangle(
    image: NDArray[np.uint8], x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int]
) -> None:
    """Draw a one-pixel outline whose inside is ``[x0, x1) x [y0, y1)``."""
    image[y0 - 1, x0 - 1 : x1 + 1] = color
    image[y1, x0 - 1 : x1 + 1] = color
    image[y0 - 1 : y1 + 1, x0 - 1] = color
    image[y0 - 1 : y1 + 1, x1] = color


def _centered(
    image: NDArray[np.uint8], cx: int, y: int, string: str, color: Sequence[int]
) -> None:
    text(image, cx - text_width(string) // 2, y, string, color)


def _right_aligned(
    image: NDArray[np.uint8], right: int, y: int, string: str, color: Sequence[int]
) -> None:
    text(image, right - text_width(string), y, string, color)


def _vertical_text(
    image: NDArray[np.uint8], x: int, cy: int, string: str, color: Sequence[int]
) -> None:
    """Draw text reading bottom to top, centred on row ``cy``, its top glyph edge at ``x``."""
    strip = np.zeros((GLYPH_HEIGHT, max(text_width(string), 1)), dtype=np.uint8)
    text(strip, 0, 0, string, 255)
    rotated = np.rot90(strip)  # counter-clockwise: the text now reads upwards
    y0 = cy - rotated.shape[0] // 2
    region = image[y0 : y0 + rotated.shape[0], x : x + rotated.shape[1]]
    region[rotated[: region.shape[0], : region.shape[1]] > 0] = color


# Room above a plot for a title drawn at twice the font size.
_TITLE_MARGIN = 32


def _title(image: NDArray[np.uint8], title: str | None, x: int = 8, y: int = 8) -> None:
    if title:
        text(image, x, y, title, LABEL, scale=2)


def hex_ticks(start: int, stop: int, *, count: int = 5) -> list[int]:
    """Choose round offsets for an axis from ``start`` to ``stop``.

    The step is a power of two, so the labels read as round hexadecimal
    numbers (``0x40000``, ``0x80000``), as offsets in a hex editor do.

    Args:
        start: The first offset on the axis.
        stop: The offset just past the axis.
        count: About how many ticks to return (between ``count // 2`` and ``count + 1``).

    Returns:
        The tick offsets, ascending, within ``[start, stop]``.
    """
    span = stop - start
    if span <= 0:
        return [start]
    step = 1 << max(math.ceil(math.log2(span / max(count, 1))), 0)
    first = -(-start // step) * step
    return list(range(first, stop + 1, step))


def _hex(n: int) -> str:
    return f"0x{n:X}"


def _level_counts(counts: NDArray[np.integer], leveling: str) -> NDArray[np.float64]:
    """Turn counts into intensities in [0, 1]; zero counts stay exactly 0."""
    if leveling not in ("log", "rank"):
        raise ValueError(f"leveling must be 'log' or 'rank', not {leveling!r}")
    c = counts.astype(np.float64)
    out = np.zeros_like(c)
    nonzero = c > 0
    if not nonzero.any():
        return out
    if leveling == "log":
        top = math.log(c.max())
        # A floor keeps a single occurrence visible next to millions.
        out[nonzero] = 0.18 + 0.82 * (np.log(c[nonzero]) / top if top > 0 else 1.0)
    else:
        # Rank leveling (binglide v1): the k-th smallest distinct count gets
        # level k / K, which spreads a huge dynamic range evenly over the ramp.
        distinct = np.unique(c[nonzero])
        ranks = np.searchsorted(distinct, c[nonzero]) + 1
        out[nonzero] = 0.1 + 0.9 * ranks / len(distinct)
    return out


def bigram_picture(
    counts: ArrayLike,
    *,
    leveling: Literal["log", "rank"] = "log",
    scale: int = 2,
    title: str | None = None,
) -> NDArray[np.uint8]:
    """Draw a 256x256 bigram table as binglide v1 did.

    Column x, row y is the number of times byte ``x`` is followed by byte
    ``y``, with 0x00 at the top left.  Pairs that never occur are black.
    Pairs of printable ASCII bytes (0x20 to 0x7E both) use a cyan ramp over a
    tinted square, so text stands out from code and compressed data (which
    fills the whole square evenly).

    Args:
        counts: A ``(256, 256)`` array of counts, indexed ``[first, second]``.
        leveling: ``"log"`` for log-scaled counts, or ``"rank"`` to level by the
            rank of each distinct count value.
        scale: Pixels per cell (2 gives a 512x512 plot).
        title: A line drawn above the plot.

    Returns:
        An RGB ``uint8`` picture.

    Raises:
        ValueError: If ``counts`` is not 256x256, has negative values, or
            ``leveling`` or ``scale`` is invalid.
    """
    table = np.asarray(counts)
    if table.shape != (256, 256):
        raise ValueError(f"a bigram table has shape (256, 256), not {table.shape}")
    if scale < 1:
        raise ValueError(f"scale must be at least 1, not {scale}")
    if (table < 0).any():
        raise ValueError("bigram counts cannot be negative")
    level = _level_counts(table, leveling).T  # rows are the second byte
    cells = _ramp(level, _INFERNO)
    cells[level == 0] = PLOT_BACKGROUND
    printable = np.zeros((256, 256), dtype=np.bool_)
    printable[0x20:0x7F, 0x20:0x7F] = True
    text_cells = _ramp(level, _TEXT_RAMP)
    text_cells[level == 0] = (14, 26, 46)
    cells[printable] = text_cells[printable]
    plot = cells.repeat(scale, axis=0).repeat(scale, axis=1)

    left, top, right, bottom = 58, _TITLE_MARGIN if title else 14, 14, 40
    size = 256 * scale
    image = _canvas(top + size + bottom, left + size + right)
    image[top : top + size, left : left + size] = plot
    _rectangle(image, left, top, left + size, top + size, FRAME)
    for value in (0x00, 0x20, 0x7F, 0xFF):
        label = f"0x{value:02X}"
        pos = value * scale + scale // 2
        image[top + size + 1 : top + size + 4, left + pos] = FRAME
        _centered(image, left + pos, top + size + 6, label, LABEL)
        image[top + pos, left - 4 : left - 1] = FRAME
        _right_aligned(image, left - 6, top + pos - GLYPH_HEIGHT // 2, label, LABEL)
    _centered(image, left + size // 2, top + size + 22, "first byte", DIM_LABEL)
    _vertical_text(image, 6, top + size // 2, "second byte", DIM_LABEL)
    _title(image, title, x=left)
    return image


def trigram_picture(
    counts: ArrayLike,
    *,
    size: int = 512,
    title: str | None = None,
) -> NDArray[np.uint8]:
    """Draw a trigram table as a rotated 3-D point cloud.

    Each nonzero cell ``(a, b, c)`` is a point in a cube, seen from a corner
    (yaw 45 degrees, pitch 30 degrees) and coloured by its position (red
    along the first byte, green the second, blue the third) with brightness
    from its log count; where points overlap the brightest wins (maximum
    intensity projection).  Text is a small dense block near the middle of
    the cube, machine code draws planes and lines of recurring opcodes, and
    compressed or encrypted data fills the whole cube as an even haze.

    Args:
        counts: A cubic array ``(n, n, n)`` of counts, ``n = 2**bits``,
            indexed ``[first, second, third]``.
        size: The side in pixels of the square plot.
        title: A line drawn above the plot.

    Returns:
        An RGB ``uint8`` picture.

    Raises:
        ValueError: If ``counts`` is not a cube with a power-of-two side, or
            has negative values.
    """
    table = np.asarray(counts)
    n = table.shape[0] if table.ndim == 3 else 0
    if table.ndim != 3 or table.shape != (n, n, n) or n < 2 or n & (n - 1):
        raise ValueError(f"a trigram table is a cube with a power-of-two side, not {table.shape}")
    if (table < 0).any():
        raise ValueError("trigram counts cannot be negative")

    top = _TITLE_MARGIN if title else 12
    # Wide side margins leave room for the axis labels beside the cube.
    margin = 90
    image = _canvas(top + size + 28, size + 2 * margin)
    plot = np.zeros((size, size, 3), dtype=np.uint8)
    rotation = _view_rotation()

    # The cube's edges, drawn first so points cover them.
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    for a in range(8):
        for b in range(a + 1, 8):
            if np.abs(corners[a] - corners[b]).sum() == 1:
                t = np.linspace(0.0, 1.0, size)[:, None]
                line = corners[a] + t * (corners[b] - corners[a])
                px, py, _ = _project(line, rotation, size)
                plot[py, px] = (55, 55, 65)
    # The printable ASCII sub-cube, outlined faintly so text has a reference.
    lo, hi = 0x20 / 256, 0x7F / 256
    for a in range(8):
        for b in range(a + 1, 8):
            if np.abs(corners[a] - corners[b]).sum() == 1:
                t = np.linspace(0.0, 1.0, size // 2)[:, None]
                line = lo + (hi - lo) * (corners[a] + t * (corners[b] - corners[a]))
                px, py, _ = _project(line, rotation, size)
                plot[py[::3], px[::3]] = (40, 80, 120)

    nonzero = np.nonzero(table)
    if len(nonzero[0]):
        weight = np.log1p(table[nonzero].astype(np.float64))
        # Spread each point uniformly inside its cell: lattice points would
        # otherwise land on a regular pixel pattern and draw moire stripes.
        # The fixed seed keeps the picture reproducible.
        jitter = np.random.default_rng(0).random((len(weight), 3))
        position = (np.stack(nonzero, axis=1) + jitter) / n
        px, py, _ = _project(position, rotation, size)
        flat = py * size + px
        # Accumulate like a long exposure: brightness from the summed weight
        # (log-scaled again, since dense regions stack many points), colour
        # from the weighted mean position of the points in the pixel.
        rgb = 0.3 + 0.7 * position
        total = np.bincount(flat, weights=weight, minlength=size * size)
        mixed = np.stack(
            [
                np.bincount(flat, weights=weight * rgb[:, i], minlength=size * size)
                for i in range(3)
            ],
            axis=1,
        )
        lit = total > 0
        brightness = np.zeros_like(total)
        brightness[lit] = 0.25 + 0.75 * np.log1p(total[lit]) / np.log1p(total.max())
        color = np.zeros_like(mixed)
        color[lit] = mixed[lit] / total[lit, None] * brightness[lit, None]
        # Keep the cube's edges where no point covers them.
        color_u8 = np.rint(np.clip(color, 0.0, 1.0) * 255).astype(np.uint8)
        plot.reshape(-1, 3)[lit] = color_u8[lit]

    image[top : top + size, margin : margin + size] = plot
    # Label the axis ends, pushed outwards from the centre so they sit
    # beside the cube rather than on it.
    for axis, name in enumerate(("1st", "2nd", "3rd")):
        end = np.zeros((1, 3))
        end[0, axis] = 1.0
        px, py, _ = _project(end, rotation, size)
        ex, ey = margin + int(px[0]), top + int(py[0])
        label = f"{name} byte 0xFF"
        if abs(ex - image.shape[1] // 2) < 40:
            _centered(image, ex, ey - GLYPH_HEIGHT - 6, label, LABEL)
        elif ex < image.shape[1] // 2:
            _right_aligned(image, ex - 6, ey - GLYPH_HEIGHT // 2, label, LABEL)
        else:
            text(image, ex + 6, ey - GLYPH_HEIGHT // 2, label, LABEL)
    # The origin is the hidden back corner: mark it on a dark patch.
    px, py, _ = _project(np.zeros((1, 3)), rotation, size)
    ox, oy = margin + int(px[0]), top + int(py[0])
    width00 = text_width("0x00")
    image[oy - 2 : oy + GLYPH_HEIGHT + 2, ox - width00 // 2 - 2 : ox + width00 // 2 + 3] = (
        BACKGROUND
    )
    _centered(image, ox, oy, "0x00", DIM_LABEL)
    _title(image, title, x=margin)
    caption = "red: 1st byte  green: 2nd  blue: 3rd  brightness: log count"
    _centered(image, image.shape[1] // 2, top + size + 4, caption, DIM_LABEL)
    return image


def _view_rotation() -> NDArray[np.float64]:
    yaw, pitch = math.radians(210), math.radians(25)
    rz = np.array(
        [[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]]
    )
    rx = np.array(
        [[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]]
    )
    rotation: NDArray[np.float64] = rx @ rz
    return rotation


def _project(
    points: NDArray[np.float64], rotation: NDArray[np.float64], size: int
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """Project unit-cube points to pixel columns, rows and depth."""
    # Centre the cube on the origin; its diagonal is sqrt(3), so this scale
    # keeps every rotation inside the square.
    rotated = (points - 0.5) @ rotation.T
    half = size / 2
    scale = (size - 2) / math.sqrt(3)
    px = np.clip(np.rint(half + rotated[:, 0] * scale), 0, size - 1).astype(np.intp)
    # Screen rows grow downwards, the cube's third axis points up.
    py = np.clip(np.rint(half - rotated[:, 2] * scale), 0, size - 1).astype(np.intp)
    return px, py, rotated[:, 1]


def _resample(values: NDArray[np.float64], width: int) -> tuple[NDArray[np.float64], ...]:
    """Reduce or stretch ``values`` to ``width`` columns: (mean, min, max) per column."""
    n = len(values)
    if n == 0:
        empty = np.full(width, np.nan)
        return empty, empty, empty
    if n <= width:
        # Fewer values than columns: each value spans one or more columns.
        idx = (np.arange(width) * n) // width
        picked = values[idx]
        return picked, picked, picked
    bounds = (np.arange(width + 1) * n) // width
    mean = np.add.reduceat(values, bounds[:-1]) / np.diff(bounds)
    return (
        mean,
        np.minimum.reduceat(values, bounds[:-1]),
        np.maximum.reduceat(values, bounds[:-1]),
    )


def entropy_picture(
    values: ArrayLike,
    *,
    start: int,
    stop: int,
    width: int = 1024,
    height: int = 256,
    title: str | None = None,
) -> NDArray[np.uint8]:
    """Draw an entropy profile along a file as a filled, level-coloured curve.

    Each column of the plot covers an equal share of ``[start, stop)``.  When
    there are more values than columns, the column shows the mean as the
    filled curve and the range from minimum to maximum as a lighter band, so
    short low- or high-entropy runs are not averaged away.  Colours run from
    blue (0 bits per byte) to red (8).

    Args:
        values: Entropy values in bits per byte (0 to 8), evenly spaced over
            ``[start, stop)``; NaN marks blocks without data.
        start: The offset of the first value's block.
        stop: The offset just past the last value's block.
        width: The picture's width in pixels.
        height: The picture's height in pixels.
        title: The heading; by default ``"Entropy <start>..<stop>"``.

    Returns:
        An RGB ``uint8`` picture of ``(height, width)``.

    Raises:
        ValueError: If ``stop < start`` or the picture is too small for its labels.
    """
    if stop < start:
        raise ValueError(f"stop ({stop}) is before start ({start})")
    if width < 160 or height < 96:
        raise ValueError(f"an entropy picture needs at least 160x96 pixels, not {width}x{height}")
    data = np.asarray(values, dtype=np.float64).ravel()
    left, right, top, bottom = 36, 14, _TITLE_MARGIN, 30
    pw, ph = width - left - right, height - top - bottom
    image = _canvas(height, width)
    plot = np.zeros((ph, pw, 3), dtype=np.uint8)
    plot[:] = PLOT_BACKGROUND

    mean, _, high = _resample(np.clip(data, 0.0, 8.0), pw)
    rows = np.arange(ph)[:, None]
    # Row r (from the top) is at level 8 * (ph - r) / ph: a cell is filled
    # when its lower edge is under the value.
    level_of_row = 8.0 * (ph - 1 - rows + 0.5) / ph
    colors = _ramp(mean / 8.0, _ENTROPY_RAMP)
    band = (level_of_row <= high) & (level_of_row > mean)
    plot[band] = np.broadcast_to((colors // 3 + 20)[None, :, :], plot.shape)[band]
    filled = level_of_row <= mean
    plot[filled] = np.broadcast_to(colors[None, :, :], plot.shape)[filled]
    # Brighten the curve's top edge so the profile reads as a line too.
    valid = ~np.isnan(mean)
    cols = np.nonzero(valid)[0]
    tops = np.clip(ph - 1 - np.floor(mean[valid] / 8.0 * ph).astype(np.intp), 0, ph - 1)
    plot[tops, cols] = np.minimum(colors[valid].astype(np.int32) + 70, 255).astype(np.uint8)
    plot[:, ~valid] = NO_DATA

    # Gridlines behind nothing: draw them where the plot is still background.
    for level in (2, 4, 6, 8):
        row = ph - round(level / 8.0 * ph)
        row = min(max(row, 0), ph - 1)
        line = plot[row]
        empty = (line == PLOT_BACKGROUND).all(axis=1)
        line[empty] = GRID
        line[~empty] = (line[~empty].astype(np.int32) * 3 // 4).astype(np.uint8)
        _right_aligned(image, left - 6, top + row - GLYPH_HEIGHT // 2, str(level), LABEL)
    _right_aligned(image, left - 6, top + ph - GLYPH_HEIGHT // 2 - 1, "0", LABEL)
    image[top : top + ph, left : left + pw] = plot
    _rectangle(image, left, top, left + pw, top + ph, FRAME)

    span = max(stop - start, 1)
    for tick in hex_ticks(start, stop):
        x = left + min(int((tick - start) / span * pw), pw - 1)
        image[top + ph + 1 : top + ph + 5, x] = FRAME
        label = _hex(tick)
        lx = min(max(x - text_width(label) // 2, 2), width - text_width(label) - 2)
        text(image, lx, top + ph + 8, label, LABEL)
    caption = "bits per byte"
    text(image, width - right - text_width(caption), top - 12, caption, DIM_LABEL)
    _title(image, title if title is not None else f"Entropy {_hex(start)}..{_hex(stop)}", x=left)
    return image


def hilbert_d2xy(order: int, d: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Map distances along a Hilbert curve to cell coordinates.

    The curve fills a square of side ``2**order``; consecutive distances are
    always adjacent cells, so neighbouring bytes of a file stay neighbours in
    the picture (which is why scurve and Cantor Dust use it).  The curve
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
        One class index per byte, indexing `CLASS_COLORS` in order:
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


def hilbert_picture(
    values: ArrayLike,
    *,
    order: int | None = None,
    mode: Literal["entropy", "class"] = "entropy",
    size: int = 512,
    title: str | None = None,
) -> NDArray[np.uint8]:
    """Lay a file along a Hilbert curve and colour each cell, as scurve draws it.

    Args:
        values: In ``"entropy"`` mode, the entropy (0 to 8 bits per byte) of
            consecutive blocks of the file; in ``"class"`` mode, bytes sampled
            evenly along the file (``uint8``).
        order: The curve order (side ``2**order``); by default the smallest that
            holds every value.  Extra values are averaged (entropy) or
            subsampled (class) to fit; cells past the data are dark grey.
        mode: ``"entropy"`` colours blue (low) to red (high); ``"class"``
            colours 0x00 black, 0xFF white, printable ASCII blue, other control
            bytes green and high bytes red.
        size: The minimum side of the map in pixels; cells are scaled up by a
            whole factor to reach it.
        title: A line drawn above the map.

    Returns:
        An RGB ``uint8`` picture with the map and its legend.

    Raises:
        ValueError: If ``mode`` is unknown or ``order`` is negative.
    """
    data = np.asarray(values).ravel()
    if mode not in ("entropy", "class"):
        raise ValueError(f"mode must be 'entropy' or 'class', not {mode!r}")
    if order is None:
        order = max(math.ceil(math.log2(max(len(data), 1)) / 2), 0)
    if order < 0:
        raise ValueError(f"the Hilbert curve order cannot be negative, not {order}")
    cells = 4**order
    side = 1 << order
    if len(data) > cells:
        if mode == "entropy":
            data = _resample(data.astype(np.float64), cells)[0]
        else:
            data = data[(np.arange(cells) * len(data)) // cells]
    if mode == "entropy":
        colors = _ramp(data.astype(np.float64) / 8.0, _ENTROPY_RAMP)
        colors[np.isnan(data.astype(np.float64))] = NO_DATA
    else:
        palette = np.array(list(CLASS_COLORS.values()), dtype=np.uint8)
        colors = palette[byte_classes(data)]

    grid = np.empty((side, side, 3), dtype=np.uint8)
    grid[:] = NO_DATA
    x, y = hilbert_d2xy(order, np.arange(len(data)))
    grid[y, x] = colors
    factor = max(1, -(-size // side))
    plot = grid.repeat(factor, axis=0).repeat(factor, axis=1)

    top, margin, legend = (_TITLE_MARGIN if title else 12), 12, 120
    ps = side * factor
    image = _canvas(top + ps + 2 * margin, margin + ps + margin + legend)
    image[top : top + ps, margin : margin + ps] = plot
    _rectangle(image, margin, top, margin + ps, top + ps, FRAME)
    lx = margin + ps + 14
    if mode == "class":
        names = ("0x00", "control", "ASCII text", "0x80-0xFE", "0xFF")
        for i, (name, color) in enumerate(zip(names, CLASS_COLORS.values(), strict=True)):
            ly = top + 4 + i * 16
            image[ly : ly + 9, lx : lx + 9] = color
            _rectangle(image, lx, ly, lx + 9, ly + 9, FRAME)
            text(image, lx + 15, ly + 1, name, LABEL)
    else:
        bar_h = min(ps - 20, 256)
        levels = np.linspace(8.0, 0.0, bar_h)
        image[top + 4 : top + 4 + bar_h, lx : lx + 14] = _ramp(levels / 8.0, _ENTROPY_RAMP)[
            :, None, :
        ]
        _rectangle(image, lx, top + 4, lx + 14, top + 4 + bar_h, FRAME)
        for level in (0, 2, 4, 6, 8):
            ly = top + 4 + round((8 - level) / 8 * (bar_h - 1))
            image[ly, lx + 14 : lx + 18] = FRAME
            text(image, lx + 21, ly - GLYPH_HEIGHT // 2, str(level), LABEL)
        text(image, lx, top + bar_h + 12, "bits/byte", DIM_LABEL)
    # The curve starts at the top left and ends at the top right.
    text(image, lx, top + ps - 2 * 12 - GLYPH_HEIGHT, "start: top left", DIM_LABEL)
    text(image, lx, top + ps - 12 - GLYPH_HEIGHT + 2, "end: top right", DIM_LABEL)
    _title(image, title, x=margin)
    return image


def diff_picture(
    diff_counts: ArrayLike,
    points_bytes: int | ArrayLike,
    *,
    total: int,
    sizes: Sequence[int],
    start: int = 0,
    width: int = 1024,
    strip_height: int = 48,
    title: str | None = None,
) -> NDArray[np.uint8]:
    """Draw where two files differ, as a horizontal strip.

    Each point of the diff is one column (points are merged by their maximum
    when there are more than fit, so a single changed byte stays visible);
    its brightness is the fraction of bytes that differ in the point's span,
    with any difference at least dimly lit and identical spans dark.

    Args:
        diff_counts: The number of differing bytes in each point's span.
        points_bytes: The bytes each point spans: one number for all, or one per point.
        total: The total number of differing bytes, for the caption.
        sizes: The sizes of the files compared.
        start: The offset of the first point.
        width: The picture's width in pixels.
        strip_height: The strip's height in pixels.
        title: The heading, above the summary line; by default ``"Diff"``.

    Returns:
        An RGB ``uint8`` picture.

    Raises:
        ValueError: If the picture is narrower than 128 pixels.
    """
    if width < 128:
        raise ValueError(f"a diff picture needs at least 128 pixels of width, not {width}")
    counts = np.asarray(diff_counts, dtype=np.float64).ravel()
    spans = np.broadcast_to(np.asarray(points_bytes, dtype=np.float64), counts.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(spans > 0, counts / spans, 0.0)
    left, right = 12, 12
    top = _TITLE_MARGIN + 16
    pw = width - left - right
    _, _, column = _resample(np.clip(fraction, 0.0, 1.0), pw)
    column = np.nan_to_num(column, nan=0.0)
    colors = _ramp(0.25 + 0.75 * np.sqrt(column), _INFERNO)
    colors[column <= 0] = (16, 30, 24)
    image = _canvas(top + strip_height + 30, width)
    image[top : top + strip_height, left : left + pw] = colors[None, :, :]
    _rectangle(image, left, top, left + pw, top + strip_height, FRAME)

    stop = start + int(spans.sum())
    span = max(stop - start, 1)
    for tick in hex_ticks(start, stop):
        x = left + min(int((tick - start) / span * pw), pw - 1)
        image[top + strip_height + 1 : top + strip_height + 5, x] = FRAME
        label = _hex(tick)
        lx = min(max(x - text_width(label) // 2, 2), width - text_width(label) - 2)
        text(image, lx, top + strip_height + 8, label, LABEL)

    compared = min(sizes) if len(sizes) else 0
    percent = 100.0 * total / compared if compared else 0.0
    _title(image, title if title is not None else "Diff", x=left)
    summary = f"{total:,} bytes differ ({percent:.2f}%)   sizes " + " vs ".join(
        f"{s:,}" for s in sizes
    )
    if len(set(sizes)) > 1:
        summary += "   (files differ in length)"
    text(image, left, top - 12, summary, LABEL)
    legend = "dark: same   bright: more bytes differ"
    _right_aligned(image, width - right, top - 12, legend, DIM_LABEL)
    return image


def histogram_picture(
    counts: ArrayLike,
    *,
    log: bool = True,
    bar_width: int = 3,
    height: int = 256,
    title: str | None = None,
) -> NDArray[np.uint8]:
    """Draw 256 byte counts as a bar chart, bars coloured by byte class.

    Bars use the colours of `hilbert_picture`'s class mode (0x00 grey, other
    control bytes green, printable ASCII blue, 0x80-0xFE red, 0xFF white), so
    the two pictures read together.

    Args:
        counts: 256 byte counts, indexed by byte value.
        log: Scale bar heights by ``log(1 + count)``, so that rare bytes stay
            visible next to a padding byte that fills half the file.
        bar_width: Pixels per bar.
        height: The plot's height in pixels.
        title: A line drawn above the plot.

    Returns:
        An RGB ``uint8`` picture.

    Raises:
        ValueError: If ``counts`` does not hold 256 values, has negative
            values, or the sizes are too small.
    """
    table = np.asarray(counts).ravel()
    if table.shape != (256,):
        raise ValueError(f"a byte histogram has 256 counts, not {table.shape[0]}")
    if (table < 0).any():
        raise ValueError("byte counts cannot be negative")
    if bar_width < 1 or height < 64:
        raise ValueError(f"bar_width must be >= 1 and height >= 64, not {bar_width}, {height}")
    values = table.astype(np.float64)
    if log:
        values = np.log1p(values)
    peak = float(values.max())
    level = values / peak if peak > 0 else values
    palette = np.array(list(CLASS_COLORS.values()), dtype=np.uint8)
    colors = palette[byte_classes(np.arange(256))]
    colors[0] = (150, 150, 160)  # black would vanish on the plot's background

    left, right, top, bottom = 16, 16, _TITLE_MARGIN if title else 14, 40
    pw, ph = 256 * bar_width, height
    image = _canvas(top + ph + bottom, left + pw + right)
    plot = np.zeros((ph, pw, 3), dtype=np.uint8)
    plot[:] = PLOT_BACKGROUND
    for row in (ph // 4, ph // 2, 3 * ph // 4):
        plot[row] = GRID
    heights = np.rint(level * ph).astype(np.intp)
    # Any count at all gets one pixel: "present" must not read as "absent".
    heights[(table > 0) & (heights == 0)] = 1
    rows = np.arange(ph)[:, None]
    filled = rows >= ph - np.repeat(heights, bar_width)[None, :]
    bar_colors = np.repeat(colors, bar_width, axis=0)
    plot[filled] = np.broadcast_to(bar_colors[None, :, :], plot.shape)[filled]
    image[top : top + ph, left : left + pw] = plot
    _rectangle(image, left, top, left + pw, top + ph, FRAME)
    for value in (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0, 0xE0, 0xFF):
        x = left + value * bar_width + bar_width // 2
        image[top + ph + 1 : top + ph + 4, x] = FRAME
        _centered(image, x, top + ph + 6, f"0x{value:02X}", LABEL)
    scale = "height: log(1 + count)" if log else "height: count"
    _centered(image, left + pw // 2, top + ph + 22, f"byte value   ({scale})", DIM_LABEL)
    _title(image, title, x=left)
    return image
