"""Ids: the id source and its taker, job ids and their prefix."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from binglide.core import IdSource, job_id_for, origin_of
from binglide.core.ids import job_prefix


def test_an_id_source_counts_up_from_its_first_id_and_its_taker_shares_the_count() -> None:
    ids = IdSource(7)
    take = ids.taker()
    assert [ids(), take(), ids(), take()] == [7, 8, 9, 10]


def test_the_taker_of_a_subclass_is_its_own_call() -> None:
    # A source that overrides its call (a test's failing one, say) is obeyed
    # by a machine that took its taker.
    class Tens(IdSource):
        def __call__(self) -> int:
            return 10 * super().__call__()

    take = Tens(1).taker()
    assert [take(), take()] == [10, 20]


@given(st.text(), st.integers(min_value=-(10**12), max_value=10**12))
def test_a_job_id_is_its_clients_prefix_and_the_request_id(cid: str, rid: int) -> None:
    job = job_id_for(cid, rid)
    assert job_prefix(cid) + str(rid) == job
    assert origin_of(job) == cid
