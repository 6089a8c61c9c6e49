"""Draw binglide's pictures of the sample binaries, and the docs' images.

Usage:
    python scripts/render_samples.py [--samples DIR] [--out DIR]   # every picture of every sample
    python scripts/render_samples.py --docs                        # docs/images/*.png

The counts are computed here with plain numpy (no broker, no cache), so this
script also shows what each picture function of `binglide.cli.pictures`
expects. Samples default to ``shared/samples`` beside the repository (or
beside its worktrees' folder); pictures go to /tmp/pictures, or with
``--docs`` to docs/images, which the README and docs/cli.md show.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from binglide.cli import pictures
from binglide.cli.pictures.figure import to_png

if TYPE_CHECKING:
    from collections.abc import Callable

    from matplotlib.figure import Figure

Bytes = NDArray[np.uint8]
ROOT = Path(__file__).resolve().parent.parent


def read(path: Path) -> Bytes:
    return np.fromfile(path, dtype=np.uint8)


def bigrams(data: Bytes) -> NDArray[np.int64]:
    pairs = data[:-1].astype(np.int64) * 256 + data[1:]
    return np.bincount(pairs, minlength=65536).reshape(256, 256)


def trigrams(data: Bytes, bits: int = 7) -> NDArray[np.int64]:
    q = (data >> (8 - bits)).astype(np.int64)
    n = 1 << bits
    index = (q[:-2] * n + q[1:-1]) * n + q[2:]
    return np.bincount(index, minlength=n**3).reshape(n, n, n)


def entropy(
    data: Bytes, starts: NDArray[np.int64], stops: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Entropy in bits per byte of ``data[start:stop]`` for each point."""
    out = np.empty(len(starts))
    for i, (a, b) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
        p = np.bincount(data[a:b], minlength=256) / max(b - a, 1)
        p = p[p > 0]
        out[i] = -(p * np.log2(p)).sum() + 0.0
    return out


def edges(length: int, points: int) -> NDArray[np.int64]:
    return (np.arange(points + 1, dtype=np.int64) * length) // points


def title(path: Path, data: Bytes) -> str:
    return f"{path.name}  0x0..{len(data):#x}"


def view(data: Bytes, side: int = 256) -> tuple[Bytes, list[list[int]]]:
    """A view of side*side bytes in side runs spread evenly, as the data service takes it."""
    runs = [[int(a), side] for a in np.linspace(0, len(data) - side, side).astype(np.int64)]
    return np.concatenate([data[a : a + n] for a, n in runs]), runs


def draw_bigram(path: Path, data: Bytes) -> Figure:
    return pictures.bigram_picture(bigrams(data), title=title(path, data))


def draw_bigram_rank(path: Path, data: Bytes) -> Figure:
    return pictures.bigram_picture(bigrams(data), leveling="rank", title=title(path, data))


def draw_trigram(path: Path, data: Bytes) -> Figure:
    return pictures.trigram_picture(trigrams(data), title=title(path, data))


def draw_entropy(path: Path, data: Bytes) -> Figure:
    e = edges(len(data), 1024)
    values = entropy(data, e[:-1], e[1:])
    return pictures.entropy_picture(values, starts=e[:-1], stops=e[1:], title=title(path, data))


def draw_hilbert_entropy(path: Path, data: Bytes) -> Figure:
    e = edges(len(data), 128 * 128)
    values = entropy(data, e[:-1], e[1:])
    return pictures.hilbert_entropy_picture(
        values, point_bytes=np.diff(e), order=7, title=title(path, data)
    )


def draw_byte_classes(path: Path, data: Bytes) -> Figure:
    sample, runs = view(data)
    note = pictures.sample_note(len(sample), runs, start=0, stop=len(data))
    return pictures.byte_class_picture(sample, note=note, title=title(path, data))


def draw_histogram(path: Path, data: Bytes) -> Figure:
    return pictures.histogram_picture(np.bincount(data, minlength=256), title=title(path, data))


DRAWINGS: dict[str, Callable[[Path, Bytes], Figure]] = {
    "bigram": draw_bigram,
    "bigram-rank": draw_bigram_rank,
    "trigram": draw_trigram,
    "entropy": draw_entropy,
    "hilbert-entropy": draw_hilbert_entropy,
    "hilbert-class": draw_byte_classes,
    "histogram": draw_histogram,
}

#: The docs' images: (drawing, sample).
DOCS = (
    ("bigram", "busybox-armv4l"),
    ("trigram", "busybox-mipsel"),
    ("entropy", "elf64-x86-64"),
    ("hilbert-entropy", "elf64-x86-64"),
    ("hilbert-class", "elf64-x86-64"),
    ("histogram", "elf64-x86-64"),
)


def draw_diff(a: Path) -> Figure:
    """Where a file and a copy of it with two patched regions, 4 KiB shorter, differ."""
    original = read(a)
    patched = original.copy()
    patched[0x40000:0x40010] ^= 0xFF
    patched[0xA0000:0xA8000] = np.random.default_rng(0).integers(0, 256, 0x8000, dtype=np.uint8)
    patched = patched[:-4096]
    length = len(original)
    e = edges(length, 1024)
    differ = np.ones(length, dtype=np.int64)
    differ[: len(patched)] = original[: len(patched)] != patched
    counts = np.add.reduceat(differ, e[:-1])
    return pictures.diff_picture(
        counts,
        starts=e[:-1],
        stops=e[1:],
        total=int(differ.sum()),
        sizes=[length, len(patched)],
        title=f"{a.name} vs {a.name}.patched",
    )


def write(out: Path, name: str, figure: Figure) -> None:
    path = out / name
    path.write_bytes(to_png(figure, title=name))
    sys.stdout.write(f"{path}  {path.stat().st_size:,} B\n")


def default_samples() -> Path:
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "samples").is_dir():
            return base / "shared" / "samples"
    return ROOT.parent / "shared" / "samples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=default_samples())
    parser.add_argument("--out", type=Path, default=Path("/tmp/pictures"))
    parser.add_argument("--docs", action="store_true", help="write docs/images/*.png")
    args = parser.parse_args()
    samples: Path = args.samples
    out: Path = ROOT / "docs" / "images" if args.docs else args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.docs:
        for drawing, sample in DOCS:
            path = samples / sample
            write(out, f"{drawing}-{sample}.png", DRAWINGS[drawing](path, read(path)))
        write(out, "diff-busybox-armv4l.png", draw_diff(samples / "busybox-armv4l"))
        return
    for path in sorted(samples.iterdir()):
        if path.suffix in (".txt", ".md"):
            continue
        data = read(path)
        stem = path.name.split(".")[-1] if path.name[0].isdigit() else path.name
        for drawing, draw in DRAWINGS.items():
            write(out, f"{drawing}-{stem}.png", draw(path, data))
    write(out, "diff-busybox-armv4l.png", draw_diff(samples / "busybox-armv4l"))


if __name__ == "__main__":
    main()
