"""ChunkKey: validation, file names, parsing back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binglide.cachefs import ChunkKey, key_prefix


def test_filename_one_and_two_ids():
    assert (
        ChunkKey("HIST", ("3f2a9c",), 1048576, 2097152).filename == "HIST_3f2a9c.1048576_2097152"
    )
    key = ChunkKey("DIFF", ("3f2a9c", "77b01e"), 0, 4096)
    assert key.filename == "DIFF_3f2a9c_77b01e.0_4096"
    assert key.prefix == "DIFF_3f2a9c_77b01e."
    assert key.size == 4096
    assert key_prefix("DIFF", ("3f2a9c", "77b01e")) == key.prefix


@pytest.mark.parametrize(
    "resource", ["", "hist", "HI_ST", "HI.ST", "../x", "A/B", "A\\B", "A\0", "É", "A" * 65, "X\n"]
)
def test_bad_resource_refused(resource):
    with pytest.raises(ValueError, match="resource"):
        ChunkKey(resource, ("ab",), 0, 1)
    with pytest.raises(ValueError, match="resource"):
        key_prefix(resource, ("ab",))


@pytest.mark.parametrize(
    "ids",
    [
        (),
        ("",),
        ("AB",),
        ("a/b",),
        ("..",),
        ("../x",),
        ("a_b",),
        ("a.b",),
        ("a", "b", "c"),
        ("a" * 65,),
        ("ab\n",),
        ("ａ",),  # full-width: not ASCII  # noqa: RUF001
        "ab",
        ["ab"],
        (1,),
    ],
)
def test_bad_ids_refused(ids):
    with pytest.raises(ValueError, match=r"ids|id "):
        ChunkKey("HIST", ids, 0, 1)


@pytest.mark.parametrize(
    ("start", "stop"), [(-1, 1), (1, 1), (2, 1), (0, 2**64), (True, 2), (0, 1.0), ("0", "1")]
)
def test_bad_range_refused(start, stop):
    with pytest.raises(ValueError, match="cache"):
        ChunkKey("HIST", ("ab",), start, stop)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "HIST_ab.0_1.bak",
        ".HIST_ab.0_1.123.deadbeef.tmp",
        "HIST_ab.01_2",
        "HIST_ab.-1_2",
        "HIST_ab.2_1",
        "HIST_ab.1_1",
        "HIST_ab.0_1\n",
        "HIST_ab_cd_ef.0_1",
        "HIST.0_1",
        "hist_ab.0_1",
        "HIST_ab.0_18446744073709551616",
        "HIST_ab.0_1/..",
        "README.md",
    ],
)
def test_foreign_names_are_not_keys(name):
    assert ChunkKey.from_filename(name) is None


def test_largest_offset_round_trips():
    key = ChunkKey("HIST", ("ab",), 0, 2**64 - 1)
    assert ChunkKey.from_filename(key.filename) == key


resources = st.one_of(st.from_regex(r"[A-Z0-9]{1,70}", fullmatch=True), st.text(max_size=8))
source_ids = st.one_of(st.from_regex(r"[0-9a-z]{1,70}", fullmatch=True), st.text(max_size=8))
offsets = st.integers(min_value=-5, max_value=2**64 + 5)


@given(resources, st.lists(source_ids, min_size=0, max_size=3).map(tuple), offsets, offsets)
def test_accepted_keys_have_safe_names_that_round_trip(resource, ids, start, stop):
    try:
        key = ChunkKey(resource, ids, start, stop)
    except ValueError:
        return
    name = key.filename
    assert not set(name) & {"/", "\\", "\0", "\n"}
    assert not name.startswith(".")
    assert name.isascii()
    assert len(name.encode()) < 255
    assert ChunkKey.from_filename(name) == key


@given(st.text())
def test_parsing_any_text_never_raises(name):
    key = ChunkKey.from_filename(name)
    assert key is None or key.filename == name
