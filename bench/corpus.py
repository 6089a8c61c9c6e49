"""Corpus benchmark (issue 16): one batch run against ``ent`` and ``binglide stats`` per file.

Builds once, under ``bench/data/corpus/`` (git-ignored, reused while its
stamp matches the generator), a corpus of ``--files`` files (default 2,000)
of sizes spread log-uniformly from 1 KiB to 64 MiB and scaled to
``--total`` bytes in all (default 8 GiB), of mixed content: zeros, text,
random bytes, machine-code-like bytes, mixed regions, and real ELF binaries
from /work/shared/samples when present. Then times, in the same run and on
the page-cached corpus (all of it is read once first):

- ``ent FILE`` on every file in turn (``/usr/bin/ent``, the yardstick);
- ``binglide stats FILE`` once per file as a whole process; with
  ``--per-file-sample K`` only every K-th file in size order (a systematic
  sample across all sizes) is run, and the total is extrapolated as K times
  the sampled total (said so in the output);
- ``binglide stats CORPUS -R --jsonl OUT`` on the embedded default, cold
  (a fresh ``--cache-dir``) and warm (the same cache again);

and prints the ratios against the issue's targets: the batch at least 10x
faster than ``ent`` per file, at least 3x faster than ``binglide stats``
per file. Every JSON line of the batch is checked: one per file, none
failed.

Every ``binglide`` process runs with a bytecode cache, as an installed
program does (``pip install`` compiles every module it installs): untimed
runs first (one file, then a batch of two) write it under a temporary
``PYTHONPYCACHEPREFIX``, so the source tree is left alone, and
``PYTHONDONTWRITEBYTECODE`` in the environment is ignored (as in
bench/startup.py). ``--no-bytecode`` times the processes as that variable
leaves them instead: with an editable install, whose source tree holds no
``__pycache__``, every process compiles every module of the package it
imports, which figures in bench/RESULTS.md before corpus6's included.

Run (the machine is shared: take the bench lock)::

    flock /work/locks/bench.lock python bench/corpus.py [--repeat 3] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    DATA_DIR,
    GiB,
    MiB,
    _code_pool,
    _mixed_blocks,
    _text_pool,
    command_line,
    machine,
    median,
    page_in,
    publish,
    table,
)

BINGLIDE = Path(sys.executable).with_name("binglide")
SAMPLES = Path("/work/shared/samples")
KiB = 1 << 10
#: Bump when the generator changes, so a stale corpus is rebuilt.
CORPUS_VERSION = 1
KINDS = ("zeros", "text", "random", "code", "mixed", "elf")


def corpus_sizes(files: int, total: int, seed: int) -> list[int]:
    """Return `files` sizes from 1 KiB to 64 MiB adding up to about `total`.

    Sizes are ``1 KiB * 65536 ** (u ** p)`` for evenly spread ``u`` in [0, 1]
    (shuffled): log-uniform for ``p = 1``; ``p`` is chosen so that they add
    up to `total`, which keeps both ends (1 KiB and 64 MiB) in the corpus.
    """
    rng = np.random.default_rng(seed)
    u = rng.permutation(np.linspace(0.0, 1.0, files))
    span = math.log(64 * MiB / KiB)

    def sizes(p: float) -> np.ndarray[Any, Any]:
        return np.rint(KiB * np.exp(span * u**p))

    a, b = 0.05, 20.0  # a larger p gives smaller files
    for _ in range(100):
        mid = math.sqrt(a * b)
        if sizes(mid).sum() > total:
            a = mid
        else:
            b = mid
    return [int(s) for s in sizes(b)]


def _elf_pool() -> np.ndarray[Any, Any] | None:
    elves = []
    for path in sorted(SAMPLES.glob("*")) if SAMPLES.is_dir() else []:
        with path.open("rb") as f:
            if f.read(4) == b"\x7fELF":
                elves.append(np.fromfile(path, np.uint8))
    return np.concatenate(elves) if elves else None


def _slice(pool: np.ndarray[Any, Any], at: int, n: int) -> np.ndarray[Any, Any]:
    """`n` bytes of `pool` from `at`, wrapping around."""
    at %= len(pool)
    if at + n <= len(pool):
        return pool[at : at + n]
    return np.resize(np.roll(pool, -at), n)


def build_corpus(root: Path, files: int, total: int, seed: int = 16) -> list[Path]:
    """Write the corpus under `root` once; return its files in name order."""
    stamp = {"v": CORPUS_VERSION, "files": files, "total": total, "seed": seed}
    # Beside the corpus, not in it: the batch run takes every file under it.
    stamp_path = root.with_name(root.name + ".stamp")
    if (root / ".stamp").exists():  # where the first version kept it
        (root / ".stamp").replace(stamp_path)
    paths = [root / f"{i // 100:02d}" / f"f{i:04d}.bin" for i in range(files)]
    try:
        if json.loads(stamp_path.read_text()) == stamp:
            return paths
    except (OSError, ValueError):
        pass
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    pools: dict[str, np.ndarray[Any, Any]] = {
        "text": _text_pool(rng, 64 * MiB),
        "code": _code_pool(rng, 64 * MiB),
        "random": rng.integers(0, 256, 96 * MiB, dtype=np.uint8),
        "mixed": np.concatenate(list(_mixed_blocks(64 * MiB, seed))),
    }
    elf = _elf_pool()
    if elf is not None:
        pools["elf"] = elf
    kinds = [k for k in KINDS if k == "zeros" or k in pools]
    started = time.perf_counter()
    for i, (path, size) in enumerate(zip(paths, corpus_sizes(files, total, seed), strict=True)):
        kind = kinds[int(rng.integers(len(kinds)))]
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "zeros":
            data = np.zeros(size, np.uint8)
        else:
            # Real ELF files start at a file's start; the others anywhere.
            at = 0 if kind == "elf" else int(rng.integers(len(pools[kind])))
            data = _slice(pools[kind], at, size)
        data.tofile(path)
        if i % 200 == 199:
            print(f"  wrote {i + 1} files ({time.perf_counter() - started:.0f} s)", flush=True)
    stamp_path.write_text(json.dumps(stamp))
    return paths


def child_environment(pycache: Path | None) -> dict[str, str]:
    """Return the environment of the timed processes.

    Args:
        pycache: Where they write and find the bytecode of the modules they
            import (``PYTHONPYCACHEPREFIX``), as an installed program finds
            it; None for none written (``PYTHONDONTWRITEBYTECODE=1``), so
            modules without bytecode beside them are compiled on every run.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def wall(argv: list[str], **kwargs: Any) -> float:
    """Run `argv` to its end (output discarded); return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(
        argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
    )
    return time.perf_counter() - start


def per_file(command: list[str], paths: list[Path], env: dict[str, str] | None = None) -> float:
    """Run `command FILE` for every file in turn; return the total wall time."""
    return sum(wall([*command, str(p)], env=env) for p in paths)


def children_cpu() -> float:
    """Return the CPU seconds (user and system) of this process's ended children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def batch(
    root: Path, cache_dir: Path, out: Path, in_flight: int | None, env: dict[str, str]
) -> tuple[float, float]:
    """Run the batch over the corpus; check its JSON lines; return its wall and CPU time."""
    argv = [str(BINGLIDE), "stats", str(root), "-R", "--jsonl", str(out), "-q", "--no-progress"]
    argv += ["--cache-dir", str(cache_dir)]
    if in_flight is not None:
        argv += ["--in-flight", str(in_flight)]
    cpu = children_cpu()
    seconds = wall(argv, env=env)
    cpu = children_cpu() - cpu
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    failed = [doc["path"] for doc in lines if doc["error"] is not None]
    if failed or len({doc["path"] for doc in lines}) != len(lines):
        raise SystemExit(f"the batch run failed on {len(failed)} files: {failed[:3]}")
    return seconds, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--total", type=float, default=8.0, help="GiB in all (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="batch runs (cold and warm) each")
    parser.add_argument(
        "--per-file-sample",
        type=int,
        default=10,
        help="run binglide stats per file on every K-th file by size, and extrapolate (1: all)",
    )
    parser.add_argument("--ent-sample", type=int, default=1, help="the same for ent (1: all)")
    parser.add_argument("--in-flight", type=int, default=None, help="the batch's --in-flight")
    parser.add_argument("--out", default="", help="also write the figures to this file")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="run binglide with PYTHONDONTWRITEBYTECODE=1 and no bytecode cache of its own",
    )
    args = parser.parse_args(argv)
    ent = shutil.which("ent")
    if ent is None:
        raise SystemExit("ent is not installed (apt install ent): it is the yardstick")
    root = DATA_DIR / "corpus"
    print(f"building the corpus under {root} (once) ...", flush=True)
    paths = build_corpus(root, args.files, int(args.total * GiB))
    sizes = {p: p.stat().st_size for p in paths}
    total = sum(sizes.values())
    print(f"{len(paths)} files, {total / GiB:.2f} GiB; paging them in ...", flush=True)
    for p in paths:
        page_in(p)
    by_size = sorted(paths, key=sizes.__getitem__)

    def sample(k: int) -> list[Path]:
        return by_size[k // 2 :: k] if k > 1 else by_size

    ent_paths, stats_paths = sample(args.ent_sample), sample(args.per_file_sample)
    rows: dict[str, list[float]] = {"batch cold": [], "batch warm": []}
    #: Cores the batch used: its CPU seconds over its wall seconds.
    cores: dict[str, list[float]] = {"batch cold": [], "batch warm": []}
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="binglide-corpus-") as tmp:
        env = child_environment(None if args.no_bytecode else Path(tmp) / "pycache")
        # Untimed: the bytecode of every module a run imports, and numba's
        # disk cache (the largest file is counted by the compiled kernels).
        warm = [str(BINGLIDE), "stats", "-q", "--no-progress", "--no-cache"]
        wall([*warm, str(by_size[0])], env=env)
        wall([*warm, str(by_size[0]), str(by_size[-1]), "--jsonl", os.devnull], env=env)
        print(f"ent on {len(ent_paths)} files ...", flush=True)
        figures["ent per file"] = per_file([ent], ent_paths) * args.ent_sample
        print(f"binglide stats on {len(stats_paths)} files ...", flush=True)
        stats_cmd = [str(BINGLIDE), "stats", "-q", "--no-progress"]
        stats_cmd += ["--cache-dir", str(Path(tmp) / "per-file-cache")]
        figures["binglide stats per file"] = (
            per_file(stats_cmd, stats_paths, env) * args.per_file_sample
        )
        for i in range(args.repeat):
            cache = Path(tmp) / f"cache{i}"
            out = Path(tmp) / "out.jsonl"
            for name in ("batch cold", "batch warm"):
                seconds, cpu = batch(root, cache, out, args.in_flight, env)
                rows[name].append(seconds)
                cores[name].append(cpu / seconds)
            print(
                f"  batch {i + 1}: cold {rows['batch cold'][-1]:.1f} s,"
                f" warm {rows['batch warm'][-1]:.1f} s",
                flush=True,
            )
    figures["batch cold"] = median(rows["batch cold"])
    figures["batch warm"] = median(rows["batch warm"])
    notes = {
        "ent per file": f"{len(ent_paths)} runs"
        + (f", x{args.ent_sample} extrapolated" if args.ent_sample > 1 else ""),
        "binglide stats per file": f"{len(stats_paths)} runs"
        + (f", x{args.per_file_sample} extrapolated" if args.per_file_sample > 1 else ""),
        "batch cold": f"median of {args.repeat}, fresh --cache-dir;"
        f" {median(cores['batch cold']):.2f} cores used",
        "batch warm": f"median of {args.repeat}, the same cache again;"
        f" {median(cores['batch warm']):.2f} cores used",
    }
    rows_out = [
        [name, f"{seconds:.1f}", f"{total / MiB / seconds:.0f}", notes[name]]
        for name, seconds in figures.items()
    ]
    cold = figures["batch cold"]
    ratios = [
        ("ent per file / batch cold", figures["ent per file"] / cold, 10.0),
        ("binglide stats per file / batch cold", figures["binglide stats per file"] / cold, 3.0),
        ("ent per file / batch warm", figures["ent per file"] / figures["batch warm"], None),
    ]
    info = machine()
    text = "\n".join(
        [
            f"command: {command_line()}",
            "machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
            f"corpus: {len(paths)} files, {total / GiB:.2f} GiB, page cached",
            "binglide's bytecode: "
            + (
                "none (PYTHONDONTWRITEBYTECODE=1: its modules compiled in every process)"
                if args.no_bytecode
                else "cached by untimed runs first, as an installed package's is"
            ),
            "",
            table(["run", "seconds", "MiB/s", "how"], rows_out),
            "",
            table(
                ["ratio", "value", "target"],
                [
                    [
                        name,
                        f"{value:.1f}x",
                        "-"
                        if goal is None
                        else f">= {goal:g}x: {'met' if value >= goal else 'MISSED'}",
                    ]
                    for name, value, goal in ratios
                ],
            ),
        ]
    )
    publish(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
