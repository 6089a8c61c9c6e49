"""The broker's drivers: the loops that run a `BrokerMachine` over sockets.

The machine (`binglide.core.broker`) holds every rule; a driver only moves
messages. Both drivers take the same `turn` per batch of messages: feed each
one, run the machine's timers when they are due, and collect what the
machine says (a batch of one message takes it as a `step`, one machine
call). They differ only in how they wait and send:

- `Broker` is driven by any `BrokerTransport`, which delivers each batch as
  it arrives (the embedded default runs it in-process, where delivery is a
  function call; `run_broker` runs it over ZeroMQ);
- `run_broker_blocking` is a lean blocking loop over a pyzmq ROUTER socket,
  with no coroutine, future or cancel scope per message: what ``binglide
  broker`` runs, in a process of its own.

Malformed frames from a peer are logged and dropped (the ZeroMQ transport's
decoding reports them), and so are messages the machine refuses, at most one
line a period (`DropLog`): one rogue peer never stops the broker serving
everyone else. An internal error of the machine (a bug) stops the broker:
the machine refuses to go on from an unknown state.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ._aio import loop_clock, loop_time
from .core import (
    BrokerConfig,
    BrokerMachine,
    BrokerStatistics,
    IdSource,
    Outgoing,
    PeerId,
)
from .errors import LocalProtocolError, RemoteProtocolError, TransportClosed, TransportError
from .outbox import Outbox
from .transports.base import DEFAULT_MAX_MESSAGE_SIZE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    import zmq
    from anyio.abc import TaskStatus

    from .core import Message, Protocol
    from .transports import BrokerTransport
    from .transports.base import Incoming
    from .transports.zeromq import CurveServerKeys

__all__ = (
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Broker",
    "DropLog",
    "RunningBroker",
    "feed",
    "networked_machine",
    "run_broker",
    "run_broker_blocking",
    "step",
    "turn",
)

log = logging.getLogger("binglide.broker")

#: Messages a blocking broker handles in a row before it looks at its timers.
_DRAIN_BLOCKING = 256
#: While messages come one at a time, a blocking broker looks for another
#: after one of this many (see `run_broker_blocking`).
_LOOK_EVERY = 8
#: The longest a blocking broker waits in one receive (ms), even with nothing
#: to time: a signal that arrives while libzmq works inside the receive (on a
#: peer's disconnection, say) is only noted, and libzmq waits on; the Python
#: handler (SIGTERM's, SIGINT's) runs when the receive returns.
_WAIT_AT_MOST = 1000


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
    machine: BrokerMachine, incoming: Incoming, now: float, drops: DropLog | None = None
) -> None:
    """Feed one message to `machine`; log and drop what it refuses.

    A message the machine refuses (illegal now) is dropped with a warning
    (the machine changed nothing; with `drops`, the warnings are
    rate-limited): one rogue peer never stops the broker serving everyone
    else.

    Raises:
        Exception: an internal error of the machine (a bug), logged here; the
            machine is broken from then on (`binglide.core.broker`), so the
            broker stops rather than serve on from an unknown state.
    """
    peer, protocol, msg = incoming
    try:
        machine.receive(peer, protocol, msg, now)
    except RemoteProtocolError as exc:
        _refused(peer, exc, now, drops)
    except Exception:
        _broken(peer)
        raise


def _refused(peer: PeerId, exc: RemoteProtocolError, now: float, drops: DropLog | None) -> None:
    """Log a message the machine refused (rate-limited with `drops`)."""
    if drops is None:
        log.warning("dropped a message from peer %r: %s", peer, exc)
    else:
        drops.dropped(peer, exc, now)


def _broken(peer: PeerId) -> None:
    """Log the internal error the machine raised on a message from `peer` (being handled)."""
    log.critical("internal error while handling a message from peer %r", peer, exc_info=True)


def turn(
    machine: BrokerMachine,
    received: Iterable[Incoming],
    now: float,
    drops: DropLog | None = None,
) -> tuple[list[Outgoing], float | None]:
    """Take one turn of a broker loop; return what to send, and the next deadline.

    Feeds every received message to `machine`, runs its timers if they are
    due at `now`, and collects its outgoing messages. Both drivers call this
    once per batch, so they cannot disagree on a rule. With `drops`, dropped
    messages are logged through it (rate-limited).

    Returns:
        The messages to send, in order, and when the machine's timers are
        next due (None: nothing to time).
    """
    receive = machine.receive
    for peer, protocol, msg in received:  # `feed`, inline: a turn a message in one process
        try:
            receive(peer, protocol, msg, now)
        except RemoteProtocolError as exc:
            _refused(peer, exc, now, drops)
        except Exception:
            _broken(peer)
            raise
    outgoing, deadline, notices = machine.settle(now)  # timers run if due
    if notices or (drops is not None and drops._counted):  # (the usual turn: no call)
        _told(notices, now, drops)
    return outgoing, deadline


def step(
    machine: BrokerMachine,
    peer: PeerId,
    protocol: Protocol,
    msg: Message,
    now: float,
    drops: DropLog | None = None,
) -> tuple[list[Outgoing], float | None]:
    """Take a `turn` of one message: the same rules, in one machine call (`BrokerMachine.step`).

    What a turn of one message does and returns (a message the machine
    refuses is logged and dropped, and the turn still ends), without the
    batch: in one process every turn has one message, and so does the
    blocking loop's while requests come one at a time.

    Raises:
        Exception: an internal error of the machine (a bug), as `turn`.
    """
    try:
        outgoing, deadline, notices = machine.step(peer, protocol, msg, now)
    except RemoteProtocolError as exc:
        _refused(peer, exc, now, drops)
        outgoing, deadline, notices = machine.settle(now)
    except Exception:
        _broken(peer)
        raise
    if notices or (drops is not None and drops._counted):  # (the usual turn: no call)
        _told(notices, now, drops)
    return outgoing, deadline


def _told(notices: Sequence[tuple[PeerId, str]], now: float, drops: DropLog | None) -> None:
    """Log the machine's `notices` at the end of a turn (through `drops`, if given)."""
    for peer, what in notices:
        # Handled (a DISCONNECT sent), but a peer misbehaved: said as a drop is.
        if drops is None:
            log.warning("peer %r: %s", peer, what)
        else:
            drops.dropped(peer, what, now)
    if drops is not None:
        drops.flush(now)


