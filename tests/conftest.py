"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No test may read or fill the user's real cache.
    monkeypatch.setenv("BINGLIDE_CACHE_DIR", os.fspath(tmp_path_factory.mktemp("cache")))
