"""Render binglide's pictures of sample binaries with plain numpy.

Usage: python scripts/render_samples.py [SAMPLES_DIR] [OUT_DIR]

The counts are computed here directly (no broker, no cache), so this script
shows what each picture function expects and makes the README's images.
Defaults: ../shared/samples next to the repository, and /tmp/pictures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from binglide.cli.pictures import (  # noqa: E402 (the path is set just above)
    bigram_picture,
    diff_picture,
    entropy_picture,
    hilbert_picture,
    trigram_picture,
)
from binglide.cli.png import encode_png  # noqa: E402

Bytes = NDArray[np.uint8]


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


def windows_entropy(data: Bytes, starts: NDArray[np.int64], window: int) -> NDArray[np.float64]:
    """Entropy in bits per byte of ``data[s : s + window]`` for each start."""
    offsets = np.minimum(starts[:, None] + np.arange(window), len(data) - 1)
    rows = np.arange(len(starts))[:, None]
    counts = np.zeros((len(starts), 256), dtype=np.float64)
    np.add.at(counts, (np.broadcast_to(rows, offsets.shape), data[offsets]), 1)
    p = counts / window
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return np.asarray(terms.sum(axis=1), dtype=np.float64)


def block_entropy(data: Bytes, blocks: int) -> NDArray[np.float64]:
    size = len(data) // blocks
    starts = np.arange(blocks, dtype=np.int64) * size
    return windows_entropy(data, starts, size)


def write(out: Path, name: str, image: NDArray[np.uint8]) -> None:
    path = out / name
    path.write_bytes(encode_png(image))
    sys.stdout.write(f"{path}  {image.shape[1]}x{image.shape[0]}  {path.stat().st_size:,} B\n")


def main() -> None:
    samples = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "samples"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp/pictures")
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(samples.iterdir()):
        if path.suffix in (".txt", ".md"):
            continue
        data = read(path)
        stem = path.name.split(".")[-1] if path.name[0].isdigit() else path.name
        write(out, f"bigram-{stem}.png", bigram_picture(bigrams(data), title=path.name))
        write(
            out,
            f"bigram-rank-{stem}.png",
            bigram_picture(bigrams(data), leveling="rank", title=f"{path.name} (rank)"),
        )
        write(out, f"trigram-{stem}.png", trigram_picture(trigrams(data), title=path.name))
        write(
            out,
            f"entropy-{stem}.png",
            entropy_picture(
                # Blocks of at least 4 KiB: a block of n bytes cannot show
                # more than log2(n) bits per byte.
                block_entropy(data, max(min(1024, len(data) // 4096), 1)),
                start=0,
                stop=len(data),
                title=f"{path.name}: entropy",
            ),
        )
        order = 7
        starts = (np.arange(4**order, dtype=np.int64) * len(data)) // 4**order
        cells = windows_entropy(data, starts, 512)
        write(
            out,
            f"hilbert-entropy-{stem}.png",
            hilbert_picture(cells, order=order, title=f"{path.name}: entropy"),
        )
        write(
            out,
            f"hilbert-class-{stem}.png",
            hilbert_picture(data, order=9, mode="class", title=f"{path.name}: byte classes"),
        )
    a = samples / "busybox-armv4l"
    b = samples / "busybox-armv4eb"
    if a.exists() and b.exists():
        da, db = read(a), read(b)
        n = min(len(da), len(db))
        points = 1024
        span = -(-n // points)
        differ = np.zeros(points * span, dtype=np.int64)
        differ[:n] = da[:n] != db[:n]
        counts = differ.reshape(points, span).sum(axis=1)
        write(
            out,
            "diff-busybox-armv4l-armv4eb.png",
            diff_picture(
                counts,
                span,
                total=int(counts.sum()),
                sizes=[len(da), len(db)],
                title="busybox-armv4l vs busybox-armv4eb",
            ),
        )


if __name__ == "__main__":
    main()
