"""The README's promises: its quick-start command and its library example run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def shell_blocks(section: str) -> list[str]:
    """Return the ``sh`` code blocks of a README section, in order."""
    text = README.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", body, re.DOTALL)


def test_the_test_command_is_the_one_ci_runs():
    # .ci/run runs the second quick-start command verbatim.
    assert shell_blocks("Quick start")[1].strip() == (
        "python -m pip install -e '.[test]' && python -m pytest"
    )


def test_the_first_quick_start_command_runs():
    install, _, command = shell_blocks("Quick start")[0].strip().partition(" && ")
    assert install.startswith("python -m pip install")
    argv = shlex.split(command)
    assert argv[0] == "binglide"
    missing = [a for a in argv[1:] if a.startswith("/") and not os.path.exists(a)]
    if missing:
        pytest.skip(f"{missing[0]} does not exist on this system")
    # The entry point this environment installed (not a fresh pip install).
    entry = Path(sys.executable).parent / "binglide"
    assert entry.exists(), f"{entry} is missing: install the package (pip install -e .)"
    result = subprocess.run([str(entry), *argv[1:]], capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("entropy, bits per byte")


def test_the_library_example_runs():
    text = README.read_text()
    example = re.findall(r"```python\n(.*?)```", text, re.DOTALL)[0]
    if not os.path.exists("/bin/ls"):
        pytest.skip("/bin/ls does not exist on this system")
    result = subprocess.run(
        [sys.executable, "-c", example],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode()
    assert "bits per byte" in result.stdout.decode()
