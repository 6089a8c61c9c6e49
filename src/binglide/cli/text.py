"""Render analysis results as text for a terminal, and parse offsets people type.

Everything here is pure: functions take numbers and arrays and return
strings, so the command decides where they go.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np

from binglide.cachefs import parse_size

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import ArrayLike, NDArray

__all__ = (
    "chi_square_upper_tail",
    "diff_text",
    "entropy_profile_text",
    "hexdump_text",
    "histogram_text",
    "human_bytes",
    "ngrams_text",
    "parse_offset",
    "parse_range",
    "sparkline",
    "stats_text",
)

SPARK_CHARS = "▁▂▃▄▅▆▇█"
# Eighths of a block, for bars with sub-character resolution.
_BAR_EIGHTHS = " ▏▎▍▌▋▊▉█"


def parse_offset(s: str) -> int:
    """Parse an offset or size as people write them (see `binglide.cachefs.parse_size`).

    Raises:
        ValueError: If ``s`` is not a byte count such as ``4096``, ``0x1000``,
            ``4K`` or ``1.5MiB``.
    """
    return parse_size(s)


def parse_range(s: str) -> tuple[int | None, int | None]:
    """Parse ``START:STOP``, where either side may be empty.

    Args:
        s: The text, such as ``"0x1000:64K"``, ``":1M"`` or ``"4K:"``.

    Returns:
        ``(start, stop)``, ``None`` for an empty side.

    Raises:
        ValueError: If there is not exactly one ``:``, a side is not a valid
            offset (see `parse_offset`), or ``stop`` is before ``start``.
    """
    if s.count(":") != 1:
        raise ValueError(f"invalid range {s!r}: expected START:STOP, either side may be empty")
    left, right = s.split(":")
    start = parse_offset(left) if left.strip() else None
    stop = parse_offset(right) if right.strip() else None
    if start is not None and stop is not None and stop < start:
        raise ValueError(f"invalid range {s!r}: stop {stop} is before start {start}")
    return start, stop


def human_bytes(n: float) -> str:
    """Format a number of bytes with a binary unit, to about three significant digits.

    Args:
        n: A number of bytes (may be fractional, for rates).

    Returns:
        Text such as ``"512 B"``, ``"1.50 KiB"``, ``"37.2 MiB"``, ``"118 GiB"``.
    """
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "PiB":
            break
    if abs(n) < 10:
        return f"{n:.2f} {unit}"
    if abs(n) < 100:
        return f"{n:.1f} {unit}"
    return f"{n:.0f} {unit}"


def _resample(values: NDArray[np.float64], width: int, how: str) -> NDArray[np.float64]:
    n = len(values)
    if n == width or n == 0:
        return values
    if n < width:
        return values[(np.arange(width) * n) // width]
    bounds = (np.arange(width + 1) * n) // width
    if how == "max":
        return np.asarray(np.fmax.reduceat(values, bounds[:-1]), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        sums = np.add.reduceat(np.nan_to_num(values), bounds[:-1])
        counts = np.add.reduceat((~np.isnan(values)).astype(np.float64), bounds[:-1])
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def sparkline(
    values: ArrayLike,
    *,
    lo: float = 0.0,
    hi: float = 8.0,
    width: int | None = None,
    reduce: Literal["max", "mean"] = "mean",
    zero: str | None = None,
) -> str:
    """Draw values as a line of block characters ``▁▂▃▄▅▆▇█``.

    Args:
        values: The values; NaN draws a space.
        lo: The value drawn as ``▁`` (and anything below it).
        hi: The value drawn as ``█`` (and anything above it).
        width: The number of characters; values are merged by ``reduce`` when
            there are more, repeated when there are fewer.  ``None`` keeps one
            character per value.
        reduce: How to merge values into one character: ``"mean"``, or
            ``"max"`` so that a single high value stays visible.
        zero: A character for values at or below ``lo``, to tell "nothing"
            apart from "a little" (``"·"`` suits diffs).

    Returns:
        The sparkline.

    Raises:
        ValueError: If ``hi <= lo``, ``width < 1`` or ``reduce`` is unknown.
    """
    if hi <= lo:
        raise ValueError(f"sparkline needs hi > lo, got lo={lo} hi={hi}")
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be 'max' or 'mean', not {reduce!r}")
    data = np.asarray(values, dtype=np.float64).ravel()
    if width is not None:
        if width < 1:
            raise ValueError(f"sparkline width must be at least 1, not {width}")
        data = _resample(data, width, reduce)
    top = len(SPARK_CHARS) - 1
    scaled = np.clip((data - lo) / (hi - lo), 0.0, 1.0)
    levels = np.rint(np.nan_to_num(scaled) * top).astype(np.intp)
    chars = [SPARK_CHARS[i] for i in levels]
    for i in np.nonzero(np.isnan(data))[0]:
        chars[i] = " "
    if zero is not None:
        for i in np.nonzero(data <= lo)[0]:
            chars[i] = zero
    return "".join(chars)


def entropy_profile_text(
    values: ArrayLike,
    *,
    start: int,
    stop: int,
    width: int = 64,
    lines: int = 8,
    point_bytes: int | None = None,
) -> str:
    """Draw an entropy profile as rows of sparklines, with the offset of each row.

    The values are spread over at most ``lines`` rows of ``width`` characters
    (merged by their mean when there are more).  Each row ends with its mean
    and maximum, and a header gives the scale.

    Args:
        values: Entropy in bits per byte (0 to 8), evenly spaced over ``[start, stop)``.
        start: The offset of the first value's block.
        stop: The offset just past the last value's block.
        width: The characters per row.
        lines: The most rows to draw.
        point_bytes: The bytes each value covers (the report's
            ``meta["point_bytes"]``); below 256 the header says so, since
            fewer bytes cannot show more than ``log2(point_bytes)`` bits.

    Returns:
        The profile, lines joined by ``"\\n"``, without a final newline.

    Raises:
        ValueError: If ``stop < start``, ``width < 1`` or ``lines < 1``.
    """
    if stop < start:
        raise ValueError(f"stop ({stop}) is before start ({start})")
    if width < 1 or lines < 1:
        raise ValueError(f"width and lines must be at least 1, got {width} and {lines}")
    data = np.asarray(values, dtype=np.float64).ravel()
    if len(data) == 0:
        return f"entropy of {start:#x}..{stop:#x}: no data"
    rows = min(lines, -(-len(data) // width))
    cells = _resample(data, rows * width, "mean") if len(data) > rows * width else data
    per_char = (stop - start) / len(cells)
    digits = max(len(f"{stop:x}"), 4)
    header = (
        f"entropy, bits per byte: ▁ 0 .. █ 8"
        f"   ({human_bytes(per_char)} per character, {human_bytes(stop - start)} in all)"
    )
    if point_bytes is not None and point_bytes < 256:
        top = math.log2(point_bytes) if point_bytes > 0 else 0.0
        header += f"; only {point_bytes} B per point: biased low, at most {top:.1f} bits"
    out = [header]
    for row in range(rows):
        chunk = cells[row * width : (row + 1) * width]
        if len(chunk) == 0:
            break
        offset = start + round(row * width * per_char)
        line = sparkline(chunk, lo=0.0, hi=8.0)
        with np.errstate(invalid="ignore"):
            mean = float(np.nanmean(chunk)) if not np.isnan(chunk).all() else math.nan
            peak = float(np.nanmax(chunk)) if not np.isnan(chunk).all() else math.nan
        out.append(
            f"0x{offset:0{digits}x}  {line.ljust(width)}  mean {mean:4.2f}  max {peak:4.2f}"
        )
    return "\n".join(out)


def chi_square_upper_tail(x: float, dof: int) -> float:
    """Return the probability that a chi-square variable exceeds ``x``.

    This is the regularised upper incomplete gamma function ``Q(dof/2, x/2)``,
    computed with its power series below ``a + 1`` and with Lentz's continued
    fraction above (Numerical Recipes, 6.2), both accurate to about 1e-14,
    so ``ent``'s "would exceed this value" needs no scipy.

    Args:
        x: The chi-square statistic.
        dof: The degrees of freedom (255 for byte counts).

    Returns:
        The upper tail probability, in [0, 1].

    Raises:
        ValueError: If ``dof < 1`` or ``x`` is NaN.
    """
    if dof < 1:
        raise ValueError(f"chi-square needs at least 1 degree of freedom, not {dof}")
    if math.isnan(x):
        raise ValueError("the chi-square statistic is NaN")
    if x <= 0:
        return 1.0
    a, z = dof / 2.0, x / 2.0
    log_prefix = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1.0:
        # P(a, z) = z^a e^-z / Gamma(a+1) * sum z^n / ((a+1)...(a+n))
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= z / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # Q(a, z) as a continued fraction, evaluated with the modified Lentz method.
    tiny = 1e-300
    b = z + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(1.0, math.exp(log_prefix) * h)


def stats_text(meta: Mapping[str, float]) -> str:
    """Describe a file's byte statistics in the words of Fourmilab's ``ent``.

    One line per statistic, worded as ``ent`` prints them so that people (and
    scripts) used to ``ent`` read them unchanged; ``ent``'s "more than than"
    typo is not copied.

    Args:
        meta: The statistics: ``entropy`` (bits per byte), ``chi_square``
            (against a uniform distribution, 255 degrees of freedom),
            ``mean``, ``monte_carlo_pi``, ``serial_correlation`` (NaN when
            undefined) and ``size`` (bytes).

    Returns:
        Six lines joined by ``"\\n"``, without a final newline.

    Raises:
        KeyError: If a statistic is missing.
    """
    # Clamp rounding residue (and -0.0) so a constant file reads "0.000000".
    entropy = max(float(meta["entropy"]), 0.0) + 0.0
    size = int(meta["size"])
    chi_square = float(meta["chi_square"])
    pi = float(meta["monte_carlo_pi"])
    correlation = float(meta["serial_correlation"])
    # ent truncates toward zero: (short) (100 * (8 - ent) / 8).
    reduction = int(100 * (8 - entropy) / 8)
    lines = [
        f"Entropy = {entropy:f} bits per byte.",
        f"Optimum compression would reduce the size of this {size} byte file by {reduction}"
        " percent.",
    ]
    chance = chi_square_upper_tail(chi_square, 255) if not math.isnan(chi_square) else math.nan
    if math.isnan(chance):
        exceed = "an unknown"
    elif chance < 0.0001:
        exceed = "less than 0.01"
    elif chance > 0.9999:
        exceed = "more than 99.99"
    else:
        exceed = f"{chance * 100:1.2f}"
    lines.append(
        f"Chi square distribution for {size} samples is {chi_square:1.2f}, and randomly"
        f" would exceed this value {exceed} percent of the times."
    )
    lines.append(
        f"Arithmetic mean value of data bytes is {float(meta['mean']):1.4f} (127.5 = random)."
    )
    error = 100.0 * abs(math.pi - pi) / math.pi
    lines.append(f"Monte Carlo value for Pi is {pi:1.9f} (error {error:1.2f} percent).")
    if math.isnan(correlation):
        lines.append("Serial correlation coefficient is undefined (all values equal!).")
    else:
        lines.append(
            f"Serial correlation coefficient is {correlation:1.6f} (totally uncorrelated = 0.0)."
        )
    return "\n".join(lines)


def _bar(fraction: float, width: int) -> str:
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_BAR_EIGHTHS[rest] if rest else "")).ljust(width)


def histogram_text(counts: ArrayLike, *, top: int = 16, bar_width: int = 32) -> str:
    """List the most frequent bytes with their counts and a bar.

    Args:
        counts: 256 byte counts, indexed by byte value.
        top: How many bytes to list.
        bar_width: The width of the longest bar, for the most frequent byte.

    Returns:
        A header and one line per byte, joined by ``"\\n"``.

    Raises:
        ValueError: If ``counts`` does not hold 256 values, or ``top`` is less than 1.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    table = np.asarray(counts).ravel()
    if table.shape != (256,):
        raise ValueError(f"a byte histogram has 256 counts, not {table.shape[0]}")
    total = int(table.sum())
    distinct = int(np.count_nonzero(table))
    header = f"{total:,} bytes, {distinct} distinct values; the {min(top, 256)} most frequent:"
    if total == 0:
        return f"{total:,} bytes: empty histogram"
    # Most frequent first; ties in byte order, so the listing is stable.
    order = np.lexsort((np.arange(256), -table.astype(np.int64)))[:top]
    peak = int(table[order[0]])
    width = max(len(f"{peak:,}"), 5)
    lines = [header, f"byte  char  {'count':>{width}}  percent"]
    for value in order:
        count = int(table[value])
        if count == 0:
            break
        # Quoted, so a space is visible; tab, newline and return as escapes.
        printable = 0x20 <= value < 0x7F or value in (0x09, 0x0A, 0x0D)
        char = repr(chr(value)) if printable else ""
        lines.append(
            f"0x{value:02x}  {char:<5} {count:>{width},}  {100 * count / total:6.2f}%"
            f"  {_bar(count / peak, bar_width)}".rstrip()
        )
    return "\n".join(lines)


