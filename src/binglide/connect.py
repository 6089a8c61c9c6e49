"""`connect()`: a client on the embedded default, or on a running broker.

With no address, `connect` starts everything in this process: an in-process
broker and, for every built-in service and every `Service` class passed in,
``workers`` workers. The analyses' kernels release the GIL and run in worker
threads, so in-process workers use every core of the machine.

With an address, `connect` opens a `Client` on a broker over ZeroMQ and
waits until it answers, telling apart a broker that is not there from one
that refuses us (`TransportRefused`, from the socket monitor's view of the
CURVE handshake); `connect_remote` opens one without waiting.
`resolve_service` names the services a deployment can serve.
"""

from __future__ import annotations

import importlib
import math
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import attrs

from ._aio import loop_time
from ._groups import single_errors
from .broker import Broker
from .cachefs import ChunkStore, default_cache_dir, default_max_bytes
from .client import Client
from .core import BrokerConfig
from .errors import TransportBroken, TransportRefused
from .service import Service, Settings
from .transports import InprocNetwork
from .worker import DEFAULT_HEARTBEAT_INTERVAL, Worker

if TYPE_CHECKING:
    from collections.abc import (
        AsyncIterator,
        Awaitable,
        Callable,
        Iterable,
        Mapping,
        Sequence,
    )

    import zmq.asyncio

    from .services.files import FileServer
    from .transports import PeerTransport
    from .transports.handshake import Handshake
    from .transports.zeromq import CurveClientKeys, ZmqPeer

__all__ = (
    "connect",
    "connect_remote",
    "default_services",
    "load_client_keys",
    "resolve_service",
    "start_workers",
    "wait_handshake",
)


def default_services() -> tuple[type[Service], ...]:
    """Return the built-in analysis services."""
    from .services import BUILTIN_SERVICES

    return BUILTIN_SERVICES


def resolve_service(spec: str) -> type[Service]:
    """Return the `Service` class `spec` names.

    Args:
        spec: a built-in service name (``histogram``) or ``module:Class``.

    Raises:
        ValueError: nothing of that name, or not a `Service` subclass.
    """
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(
                f"cannot load service {spec!r}: cannot import {module_name!r} ({exc});"
                " the module must be importable: installed, in the current directory"
                " (binglide worker looks there), or on PYTHONPATH"
            ) from exc
        try:
            cls = getattr(module, attr)
        except AttributeError:
            raise ValueError(
                f"cannot load service {spec!r}: module {module_name!r} has no {attr!r}"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, Service)):
            raise ValueError(f"{spec!r} is not a binglide.Service subclass")
        return cls
    by_name = {cls.name: cls for cls in default_services()}
    if spec not in by_name:
        known = ", ".join(sorted(by_name)) or "none yet"
        raise ValueError(
            f"unknown service {spec!r}: give a built-in name ({known}) or module:Class"
        )
    return by_name[spec]


def _counts(
    services: Sequence[type[Service]], workers: int | Mapping[str, int] | None
) -> dict[str, int]:
    default = os.cpu_count() or 1
    if workers is None or isinstance(workers, int):
        n = default if workers is None else workers
        if n < 1:
            raise ValueError(f"workers must be at least 1, not {n}")
        return {s.name: n for s in services}
    unknown = set(workers) - {s.name for s in services}
    if unknown:
        raise ValueError(f"workers names unknown services: {', '.join(sorted(unknown))}")
    return {s.name: workers.get(s.name, default) for s in services}


@asynccontextmanager
async def start_workers(
    network: InprocNetwork,
    services: Iterable[type[Service]],
    *,
    workers: int | Mapping[str, int] | None = None,
    settings: Settings | None = None,
) -> AsyncIterator[list[Worker]]:
    """Start workers for `services` on `network`; stop them on exit."""
    classes = list(dict.fromkeys(services))
    counts = _counts(classes, workers)
    started: list[Worker] = []
    async with anyio.create_task_group() as tg:
        for cls in classes:
            for _ in range(counts[cls.name]):
                worker = Worker(cls(), network.connect(), settings=settings)
                await tg.start(worker.serve)
                started.append(worker)
        yield started
        tg.cancel_scope.cancel()


