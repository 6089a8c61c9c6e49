"""A corpus run across a real cluster: hosts in network namespaces, CURVE on, faults.

A broker host, three worker hosts and a client host, each in a network
namespace of its own with a non-loopback address (`tests.cluster.netns`), so
the broker requires CURVE as it does off loopback. The client host analyses a
corpus of files through the broker; the tests check that every file's result
is exact (against `ent`'s definitions computed here from the file's bytes),
and that none is lost or given twice, also when a worker host dies mid-run
and when the broker's cable is cut for five seconds and put back.

The client host runs the command itself: ``binglide stats CORPUS -R --jsonl
OUT --connect ADDRESS --curve-dir KEYS``. The hosts share this machine's file
system (as cluster nodes with a shared file system do), except in the last
scenario: there the worker host's mount namespace hides the corpus, and the
client serves its files itself (``--serve-files``). The tests skip, saying
why, where namespaces cannot be made.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from binglide.services import BUILTIN_SERVICES
from binglide.transports.zeromq import generate_keys

from ..services import references as ref
from ..zmq_helpers import child_env
from .netns import Cluster, Host, why_not, why_not_hide

pytestmark = [
    pytest.mark.zmq,
    pytest.mark.slow,
    pytest.mark.skipif(why_not() is not None, reason=str(why_not())),
]

PORT = 5555
KiB, MiB = 1 << 10, 1 << 20


def make_corpus(root: Path, count: int, *, seed: int = 0) -> dict[str, bytes]:
    """Write `count` files of mixed sizes (1 KiB to 2 MiB) and kinds under `root`."""
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {}
    for i in range(count):
        size = int(rng.choice([KiB, 7 * KiB, 64 * KiB, 300 * KiB, 2 * MiB]))
        kind = i % 3
        if kind == 0:
            data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        elif kind == 1:
            data = (b"firmware text %d " % i * (size // 16 + 1))[:size]
        else:
            data = (
                bytes(size // 2) + rng.integers(0, 16, size - size // 2, dtype=np.uint8).tobytes()
            )
        path = root / f"d{i % 4}" / f"f{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[str(path)] = data
    return files


class Deployment:
    """The cluster's roles, started: a broker, workers, and runs of a client."""

    def __init__(self, cluster: Cluster, keys: Path, tmp: Path) -> None:
        self.cluster = cluster
        self.keys = keys
        self.tmp = tmp
        self.broker = cluster.add("broker")
        self.workers = [cluster.add(f"worker{i}") for i in range(1, 4)]
        self.client = cluster.add("client")
        self.address = f"tcp://{self.broker.address}:{PORT}"
        self.env = child_env()

    def start(self, *, workers: int = 3, hide: tuple[str, ...] = ()) -> None:
        """Start the broker, and workers on the first `workers` worker hosts (`hide`: see Host)."""
        proc = self.broker.spawn(
            [
                sys.executable,
                "-m",
                "binglide",
                "broker",
                self.address,
                "--curve-dir",
                str(self.keys),
            ],
            env=self.env,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(b"listening on "), line
        services = [cls.name for cls in BUILTIN_SERVICES]
        for host in self.workers[:workers]:
            self.start_worker(host, services, hide=hide)

    def start_worker(self, host: Host, services: list[str], *, hide: tuple[str, ...] = ()) -> None:
        cache = self.tmp / f"cache-{host.name}"  # machines do not share a cache
        host.spawn(
            [
                sys.executable, "-m", "binglide", "worker", self.address, *services,
                "--curve-dir", str(self.keys), "--curve-name", "client",
                "--cache-dir", str(cache), "--parallelism", "1",
            ],
            env=self.env,
            # A hidden host's log is read at the end (a few lines).
            stderr=subprocess.PIPE if hide else None,
            hide=hide,
        )  # fmt: skip

    def run_client(self, out: Path, paths: list[str], *extra: str) -> subprocess.Popen[bytes]:
        """Run ``binglide stats PATHS -R --jsonl OUT`` on the client host, on the broker."""
        return self.client.spawn(
            [
                sys.executable, "-m", "binglide", "stats", *paths, "-R", "--jsonl", str(out),
                "--connect", self.address, "--curve-dir", str(self.keys), "--curve-name", "client",
                "--connect-timeout", "30", "--no-progress", "--quiet", *extra,
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    keys = generate_keys(tmp_path / "keys", clients=("client",))
    with Cluster() as cluster:
        d = Deployment(cluster, keys, tmp_path)
        d.start()
        yield d


def lines(out: Path) -> list[dict[str, object]]:
    if not out.exists():
        return []
    text = out.read_text()
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def wait_lines(out: Path, count: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the client has written `count` results (another process writes them)."""
    deadline = time.monotonic() + timeout
    while len(lines(out)) < count:
        assert proc.poll() is None, "the client ended early"
        assert time.monotonic() < deadline, f"fewer than {count} results after {timeout} s"
        time.sleep(0.01)


def finish(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for the client's run to end; it must have succeeded for every file."""
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode(errors="replace")


def check_exact(out: Path, corpus: dict[str, bytes]) -> None:
    """Every file once, none extra, each with exactly the statistics of its bytes."""
    records = lines(out)
    paths = [r["path"] for r in records]
    assert len(paths) == len(set(paths)), "a file was given twice"
    assert set(paths) == set(corpus), "files lost or extra"
    for record in records:
        assert record["error"] is None, record
        data = corpus[str(record["path"])]
        expected = ref.ent(data)
        stats = record["meta"]
        assert isinstance(stats, dict)
        assert stats["size"] == len(data)
        assert stats["entropy"] == pytest.approx(expected["entropy"], abs=1e-9)
        assert stats["mean"] == pytest.approx(expected["mean"], abs=1e-9)
        assert stats["chi_square"] == pytest.approx(expected["chi_square"], rel=1e-9)


def test_a_corpus_run_across_the_cluster_is_exact(deployment: Deployment, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", 40)
    out = tmp_path / "results.jsonl"
    finish(deployment.run_client(out, [str(tmp_path / "corpus")]), timeout=120)
    check_exact(out, corpus)


def test_a_worker_host_dies_mid_run(deployment: Deployment, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", 120, seed=1)
    out = tmp_path / "results.jsonl"
    client = deployment.run_client(out, [str(tmp_path / "corpus")])
    # The fault as soon as the run is under way: small files come back by the
    # hundred a second (more with the compiled receive), and half the corpus
    # done before the fault would test nothing.
    wait_lines(out, 1, client, timeout=60)
    deployment.workers[1].kill()  # every process of the host, at once
    assert len(lines(out)) < len(corpus) // 2, "the fault came too late to matter"
    finish(client, timeout=180)
    check_exact(out, corpus)


def test_the_broker_link_is_cut_for_five_seconds(deployment: Deployment, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", 120, seed=2)
    out = tmp_path / "results.jsonl"
    client = deployment.run_client(out, [str(tmp_path / "corpus")])
    wait_lines(out, 1, client, timeout=60)  # (as soon as the run is under way: above)
    deployment.broker.cut()
    assert len(lines(out)) < len(corpus) // 2, "the fault came too late to matter"
    time.sleep(5.0)  # the fault itself: five seconds without the broker
    deployment.broker.restore()
    finish(client, timeout=180)
    check_exact(out, corpus)


@pytest.mark.skipif(why_not_hide() is not None, reason=str(why_not_hide()))
def test_a_worker_host_that_cannot_see_the_corpus_computes_through_the_source(
    tmp_path: Path,
) -> None:
    root = tmp_path / "corpus"
    corpus = make_corpus(root, 30, seed=3)
    keys = generate_keys(tmp_path / "keys", clients=("client",))
    with Cluster() as cluster:
        d = Deployment(cluster, keys, tmp_path)
        hidden = d.workers[0]
        # The only worker host: nothing can be computed but by it.
        d.start(workers=1, hide=(str(root),))
        probe = subprocess.run(
            hidden.command(["ls", "-A", str(root)], hide=(str(root),)),
            capture_output=True,
            timeout=30,
            check=True,
        )
        assert probe.stdout == b"", "the worker host's view still holds the corpus"
        out = tmp_path / "results.jsonl"
        refused = d.run_client(out, [str(root)])
        _, err = refused.communicate(timeout=120)
        assert refused.returncode != 0
        assert len(lines(out)) == len(corpus)
        assert all(r["error"] is not None for r in lines(out)), "the host saw the corpus"
        assert b"no such file" in err
        finish(d.run_client(out, [str(root)], "--serve-files"), timeout=180)
        check_exact(out, corpus)
        hidden.kill()
        # The worker logged nothing alarming: every read went through the source.
        logs = b"".join(p.stderr.read() for p in hidden.processes if p.stderr is not None)
        assert b"Traceback" not in logs, logs.decode(errors="replace")
