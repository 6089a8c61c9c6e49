"""`binglide.connect`: to an address (CURVE keys, and why a connection fails), and embedded."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import anyio
import numpy as np
import pytest

import binglide
from binglide.connect import default_services, load_client_keys
from binglide.transports.zeromq import generate_keys

from .zmq_helpers import free_tcp_address, processes, spawn, value

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from binglide import Context, Task


@pytest.mark.zmq
async def test_connecting_where_no_broker_listens_fails_clearly() -> None:
    address = free_tcp_address()
    with anyio.fail_after(10), pytest.raises(binglide.TransportBroken) as info:
        async with binglide.connect(address, connect_timeout=0.5):
            pytest.fail("connected to nothing")  # pragma: no cover
    assert "no broker answered" in str(info.value)
    assert "nothing accepted a connection" in str(info.value)
    assert not isinstance(info.value, binglide.TransportRefused)


# -- CURVE -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Key directories: the deployment's, a stranger's pair, and an impostor broker's key."""
    root = tmp_path_factory.mktemp("keys")
    deployment = generate_keys(root / "deployment", clients=("alice", "worker"))
    # A pair the broker does not admit, next to the right server.key.
    stranger = generate_keys(root / "stranger", clients=("alice",))
    shutil.copy(deployment / "server.key", stranger / "server.key")
    # The right pair, but another broker's public key.
    impostor = generate_keys(root / "impostor", clients=())
    for name in ("alice.key", "alice.key_secret"):
        shutil.copy(deployment / name, impostor / name)
    return {"deployment": deployment, "stranger": stranger, "impostor": impostor}


@pytest.fixture(scope="module")
def curve_broker(keys: dict[str, Path]) -> Iterator[str]:
    """A CURVE broker and a worker of ``double`` on 127.0.0.1, as processes; yields the address."""
    address = free_tcp_address()
    curve = ["--curve-dir", str(keys["deployment"])]
    with processes() as procs:
        broker = spawn(["broker", "--bind", address, *curve], stdout=subprocess.PIPE)
        procs.append(broker)
        assert broker.stdout is not None
        assert broker.stdout.readline().startswith(b"listening on ")
        worker = spawn(
            [
                *("worker", "--connect", address, "tests.zmq_services:Double", "--no-cache"),
                *(*curve, "--curve-name", "worker"),
            ],
            stdout=subprocess.PIPE,
        )
        procs.append(worker)
        assert worker.stdout is not None
        assert worker.stdout.readline() == f"registered with {address}: double\n".encode()
        yield address


@pytest.mark.zmq
async def test_connect_with_curve_keys_reaches_the_workers(curve_broker, keys):
    with anyio.fail_after(20):
        async with binglide.connect(
            curve_broker, curve_dir=keys["deployment"], curve_name="alice"
        ) as client:
            assert value(await client.request("double", {"n": 21})) == 42


@pytest.mark.zmq
@pytest.mark.parametrize(
    ("directory", "message"),
    [
        (None, "requires CURVE and we gave no keys"),
        ("stranger", "refused our CURVE key"),
        ("impostor", "the server.key we hold is not that broker's public key"),
    ],
)
async def test_a_refusal_says_why_and_is_not_a_silence(curve_broker, keys, directory, message):
    curve_dir = None if directory is None else keys[directory]
    with anyio.fail_after(20), pytest.raises(binglide.TransportRefused, match=message):
        # Far longer than it takes: a refusal is not a timeout.
        async with binglide.connect(
            curve_broker, curve_dir=curve_dir, curve_name="alice", connect_timeout=15
        ):
            pytest.fail("connected although refused")  # pragma: no cover


@pytest.mark.zmq
async def test_keys_given_to_a_broker_without_curve_are_refused(keys):
    address = free_tcp_address()
    with processes() as procs:
        broker = spawn(["broker", "--bind", address], stdout=subprocess.PIPE)
        procs.append(broker)
        assert broker.stdout is not None
        assert broker.stdout.readline().startswith(b"listening on ")
        with anyio.fail_after(20), pytest.raises(binglide.TransportRefused, match="CURVE"):
            async with binglide.connect(
                address, curve_dir=keys["deployment"], curve_name="alice", connect_timeout=15
            ):
                pytest.fail("connected although refused")  # pragma: no cover


def test_missing_keys_are_named(keys, tmp_path):
    with pytest.raises(ValueError, match=r"no CURVE key pair 'bob'.*binglide keys"):
        load_client_keys(keys["deployment"], "bob")
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(keys["deployment"] / "alice.key_secret", lone)
    with pytest.raises(ValueError, match=r"server\.key is missing"):
        load_client_keys(lone, "alice")
    assert load_client_keys(keys["deployment"], "alice").public