@asynccontextmanager
async def connect(
    address: str | None = None,
    *,
    services: Iterable[type[Service]] = (),
    workers: int | Mapping[str, int] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_max_size: int | None = None,
    roots: Sequence[str | os.PathLike[str]] | None = None,
    builtins: bool = True,
    config: BrokerConfig | None = None,
    curve_dir: str | os.PathLike[str] | None = None,
    curve_name: str = "client",
    connect_timeout: float = 10.0,
    serve_files: bool | FileServer = False,
) -> AsyncIterator[Client]:
    """Open a client: on the embedded default, or on the broker at `address`.

    Args:
        address: a broker's ZeroMQ address (``tcp://host:port``,
            ``ipc:///path``); None starts the embedded default in this process.
        services: extra `Service` classes to serve (embedded default only).
        workers: workers per service (default: one per core), or a mapping
            from service name to a number.
        cache_dir: where the chunk cache lives (default: ``$BINGLIDE_CACHE_DIR``
            or the platform's user cache directory).
        cache_max_size: the cache's size bound in bytes; least recently used
            entries are evicted past it (default: ``$BINGLIDE_CACHE_MAX_SIZE``,
            or 4 GiB).
        roots: directories the workers may read files from (default: any).
        builtins: whether to serve the built-in analyses.
        config: the embedded broker's settings. Its heartbeat settings do not
            apply: a peer in this process cannot vanish without a word, so
            none of them is ever expired (a handler that holds the event loop
            must not get its worker declared dead).
        curve_dir: with an address, the directory holding this client's
            CURVE keys (as ``binglide keys`` writes them: ``NAME.key_secret``
            and the broker's ``server.key``); needed when the broker uses
            CURVE, as every broker reachable from other machines does.
        curve_name: the name of the key pair in `curve_dir`.
        connect_timeout: with an address, how long to wait for the broker to
            answer before giving up. A plain MDP/0.2 broker never answers
            binglide's extensions: the client takes it for one after its
            liveness bound (3 s) if a ZeroMQ peer listens at `address`, and
            says what is then unavailable (`Client.missing_features`).
        serve_files: serve the files this client names to workers that
            cannot see them (on other machines, without a shared file
            system): this process registers a ``source.<token>`` service
            with the broker, and every input of this client's requests says
            it serves the file (docs/api.md, "Files the workers cannot
            see"). Only the files named are served, each only in the version
            named. True makes a `FileServer`; pass one to read its
            statistics.

    Raises:
        ValueError: `workers` is not a positive count or names unknown
            services; `cache_max_size` is negative; `curve_dir` holds no key
            pair `curve_name` or no ``server.key``.
        TransportBroken: no broker answered at `address` in time (the message
            says whether anything accepted the connection at all).
        TransportRefused: the broker at `address` refused us: it does not
            admit our key, it uses CURVE and we gave no keys (or the other
            way round), or its public key in `curve_dir` is not its own.
    """
    server = _file_server(serve_files)
    if address is not None:
        keys = load_client_keys(curve_dir, curve_name) if curve_dir is not None else None
        async with (
            _remote_client(address, keys, connect_timeout=connect_timeout) as client,
            _serving_remote(server, address, keys),
        ):
            _route(client, server)
            yield client
        return
    if curve_dir is not None:
        raise ValueError("curve_dir is for a broker's address: the embedded default needs no keys")
    classes = [*(default_services() if builtins else ()), *services]
    _counts(classes, workers)  # refuse bad counts before anything starts
    n = workers if isinstance(workers, int) else (os.cpu_count() or 1)
    store = _open_cache(cache_dir, cache_max_size)
    settings = Settings(roots=roots, cache=store, parallelism=n)
    # In one process nobody dies silently (a worker that stops says so, and
    # the process ends as a whole), so nobody is expired for silence: our
    # workers do not heartbeat, and a handler that holds the event loop for a
    # while must not have its worker, or everyone, declared dead.
    config = attrs.evolve(config or BrokerConfig(), heartbeat_interval=math.inf)
    network = InprocNetwork()
    with single_errors():
        async with anyio.create_task_group() as tg:
            broker = Broker(network.bind(), config=config)
            await tg.start(broker.serve)
            async with (
                start_workers(network, classes, workers=workers, settings=settings),
                _serving(server, network.connect),
                Client(network.connect("client")) as client,
            ):
                client.broker = broker
                _route(client, server)
                yield client
            tg.cancel_scope.cancel()


#: Workers of a client's source service: reads go on while one is answered.
SOURCE_WORKERS = 2


def _file_server(serve_files: bool | FileServer) -> FileServer | None:
    if not serve_files:
        return None  # the usual case: no need to load the file server's module
    from .services.files import FileServer

    if isinstance(serve_files, FileServer):
        return serve_files
    return FileServer()


def _route(client: Client, server: FileServer | None) -> None:
    if server is not None:
        client.body_filter = server.route


