"""The kernels' fast paths: fused segment entropies, large-segment diffs, row entropies."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from binglide.services import kernels

from . import references as ref


@pytest.fixture(params=["numba", "numpy"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "numba" and not kernels.NUMBA_AVAILABLE:
        pytest.skip("numba is not available")
    monkeypatch.setattr(kernels, "_use_numba", request.param == "numba")
    return str(request.param)


def _data(size: int) -> np.ndarray:
    rng = np.random.default_rng(size)
    data = rng.integers(0, 256, size, dtype=np.uint8)
    data[: size // 3] = 0
    data[size // 2 : size // 2 + size // 8] = rng.integers(0, 4, size // 8, dtype=np.uint8)
    return data


@pytest.mark.parametrize("size", [0, 1, 1000, 300_001])
@pytest.mark.usefixtures("impl")
def test_segment_entropies_equal_histogram_then_entropy(size: int) -> None:
    data = _data(size)
    rng = np.random.default_rng(1)
    edges = np.unique(np.concatenate([[0, size], rng.integers(0, size + 1, 50)]))
    got = kernels.segment_entropies(data, edges)
    expected = [ref.entropy(ref.byte_histogram(data[a:b])) for a, b in itertools.pairwise(edges)]
    np.testing.assert_allclose(got, np.array(expected, dtype=np.float64), atol=1e-9)


@pytest.mark.usefixtures("impl")
def test_row_entropies_of_many_shapes() -> None:
    counts = np.random.default_rng(2).integers(0, 50, (3, 4, 256))
    counts[1, 2] = 0
    got = kernels.entropy_of_counts(counts)
    assert got.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert got[i, j] == pytest.approx(ref.entropy(counts[i, j]), abs=1e-9)
    assert kernels.entropy_of_counts(counts[0, 0]).shape == ()


@pytest.mark.parametrize("segments", [1, 3, 40])
@pytest.mark.usefixtures("impl")
def test_diff_counts_with_large_segments(segments: int) -> None:
    size = 3 * (1 << 20) + 17
    a = _data(size)
    b = a.copy()
    flips = np.random.default_rng(3).choice(size, 5000, replace=False)
    b[flips] ^= 1
    edges = np.linspace(0, size, segments + 1).astype(np.int64)
    got = kernels.diff_counts(a, b, edges)
    assert got.tolist() == ref.diff_counts(a, b, edges)
    assert int(got.sum()) == 5000


@pytest.mark.usefixtures("impl")
def test_histogram_of_long_runs_and_odd_lengths() -> None:
    for size in [1023, 1024, 1025, 4099, 1 << 20]:
        data = np.full(size, 0xAB, dtype=np.uint8)
        data[::7] = 3
        np.testing.assert_array_equal(kernels.byte_histogram(data), ref.byte_histogram(data))
