"""binglide.cachefs."""

from __future__ import annotations
