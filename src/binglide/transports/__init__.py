"""binglide.transports."""

from __future__ import annotations
