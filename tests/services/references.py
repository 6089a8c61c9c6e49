"""Plain reference implementations of the kernels, written separately and simply.

Whole-array numpy and plain Python, no blocks, no cleverness: the kernels in
`binglide.services.kernels` are checked against these.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt


def byte_histogram(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    return np.bincount(data, minlength=256)


def ngram_histogram(
    data: npt.NDArray[np.uint8], n: int, bits: int, count: int | None = None
) -> npt.NDArray[np.int64]:
    if count is None:
        count = max(0, len(data) - n + 1)
    reduced = (data >> (8 - bits)).astype(np.int64)
    index = np.zeros(count, np.int64)
    for k in range(n):
        index = index * (1 << bits) + reduced[k : k + count]
    return np.bincount(index, minlength=1 << (n * bits)).reshape((1 << bits,) * n)


def segment_histograms(data: npt.NDArray[np.uint8], edges: Any) -> npt.NDArray[np.int64]:
    rows = [np.bincount(data[a:b], minlength=256) for a, b in itertools.pairwise(edges)]
    return np.array(rows, dtype=np.int64).reshape(-1, 256)


def entropy(counts: Any) -> float:
    total = sum(int(c) for c in counts)
    if total == 0:
        return 0.0
    return -sum(int(c) / total * math.log2(int(c) / total) for c in counts if c)


def sliding_entropy(data: npt.NDArray[np.uint8], window: int, positions: Any) -> list[float]:
    result = []
    for p in positions:
        lo = min(max(int(p) - window // 2, 0), len(data))
        hi = min(max(int(p) - window // 2 + window, 0), len(data))
        result.append(entropy(np.bincount(data[lo:hi], minlength=256)))
    return result


def diff_counts(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8], edges: Any) -> list[int]:
    return [int(np.count_nonzero(a[x:y] != b[x:y])) for x, y in itertools.pairwise(edges)]


def ent(data: bytes) -> dict[str, float]:
    """ent's statistics, straight from their definitions over the whole stream."""
    n = len(data)
    x = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    counts = np.bincount(x, minlength=256)
    groups = x[: n - n % 6].reshape(-1, 6)
    cx = groups[:, 0] * 65536 + groups[:, 1] * 256 + groups[:, 2]
    cy = groups[:, 3] * 65536 + groups[:, 4] * 256 + groups[:, 5]
    inside = int(np.count_nonzero(cx * cx + cy * cy <= (2**24 - 1) ** 2))
    nan = float("nan")
    s1 = float(np.sum(x * np.roll(x, -1)))  # circular: the last byte meets the first
    s = float(np.sum(x))
    s2 = float(np.sum(x * x))
    den = n * s2 - s * s
    result = {
        "size": float(n),
        "entropy": entropy(counts),
        "chi_square": float(np.sum((counts - n / 256) ** 2 / (n / 256))) if n else nan,
        "mean": s / n if n else nan,
        "monte_carlo_pi": 4.0 * inside / len(groups) if len(groups) else nan,
        "serial_correlation": (n * s1 - s * s) / den if den else -100000.0,
    }
    return result
