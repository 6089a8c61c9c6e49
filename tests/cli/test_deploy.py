"""``binglide broker``, ``worker`` and ``keys``, and what a newcomer meets deploying them.

Usage errors run `binglide.cli.main.main` in this process; what depends on
real processes (a broker and workers, the ``binglide`` script's import path,
exit statuses) runs the real command. Sockets are on 127.0.0.1 or ipc://.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import pytest

from binglide.cli.main import build_parser, main
from tests.cli.test_main import COMMAND, child_env, one_error_line
from tests.zmq_helpers import free_tcp_address, ipc_address, processes

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
#: The entry point this environment installed, as a user runs it.
SCRIPT = Path(sys.executable).parent / "binglide"


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command in this process; return its status, stdout and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exit:  # argparse's own errors
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("binglide: error: "), err
    return lines[0]


def spawn(argv: Sequence[str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, cwd=cwd
    )


async def first_line(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    return (await anyio.to_thread.run_sync(proc.stdout.readline)).decode()


# -- usage errors: one line, one prefix, status 2 --------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["broker"], "give an address: binglide broker --bind"),
        (
            ["broker", "tcp://127.0.0.1:5599", "--bind", "tcp://127.0.0.1:5598"],
            "two addresses",
        ),
        (
            ["broker", "--bind", "tcp://127.0.0.1:5599", "--curve-dir", "/nonexistent"],
            "--curve-dir /nonexistent: no such directory; make keys with 'binglide keys",
        ),
        (["broker", "--bind", "tcp://0.0.0.0:5599"], "without CURVE"),
        (["worker", "histogram"], "give the broker's address: binglide worker --connect"),
        (["worker", "--connect", "tcp://127.0.0.1:5599", "nosuch"], "unknown service 'nosuch'"),
        (["worker", "tcp://127.0.0.1:5599", "nosuchmodule:Svc"], "cannot import 'nosuchmodule'"),
        (["broker", "--bind", "tcp://127.0.0.1:5599", "--liveness", "0"], "must be at least 1"),
        (["worker", "tcp://127.0.0.1:5599", "--processes", "-1"], "must be at least 0"),
    ],
)
def test_deployment_usage_errors_are_one_line(capsys, argv, message):
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert message in error_line(err)
    assert out == ""


def test_refusing_to_listen_without_curve_says_how_to_make_keys(capsys):
    code, _, err = run_main(capsys, "broker", "--bind", "tcp://0.0.0.0:5599")
    assert code == 2
    line = error_line(err)
    assert "binglide keys DIR" in line
    assert "--curve-dir DIR" in line


def test_broker_curve_dir_without_the_broker_pair_is_one_line(capsys, tmp_path):
    # A client's copy of the keys: its own pair and server.key, no secret of the broker's.
    from binglide.transports.zeromq import generate_keys

    full = generate_keys(tmp_path / "full")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("client.key", "client.key_secret", "server.key"):
        (copy / name).write_bytes((full / name).read_bytes())
    code, _, err = run_main(capsys, "broker", "tcp://127.0.0.1:5599", "--curve-dir", str(copy))
    assert code == 2
    assert "no broker key pair there (server.key_secret)" in error_line(err)


def test_worker_curve_dir_without_its_key_pair_is_one_line(capsys, tmp_path):
    from binglide.transports.zeromq import generate_keys

    keys = generate_keys(tmp_path / "keys", clients=("alice",))
    code, _, err = run_main(
        capsys, "worker", "--connect", "tcp://127.0.0.1:5599", "--curve-dir", str(keys)
    )
    assert code == 2
    line = error_line(err)
    assert "no CURVE key pair 'client'" in line
    assert "--curve-name" in line


def test_keys_are_not_overwritten_without_force(capsys, tmp_path):
    keys = tmp_path / "keys"
    assert run_main(capsys, "keys", str(keys), "--client", "alice")[0] == 0
    before = {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()}
    code, _, err = run_main(capsys, "keys", str(keys))
    assert code == 2
    assert "--force" in error_line(err)
    assert {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()} == before
    code, out, _ = run_main(capsys, "keys", str(keys), "--client", "alice", "--force")
    assert code == 0
    assert out.startswith("keys written to ")
    assert (keys / "alice.key_secret").read_bytes() != before[keys / "alice.key_secret"]


def test_every_broker_and_worker_option_has_help_with_its_default():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices is not None
    for command in ("broker", "worker"):
        for action in sub.choices[command]._actions:  # type: ignore[index]
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, f"{command} {action.option_strings[0]} has no help"
            if action.nargs != 0:  # a value to give: its default is said, or that it is needed
                said = "default" in action.help or "required" in action.help
                assert said, f"{command} {action.option_strings[0]}: {action.help}"


# -- the deployment, as processes -------------------------------------------------------------


@pytest.mark.zmq
async def test_bind_and_connect_spelling_and_a_worker_serving_every_builtin(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)) * 4096)
    with ipc_address() as address, processes() as procs:
        broker = spawn([*COMMAND, "broker", "--bind", address])
        procs.append(broker)
        with anyio.fail_after(30):
            assert (await first_line(broker)).startswith("listening on ")
            worker = spawn([*COMMAND, "worker", "--connect", address, "--no-cache"])
            procs.append(worker)
            # One line once registered: every analysis and the helpers they need.
            line = await first_line(worker)
            stats = await anyio.run_process(
                [*COMMAND, "stats", str(data), "--connect", address],
                env=child_env(),
                check=False,
            )
    assert line == (
        f"registered with {address}: histogram, ngrams, entropy, diff, data, stats,"
        " chunk, segments\n"
    )
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.decode().startswith("Entropy = 8.000000 bits per byte.")


@pytest.mark.zmq
async def test_a_refused_worker_says_why_on_one_line_and_exits_1(tmp_path):
    from binglide.transports.zeromq import generate_keys

    keys = generate_keys(tmp_path / "keys")
    address = free_tcp_address()
    with processes() as procs:
        broker = spawn([*COMMAND, "broker", "--bind", address, "--curve-dir", str(keys)])
        procs.append(broker)
        with anyio.fail_after(30):
            assert (await first_line(broker)).startswith("listening on ")
            refused = await anyio.run_process(
                [*COMMAND, "worker", "--connect", address, "histogram", "--no-cache"],
                env=child_env(),
                check=False,
            )
    assert refused.returncode == 1
    assert "requires CURVE and we gave no keys" in one_error_line(refused)


@pytest.mark.zmq
async def test_no_broker_is_one_line_that_says_nothing_answered():
    address = free_tcp_address()
    # Longer than three heartbeat intervals: no "stopped answering" on the way.
    with anyio.fail_after(30):
        result = await anyio.run_process(
            [*COMMAND, "stats", __file__, "--connect", address, "--connect-timeout", "3.5"],
            env=child_env(),
            check=False,
        )
    assert result.returncode == 1
    line = one_error_line(result)
    assert f"no broker answered at {address} within 3.5 s" in line
    assert "nothing accepted a connection" in line


@pytest.mark.zmq
@pytest.mark.skipif(not SCRIPT.exists(), reason="the binglide script is not installed")
async def test_a_module_class_worker_imports_from_the_current_directory(tmp_path):
    (tmp_path / "mysvc.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            import binglide

            class Echo(binglide.Service):
                name = "echo"

                async def handle(self, task, ctx):
                    yield binglide.Report(np.array([1]))
            """
        )
    )
    env = child_env()  # the repository on PYTHONPATH, the current directory not
    assert str(tmp_path) not in env["PYTHONPATH"].split(os.pathsep)
    with ipc_address() as address, processes() as procs:
        broker = spawn([*COMMAND, "broker", "--bind", address])
        procs.append(broker)
        with anyio.fail_after(30):
            assert (await first_line(broker)).startswith("listening on ")
            # The installed script, whose own directory heads sys.path.
            worker = spawn(
                [str(SCRIPT), "worker", "--connect", address, "mysvc:Echo"], cwd=tmp_path
            )
            procs.append(worker)
            line = await first_line(worker)
    assert line == f"registered with {address}: echo\n"