@asynccontextmanager
async def _serving(
    server: FileServer | None,
    transport: Callable[[], PeerTransport],
    *,
    heartbeat_interval: float | None = None,
) -> AsyncIterator[None]:
    """Serve `server`'s files with `SOURCE_WORKERS` workers, each on a new `transport()`.

    Over a network (with heartbeats) it returns once the broker registered
    them all, so that the requests sent then find their source; in-process,
    their READY reaches the broker before anything the client sends.
    """
    if server is None:
        yield
        return
    async with anyio.create_task_group() as tg:
        for _ in range(SOURCE_WORKERS):
            worker = Worker(server.service(), transport(), heartbeat_interval=heartbeat_interval)
            await tg.start(worker.serve)
            if heartbeat_interval is not None:
                await worker.wait_registered()
        yield
        tg.cancel_scope.cancel()


@asynccontextmanager
async def _serving_remote(
    server: FileServer | None, address: str, keys: CurveClientKeys | None
) -> AsyncIterator[None]:
    """`_serving` over ZeroMQ to the broker at `address`, with the client's keys."""
    from .transports.zeromq import ZmqPeer, new_identity

    def peer() -> PeerTransport:
        return ZmqPeer.connect(address, identity=new_identity("source"), curve=keys)

    async with _serving(server, peer, heartbeat_interval=DEFAULT_HEARTBEAT_INTERVAL):
        yield


def load_client_keys(directory: str | os.PathLike[str], name: str = "client") -> CurveClientKeys:
    """Load a client's or worker's CURVE keys from a directory ``binglide keys`` wrote.

    Args:
        directory: holds ``NAME.key_secret`` (this peer's key pair) and
            ``server.key`` (the broker's public key).
        name: the key pair's name.

    Raises:
        ValueError: a file is missing or is not a ZeroMQ certificate; the
            message says which and how to make it.
    """
    from .transports.zeromq import CurveClientKeys

    root = Path(directory)
    pair = root / f"{name}.key_secret"
    if not pair.is_file():
        raise ValueError(
            f"no CURVE key pair {name!r} in {root}: {pair} is missing (make one with"
            f" 'binglide keys DIR --client {name}', or name another with --curve-name)"
        )
    if not (root / "server.key").is_file():
        raise ValueError(
            f"no broker public key in {root}: {root / 'server.key'} is missing (copy it"
            " from the directory 'binglide keys' wrote for the broker)"
        )
    try:
        return CurveClientKeys.from_directory(root, name)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read CURVE keys {name!r} from {root}: {exc}") from None


@asynccontextmanager
async def connect_remote(
    address: str,
    *,
    heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
    curve: CurveClientKeys | None = None,
    identity: str | None = None,
    context: zmq.asyncio.Context | None = None,
) -> AsyncIterator[Client]:
    """Open a `Client` on the broker at `address`, over ZeroMQ.

    Unlike `connect`, it does not wait for the broker to answer.

    Args:
        address: the broker's endpoint (``tcp://host:port``, ``ipc:///path``).
        heartbeat_interval: seconds between client heartbeats; it must match
            the broker's. None: no heartbeats (the broker then never cancels
            this client's jobs on silence, and a restarted broker is not
            noticed).
        curve: CURVE keys, needed when the broker uses CURVE.
        identity: the client's routing id (default: a fresh unique one).
        context: the ZeroMQ context (default: binglide's `shared_context`).

    Raises:
        TransportBroken: ZeroMQ refused the address.
    """
    from .transports.zeromq import ZmqPeer, new_identity

    peer = ZmqPeer.connect(
        address, identity=identity or new_identity("client"), curve=curve, context=context
    )
    async with Client(peer, heartbeat_interval=heartbeat_interval) as client:
        yield client


