"""The interval bench/broker.py gives for a median of paired ratios (issue 13's verdict).

The sequential target's verdict reads the median of many paired ratios and
the interval around it; the interval is the sign test's, from order
statistics. Checked against the ranks that sign-test tables give (1, 2, 2, 6
and 14 for 6, 9, 10, 20 and 40 values), the normal approximation's for 80
(40 - 1.96 * sqrt(80) / 2 = 31.2), and by its coverage of a known median.
"""

from __future__ import annotations

import math
import random
from types import ModuleType

import pytest

from .helpers import bench_module


@pytest.fixture(scope="module")
def bench_broker() -> ModuleType:
    return bench_module("broker")


@pytest.mark.parametrize(
    ("n", "rank"),
    [(6, 1), (9, 2), (10, 2), (20, 6), (40, 14), (80, 31)],
)
def test_interval_is_the_sign_tests_order_statistics(
    bench_broker: ModuleType, n: int, rank: int
) -> None:
    values = [float(v) for v in range(1, n + 1)]
    random.Random(n).shuffle(values)  # the input's order does not matter
    assert bench_broker.median_interval(values) == (rank, n + 1 - rank)


def test_too_few_values_give_no_interval(bench_broker: ModuleType) -> None:
    # Five values: the widest interval, min to max, misses the median with
    # probability 2 / 32 > 5%.
    assert bench_broker.median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None


def test_interval_covers_a_known_median_at_least_as_often_as_it_says(
    bench_broker: ModuleType,
) -> None:
    rng = random.Random(13)
    median = math.log(2)  # of the exponential distribution of rate 1: skewed, as latencies are
    trials = 2000
    covered = 0
    for _ in range(trials):
        interval = bench_broker.median_interval([rng.expovariate(1.0) for _ in range(20)])
        assert interval is not None
        covered += interval[0] <= median <= interval[1]
    # Exactly 1 - 2 P(Binomial(20, 1/2) <= 5) = 95.9% in theory.
    assert 0.94 <= covered / trials <= 0.975
