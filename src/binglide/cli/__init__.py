"""binglide.cli: the ``binglide`` command (`binglide.cli.main`), and its process's entry point."""

from __future__ import annotations

import gc
import os
from typing import NoReturn

__all__ = ("run",)

#: What OpenBLAS reads for its number of threads, in its order.
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def run() -> NoReturn:
    """Run the ``binglide`` command as a process, and exit (the installed script).

    What only a whole process may do is done here, not in `binglide.cli.main`
    (which programs and tests import): the command's modules load with the
    garbage collector off, and what they made is then frozen. They make tens
    of thousands of objects (numpy's, the runtime's classes) that live until
    the exit; the collections their allocations set off on the way walk them
    again and again, and can free next to nothing.

    And unless the environment says otherwise, numpy's BLAS gets one thread:
    binglide does no BLAS work (its one dot product is on integers, which
    numpy computes without BLAS), and OpenBLAS, in numpy's wheels, starts a
    thread per core as numpy loads, each spinning for a while.
    """
    if not any(os.environ.get(name) for name in _BLAS_THREADS):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    gc.disable()
    try:
        from binglide.cli.main import run as run_command
    finally:
        gc.freeze()
        gc.enable()
    run_command()
