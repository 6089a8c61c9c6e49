"""binglide.cli: the ``binglide`` command (`binglide.cli.main`), and its process's entry point."""

from __future__ import annotations

import gc
from typing import NoReturn

__all__ = ("run",)


def run() -> NoReturn:
    """Run the ``binglide`` command as a process, and exit (the installed script).

    What only a whole process may do is done here, not in `binglide.cli.main`
    (which programs and tests import): the command's modules load with the
    garbage collector off, and what they made is then frozen. They make tens
    of thousands of objects (numpy's, the runtime's classes) that live until
    the exit; the collections their allocations set off on the way walk them
    again and again, and can free next to nothing.
    """
    gc.disable()
    try:
        from binglide.cli.main import run as run_command
    finally:
        gc.freeze()
        gc.enable()
    run_command()
