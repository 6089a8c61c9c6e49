"""``binglide view``: the command around the server."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from binglide.cli.main import main

BINGLIDE = Path(sys.executable).parent / "binglide"


def test_importing_binglide_does_not_load_aiohttp() -> None:
    code = (
        "import binglide, binglide.cli.main, binglide.viewer, sys; print('aiohttp' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["view", "/no/such/file"], "no such file"),
        (["view", "FILE", "FILE", "FILE"], "one file, or compares two"),
        (["view", "FILE", "--connect", "tcp://127.0.0.1:1", "--workers", "2"], "--connect"),
        (["view", "FILE", "--root", "/no/such/dir"], "not a directory"),
        (["view", "FILE", "--root", "/usr"], "outside --root"),
        (["view", "FILE", "--curve-dir", "/tmp"], "--curve-dir is for --connect"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    argv: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"x")
    argv = [str(file) if a == "FILE" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("binglide: error: ")
    assert words in err
    assert err.count("\n") == 1


def test_bad_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["view", "x", "--port", "70000"])
    assert exited.value.code == 2
    assert "65535" in capsys.readouterr().err


def test_the_command_serves_the_page_until_ctrl_c(tmp_path: Path) -> None:
    if not BINGLIDE.exists():
        pytest.skip(f"{BINGLIDE} is missing: pip install -e .")
    file = tmp_path / "f.bin"
    file.write_bytes(b"hello, viewer\n" * 100)
    process = subprocess.Popen(
        [
            str(BINGLIDE),
            "view",
            str(file),
            "--no-browser",
            "--workers",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("binglide view: http://127.0.0.1:"), line
        url = line.split()[-1]
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200
            assert b"static/app.js" in page.read()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "stopped" in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_the_library_example_of_the_docs_runs() -> None:
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "viewer.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    if not Path("/bin/ls").exists():
        pytest.skip("/bin/ls does not exist on this system")
    result = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "open http://127.0.0.1:" in result.stdout
    assert "the page: 200" in result.stdout


def test_every_module_the_page_imports_ships_in_the_package() -> None:
    import importlib.resources
    import re

    static = importlib.resources.files("binglide.viewer") / "static"
    names = {p.name for p in static.iterdir()}
    index = (static / "index.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="static/([\w.]+)"', index))
    seen: set[str] = set()
    while wanted - seen:
        name = (wanted - seen).pop()
        seen.add(name)
        assert name in names, f"the page asks for {name}, which the package lacks"
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([\w.]+)"', (static / name).read_text()))
    assert {"app.js", "style.css", "wire.js", "maps.js", "trigram.js"} <= seen