# -- the README's remote recipe ---------------------------------------------------------------


def remote_recipe() -> list[list[str]]:
    """Return the README's commands for working across machines, as argument lists."""
    text = README.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    recipe = next(b for b in blocks if "binglide keys" in b and "--curve-dir" in b)
    lines = [line.split("#", 1)[0].strip() for line in recipe.splitlines()]
    return [shlex.split(line) for line in lines if line]


@pytest.mark.zmq
@pytest.mark.skipif(not SCRIPT.exists(), reason="the binglide script is not installed")
async def test_the_readme_remote_recipe_works_with_curve_on_loopback(tmp_path):
    keys_cmd, broker_cmd, worker_cmd, stats_cmd = remote_recipe()
    assert keys_cmd[:2] == ["binglide", "keys"]
    assert broker_cmd[:2] == ["binglide", "broker"]
    assert worker_cmd[:2] == ["binglide", "worker"]
    assert stats_cmd[:2] == ["binglide", "stats"]
    # The recipe's addresses, on this machine only: 127.0.0.1 for every
    # interface and for the broker machine's address. CURVE stays on: a
    # --curve-dir broker uses it whatever it listens on.
    here = free_tcp_address()

    def local(argv: list[str]) -> list[str]:
        out = [str(SCRIPT)]
        for arg in argv[1:]:
            out.append(here if arg.startswith("tcp://") else arg)
        return out

    image = tmp_path / stats_cmd[2]
    image.write_bytes(bytes(range(256)) * 1024)
    with processes() as procs, anyio.fail_after(60):
        made = await anyio.run_process(local(keys_cmd), cwd=tmp_path, env=child_env(), check=False)
        assert made.returncode == 0, made.stderr
        broker = spawn(local(broker_cmd), cwd=tmp_path)
        procs.append(broker)
        assert (await first_line(broker)).startswith("listening on ")
        worker = spawn([*local(worker_cmd), "--no-cache"], cwd=tmp_path)
        procs.append(worker)
        assert (await first_line(worker)).startswith(f"registered with {here}: ")
        stats = await anyio.run_process(
            local(stats_cmd), cwd=tmp_path, env=child_env(), check=False
        )
        keyless = [a for a in local(stats_cmd) if a not in ("--curve-dir", "--curve-name")]
        keyless = keyless[: keyless.index(here) + 1]
        refused = await anyio.run_process(keyless, cwd=tmp_path, env=child_env(), check=False)
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.decode().startswith("Entropy = 8.000000 bits per byte.")
    assert refused.returncode == 1
    assert "requires CURVE" in one_error_line(refused)