@asynccontextmanager
async def _remote_client(
    address: str, keys: CurveClientKeys | None, *, connect_timeout: float
) -> AsyncIterator[Client]:
    """Open a `Client` on the broker at `address` once it has answered.

    Two steps under one deadline: the socket's handshake (nothing accepted
    the connection, the broker refused us, or it went through), then the
    broker's first word to us (a binglide broker heartbeats its clients).
    The client only starts once the handshake went through, so that a broker
    that is not there is reported once, as such.
    """
    from .transports.handshake import HandshakeWatch
    from .transports.zeromq import ZmqPeer, new_identity

    deadline = loop_time() + connect_timeout
    peer = ZmqPeer.connect(address, identity=new_identity("client"), curve=keys, monitor=True)
    try:
        assert peer.monitor is not None
        watch = HandshakeWatch(peer.monitor)
        outcome: Handshake | None = None
        with anyio.move_on_after(connect_timeout):
            outcome = await watch.outcome()
        outcome = outcome or watch.vague
        if outcome is None:
            if watch.connected:
                raise TransportBroken(
                    f"something at {address} accepted the connection but no ZeroMQ"
                    f" handshake completed within {connect_timeout:g} s; is it a binglide broker?"
                )
            raise TransportBroken(
                f"no broker answered at {address} within {connect_timeout:g} s: nothing accepted a"
                f" connection there; start one (binglide broker --bind {address}) or check"
                " the address"
            )
        peer.stop_monitor()
        refused = _handshake_refusal(outcome, address, with_keys=keys is not None)
        if refused is not None:
            raise refused
    except BaseException:
        with anyio.CancelScope(shield=True):
            await peer.aclose()
        raise
    async with Client(peer, heartbeat_interval=DEFAULT_HEARTBEAT_INTERVAL) as client:
        with anyio.move_on_after(max(0.0, deadline - loop_time())) as scope:
            await _served(client)
        if scope.cancelled_caught:
            raise TransportBroken(
                f"{address} completed the ZeroMQ handshake but no binglide broker answered"
                f" within {connect_timeout:g} s; is it a binglide broker?"
            )
        yield client


async def _served(client: Client) -> None:
    """Wait until a binglide broker answers `client`, or it takes its broker for plain MDP.

    The handshake went through: something speaks ZeroMQ there. A plain
    MDP/0.2 broker never answers binglide's extensions; the client falls back
    to plain MDP after its liveness bound (core.client) and says what is then
    unavailable.
    """
    async with anyio.create_task_group() as tg:

        async def first(wait: Callable[[], Awaitable[None]]) -> None:
            await wait()
            tg.cancel_scope.cancel()

        tg.start_soon(first, client.wait_connected)
        tg.start_soon(first, client.wait_plain_broker)


async def wait_handshake(peer: ZmqPeer, *, with_keys: bool) -> None:
    """Wait until the broker took `peer`'s first handshake; then stop its monitor.

    A peer waits as long as it takes for a broker to appear (ZeroMQ retries
    in the background); bound the wait with a timeout if that is not wanted.

    Args:
        peer: a peer opened with ``ZmqPeer.connect(..., monitor=True)``.
        with_keys: whether `peer` uses CURVE keys (for the message).

    Raises:
        ValueError: `peer` has no monitor.
        TransportRefused: the broker refused the handshake (see `connect`).
    """
    from .transports.handshake import HandshakeWatch

    if peer.monitor is None:
        raise ValueError("the peer has no monitor: connect it with monitor=True")
    outcome = await HandshakeWatch(peer.monitor).outcome()
    peer.stop_monitor()
    refused = _handshake_refusal(outcome, peer.address, with_keys=with_keys)
    if refused is not None:
        raise refused


def _handshake_refusal(
    outcome: Handshake, address: str, *, with_keys: bool
) -> TransportRefused | None:
    """Return the error a failed handshake with the broker stands for (None: it succeeded)."""
    from .transports.handshake import Handshake

    if outcome is Handshake.SUCCEEDED:
        return None
    return TransportRefused(_refusal_message(outcome, address, with_keys=with_keys))


def _refusal_message(outcome: Handshake, address: str, *, with_keys: bool) -> str:
    from .transports.handshake import Handshake

    if outcome is Handshake.REFUSED_KEY:
        return (
            f"the broker at {address} refused our CURVE key: it does not admit this"
            " key pair (copy its NAME.key into the broker's authorized/ directory and"
            " restart the broker, or use a pair it admits)"
        )
    give_keys = "pass the directory 'binglide keys' wrote: --curve-dir DIR (curve_dir= in Python)"
    if outcome is Handshake.MECHANISM_MISMATCH and not with_keys:
        return f"the broker at {address} requires CURVE and we gave no keys: {give_keys}"
    if outcome is Handshake.MECHANISM_MISMATCH:
        return (
            f"the broker at {address} does not use CURVE but we gave keys: connect"
            " without them, or start the broker with --curve-dir"
        )
    if with_keys:
        return (
            f"the CURVE handshake with {address} failed: the server.key we hold is not"
            " that broker's public key (copy server.key from its key directory), or the"
            " broker does not use CURVE (connect without keys)"
        )
    return (
        f"the broker at {address} closed the connection during the ZeroMQ handshake:"
        f" it most likely requires CURVE and we gave no keys; {give_keys}"
    )


def _open_cache(
    cache_dir: str | os.PathLike[str] | None, max_size: int | None = None
) -> ChunkStore:
    return ChunkStore(
        cache_dir if cache_dir is not None else default_cache_dir(),
        max_bytes=max_size if max_size is not None else default_max_bytes(),
    )
