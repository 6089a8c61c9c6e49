"""numba is loaded when an input needs it: never for a small file, at once for a big one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from binglide.services import kernels

pytestmark = pytest.mark.skipif(
    not kernels.NUMBA_AVAILABLE, reason="numba is not installed (or BINGLIDE_NO_NUMBA is set)"
)


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_small_inputs_are_counted_without_loading_numba_big_ones_load_it() -> None:
    _run(
        "import sys, numpy as np\n"
        "from binglide.services import kernels as k\n"
        "small = np.arange(4096, dtype=np.uint8)\n"
        "assert k.byte_histogram(small).sum() == 4096\n"
        "assert k.ent_finish(k.ent_partial(small))['size'] == 4096\n"
        "assert 'numba' not in sys.modules, 'a small input loaded numba'\n"
        "big = np.zeros(k._SMALL, dtype=np.uint8)\n"
        "assert k.byte_histogram(big)[0] == k._SMALL\n"
        "assert 'numba' in sys.modules and k._numba_loaded\n"
        # Once loaded, small inputs take the compiled loops too, with the same counts.
        "assert k.byte_histogram(small).tolist() == [16] * 256\n"
    )


def test_the_command_on_a_small_file_never_loads_numba(tmp_path: Path) -> None:
    sample = tmp_path / "small.bin"
    sample.write_bytes(bytes(range(256)) * 64)
    _run(
        "import sys\n"
        "from binglide.cli.main import main\n"
        f"assert main(['stats', {str(sample)!r}, '--quiet']) == 0\n"
        "assert 'numba' not in sys.modules, 'binglide stats on a small file loaded numba'\n"
    )
