"""Every example runs and prints what it promises.

``examples/raw_worker.py`` needs a broker: tests/test_zmq_plain.py runs it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 MiB file, large enough for partial reports: text, then random bytes."""
    text = b"printable text, line after line\n" * 40_000
    noise = np.random.default_rng(7).integers(0, 256, (3 << 20) - len(text), dtype=np.uint8)
    path = tmp_path_factory.mktemp("examples") / "sample.bin"
    path.write_bytes(text + noise.tobytes())
    return path


async def run_example(name: str, *args: str) -> str:
    result = await anyio.run_process(
        [sys.executable, str(EXAMPLES / name), *args], check=False, stderr=subprocess.STDOUT
    )
    output = result.stdout.decode()
    assert result.returncode == 0, output
    assert "Traceback" not in output
    return output


@pytest.mark.parametrize("with_file", [True, False])
async def test_progressive(sample, with_file):
    with anyio.fail_after(60):
        out = await run_example("progressive.py", *([str(sample)] if with_file else []))
    lines = out.splitlines()
    histogram = [line for line in lines if line.startswith("histogram")]
    assert histogram[-1].startswith("histogram final    completion 100%  precision 100%")
    if with_file:
        assert f"bytes counted {sample.stat().st_size:,}" in histogram[-1]
    entropy = [line for line in lines if line.startswith("entropy")]
    # Cancelled after its first report, unless it was already done by then.
    assert entropy[-1] in (
        "entropy   cancelled: the request was cancelled",
        "entropy   finished before it could be cancelled",
    )
    if with_file:
        assert entropy[-1] == "entropy   cancelled: the request was cancelled"


@pytest.mark.parametrize("with_file", [True, False])
async def test_custom_service(sample, with_file):
    with anyio.fail_after(60):
        out = await run_example("custom_service.py", *([str(sample)] if with_file else []))
    final = out.splitlines()[-1]
    assert final.startswith("final    precision 100%")
    if with_file:
        data = np.frombuffer(sample.read_bytes(), dtype=np.uint8)
        printable = int((((data >= 0x20) & (data < 0x7F)) | np.isin(data, (9, 10, 13))).sum())
        assert f"{printable:,} of {len(data):,} bytes printable" in final


def test_raw_worker_is_tested_elsewhere():
    # Guard: if the raw worker's test moves, this reminds whoever moves it.
    assert "raw_worker.py" in (REPO / "tests" / "test_zmq_plain.py").read_text()
