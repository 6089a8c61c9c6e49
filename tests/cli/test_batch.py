"""Batch runs of the command: several files and directories, a line or a JSON object each."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from tests.cli.test_main import (
    COMMAND,
    cache,
    child_env,
    interrupt,
    local,
    read_until,
    remote,
    run,
    wait_marker,
)
from tests.services import references as ref

__all__ = ("cache", "remote")  # fixtures, used here


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, bytes]:
    """Files of several kinds under nested directories, and an empty one."""
    rng = np.random.default_rng(11)
    contents = {
        "fw/boot.bin": bytes(4096) + rng.integers(0, 256, 60_000, dtype=np.uint8).tobytes(),
        "fw/parts/strings.txt": b"GNU C Library (Debian GLIBC) stable release\n" * 900,
        "fw/parts/empty": b"",
        "fw/parts/deeper/code.bin": bytes(range(256)) * 300,
    }
    files = {}
    for name, data in contents.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[str(path)] = data
    return files


def records(text: str) -> dict[str, dict[str, Any]]:
    out = {}
    for line in text.splitlines():
        doc = json.loads(line)
        assert doc["path"] not in out, "a file was written twice"
        out[doc["path"]] = doc
    return out


async def test_a_directory_tree_gives_one_line_per_file(tmp_path, tree, cache):
    result = await run("stats", str(tmp_path / "fw"), "-R", *local(cache))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(tree)
    by_path = dict(line.split(": ", 1) for line in lines)
    assert set(by_path) == set(tree)
    for path, data in tree.items():
        if data:
            expected = ref.ent(data)
            assert f"{len(data):,} bytes" in by_path[path]
            assert f"entropy {expected['entropy']:.6f} bits per byte" in by_path[path]
        else:
            assert by_path[path] == "0 bytes"


async def test_jsonl_holds_each_file_s_result_exactly(tmp_path, tree, cache):
    out = tmp_path / "results.jsonl"
    result = await run("histogram", str(tmp_path / "fw"), "-R", "--jsonl", str(out), *local(cache))
    assert result.returncode == 0, result.stderr
    docs = records(out.read_text())
    assert set(docs) == set(tree)
    for path, data in tree.items():
        doc = docs[path]
        st = os.stat(path)
        assert doc["error"] is None
        assert doc["service"] == "histogram"
        assert doc["size"] == len(data)
        assert doc["identity"] == f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        assert doc["precision"] == 1.0
        counts = ref.byte_histogram(np.frombuffer(data, dtype=np.uint8))
        assert doc["arrays"]["data"] == counts.tolist()


async def test_jsonl_to_stdout_and_the_options_apply_to_every_file(tmp_path, tree, cache):
    result = await run(
        "entropy", *tree, "--resolution", "4", "--jsonl", "-", "--range", ":4096", *local(cache)
    )
    assert result.returncode == 0, result.stderr
    docs = records(result.stdout.decode())
    assert set(docs) == set(tree)
    for path, data in tree.items():
        assert docs[path]["meta"]["stop"] == min(len(data), 4096)
        assert len(docs[path]["arrays"]["data"]) <= 4


async def test_bad_files_are_error_records_the_run_goes_on_and_the_status_says_so(
    tmp_path, tree, cache
):
    good = next(p for p, d in tree.items() if d)
    missing = str(tmp_path / "nope.bin")
    directory = str(tmp_path / "fw")
    out = tmp_path / "r.jsonl"
    result = await run("stats", good, missing, directory, "--jsonl", str(out), *local(cache))
    assert result.returncode == 1
    docs = records(out.read_text())
    assert docs[good]["error"] is None
    assert docs[missing]["error"]["type"] == "RequestError"
    assert "no such file" in docs[missing]["error"]["message"]
    assert "--recursive" in docs[directory]["error"]["message"]
    err = result.stderr.decode().splitlines()
    assert "Traceback" not in result.stderr.decode()
    assert all(line.startswith("binglide: error: ") for line in err), err
    assert err[-1] == "binglide: error: 2 of 3 files failed"
    assert result.stdout.decode().startswith(f"{good}: ")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--png", "x.png"], "--png: one file's result only"),
        (["--json", "x.json"], "--json: one file's result only"),
        (["--jsonl", "-", "--csv", "-"], "only one of --csv -, --jsonl - can write"),
    ],
)
async def test_one_file_exports_are_refused_for_a_batch(tmp_path, tree, cache, extra, message):
    result = await run("stats", *tree, *extra, *local(cache))
    assert result.returncode == 2
    assert message in result.stderr.decode()


async def test_a_directory_without_recursive_is_a_usage_error(tmp_path, tree, cache):
    result = await run("stats", str(tmp_path / "fw"), *local(cache))
    assert result.returncode == 2
    assert "is a directory: give --recursive (-R)" in result.stderr.decode()


@pytest.mark.zmq
async def test_ctrl_c_cancels_every_file_of_the_batch(remote, tmp_path):
    address, markers = remote
    names = []
    for i in range(2):
        names.append(tmp_path / f"f{i}.bin")
        names[-1].write_bytes(b"x" * 1000)
    argv = [*COMMAND, "histogram", *map(str, names), "--connect", address, "--progress"]
    seen = bytearray()
    with anyio.fail_after(30):
        async with await anyio.open_process(argv, env=child_env()) as process:
            await read_until(process.stderr, b"files", seen)
            await wait_marker(markers, "started")
            with anyio.fail_after(10):
                code = await interrupt(process, seen)
        assert code == 130, seen.decode(errors="replace")
        assert seen.decode().endswith("binglide: interrupted; the job was cancelled\n")
        with anyio.fail_after(10):
            await wait_marker(markers, "cancelled")
