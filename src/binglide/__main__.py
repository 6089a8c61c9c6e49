"""``python -m binglide``: the ``binglide`` command."""

from __future__ import annotations

import sys

from binglide.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