def diff_text(
    counts_per_point: ArrayLike,
    *,
    start: int,
    stop: int,
    total: int,
    sizes: Sequence[int],
    first_offsets: Sequence[int],
    width: int = 64,
) -> str:
    """Summarise where and how much two files differ.

    Args:
        counts_per_point: Differing bytes in each of the evenly spaced points
            covering ``[start, stop)``.
        start: The first offset compared.
        stop: The offset just past the last compared.
        total: The total number of differing bytes.
        sizes: The sizes of the files.
        first_offsets: The first differing offsets, ascending.
        width: The width of the sparkline.

    Returns:
        The summary, lines joined by ``"\\n"``.

    Raises:
        ValueError: If ``stop < start``.
    """
    if stop < start:
        raise ValueError(f"stop ({stop}) is before start ({start})")
    span = stop - start
    points = np.asarray(counts_per_point, dtype=np.float64).ravel()
    lines = ["sizes: " + " vs ".join(f"{s:,} bytes" for s in sizes)]
    if len(set(sizes)) > 1:
        lines.append(
            f"files differ in length by {max(sizes) - min(sizes):,} bytes"
            f" ({human_bytes(max(sizes) - min(sizes))})"
        )
    percent = 100.0 * total / span if span else 0.0
    if total == 0:
        lines.append(f"identical in {start:#x}..{stop:#x} ({human_bytes(span)})")
        return "\n".join(lines)
    lines.append(
        f"{total:,} differing bytes in {start:#x}..{stop:#x} ({percent:.2f}% of {span:,})"
    )
    if len(first_offsets):
        shown = ", ".join(f"{o:#x}" for o in first_offsets[:8])
        more = ", ..." if len(first_offsets) > 8 else ""
        lines.append(f"first differing offsets: {shown}{more}")
    if len(points):
        per_point = span / len(points)
        fraction = points / max(per_point, 1.0)
        # Max, so one changed byte in a wide column still shows; "·" is identical.
        line = sparkline(
            fraction,
            lo=0.0,
            hi=max(float(fraction.max()), 1e-12),
            width=width,
            reduce="max",
            zero="·",
        )
        lines.append(f"where:  |{line}|")
        digits = len(f"{stop:x}")
        left = f"{start:#0{digits + 2}x}"
        right = f"{stop:#x}"
        lines.append(f"        {left}{right.rjust(width + 2 - len(left))}")
    return "\n".join(lines)


