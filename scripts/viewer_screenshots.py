"""Make the pictures of docs/viewer.md from the real page, in Debian's Chromium.

    python scripts/viewer_screenshots.py [--samples DIR] [--out docs/images]

Three views: busybox for ARM (a sample of ../shared/samples) with the
selection on its densest text; a 64 GiB sparse file coloured by entropy in
the Hilbert layout; and two files compared (busybox and a copy with a few
changed runs). Each waits until the views it shows are exact (the sparse
file's maps: until they have painted their estimate).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import numpy as np

import binglide
from binglide.viewer import ClassesService, serve

ROOT = Path(__file__).resolve().parent.parent
#: The shared samples: beside the clone (CI), or beside the work trees.
SAMPLES = next(
    (p for p in (ROOT.parent / "shared" / "samples", ROOT.parents[1] / "shared" / "samples")
     if p.is_dir()),
    ROOT.parent / "shared" / "samples",
)  # fmt: skip
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
#: A 1920x1080 screen: the maps 128 buckets wide, every panel in one row.
VIEWPORT = {"width": 1920, "height": 1080}


def densest_text(data: bytes, window: int) -> tuple[int, int]:
    """The `window` bytes (aligned on 4 KiB) with the most printable bytes."""
    b = np.frombuffer(data, dtype=np.uint8)
    printable = ((b >= 0x20) & (b < 0x7F)) | (b == 0x0A)
    sums = np.concatenate([[0], np.cumsum(printable)])
    starts = np.arange(0, max(1, len(b) - window), 4096)
    best = int(starts[np.argmax(sums[np.minimum(starts + window, len(b))] - sums[starts])])
    return best, min(len(b), best + window)


async def shoot(b: Any, paths: list[Path], query: str, out: Path, wait: str) -> None:
    with tempfile.TemporaryDirectory(
        prefix="binglide-shots-", ignore_cleanup_errors=True
    ) as cache:
        async with (
            binglide.connect(services=[ClassesService], workers=2, cache_dir=cache) as client,
            serve(client, paths) as viewer,
        ):
            page = await b.new_page(viewport=VIEWPORT)
            await page.goto(viewer.url + query)
            await page.wait_for_function("() => window.binglide && window.binglide.ready")
            await page.wait_for_function(wait, timeout=120_000)
            await page.wait_for_timeout(300)
            await page.screenshot(path=str(out))
            await page.close()
    await anyio.to_thread.run_sync(shrink, out)


def shrink(path: Path) -> None:
    """Store the picture with a 256-colour palette: far fewer bytes, the same look."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")  # noqa: T201 - a script


EXACT = """() => [...document.querySelectorAll('.views .indicator, .side .indicator')]
                   .every(n => n.classList.contains('exact'))"""
PAINTED = "() => window.binglide.firstMapPaint && window.binglide.views.bigram.counts"


async def main(samples: Path, out: Path) -> None:
    from playwright.async_api import async_playwright

    busybox = samples / "busybox-armv4l"
    if not busybox.exists():
        sys.exit(f"{busybox} is missing: the screenshots need the shared samples")
    data = busybox.read_bytes()
    with tempfile.TemporaryDirectory(prefix="binglide-shots-", ignore_cleanup_errors=True) as work:
        changed = Path(work) / "busybox-armv4l.patched"
        patched = bytearray(data)
        rng = np.random.default_rng(3)
        for at in (0x1234, 0x40000, 0x40010, 0xA0000):
            patched[at : at + 48] = rng.bytes(48)
        changed.write_bytes(bytes(patched))
        sparse = Path(work) / "disk-64g.img"
        with sparse.open("wb") as f:
            f.truncate(64 << 30)
            for at in (0, 9 << 30, 41 << 30):
                f.seek(at)
                f.write(data)
            f.seek(23 << 30)
            f.write(rng.bytes(32 << 20))
        lo, hi = densest_text(data, 64 << 10)
        async with async_playwright() as p:
            b = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                await shoot(
                    b,
                    [busybox],
                    f"?region={max(0, lo - (256 << 10)):#x}-{min(len(data), hi + (256 << 10)):#x}"
                    f"&sel={lo:#x}-{hi:#x}&cursor={lo + 0x40:#x}",
                    out / "viewer-busybox.png",
                    EXACT,
                )
                await shoot(
                    b,
                    [sparse],
                    "?mode=entropy&layout=hilbert&sel=0x0-0x100000",
                    out / "viewer-sparse-64g.png",
                    PAINTED,
                )
                await shoot(
                    b,
                    [busybox, changed],
                    "?region=0x0-0xc0000&sel=0x3f000-0x42000&cursor=0x40000",
                    out / "viewer-diff.png",
                    EXACT,
                )
            finally:
                await b.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    anyio.run(main, args.samples, args.out, backend="asyncio")