class Broker:
    """Route requests to workers and reports back, over a transport (see `binglide.core.broker`).

    The transport delivers each batch of messages to the broker as it
    arrives (in-process: from the sender's own step); the broker takes a
    `turn` and sends what it produced at once. A timer task takes the turns
    the machine's deadlines call for.

    Args:
        transport: where peers' messages come from and go to.
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
        # A worker in this process reads a root task's ancestry only at its
        # handler's first sub-request: let it digest the payload then, if ever.
        machine.lazy_ancestry = transport.in_process
        #: The dropped messages (rate-limited warnings, and their count).
        self.drops = DropLog()
        self._outbox: Outbox[Outgoing] = Outbox(self._send_nowait, self._send)
        # The loop's clock, read directly once `serve` runs on it (`loop_clock`).
        self._clock: Callable[[], float] = loop_time
        #: When the timer task wakes next (inf: never), and how to wake it sooner.
        self._timer_at = math.inf
        self._timer_changed: anyio.Event | None = None

    def statistics(self) -> BrokerStatistics:
        """Return a snapshot of the broker's queues, tasks and counters."""
        return self.machine.statistics()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled or the transport is closed.

        Raises:
            Exception: an internal error of the machine (a bug, see `feed`),
                as itself (not in an exception group).
        """
        errors: list[Exception] = []
        self._clock = loop_clock()
        try:
            async with anyio.create_task_group() as tg:

                async def timers() -> None:
                    try:
                        await self._timers()
                    except Exception as exc:
                        errors.append(exc)
                        tg.cancel_scope.cancel()

                tg.start_soon(self._outbox.run)
                tg.start_soon(timers)
                task_status.started()
                transport = self._transport
                try:
                    if transport.in_process:
                        await transport.deliver_each_to(self._on_message, dropped=self._dropped)
                    else:
                        await transport.deliver_to(self._on_batch, dropped=self._dropped)
                except TransportClosed:
                    pass
                except Exception as exc:
                    errors.append(exc)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._transport.aclose()
        if errors:
            # A broken machine refuses every later call with LocalProtocolError,
            # which says nothing new: raise what broke it.
            raise next((e for e in errors if not isinstance(e, LocalProtocolError)), errors[0])

    def _dropped(self, peer: PeerId, error: RemoteProtocolError) -> None:
        self.drops.dropped(peer, error, self._clock())

    def _on_batch(self, batch: Sequence[Incoming]) -> None:
        outgoing, deadline = turn(self.machine, batch, self._clock(), self.drops)
        post = self._outbox.post
        for out in outgoing:
            post(out)
        if deadline is not None and deadline < self._timer_at and self._timer_changed:
            self._timer_changed.set()

    def _on_message(self, peer: PeerId, protocol: Protocol, msg: Message) -> None:
        """`_on_batch` for a batch of one, on an in-process transport: the same turn, fewer calls.

        A `step` is `turn`'s feed and settle in one machine call, and what
        the turn produced goes to the transport's ``send_nowait`` directly:
        in process it never blocks, so the outbox would hold nothing, and its
        errors are met as `Outbox.post` and `_send_nowait` meet them.
        """
        outgoing, deadline = step(self.machine, peer, protocol, msg, self._clock(), self.drops)
        send = self._transport.send_nowait
        for out in outgoing:
            try:
                send(out)
            except TransportClosed:
                pass  # closed by us: what was left to say is moot (`Outbox.post`)
            except TransportError as exc:
                log.warning("could not send to peer %r: %s", out.peer, exc)
        if deadline is not None and deadline < self._timer_at and self._timer_changed:
            self._timer_changed.set()

    async def _timers(self) -> None:
        machine = self.machine
        clock = self._clock
        while True:
            outgoing, deadline = turn(machine, (), clock(), self.drops)
            for out in outgoing:
                self._outbox.post(out)
            self._timer_at = math.inf if deadline is None else deadline
            self._timer_changed = changed = anyio.Event()
            with anyio.move_on_after(self._timer_at - clock()):
                await changed.wait()

    def _send_nowait(self, out: Outgoing) -> None:
        try:
            self._transport.send_nowait(out)
        except (anyio.WouldBlock, TransportClosed):
            raise
        except TransportError as exc:
            log.warning("could not send to peer %r: %s", out.peer, exc)

    async def _send(self, out: Outgoing) -> None:
        try:
            await self._transport.send(out)
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
    context: zmq.Context[Any] | None = None,
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


def _receive_timeout(current: int, wait: int) -> int:
    """Return the receive timeout for a blocking broker `wait` ms from its next deadline.

    Setting the socket's timeout costs a pyzmq option call, and the time to
    the deadline shrinks a little with every message: `current` is kept
    while it neither waits past the deadline nor wakes up before half the
    time to it; otherwise the result is half that time (at least 1 ms), so
    that the timeout is set again only a few times per deadline.

    Args:
        current: the timeout the socket has (ms; -1: none).
        wait: ms to the machine's next deadline (positive).
    """
    if 0 < current <= wait < 2 * current + 2:
        return current
    return max(1, wait // 2)


def _receive_plan(deadline: float | None, now: float, current: int) -> tuple[int, float]:
    """Return a blocking broker's receive timeout at `now`, and until when it stays right.

    Args:
        deadline: the machine's next deadline (None: nothing to time).
        now: the time.
        current: the timeout the socket has (ms; -1: none).

    Returns:
        The timeout (`_receive_timeout`: ms, at most `_WAIT_AT_MOST`), or 0
        when the deadline is due (take only what is ready); and the time
        until which, for the same deadline, it never waits past the deadline
        (then the time to it is shorter than the timeout).
    """
    if deadline is None:
        wait = _WAIT_AT_MOST
    else:
        wait = min(max(0, math.ceil((deadline - now) * 1000)), _WAIT_AT_MOST)
    if not wait:
        return 0, -math.inf
    timeout = _receive_timeout(current, wait)
    return timeout, math.inf if deadline is None else deadline - timeout / 1000


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
    loop instead of an event loop: it drains every message that is ready
    (without waiting), takes a turn, and sends what the turn produced at once;
    it waits (in a blocking receive) only when nothing is ready, until the
    machine's next deadline. It returns only by an exception (``KeyboardInterrupt`` from
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
        router_incoming,
        router_outgoing,
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
    # The loop waits in a blocking receive, not in ``zmq_poll``: libzmq's
    # receive tries the socket's queues first and waits on its command
    # mailbox only when they are empty, so it is right whatever a send did
    # to the descriptor's signal, and a wake-up costs the mailbox's own
    # system calls only. A ``zmq_poll`` with a timeout looks twice before it
    # waits (its first pass has a zero timeout) and reads ZMQ_EVENTS after:
    # four more system calls a message (bench/RESULTS.md, issue 13, eleventh
    # pass). A read of ZMQ_EVENTS (`has_message`) says whether a second
    # message is ready after one received (cheaper than the zmq.Again of a
    # failed receive, which pyzmq builds in Python).
    again = zmq.Again
    zmq_error = zmq.ZMQError
    dontwait = int(zmq.DONTWAIT)
    look, alone = True, 0  # whether to look for more after a message; turns of one in a row
    rcvtimeo = -1  # the receive timeout as last set (`_receive_timeout`; -1: ZeroMQ's default)
    # The receive's flags and timeout stay right for the deadline they were
    # worked out for until the clock reaches `recheck` (`_receive_plan`): the
    # usual turn works nothing out (it was a clock read, a `_receive_timeout`
    # call and three builtins a message).
    flags, recheck = 0, -math.inf
    timed: float | None = math.nan  # (NaN: none; equal to no deadline)

    def dropped(peer: PeerId, error: RemoteProtocolError) -> None:
        drops.dropped(peer, error, clock())

    try:
        if on_bound is not None:
            on_bound(bound)
        deadline = machine.next_deadline()
        now = clock()
        while True:
            # `now` is the last turn's: its sends took microseconds, and the
            # timeout is in whole milliseconds, rounded up.
            if deadline != timed or now >= recheck:
                timeout, recheck = _receive_plan(deadline, now, rcvtimeo)
                if timeout:
                    flags, timed = 0, deadline
                    if timeout != rcvtimeo:
                        rcvtimeo = timeout
                        sock.setsockopt(zmq.RCVTIMEO, rcvtimeo)
                else:  # due: take only what is ready, and work it out again next turn
                    flags, timed = dontwait, math.nan
            try:
                # Blocks until a message or the timeout (zmq.Again).
                frames = receive_frames(sock, flags)
            except again:  # the timers' turn
                now = clock()
                outgoing, deadline = turn(machine, (), now, drops)
            else:
                if look and has_message(sock):
                    # Messages come in a burst: every one that is ready, up to
                    # a bound (the timers' turn comes after it), in one turn,
                    # each received until none is left (one failed receive
                    # a turn rather than a look a message).
                    batch: list[Incoming] = []
                    received = 1
                    while True:
                        incoming = router_incoming(frames, dropped)
                        if incoming is not None:
                            batch.append(incoming)
                        if received >= _DRAIN_BLOCKING:
                            break
                        try:
                            frames = receive_frames(sock, dontwait)
                        except again:
                            break
                        received += 1
                    look, alone = True, 0
                    # The turn reads the clock after the batch, so that its
                    # timers see the time they run at.
                    now = clock()
                    outgoing, deadline = turn(machine, batch, now, drops)
                else:
                    # One at a time (sequential requests): the look for
                    # another (a read of ZMQ_EVENTS: a poll and a getpid) found nothing,
                    # and is made only every `_LOOK_EVERY`th message from now
                    # on: a message missed is received, at once, by the next
                    # turn's receive.
                    alone += 1
                    look = alone % _LOOK_EVERY == 0
                    incoming = router_incoming(frames, dropped)
                    now = clock()
                    if incoming is None:
                        outgoing, deadline = turn(machine, (), now, drops)
                    else:
                        peer, protocol, msg = incoming
                        outgoing, deadline = step(machine, peer, protocol, msg, now, drops)
            # Send what the whole batch produced in one burst: a send wakes
            # ZeroMQ's I/O thread, which on a busy machine preempts this one;
            # a send per message received made a context switch pair of every
            # message.
            for out in outgoing:
                try:
                    send_frames(sock, router_outgoing(out))
                except zmq_error as exc:
                    log.warning("could not send to peer %r: %s", out.peer, exc)
    finally:
        sock.close(linger=0)
        if authenticator is not None:
            authenticator.stop()
        ctx.term()
