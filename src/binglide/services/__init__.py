"""The built-in analyses and the helpers they share (sources, chunks, kernels)."""

from __future__ import annotations
