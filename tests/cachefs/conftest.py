"""Fixtures for the cache tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from binglide.cachefs import ChunkStore

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def store(tmp_path: Path) -> ChunkStore:
    """A fresh store in its own directory, with the default bound."""
    return ChunkStore(tmp_path / "cache")
