"""Start-up benchmark: the ``binglide`` command and ``import binglide`` as whole processes.

Times, as wall time of whole processes (fork, interpreter start, imports,
the work, exit), median of ``--repeat`` runs, interleaved so that the
machine's load moves every figure alike:

- ``binglide stats FILE`` (the command a person types; numba is not loaded
  for a small file), beside ``ent FILE``, which prints the same statistics
  (``/usr/bin/ent``, the yardstick);
- ``python -c "import binglide"``;
- ``python -c pass`` and ``python -c "import numpy"``: the floor every Python
  program pays, and what numpy alone costs.

Every process runs with a bytecode cache, as installed programs do (``pip
install`` compiles every module it installs): the first, untimed, run of
each command writes it under a temporary ``PYTHONPYCACHEPREFIX``, so the
source tree is left alone even when the package is installed in editable
mode, and ``PYTHONDONTWRITEBYTECODE`` in the environment is ignored. One more
line, ``PYTHONDONTWRITEBYTECODE=1``, times the command as the environment's
own bytecode (no prefix, nothing written) leaves it: with an editable install
whose source tree holds no ``__pycache__``, every module of the package is
compiled on every run, which earlier figures in bench/RESULTS.md included.

Run::

    python bench/startup.py [--repeat 20] [--file /bin/ls] [--binglide SCRIPT] [--baseline SCRIPT]

The last lines compare the figures with issue 13's targets (the command at
most 0.3 s, the import at most 0.15 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The command, as installed next to this interpreter (the venv's script).
BINGLIDE = Path(sys.executable).with_name("binglide")


def wall(argv: list[str], env: dict[str, str]) -> float:
    """Run `argv` to its end (output discarded) and return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--file", default="/bin/ls")
    parser.add_argument(
        "--binglide",
        default=str(BINGLIDE),
        metavar="SCRIPT",
        help="the binglide script to time (default: the one next to this interpreter)",
    )
    parser.add_argument(
        "--baseline",
        metavar="SCRIPT",
        help="another commit's binglide script, timed in the same runs (interleaved), with"
        " the ratio of the two",
    )
    args = parser.parse_args(argv)
    ent = shutil.which("ent")
    stats = [args.binglide, "stats", args.file]
    commands = {
        "binglide stats FILE": stats,
        "ent FILE": [ent, args.file] if ent else None,
        "python -c 'import binglide'": [sys.executable, "-c", "import binglide"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
        "  PYTHONDONTWRITEBYTECODE=1": stats,
        "baseline: binglide stats FILE": (
            [args.baseline, "stats", args.file] if args.baseline else None
        ),
    }
    with tempfile.TemporaryDirectory(prefix="binglide-bench-pyc-") as pycache:
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = pycache
        uncached = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
        uncached["PYTHONDONTWRITEBYTECODE"] = "1"
        envs = {name: uncached if "BYTECODE" in name else cached for name in commands}
        runs: dict[str, list[float]] = {name: [] for name, cmd in commands.items() if cmd}
        # Warm the page cache, write the bytecode, and numba's disk cache.
        for name, cmd in commands.items():
            if cmd:
                wall(cmd, envs[name])
        for _ in range(args.repeat):
            for name, cmd in commands.items():
                if cmd:
                    runs[name].append(wall(cmd, envs[name]))
    size = os.path.getsize(args.file)
    print(f"whole processes, median of {args.repeat} interleaved runs ({args.file}: {size} B)")
    print(
        "bytecode cached, as an installed package's is (but on the PYTHONDONTWRITEBYTECODE line)"
    )
    print(f"{'':32} {'median s':>9} {'min s':>7} {'max s':>7}")
    med = {}
    for name, times in runs.items():
        med[name] = statistics.median(times)
        print(f"{name:32} {med[name]:9.3f} {min(times):7.3f} {max(times):7.3f}")
    command, imported = med["binglide stats FILE"], med["python -c 'import binglide'"]
    if "ent FILE" in med:
        print(f"binglide stats / ent: x{command / med['ent FILE']:.1f}")
    if args.baseline:
        baseline = med["baseline: binglide stats FILE"]
        print(f"binglide stats / baseline ({args.baseline}): x{command / baseline:.2f}")
    print("targets (issue 13):")
    for what, value, goal in (
        ("binglide stats FILE, s", command, 0.3),
        ("import binglide, s", imported, 0.15),
    ):
        print(
            f"  {what:32} {value:7.3f}  (target <= {goal}: {'met' if value <= goal else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