def _printable(value: int) -> str:
    return chr(value) if 0x20 <= value < 0x7F else "."


def hexdump_text(
    data: ArrayLike,
    runs: Sequence[Sequence[int]],
    *,
    max_lines: int | None = None,
) -> str:
    """Draw bytes as a hex dump, each line labelled with its file offset.

    The bytes are the concatenation of ``runs``: ``[offset, length]`` pairs
    saying where each stretch of consecutive bytes comes from (the ``data``
    service's ``meta["runs"]``).  A line never spans two runs, and a line
    ``--`` separates runs that are not adjacent in the file, so a sampled view
    reads as the excerpts it is.

    Args:
        data: The bytes (``uint8``), as many as the runs' lengths add up to.
        runs: The ``[offset, length]`` of each run, in order.
        max_lines: The most lines of bytes to draw; a last line says how many
            were left out.  ``None`` draws them all.

    Returns:
        The dump, lines joined by ``"\\n"``, without a final newline.

    Raises:
        ValueError: If the runs do not add up to the number of bytes.
    """
    b = np.asarray(data, dtype=np.uint8).ravel()
    total = sum(int(length) for _, length in runs)
    if total != len(b):
        raise ValueError(f"the runs hold {total} bytes but there are {len(b)}")
    if not len(b):
        return "no bytes"
    end = max(int(offset) + int(length) for offset, length in runs)
    digits = max(len(f"{end:x}"), 8)
    lines: list[str] = []
    shown = skipped = 0
    at, previous_end = 0, None
    for offset, length in runs:
        offset, length = int(offset), int(length)
        if previous_end is not None and offset != previous_end:
            lines.append("--")
        # Lines start on 16-byte boundaries of the file, as hexdump -C does.
        position = offset
        while position < offset + length:
            line_end = min(offset + length, (position // 16 + 1) * 16)
            chunk = b[at + position - offset : at + line_end - offset]
            if max_lines is not None and shown >= max_lines:
                skipped += 1
            else:
                pad = position % 16
                cells = ["  "] * pad + [f"{v:02x}" for v in chunk]
                cells += ["  "] * (16 - len(cells))
                hex_part = " ".join(cells[:8]) + "  " + " ".join(cells[8:])
                chars = " " * pad + "".join(_printable(int(v)) for v in chunk)
                lines.append(f"{position - pad:0{digits}x}  {hex_part}  |{chars.ljust(16)}|")
                shown += 1
            position = line_end
        at += length
        previous_end = offset + length
    if skipped:
        while lines and lines[-1] == "--":
            lines.pop()
        lines.append(f"... {skipped} more lines (export them with --json or --csv)")
    return "\n".join(lines)


def ngrams_text(counts: ArrayLike, *, bits: int = 8, top: int = 16) -> str:
    """List the most frequent n-grams with their counts.

    Args:
        counts: An n-dimensional table of counts, ``2**bits`` per side,
            indexed by the bytes of the n-gram in order.
        bits: How many top bits of each byte the table keeps; below 8, each
            cell stands for a range of byte values, shown as ``40-43``.
        top: How many n-grams to list.

    Returns:
        A header and one line per n-gram, joined by ``"\\n"``.

    Raises:
        ValueError: If ``bits`` is not 1 to 8, the table is not a cube of
            ``2**bits`` per side, or ``top`` is less than 1.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be 1 to 8, not {bits}")
    table = np.asarray(counts)
    side = 1 << bits
    if table.ndim < 1 or table.shape != (side,) * table.ndim:
        raise ValueError(
            f"an n-gram table of {bits} bits has {side} cells a side, not {table.shape}"
        )
    n = table.ndim
    flat = table.ravel()
    total = int(flat.sum())
    if total == 0:
        return f"0 {n}-grams: empty table"
    distinct = int(np.count_nonzero(flat))
    # Most frequent first; ties by index, so the listing is stable.
    order = np.lexsort((np.arange(flat.size), -flat.astype(np.int64)))[:top]
    order = order[flat[order] > 0]
    shift = 8 - bits
    kind = f"{n}-grams" if bits == 8 else f"{n}-grams of the top {bits} bits of each byte"
    lines = [f"{total:,} {kind}, {distinct:,} distinct; the {len(order)} most frequent:"]
    width = max(len(f"{int(flat[order[0]]):,}"), 5)
    for index in order:
        cell = np.unravel_index(int(index), table.shape)
        values = [int(v) << shift for v in cell]
        if bits == 8:
            seq = " ".join(f"{v:02x}" for v in values)
            chars = "".join(_printable(v) for v in values)
            label = f"{seq}  {chars}"
        else:
            label = " ".join(f"{v:02x}-{v + (1 << shift) - 1:02x}" for v in values)
        count = int(flat[index])
        lines.append(f"{label}  {count:>{width},}  {100 * count / total:6.2f}%")
    return "\n".join(lines)
