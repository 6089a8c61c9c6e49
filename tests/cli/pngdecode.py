"""An independent PNG reader for the tests: chunks, CRCs, inflate, unfilter."""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 6: 4}


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG file into (type, data) chunks, checking every CRC."""
    assert data[:8] == SIGNATURE
    out = []
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        out.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    return out


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode(data: bytes) -> NDArray[np.uint8]:
    """Decode an 8-bit, non-interlaced PNG into (h, w) or (h, w, channels)."""
    parts = chunks(data)
    assert parts[0][0] == b"IHDR"
    assert parts[-1] == (b"IEND", b"")
    w, h, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", parts[0][1])
    assert (depth, compression, filtering, interlace) == (8, 0, 0, 0)
    channels = CHANNELS[color]
    raw = zlib.decompress(b"".join(body for kind, body in parts if kind == b"IDAT"))
    stride = w * channels
    assert len(raw) == h * (stride + 1)
    prev = [0] * stride
    rows = []
    for y in range(h):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        kind, filtered = line[0], line[1:]
        cur = [0] * stride
        for x in range(stride):
            a = cur[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            predictor = {0: 0, 1: a, 2: b, 3: (a + b) // 2}.get(kind)
            if predictor is None:
                assert kind == 4, f"unknown filter {kind}"
                predictor = _paeth(a, b, c)
            cur[x] = (filtered[x] + predictor) & 0xFF
        rows.append(cur)
        prev = cur
    pixels = np.array(rows, dtype=np.uint8).reshape(h, w, channels)
    return pixels[:, :, 0] if channels == 1 else pixels
