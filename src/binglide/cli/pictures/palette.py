"""The pictures' colours and byte classes, shared so that the pictures read together."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np
from matplotlib.colors import Normalize

if TYPE_CHECKING:
    from matplotlib.colors import Colormap
    from numpy.typing import ArrayLike, NDArray

__all__ = (
    "CLASS_COLORS",
    "CLASS_NAMES",
    "ENTROPY_NORM",
    "NO_DATA",
    "PRINTABLE",
    "PRINTABLE_TINT",
    "byte_classes",
    "entropy_colormap",
)

#: The byte classes of scurve and binvis, in the order `byte_classes` numbers them.
CLASS_NAMES = ("0x00", "control", "printable ASCII", "0x80-0xFE", "0xFF")
#: Their colours: ColorBrewer "Set1" for the three ranges, black and white for the two bytes.
CLASS_COLORS = ("#000000", "#4daf4a", "#377eb8", "#e41a1c", "#ffffff")
#: Cells past the end of the data in the maps, and points without data in the profiles.
NO_DATA = "#3a3a40"
#: Zero pairs inside the printable square of the bigram plot: a tint, so the square shows.
PRINTABLE_TINT = "#0e1a2e"
#: ``[start, stop)`` of the printable ASCII bytes.
PRINTABLE = (0x20, 0x7F)
#: Entropy runs from 0 to 8 bits per byte.
ENTROPY_NORM = Normalize(0.0, 8.0)


def entropy_colormap() -> Colormap:
    """Return the entropy colours: blue (padding, tables) to red (compressed, encrypted).

    matplotlib's "turbo", which reads as binwalk's entropy plot does.
    """
    return mpl.colormaps["turbo"]


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
