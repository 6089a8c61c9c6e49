"""Read the command's pictures back with Pillow, and find data coordinates in them."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.colors import to_rgb
from PIL import Image

from binglide.cli.pictures.figure import to_png

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def read_png(data: bytes) -> Image.Image:
    """Open a PNG file with Pillow, checking it is an opaque 8-bit RGB picture."""
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    assert image.mode == "RGB"
    return image


def render(figure: Figure) -> Image.Image:
    """Render `figure` as the command does, and read it back."""
    image = read_png(to_png(figure))
    width, height = figure.get_size_inches() * figure.dpi
    assert image.size == (round(width), round(height))
    return image


def pixels(image: Image.Image) -> np.ndarray:
    """Return the picture as a ``(height, width, 3)`` uint8 array."""
    return np.asarray(image, dtype=np.uint8)


def at(image: Image.Image, axes: Axes, x: float, y: float) -> tuple[int, int, int]:
    """Return the colour drawn at data coordinates ``(x, y)`` of `axes` (after rendering)."""
    column, row = where(image, axes, x, y)
    return tuple(int(c) for c in pixels(image)[row, column])  # type: ignore[return-value]


def where(image: Image.Image, axes: Axes, x: float, y: float) -> tuple[int, int]:
    """Return the (column, row) pixel of data coordinates ``(x, y)`` of `axes`."""
    px, py = axes.transData.transform((x, y))
    return int(px), int(image.height - py)


def rgb255(color: str) -> tuple[int, int, int]:
    """Return a matplotlib colour as 0-255 integers."""
    r, g, b = to_rgb(color)
    return round(r * 255), round(g * 255), round(b * 255)


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 3) -> bool:
    """Whether two colours are equal but for rounding."""
    return all(abs(p - q) <= tolerance for p, q in zip(a, b, strict=True))


def colorbars(figure: Figure) -> list[Axes]:
    """Return the colour bars' axes of `figure`."""
    return [a for a in figure.axes if a.get_label() == "<colorbar>"]


def legend_texts(figure: Figure) -> list[str]:
    """Return the entries of every legend of `figure` and its axes."""
    legends = [*figure.legends, *(a.get_legend() for a in figure.axes)]
    return [t.get_text() for legend in legends if legend is not None for t in legend.get_texts()]
