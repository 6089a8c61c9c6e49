"""Starting the command: a small run loads only what it uses, and exits without a last GC.

Each test runs a fresh interpreter (what is imported is a property of the
process), on a small file, and checks what the run left in ``sys.modules``,
or how it ended. No timing is asserted: bench/startup.py measures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def _run(code: str, *, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    return done.stdout


def _sample(tmp_path: Path) -> Path:
    sample = tmp_path / "small.bin"
    sample.write_bytes(bytes(range(256)) * 64)
    return sample


def _stats_argv(sample: Path, tmp_path: Path) -> str:
    """The line of a child's code that makes its command `binglide stats SAMPLE`."""
    return (
        f"sys.argv = ['binglide', 'stats', {str(sample)!r}, '--quiet',"
        f" '--cache-dir', {str(tmp_path / 'cache')!r}]\n"
    )


def test_a_small_analysis_loads_neither_other_sub_commands_nor_what_it_does_not_ask_for(
    tmp_path: Path,
) -> None:
    sample = _sample(tmp_path)
    out = _run(
        "import sys\n"
        "from binglide.cli.main import main\n"
        f"assert main(['stats', {str(sample)!r}, '--quiet',"
        f" '--cache-dir', {str(tmp_path / 'cache')!r}]) == 0\n"
        "print(sorted(m for m in (\n"
        "    'binglide.cli.deploy',\n"  # broker, worker, keys
        "    'binglide.supervisor',\n"
        "    'binglide.cli.view',\n"  # the viewer's command (webbrowser, shlex)
        "    'binglide.services.files',\n"  # serving files: only with --serve-files
        "    'fractions',\n"  # sizes: only when one is parsed
        ") if m in sys.modules))\n",
        cwd=tmp_path,
    )
    assert out.strip() == "[]"


def test_each_sub_command_parses_with_its_options_alone(tmp_path: Path) -> None:
    # Only the named sub-command gets its options; each must still parse as
    # when the whole parser is built.
    from binglide.cli.main import build_parser

    for argv in (
        ["stats", "f", "--range", "4K:", "--no-cache", "--jsonl", "-"],
        ["diff", "a", "b", "--workers", "2"],
        ["broker", "--bind", "tcp://127.0.0.1:5555"],
        ["worker", "--connect", "tcp://127.0.0.1:5555"],
        ["keys", str(tmp_path)],
        ["view", "f", "--no-browser"],
        ["cache", "info"],
    ):
        alone = build_parser(argv)
        assert vars(alone.parse_args(argv)) == vars(build_parser().parse_args(argv)), argv
        (commands,) = (a for a in alone._actions if isinstance(a, argparse._SubParsersAction))
        assert list(commands.choices) == [argv[0]]


def test_the_command_freezes_its_objects_before_it_exits(tmp_path: Path) -> None:
    # At exit the interpreter collects garbage again and again while it
    # tears the modules down; frozen objects are not walked. What runs at
    # exit (atexit, after run's sys.exit) sees them frozen.
    sample = _sample(tmp_path)
    out = _run(
        "import atexit, gc, sys\n"
        "from binglide.cli.main import run\n"
        "atexit.register(lambda: print('frozen:', gc.get_freeze_count() > 0))\n"
        + _stats_argv(sample, tmp_path)
        + "run()\n",
        cwd=tmp_path,
    )
    assert out.strip() == "frozen: True"


def test_the_entry_point_loads_the_command_without_collecting(tmp_path: Path) -> None:
    # Collections that start while binglide.cli.main is still being imported
    # (in sys.modules, its `run` not yet defined) walk objects that live
    # until the exit.
    sample = _sample(tmp_path)
    out = _run(
        "import atexit, gc, sys\n"
        "during = []\n"
        "def watch(phase, info):\n"
        "    module = sys.modules.get('binglide.cli.main')\n"
        "    if phase == 'start' and module is not None and not hasattr(module, 'run'):\n"
        "        during.append(info['generation'])\n"
        "gc.callbacks.append(watch)\n"
        "import binglide.cli\n"
        "atexit.register(lambda: print('collections while loading:', len(during)))\n"
        + _stats_argv(sample, tmp_path)
        + "binglide.cli.run()\n",
        cwd=tmp_path,
    )
    assert out.strip() == "collections while loading: 0"


def test_the_command_runs_with_the_collector_on_and_what_was_loaded_frozen(
    tmp_path: Path,
) -> None:
    # A long run makes garbage: the collector must be back on once loading is done.
    sample = _sample(tmp_path)
    out = _run(
        "import atexit, gc, sys\n"
        "import binglide.cli, binglide.cli.main as command\n"
        "seen = []\n"
        "original = command.main\n"
        "def main(argv=None):\n"
        "    seen.append((gc.isenabled(), gc.get_freeze_count() > 0))\n"
        "    return original(argv)\n"
        "command.main = main\n"
        "atexit.register(lambda: print(seen))\n"
        + _stats_argv(sample, tmp_path)
        + "binglide.cli.run()\n",
        cwd=tmp_path,
    )
    assert out.strip() == "[(True, True)]"


def test_the_command_gives_blas_one_thread_unless_the_environment_chose(tmp_path: Path) -> None:
    # OpenBLAS starts a thread per core as numpy loads; binglide does no BLAS
    # work. A count the user chose is theirs.
    sample = _sample(tmp_path)
    code = (
        "import atexit, os, sys\n"
        "atexit.register(lambda: print(os.environ.get('OPENBLAS_NUM_THREADS')))\n"
        "import binglide.cli\n" + _stats_argv(sample, tmp_path) + "binglide.cli.run()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "1"
    chosen = {**env, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=chosen, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "None"
