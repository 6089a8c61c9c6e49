"""The broker machine in a simulated cluster: deaths, cancellations, sub-requests, fairness.

bench/simulate.py drives the real sans-IO machines (broker, clients, workers)
on a virtual clock to measure how one broker scales; here a small cluster of
the same simulation checks what the figures rely on: every job ends, none is
lost or failed while workers die and jobs are cancelled, and clients of equal
demand get equal throughput.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from .helpers import bench_module


@pytest.fixture(scope="module")
def simulate() -> ModuleType:
    return bench_module("simulate")


def test_every_job_ends_while_workers_die_and_jobs_are_cancelled(simulate: ModuleType) -> None:
    scale = simulate.Scale(workers=24, services=8, clients=6, tasks=4000)
    # 24 workers of 12 s between deaths each: two deaths a virtual second,
    # about ten in the run.
    model = simulate.Model(mtbf=12.0, cancel=0.05, grace=30.0)
    result = simulate.Simulation(scale, model, seed=7).run()
    assert result.deaths >= 5
    assert result.requeued >= 1  # a dead worker's tasks were re-issued
    assert result.cancelled >= 10
    assert (result.lost, result.failed) == (0, 0)
    assert result.tasks >= 3000
    assert result.jain >= 0.95


def test_the_simulation_is_deterministic(simulate: ModuleType) -> None:
    scale = simulate.Scale(workers=12, services=4, clients=4, tasks=600)
    model = simulate.Model(mtbf=12.0)
    first = simulate.Simulation(scale, model, seed=3).run()
    second = simulate.Simulation(scale, model, seed=3).run()
    same = ("tasks", "deaths", "requeued", "cancelled", "virtual_seconds", "max_wait")
    assert [getattr(first, k) for k in same] == [getattr(second, k) for k in same]
