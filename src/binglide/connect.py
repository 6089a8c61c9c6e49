"""`connect()`: a client on the embedded default, or on a running broker.

With no address, `connect` starts everything in this process: an in-process
broker and, for every built-in service and every `Service` class passed in,
``workers`` workers. The analyses' kernels release the GIL and run in worker
threads, so in-process workers use every core of the machine.

With an address, `connect_remote` opens a `Client` on a broker over ZeroMQ.
`resolve_service` names the services a deployment can serve.
"""

from __future__ import annotations

import importlib
import os
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

import anyio

from .broker import Broker
from .cachefs import ChunkStore, default_cache_dir
from .client import Client
from .core import BrokerConfig
from .errors import TransportBroken
from .service import Service, Settings
from .transports import InprocNetwork
from .worker import DEFAULT_HEARTBEAT_INTERVAL, Worker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence

    import zmq.asyncio

    from .transports.zeromq import CurveClientKeys

__all__ = ("connect", "connect_remote", "default_services", "resolve_service", "start_workers")


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
            cls = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load service {spec!r}: {exc}") from exc
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
    roots: Sequence[str | os.PathLike[str]] | None = None,
    builtins: bool = True,
    config: BrokerConfig | None = None,
    connect_timeout: float = 10.0,
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
        roots: directories the workers may read files from (default: any).
        builtins: whether to serve the built-in analyses.
        config: the embedded broker's settings.
        connect_timeout: with an address, how long to wait for the broker to
            answer before giving up.

    Raises:
        ValueError: `workers` is not a positive count or names unknown services.
        TransportBroken: no broker answered at `address` in time.
    """
    if address is not None:
        async with connect_remote(address) as client:
            try:
                with anyio.fail_after(connect_timeout):
                    await client.wait_connected()
            except TimeoutError:
                raise TransportBroken(
                    f"no broker answered at {address} within {connect_timeout:g} s;"
                    f" start one (binglide broker {address}) or check the address"
                ) from None
            yield client
        return
    classes = [*(default_services() if builtins else ()), *services]
    _counts(classes, workers)  # refuse bad counts before anything starts
    n = workers if isinstance(workers, int) else (os.cpu_count() or 1)
    settings = Settings(roots=roots, cache=_open_cache(cache_dir), parallelism=n)
    # In one process nobody dies silently: no heartbeats needed.
    config = config or BrokerConfig(heartbeat_interval=float("inf"))
    network = InprocNetwork()
    with _single_errors():
        async with anyio.create_task_group() as tg:
            broker = Broker(network.bind(), config=config)
            await tg.start(broker.serve)
            async with (
                start_workers(network, classes, workers=workers, settings=settings),
                Client(network.connect("client")) as client,
            ):
                client.broker = broker
                yield client
            tg.cancel_scope.cancel()


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


@contextmanager
def _single_errors() -> Iterator[None]:
    """Let one error raised in the ``async with`` body escape as itself.

    The embedded default runs its broker and workers in task groups, which
    wrap whatever the caller's code raises in exception groups; a caller who
    writes ``except binglide.RequestError`` around ``async with connect()``
    should catch it. Several real errors stay grouped.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        cancelled = anyio.get_cancelled_exc_class()
        leaves = [e for e in _leaves(group) if not isinstance(e, cancelled)]
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _open_cache(cache_dir: str | os.PathLike[str] | None) -> ChunkStore:
    return ChunkStore(cache_dir if cache_dir is not None else default_cache_dir())
