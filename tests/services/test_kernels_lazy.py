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


def test_preloading_loads_numba_and_the_ent_kernel_on_one_thread_once() -> None:
    _run(
        "import sys, threading, numpy as np\n"
        "from binglide.services import kernels as k\n"
        "loader = k.preload_numba()\n"
        "assert isinstance(loader, threading.Thread)\n"
        "assert loader is not threading.current_thread()\n"
        "assert k.preload_numba() is loader, 'a second call started another thread'\n"
        "loader.join(60)\n"
        "assert not loader.is_alive() and k._numba_loaded\n"
        # ent's piece kernel is loaded for the arguments a piece passes it:
        # the first large file's piece finds it ready (a file's partials
        # count the Monte Carlo groups of one residue, as the stream starts there).
        "before = list(k._nb_ent_piece_at.signatures)\n"
        "assert len(before) == 1, before\n"
        "acc = k.EntAccumulator(residue=0)\n"
        "acc.add(np.arange(k._SMALL + 5, dtype=np.uint8), k._SMALL)\n"
        "assert k._nb_ent_piece_at.signatures == before, 'a piece needed another signature'\n"
        "assert acc.partial().size == k._SMALL\n"
    )


def test_preloading_does_nothing_when_numba_is_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kernels, "_use_numba", False)
    assert kernels.preload_numba() is None


def test_small_entropies_have_the_same_bits_whether_numba_is_loaded_or_not() -> None:
    # A command on a small file runs without numba; the library in a process
    # that has loaded it (for a large file earlier) must give the same bits
    # for the same bytes, or a cached answer and a fresh one disagree.
    _run(
        "import numpy as np\n"
        "from binglide.services import kernels as k\n"
        "rng = np.random.default_rng(7)\n"
        # Skewed bytes: entropies whose terms round differently in the two
        # paths (numpy's vector log2 and pairwise sums, numba's loops).
        "data = np.minimum(rng.exponential(24.0, 300_000), 255).astype(np.uint8)\n"
        "edges = np.arange(0, data.shape[0] + 1, 3000)\n"
        "counts = k.segment_histograms(data, edges)\n"
        "def each():\n"
        "    return k.segment_entropies(data, edges), k.entropy_of_counts(counts)\n"
        "cold = each()\n"
        "assert not k._numba_loaded\n"
        "k.byte_histogram(np.zeros(k._SMALL, np.uint8))\n"
        "assert k._numba_loaded\n"
        "warm = each()\n"
        "for before, after in zip(cold, warm):\n"
        "    assert before.tobytes() == after.tobytes(), np.flatnonzero(before != after)\n"
    )


def test_sliding_windows_cut_into_small_runs_give_the_bits_of_one_large_run() -> None:
    # In a fresh process: runs of windows spanning a few KiB each (as the
    # service's sub-requests may be) against one run over more than a MiB.
    _run(
        "import numpy as np\n"
        "from binglide.services import kernels as k\n"
        "from binglide.services.sliding import FRESH_EVERY, sliding_entropies\n"
        "rng = np.random.default_rng(11)\n"
        "data = np.minimum(rng.exponential(24.0, 3 * k._SMALL // 2), 255).astype(np.uint8)\n"
        "read = lambda runs, slot: np.concatenate([data[a:b] for a, b in runs.tolist()])\n"
        "lo = np.arange(0, data.shape[0] - 4096, 61)\n"
        "hi = lo + 4096\n"
        "assert FRESH_EVERY == 64\n"
        "cuts = range(0, lo.shape[0], FRESH_EVERY)\n"
        "runs = [sliding_entropies(read, lo[i : i + 64], hi[i : i + 64], base=i) for i in cuts]\n"
        "whole = sliding_entropies(read, lo, hi)\n"
        "assert np.concatenate(runs).tobytes() == whole.tobytes()\n"
    )
