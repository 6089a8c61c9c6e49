"""Byte counts as people write them: ``4096``, ``0x1000``, ``4K``, ``1.5MiB``.

One grammar for every place binglide reads a size or an offset: the cache's
bound in the environment (``BINGLIDE_CACHE_MAX_SIZE``), and the command's
options (``--range``, ``--cache-max-size``), which take it from here.
Standard library only.
"""

from __future__ import annotations

import re

__all__ = ("parse_size",)

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE_RE = re.compile(
    r"""^\s*(?:
        (?P<hex>0[xX][0-9a-fA-F_]+)
      | (?P<number>[0-9][0-9_]*(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>[kKmMgGtTpP]?)(?:i?[bB])?
    )\s*$""",
    re.VERBOSE,
)


def parse_size(s: str) -> int:
    """Parse a byte count or offset as people write them.

    Accepts decimal (``4096``), hexadecimal (``0x1000``) and decimal numbers
    with a binary unit: ``K``, ``M``, ``G``, ``T``, ``P`` are powers of 1024,
    optionally followed by ``B`` or ``iB`` (``4K``, ``4KiB``, ``1.5M``).  A
    lone ``B`` means bytes.

    Args:
        s: The text to parse.

    Returns:
        The number of bytes.

    Raises:
        ValueError: If ``s`` is not one of these forms, is negative, or names
            a fraction of a byte (``1.3K``).
    """
    match = _SIZE_RE.match(s)
    if match is None:
        raise ValueError(
            f"invalid offset {s!r}: expected a number of bytes such as 4096, 0x1000, 4K or 1.5MiB"
        )
    if match["hex"] is not None:
        return int(match["hex"], 16)
    # Fraction keeps "1.5M" exact where a float could round. Imported here:
    # fractions loads decimal, a few milliseconds every start of the command
    # would pay for nothing (most runs parse no size).
    from fractions import Fraction

    value = Fraction(match["number"].replace("_", "")) * _UNITS[match["unit"].upper()]
    if value.denominator != 1:
        raise ValueError(f"invalid offset {s!r}: {float(value)} is not a whole number of bytes")
    return int(value)
