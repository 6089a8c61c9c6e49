"""The broker's drivers: the loops that run a `BrokerMachine` over sockets.

The machine (`binglide.core.broker`) holds every rule; a driver only moves
messages. Both drivers take the same `turn` per batch of messages: decode and
feed each one, run the machine's timers when they are due, and collect what
the machine says. They differ only in how they wait and send:

- `Broker` is an async loop over any `BrokerTransport` (the embedded default
  runs it in-process; `run_broker` runs it over ZeroMQ);
- `run_broker_blocking` is a lean blocking loop over a pyzmq ROUTER socket,
  with no coroutine, future or cancel scope per message: what ``binglide
  broker`` runs, in a process of its own.

Malformed frames from a peer are logged and dropped: one rogue peer never
stops the broker serving everyone else. An internal error of the machine (a
bug) stops the broker: the machine refuses to go on from an unknown state.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import attrs

from ._clock import loop_time
from .core import (
    BrokerConfig,
    BrokerMachine,
    BrokerStatistics,
    Frame,
    IdSource,
    Outgoing,
    PeerId,
    decode,
    encode,
)
from .errors import RemoteProtocolError, TransportClosed, TransportError
from .transports.base import DEFAULT_MAX_MESSAGE_SIZE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    import zmq.asyncio
    from anyio.abc import TaskStatus

    from .transports import BrokerTransport
    from .transports.zeromq import CurveServerKeys

__all__ = (
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Broker",
    "DropLog",
    "RunningBroker",
    "encode_outgoing",
    "feed",
    "networked_machine",
    "run_broker",
    "run_broker_blocking",
    "turn",
)

log = logging.getLogger("binglide.broker")

#: Messages an async broker handles in a row without waiting before it lets other tasks run.
_DRAIN = 64
#: Messages a blocking broker handles in a row before it looks at its timers.
_DRAIN_BLOCKING = 256


def networked_machine(config: BrokerConfig | None = None) -> BrokerMachine:
    """Return a `BrokerMachine` for a broker that peers in other processes reach.

    Its task ids start from the clock, so that a restarted broker never
    reuses an id that a worker of the previous one may still hold, and its
    instance id is random, so that clients notice the restart.
    """
    return BrokerMachine(
        config, ids=IdSource(time.time_ns() // 1000), instance=os.urandom(8).hex()
    )


class DropLog:
    """Log dropped messages at most once per `interval` seconds, with counts of the rest.

    A peer that sends garbage in a loop would otherwise write a line per
    message (tens of thousands a second). The first drop in a quiet period is
    logged at once, with its reason; the next ones are counted, and the
    count (with how many peers sent them) is logged when the period ends.
    Time comes from the caller (the loop's clock), like everything here.
    """

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        #: Messages dropped in all, since the broker started.
        self.total = 0
        self._until = float("-inf")  # the end of the current period
        self._counted = 0
        self._peers: set[str] = set()

    def dropped(self, peer: str, reason: object, now: float) -> None:
        """Note that a message from `peer` was dropped for `reason` at `now`."""
        self.total += 1
        self.flush(now)
        if now < self._until:
            self._counted += 1
            if len(self._peers) < 1000:  # enough to say "many"
                self._peers.add(peer)
            return
        log.warning("dropped a message from peer %r: %s", peer, reason)
        self._until = now + self.interval

    def flush(self, now: float) -> None:
        """Log the count of the drops not logged, once their period is over."""
        if self._counted and now >= self._until:
            log.warning(
                "dropped %d more messages from %s%d peers in %g s (only one a period is logged)",
                self._counted,
                "at least " if len(self._peers) >= 1000 else "",
                len(self._peers),
                self.interval,
            )
            self._counted = 0
            self._peers.clear()


def feed(
    machine: BrokerMachine,
    peer: str,
    frames: Sequence[Frame],
    now: float,
    drops: DropLog | None = None,
) -> None:
    """Decode `frames` from `peer` and feed them to `machine`; log and drop what is bad.

    A malformed or illegal message is dropped with a warning (the machine
    changed nothing; with `drops`, the warnings are rate-limited): one rogue
    peer never stops the broker serving everyone else.

    Raises:
        Exception: an internal error of the machine (a bug), logged here; the
            machine is broken from then on (`binglide.core.broker`), so the
            broker stops rather than serve on from an unknown state.
    """
    try:
        protocol, msg = decode(frames, from_broker=False)
        machine.receive(PeerId(peer), protocol, msg, now)
    except RemoteProtocolError as exc:
        if drops is None:
            log.warning("dropped a message from peer %r: %s", peer, exc)
        else:
            drops.dropped(peer, exc, now)
    except Exception:
        log.critical("internal error while handling a message from peer %r", peer, exc_info=True)
        raise


def turn(
    machine: BrokerMachine,
    received: Iterable[tuple[str, Sequence[Frame]]],
    now: float,
    drops: DropLog | None = None,
) -> list[Outgoing]:
    """Take one turn of a broker loop; return what the machine says to send.

    Feeds every received ``(peer, frames)`` to `machine`, runs its timers if
    they are due at `now`, and collects its outgoing messages. Both drivers
    call this once per batch, so they cannot disagree on a rule. With
    `drops`, dropped messages are logged through it (rate-limited).
    """
    for peer, frames in received:
        feed(machine, peer, frames, now, drops)
    for peer, what in machine.notices():
        # Handled (a DISCONNECT sent), but a peer misbehaved: said as a drop is.
        if drops is None:
            log.warning("peer %r: %s", peer, what)
        else:
            drops.dropped(peer, what, now)
    if drops is not None:
        drops.flush(now)
    deadline = machine.next_deadline()
    if deadline is not None and deadline <= now:
        machine.handle_timer(now)
    return machine.outgoing()


def encode_outgoing(out: Outgoing) -> list[Frame]:
    """Return the frames of one message the machine sends."""
    return encode(out.message, protocol=out.protocol, from_broker=True, extended=out.extended)


class Broker:
    """Route requests to workers and reports back, over a transport (see `binglide.core.broker`).

    Args:
        transport: where peers' frames come from and go to.
        machine: the rules (default: a new `BrokerMachine` with `config`).
        config: the settings of the default machine; give either this or `machine`.

    Raises:
        ValueError: both `machine` and `config` were given.
    """

    def __init__(
        self,
        transport: BrokerTransport,
        machine: BrokerMachine | None = None,
        *,
        config: BrokerConfig | None = None,
    ):
        if machine is not None and config is not None:
            raise ValueError("give the broker a machine or a config, not both")
        self._transport = transport
        if machine is None:
            machine = BrokerMachine(config, instance=os.urandom(8).hex())
        self.machine = machine
        #: The dropped messages (rate-limited warnings, and their count).
        self.drops = DropLog()

    def statistics(self) -> BrokerStatistics:
        """Return a snapshot of the broker's queues, tasks and counters."""
        return self.machine.statistics()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled or the transport is closed."""
        transport = self._transport
        machine = self.machine
        # Drain what is ready without waiting (a wait, with its cancel scope,
        # costs more than handling a message); await only when nothing is.
        receive_nowait = getattr(transport, "receive_nowait", None)
        drained = 0
        drops = self.drops
        task_status.started()
        try:
            while True:
                received: tuple[PeerId, list[Frame]] | None = None
                if receive_nowait is not None and drained < _DRAIN:
                    # Nothing ready: WouldBlock (ZeroMQ) or None (in-process).
                    with contextlib.suppress(anyio.WouldBlock):
                        received = receive_nowait()
                if received is not None:
                    drained += 1
                else:
                    if drained:
                        # Others (in this loop) get their turn.
                        drained = 0
                        await anyio.lowlevel.checkpoint()
                        continue
                    deadline = machine.next_deadline()
                    if deadline is None:
                        received = await transport.receive()
                    else:
                        timeout = deadline - loop_time()
                        if timeout > 0:
                            with anyio.move_on_after(timeout):
                                received = await transport.receive()
                outgoing = turn(
                    machine, () if received is None else (received,), loop_time(), drops
                )
                await self._send(outgoing)
        except TransportClosed:
            return
        finally:
            with anyio.CancelScope(shield=True):
                await self._transport.aclose()

    async def _send(self, outgoing: list[Outgoing]) -> None:
        for out in outgoing:
            try:
                await self._transport.send(out.peer, encode_outgoing(out))
            except TransportClosed:
                raise
            except TransportError as exc:
                log.warning("could not send to peer %r: %s", out.peer, exc)


# -- over ZeroMQ -------------------------------------------------------------------------


@attrs.frozen
class RunningBroker:
    """What `run_broker` hands to ``task_group.start``.

    Attributes:
        broker: the `Broker` (for `Broker.statistics`).
        address: the bound endpoint (with the port chosen, for ``:*``).
    """

    broker: Broker
    address: str


async def run_broker(
    address: str,
    *,
    config: BrokerConfig | None = None,
    curve: CurveServerKeys | None = None,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    context: zmq.asyncio.Context | None = None,
    task_status: TaskStatus[RunningBroker] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Bind a broker to `address` and serve it from an async loop until cancelled.

    Args:
        address: the endpoint to bind (``tcp://127.0.0.1:*`` picks a port).
        config: the broker's settings (heartbeats, timeouts, bounds).
        curve: CURVE keys; required unless `address` is loopback or ipc.
        max_message_size: the largest frame accepted, in bytes (None: no bound).
        context: the ZeroMQ context.
        task_status: receives a `RunningBroker` once bound.

    Raises:
        ValueError: a non-local address without CURVE (nothing was bound).
        TransportBroken: the address cannot be bound.
    """
    from .transports.zeromq import ZmqBroker

    transport = ZmqBroker.bind(
        address, curve=curve, max_message_size=max_message_size, context=context
    )
    broker = Broker(transport, networked_machine(config))
    async with anyio.create_task_group() as tg:
        await tg.start(broker.serve)
        task_status.started(RunningBroker(broker, transport.address))


def run_broker_blocking(
    address: str,
    *,
    config: BrokerConfig | None = None,
    curve: CurveServerKeys | None = None,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    on_bound: Callable[[str], object] | None = None,
) -> None:
    """Bind a broker to `address` and serve it from a lean blocking loop, forever.

    The same machine and the same `turn` as `Broker`, driven by a plain pyzmq
    poll loop instead of an event loop: it drains every message that is ready
    (without waiting), takes a turn, and sends what the turn produced at once;
    it waits (``zmq_poll``) only when nothing is ready, until the machine's
    next deadline. It returns only by an exception (``KeyboardInterrupt`` from
    a signal, say), after closing its socket.

    Args:
        address: the endpoint to bind (``tcp://127.0.0.1:*`` picks a port).
        config: the broker's settings (heartbeats, timeouts, bounds).
        curve: CURVE keys; required unless `address` is loopback or ipc.
        max_message_size: the largest frame accepted, in bytes (None: no bound).
        on_bound: called with the bound endpoint once the broker listens.

    Raises:
        ValueError: a non-local address without CURVE (nothing was bound).
        TransportBroken: the address cannot be bound.
    """
    import zmq

    from .transports.zeromq import (
        bind_router,
        has_message,
        new_context,
        receive_frames,
        send_frames,
    )

    machine = networked_machine(config)
    drops = DropLog()
    ctx: zmq.Context[zmq.Socket[bytes]] = new_context(zmq.Context)
    try:
        sock, authenticator, bound = bind_router(
            ctx, address, curve=curve, max_message_size=max_message_size
        )
    except BaseException:
        ctx.term()
        raise
    clock = time.monotonic
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    routing_ids: dict[str, bytes] = {}

    def send(outgoing: list[Outgoing]) -> None:
        for out in outgoing:
            peer = out.peer
            routing = routing_ids.get(peer)
            if routing is None:
                routing = routing_ids[peer] = peer.encode("latin-1")
                if len(routing_ids) > 100_000:  # a cache, not a registry
                    routing_ids.clear()
            try:
                send_frames(sock, [routing, *encode_outgoing(out)])
            except zmq.ZMQError as exc:
                log.warning("could not send to peer %r: %s", peer, exc)

    def ready() -> Iterable[tuple[str, Sequence[Frame]]]:
        for _ in range(_DRAIN_BLOCKING):
            if not has_message(sock):
                return
            try:
                frames = receive_frames(sock, zmq.DONTWAIT)
            except zmq.Again:
                return
            yield bytes(frames[0]).decode("latin-1"), frames[1:]

    try:
        if on_bound is not None:
            on_bound(bound)
        while True:
            deadline = machine.next_deadline()
            if deadline is None:
                timeout: int | None = None
            else:
                timeout = max(0, math.ceil((deadline - clock()) * 1000))
            # Send what the whole batch produced in one burst: a send wakes
            # ZeroMQ's I/O thread, which on a busy machine preempts this one;
            # a send per message received made a context switch pair of every
            # message. The turn reads the clock after the batch, so that its
            # timers see the time they run at.
            batch = list(ready()) if poller.poll(timeout) else []
            send(turn(machine, batch, clock(), drops))
    finally:
        sock.close(linger=0)
        if authenticator is not None:
            authenticator.stop()
        ctx.term()