async def test_curve_dir_without_an_address_is_refused():
    with pytest.raises(ValueError, match="curve_dir is for a broker's address"):
        async with binglide.connect(curve_dir="keys"):
            pytest.fail("started")  # pragma: no cover


# -- the embedded default ------------------------------------------------------------------


class Slow(binglide.Service):
    """Take longer than many heartbeat intervals, waiting as a long kernel would."""

    name = "slow"

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[binglide.Report]:
        await anyio.sleep(float(task.body["seconds"]))
        yield binglide.Report(np.array([1]))


class Forever(binglide.Service):
    """Wait until cancelled; say so with the events the test sets up."""

    name = "forever"
    events: ClassVar[dict[str, anyio.Event]] = {}

    async def handle(self, task: Task, ctx: Context) -> AsyncIterator[binglide.Report]:
        self.events["started"].set()
        try:
            await anyio.sleep_forever()
        finally:
            self.events["cancelled"].set()
        yield binglide.Report(np.array([0]))  # pragma: no cover


async def test_a_broker_config_does_not_make_the_embedded_workers_expire(tmp_path):
    # Heartbeat settings under which a worker that never heartbeats would be
    # dead after 30 ms: in-process workers must live on, and a handler far
    # longer than that must return.
    config = binglide.BrokerConfig(heartbeat_interval=0.01, liveness=3, service_timeout=1.0)
    with anyio.fail_after(20):
        async with binglide.connect(
            services=[Slow], workers=1, config=config, cache_dir=tmp_path
        ) as client:
            assert client.broker is not None
            assert value(await client.request("slow", {"seconds": 0.3})) == 1
            report = await client.histogram(__file__)
            # Every built-in and Slow, one worker each: nobody was dropped.
            assert client.broker.statistics().workers == len(default_services()) + 1
    assert int(report.array.sum()) == os.stat(__file__).st_size


async def test_targeted_cancel_mode_in_the_embedded_default(tmp_path):
    started = Forever.events["started"] = anyio.Event()
    cancelled = Forever.events["cancelled"] = anyio.Event()
    config = binglide.BrokerConfig(
        cancel_mode=binglide.CancelMode.TARGETED, heartbeat_interval=0.01, service_timeout=1.0
    )
    with anyio.fail_after(20):
        async with binglide.connect(
            services=[Forever], builtins=False, workers=1, config=config, cache_dir=tmp_path
        ) as client:
            assert client.broker is not None
            # Past the liveness bound of that config: nobody may have expired.
            await anyio.sleep(0.1)
            call = client.request("forever")
            await started.wait()
            call.cancel()
            await cancelled.wait()
            with pytest.raises(binglide.JobCancelled):
                await call
            await anyio.wait_all_tasks_blocked()
            stats = client.broker.statistics()
            assert (stats.workers, stats.dispatched, stats.jobs) == (1, 0, 0)


# -- the cache's size bound ----------------------------------------------------------------


def entries(directory: Path) -> list[Path]:
    """The cache entries in `directory` (none if it was never made)."""
    if not directory.exists():
        return []
    return [p for p in directory.iterdir() if not p.name.startswith(".")]


async def test_cache_max_size_bounds_the_embedded_cache(tmp_path, monkeypatch):
    data = tmp_path / "data.bin"
    data.write_bytes(np.random.default_rng(5).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    monkeypatch.delenv("BINGLIDE_CACHE_MAX_SIZE", raising=False)
    with anyio.fail_after(30):
        async with binglide.connect(workers=1, cache_dir=tmp_path / "free") as client:
            await client.histogram(data)
        # Every entry is larger than one byte: a bound of 1 keeps none.
        async with binglide.connect(
            workers=1, cache_dir=tmp_path / "bounded", cache_max_size=1
        ) as client:
            await client.histogram(data)
        monkeypatch.setenv("BINGLIDE_CACHE_MAX_SIZE", "1B")
        async with binglide.connect(workers=1, cache_dir=tmp_path / "from-env") as client:
            await client.histogram(data)
    assert entries(tmp_path / "free")
    assert not entries(tmp_path / "bounded")
    assert not entries(tmp_path / "from-env")


async def test_a_bad_cache_max_size_in_the_environment_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("BINGLIDE_CACHE_MAX_SIZE", "lots")
    with pytest.raises(ValueError, match="BINGLIDE_CACHE_MAX_SIZE='lots' is not a size"):
        async with binglide.connect(workers=1, cache_dir=tmp_path):
            pytest.fail("started")  # pragma: no cover
