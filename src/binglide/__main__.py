"""``python -m binglide``: the ``binglide`` command."""

from __future__ import annotations

from binglide.cli import run

if __name__ == "__main__":
    run()
