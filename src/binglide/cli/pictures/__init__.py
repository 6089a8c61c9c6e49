"""The command's pictures, drawn with matplotlib: one function a picture, each returning a Figure.

Each function takes the numpy arrays an analysis returns (and what the
picture must say about them) and returns a `matplotlib.figure.Figure` on an
Agg canvas; `to_png` makes the PNG file. The pictures follow the tools
reverse engineers already read: the bigram plot of binglide v1 and Cantor
Dust, the Hilbert-curve maps of scurve and binvis, and the entropy plot of
binwalk. Every coloured picture has a colour bar or a legend that says what
its colours mean.

- `figure`: the theme, the Agg canvas, axes of offsets and byte values,
  titles that fit, the PNG file;
- `palette`: the colours and byte classes the pictures share;
- `ngrams`: bigrams and trigrams;
- `profiles`: the entropy profile and the diff strip, along the offsets;
- `maps`: entropy and byte classes along a Hilbert curve;
- `histograms`: the byte histogram, alone or with ent's statistics.

The command imports this package only when ``--png`` asks for a picture:
matplotlib takes a good fraction of a second to import.
"""

from __future__ import annotations

from binglide.cli.pictures.figure import to_png as to_png
from binglide.cli.pictures.histograms import histogram_picture as histogram_picture
from binglide.cli.pictures.histograms import stats_picture as stats_picture
from binglide.cli.pictures.maps import byte_class_picture as byte_class_picture
from binglide.cli.pictures.maps import hilbert_d2xy as hilbert_d2xy
from binglide.cli.pictures.maps import hilbert_entropy_picture as hilbert_entropy_picture
from binglide.cli.pictures.maps import sample_note as sample_note
from binglide.cli.pictures.ngrams import TRIGRAM_POINTS as TRIGRAM_POINTS
from binglide.cli.pictures.ngrams import bigram_picture as bigram_picture
from binglide.cli.pictures.ngrams import trigram_picture as trigram_picture
from binglide.cli.pictures.palette import CLASS_COLORS as CLASS_COLORS
from binglide.cli.pictures.palette import CLASS_NAMES as CLASS_NAMES
from binglide.cli.pictures.palette import NO_DATA as NO_DATA
from binglide.cli.pictures.palette import PRINTABLE_TINT as PRINTABLE_TINT
from binglide.cli.pictures.palette import byte_classes as byte_classes
from binglide.cli.pictures.profiles import FULL_ENTROPY_BYTES as FULL_ENTROPY_BYTES
from binglide.cli.pictures.profiles import diff_picture as diff_picture
from binglide.cli.pictures.profiles import entropy_picture as entropy_picture

__all__ = (
    "CLASS_COLORS",
    "CLASS_NAMES",
    "FULL_ENTROPY_BYTES",
    "NO_DATA",
    "PRINTABLE_TINT",
    "TRIGRAM_POINTS",
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
    "to_png",
    "trigram_picture",
)
