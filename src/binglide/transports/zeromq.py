"""The ZeroMQ transport: a ROUTER for the broker, a DEALER for each peer.

MDP/0.2 (ZeroMQ RFC 18) puts the broker on a ROUTER socket and every client
and worker on a DEALER. The ROUTER prepends the sender's routing id to what
it receives and routes what it sends by its first frame; here that routing id
is the `PeerId` (decoded as latin-1, so that any bytes round-trip), and the
frames handed to the runtime start at the protocol header.

Choices, and why:

- A peer sets its routing id explicitly (`new_identity`: host, pid and random
  hex), so that it keeps its name across reconnects to a restarted broker and
  the broker's ``job id`` prefixes stay stable.
- ``ROUTER_MANDATORY`` stays off: a message to a peer that vanished is dropped
  silently, as `BrokerTransport.send` promises; heartbeats notice the loss.
  ``ROUTER_HANDOVER`` is on: a peer that reconnects under its id (after a
  network cut the broker has not noticed yet) takes over its old name.
- Small frames are sent by copy (the cheapest way: a zero-copy send costs
  pyzmq a tracker and a callback, about twice the time for a header frame);
  frames of 64 KiB and more (arrays) go out without a copy. The caller must
  not change an array after sending it.
- ``send_nowait`` and ``receive_nowait`` never wait: the runtime drains what
  is ready and sends what it can at once, and only awaits when it must
  (``zmq.asyncio`` costs about as much per wait as the rest of a hop). A
  peer (`ZmqPeer`) waits on ZeroMQ's file descriptor itself, with one reader
  on the event loop, and never through ``zmq.asyncio``'s futures.
- Sockets close with ``linger=0``: a closed end has nothing more to say.
- ``MAXMSGSIZE`` bounds every frame a broker accepts: a peer that sends a
  larger one is disconnected by ZeroMQ before the frame is buffered.
- A broker bound to anything but loopback (``127.0.0.0/8``, ``::1``,
  ``localhost``) or ``ipc://`` requires CURVE: a server key pair and the
  public keys of the clients and workers it admits (`generate_keys` writes
  them). Plain MDP/0.2 has no security (RFC 18, "Security"); CURVE layers it
  underneath without changing a frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import attrs
import zmq
import zmq.asyncio
import zmq.auth
import zmq.backend

from ..core import Frame, PeerId
from ..errors import TransportBroken, TransportClosed
from .base import DEFAULT_MAX_MESSAGE_SIZE, BrokerTransport, PeerTransport

if TYPE_CHECKING:
    from collections.abc import Sequence

    from zmq.auth.thread import ThreadAuthenticator

__all__ = (
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CurveClientKeys",
    "CurveServerKeys",
    "ZmqBroker",
    "ZmqPeer",
    "bind_router",
    "generate_keys",
    "incoming_frames",
    "is_local_address",
    "new_identity",
    "outgoing_frames",
    "receive_frames",
    "send_frames",
)

#: Frames at least this large are received as memoryviews of ZeroMQ's buffer
#: (no copy); smaller ones as bytes, which is cheaper to make and to use.
_ZERO_COPY_THRESHOLD = 64 << 10

#: High-water marks: a ROUTER drops what exceeds them, so keep them roomy.
_HWM = 100_000

_C = TypeVar("_C", bound=zmq.Context[Any])


def new_context(kind: type[_C] = zmq.asyncio.Context) -> _C:  # type: ignore[assignment]
    """Return a new ZeroMQ context whose I/O threads do not preempt their feeders.

    Every message a Python thread sends wakes the context's I/O thread; on a
    machine with more busy threads than cores, Linux lets the woken thread
    preempt the sender at once, and a stream of small messages became a
    context switch pair per message. ``SCHED_BATCH`` (no privilege needed)
    tells the scheduler not to preempt on such wakeups: the I/O thread runs
    when a core is free or the sender blocks. Measured on 2 shared cores:
    about 20% more requests per second and 20% less CPU per request through
    a broker, sequential latency unchanged (bench/RESULTS.md). Elsewhere
    than Linux the option does not exist and the context is a plain one.

    Args:
        kind: ``zmq.asyncio.Context`` (default) or ``zmq.Context``.
    """
    ctx = kind()
    batch = getattr(os, "SCHED_BATCH", None)
    if batch is not None:
        with contextlib.suppress(zmq.ZMQError, AttributeError):
            ctx.set(zmq.THREAD_SCHED_POLICY, batch)  # before its first socket starts them
    return ctx


_shared: tuple[int, zmq.asyncio.Context] | None = None


def shared_context() -> zmq.asyncio.Context:
    """Return binglide's context for this process (made by `new_context` on first use).

    binglide's own rather than pyzmq's ``Context.instance()``: the I/O thread
    policy must be set before the context's first socket, which another
    library may already have opened on the shared instance. A forked child
    gets a context of its own (a context does not survive a fork).
    """
    global _shared
    pid = os.getpid()
    if _shared is None or _shared[0] != pid:
        _shared = (pid, new_context())
    return _shared[1]


_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def is_local_address(address: str) -> bool:
    """Return whether binding `address` exposes nothing beyond this machine.

    ``ipc://`` and ``inproc://`` are local; a ``tcp://`` address is local when
    its host is a loopback address (``127.0.0.0/8``, ``::1``) or
    ``localhost``. Everything else, ``*``, ``0.0.0.0`` and interface names
    included, is not.

    Args:
        address: a ZeroMQ endpoint.
    """
    scheme, sep, rest = address.partition("://")
    if not sep:
        return False
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host, _, _port = rest.rpartition(":")
    if ";" in host:  # tcp://source;host:port: the bound part is after ';'
        host = host.rsplit(";", 1)[1]
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_identity(prefix: str = "peer") -> str:
    """Return a fresh, unique, ASCII routing id: ``prefix-host-pid-hex``."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-.")[:32]
    return f"{prefix}-{host}-{os.getpid()}-{secrets.token_hex(4)}"


# -- CURVE ---------------------------------------------------------------------------


def generate_keys(
    directory: str | os.PathLike[str], *, clients: Sequence[str] = ("client",)
) -> Path:
    """Write a CURVE key set for a broker and its clients into `directory`.

    Layout (ZeroMQ certificate files, as `zmq.auth.create_certificates`
    writes them)::

        server.key, server.key_secret      the broker's key pair
        <name>.key, <name>.key_secret      each client's (and worker's) pair
        authorized/<name>.key              the public keys the broker admits

    Give the broker `CurveServerKeys.from_directory(directory)` and every
    client or worker `CurveClientKeys.from_directory(directory, name)`. Copy
    only what each machine needs: a client needs its own pair and
    ``server.key``; never ``server.key_secret``.

    Args:
        directory: where to write (created if needed).
        clients: the names of the client key pairs to make.

    Returns:
        The directory.
    """
    root = Path(directory)
    authorized = root / "authorized"
    authorized.mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(root, "server")
    for name in clients:
        public_file, _ = zmq.auth.create_certificates(root, name)
        (authorized / f"{name}.key").write_bytes(Path(public_file).read_bytes())
    for path in root.glob("*.key_secret"):
        path.chmod(0o600)
    return root


@attrs.frozen
class CurveServerKeys:
    """What a broker needs for CURVE: its key pair and whom it admits.

    Attributes:
        public: the broker's public key (Z85).
        secret: the broker's secret key (Z85).
        authorized: a directory of the public key files of the admitted
            clients and workers.
    """

    public: bytes
    secret: bytes
    authorized: Path

    @classmethod
    def from_directory(cls, directory: str | os.PathLike[str]) -> CurveServerKeys:
        """Load the key set `generate_keys` wrote into `directory`."""
        root = Path(directory)
        public, secret = zmq.auth.load_certificate(root / "server.key_secret")
        if secret is None:
            raise ValueError(f"{root / 'server.key_secret'} holds no secret key")
        return cls(public, secret, root / "authorized")


@attrs.frozen
class CurveClientKeys:
    """What a client or worker needs for CURVE: its key pair, the broker's public key.

    Attributes:
        public: this peer's public key (Z85).
        secret: this peer's secret key (Z85).
        server_public: the broker's public key (Z85).
    """

    public: bytes
    secret: bytes
    server_public: bytes

    @classmethod
    def from_directory(
        cls, directory: str | os.PathLike[str], name: str = "client"
    ) -> CurveClientKeys:
        """Load key pair `name` and the broker's public key from `directory`."""
        root = Path(directory)
        public, secret = zmq.auth.load_certificate(root / f"{name}.key_secret")
        if secret is None:
            raise ValueError(f"{root / f'{name}.key_secret'} holds no secret key")
        server_public, _ = zmq.auth.load_certificate(root / "server.key")
        return cls(public, secret, server_public)


# -- error mapping ---------------------------------------------------------------------


def _map_error(exc: zmq.ZMQError, closed: bool, what: str) -> TransportClosed | TransportBroken:
    if closed or exc.errno in (zmq.ENOTSOCK, zmq.ETERM):
        return TransportClosed(f"{what} is closed")
    return TransportBroken(f"{what} failed: {exc}")


def _closed_under_us(closed: bool) -> bool:
    # Closing a zmq.asyncio socket cancels its pending futures: the awaiting
    # task then sees a CancelledError that no cancel scope asked for. Only
    # that one becomes TransportClosed; a real cancellation propagates.
    task = asyncio.current_task()
    return closed and task is not None and task.cancelling() == 0


def incoming_frames(frames: list[zmq.Frame]) -> list[Frame]:
    """Return received frames: small ones as bytes, large ones as views of ZeroMQ's buffer."""
    return [f.bytes if len(f) < _ZERO_COPY_THRESHOLD else f.buffer for f in frames]


# pyzmq's Python layer (``send_multipart``, ``recv_multipart``) costs about
# 2.5 µs a frame on top of ZeroMQ's own 0.6 µs; a message has 4 to 8 frames
# and crosses three sockets each way. The hot paths call the backend directly.
_raw_send: Any = zmq.backend.Socket.send
_raw_recv: Any = zmq.backend.Socket.recv
_raw_get: Any = zmq.backend.Socket.get
# Plain ints: pyzmq's enum members cost an enum call at every use (``|``, get).
_DONTWAIT, _SNDMORE = int(zmq.DONTWAIT), int(zmq.SNDMORE)
_EVENTS, _POLLIN, _POLLOUT = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.POLLOUT)


def send_frames(sock: Any, frames: Sequence[Frame | zmq.Frame], flags: int = 0) -> None:
    """Send one multipart message on `sock` (a pyzmq socket) through pyzmq's backend.

    Small frames are copied; frames of 64 KiB and more go out without a copy.
    With ``zmq.DONTWAIT`` in `flags`, raises ``zmq.Again`` (nothing sent)
    when the socket cannot take the message: ZeroMQ takes a multipart
    message whole or not at all.
    """
    last = len(frames) - 1
    more = flags | _SNDMORE
    for i, f in enumerate(frames):
        if isinstance(f, bytes) and len(f) < _ZERO_COPY_THRESHOLD:
            _raw_send(sock, f, more if i < last else flags)
        else:
            size = f.nbytes if isinstance(f, memoryview) else len(f)
            copy = size < _ZERO_COPY_THRESHOLD
            _raw_send(sock, f, more if i < last else flags, copy=copy)


def receive_frames(sock: Any, flags: int = 0) -> list[Frame]:
    """Receive one multipart message from `sock` through pyzmq's backend.

    Small frames come as bytes, large ones as views of ZeroMQ's buffer. With
    ``zmq.DONTWAIT``, raises ``zmq.Again`` when no message is ready.
    """
    frame = _raw_recv(sock, flags, copy=False)
    frames: list[Frame] = [frame.bytes if len(frame) < _ZERO_COPY_THRESHOLD else frame.buffer]
    # ``frame.more`` (set at receive) rather than a RCVMORE get, which costs
    # pyzmq an enum lookup per frame.
    while frame.more:
        frame = _raw_recv(sock, 0, copy=False)
        frames.append(frame.bytes if len(frame) < _ZERO_COPY_THRESHOLD else frame.buffer)
    return frames


def has_message(sock: Any) -> bool:
    """Whether a message is ready on `sock`, from ``ZMQ_EVENTS``.

    Cheaper than the ``zmq.Again`` a non-blocking receive raises when none is
    (pyzmq builds that exception in Python, imports included).
    """
    return bool(_raw_get(sock, _EVENTS) & _POLLIN)


def _sends_pending(sock: Any) -> bool:
    # zmq.asyncio sends that wait for room: a direct send must not overtake them.
    return bool(getattr(sock, "_send_futures", None))


def _after_direct_send(sock: Any) -> None:
    # What zmq.asyncio does after a send it completes at once: a send may
    # consume ZeroMQ's edge-triggered readiness, so wake pending receives
    # that have a message waiting.
    if getattr(sock, "_recv_futures", None):
        sock._schedule_remaining_events()


def outgoing_frames(frames: Sequence[Frame]) -> list[Frame | zmq.Frame]:
    """Return `frames` ready for ``send_multipart(copy=True)``: large ones wrapped, not copied."""
    out: list[Frame | zmq.Frame] = []
    for f in frames:
        size = f.nbytes if isinstance(f, memoryview) else len(f)
        out.append(f if size < _ZERO_COPY_THRESHOLD else zmq.Frame(f, copy=False))
    return out


def bind_router(
    ctx: zmq.Context[zmq.Socket[bytes]] | zmq.asyncio.Context,
    address: str,
    *,
    curve: CurveServerKeys | None,
    max_message_size: int | None,
) -> tuple[Any, ThreadAuthenticator | None, str]:
    """Bind a broker's ROUTER socket on `ctx`; return it, its authenticator and the endpoint.

    The socket is a ``zmq.asyncio`` one on an asyncio context, a plain one
    on a plain context (a broker's lean blocking loop). See `ZmqBroker.bind`
    for the arguments.

    Raises:
        ValueError: `address` is not local and `curve` is None (nothing was bound).
        TransportBroken: ZeroMQ could not bind (address in use, bad address).
    """
    if curve is None and not is_local_address(address):
        raise ValueError(
            f"refusing to bind {address!r} without CURVE: a broker reachable from "
            "other machines must authenticate its peers. Bind 127.0.0.1 or ipc://, "
            "or give CURVE keys (see binglide.transports.zeromq.generate_keys)"
        )
    authenticator = None
    sock = ctx.socket(zmq.ROUTER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.SNDHWM, _HWM)
        sock.setsockopt(zmq.RCVHWM, _HWM)
        if max_message_size is not None:
            sock.setsockopt(zmq.MAXMSGSIZE, max_message_size)
        if curve is not None:
            from zmq.auth.thread import ThreadAuthenticator

            # A thread, not the event loop, answers ZAP: authentication
            # keeps working while the loop is busy.
            authenticator = ThreadAuthenticator(ctx)
            authenticator.start()
            authenticator.configure_curve(domain="*", location=str(curve.authorized))
            sock.curve_server = True
            sock.curve_publickey = curve.public
            sock.curve_secretkey = curve.secret
        sock.bind(address)
        bound = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        if authenticator is not None:
            authenticator.stop()
        raise TransportBroken(f"cannot bind {address!r}: {exc}") from exc
    return sock, authenticator, bound


class ZmqBroker(BrokerTransport):
    """The broker's end: a ROUTER socket bound to an address.

    Use `ZmqBroker.bind`; close with `aclose` (or ``async with``).
    """

    def __init__(
        self,
        sock: zmq.asyncio.Socket,
        address: str,
        *,
        context: zmq.asyncio.Context | None = None,
        authenticator: ThreadAuthenticator | None = None,
    ) -> None:
        self._socket = sock
        self.address = address
        self._own_context = context
        self._authenticator = authenticator
        self._closed = False

    @classmethod
    def bind(
        cls,
        address: str,
        *,
        curve: CurveServerKeys | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        context: zmq.asyncio.Context | None = None,
    ) -> ZmqBroker:
        """Bind a ROUTER to `address` and return the broker's end.

        Args:
            address: a ZeroMQ endpoint (``tcp://127.0.0.1:5555``,
                ``ipc:///run/binglide.sock``); ``tcp://127.0.0.1:*`` picks a
                free port (see `address` afterwards).
            curve: the broker's CURVE keys; required unless `address` is
                local (see `is_local_address`).
            max_message_size: the largest frame accepted, in bytes; a peer
                that sends a larger one is disconnected. None: no bound.
            context: the ZeroMQ context (default: `shared_context`; with
                `curve`, a context of its own, which the authenticator needs).

        Raises:
            ValueError: `address` is not local and `curve` is None (nothing
                was bound).
            TransportBroken: ZeroMQ could not bind (address in use, bad address).
        """
        own_context: zmq.asyncio.Context | None = None
        if curve is not None and context is None:
            # A ZAP authenticator serves a whole context: give this broker its own.
            own_context = context = new_context()
        ctx = context or shared_context()
        try:
            sock, authenticator, bound = bind_router(
                ctx, address, curve=curve, max_message_size=max_message_size
            )
        except TransportBroken:
            if own_context is not None:
                own_context.term()
            raise
        return cls(sock, bound, context=own_context, authenticator=authenticator)

    async def send(self, peer: PeerId, frames: Sequence[Frame]) -> None:
        if self._closed:
            raise TransportClosed("the broker's ZeroMQ transport is closed")
        message = [peer.encode("latin-1"), *frames]
        try:
            if _sends_pending(self._socket):
                await self._socket.send_multipart(outgoing_frames(message))
                return
            try:
                send_frames(self._socket, message, _DONTWAIT)
            except zmq.Again:
                await self._socket.send_multipart(outgoing_frames(message))
            else:
                _after_direct_send(self._socket)
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                return  # the peer is gone: like a ROUTER without MANDATORY
            raise _map_error(exc, self._closed, "the broker's ZeroMQ socket") from exc

    def receive_nowait(self) -> tuple[PeerId, list[Frame]]:
        """Return the next message if one is ready.

        Raises:
            anyio.WouldBlock: none is ready.
            TransportClosed: this end was closed.
        """
        if self._closed:
            raise TransportClosed("the broker's ZeroMQ transport is closed")
        try:
            frames = receive_frames(self._socket, _DONTWAIT)
        except zmq.Again:
            raise anyio.WouldBlock from None
        except zmq.ZMQError as exc:
            raise _map_error(exc, self._closed, "the broker's ZeroMQ socket") from exc
        return PeerId(bytes(frames[0]).decode("latin-1")), frames[1:]

    async def receive(self) -> tuple[PeerId, list[Frame]]:
        with contextlib.suppress(anyio.WouldBlock):
            return self.receive_nowait()
        try:
            raw = await self._socket.recv_multipart(copy=False)
        except zmq.ZMQError as exc:
            raise _map_error(exc, self._closed, "the broker's ZeroMQ socket") from exc
        except asyncio.CancelledError:
            if _closed_under_us(self._closed):
                raise TransportClosed("the broker's ZeroMQ transport is closed") from None
            raise
        return PeerId(raw[0].bytes.decode("latin-1")), incoming_frames(raw[1:])

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._socket.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
        if self._own_context is not None:
            self._own_context.term()


class ZmqPeer(PeerTransport):
    """A client's or worker's end: a DEALER socket connected to the broker.

    Use `ZmqPeer.connect`; close with `aclose` (or ``async with``).
    """

    def __init__(self, sock: zmq.asyncio.Socket, identity: PeerId, address: str) -> None:
        self._socket = sock
        self.identity = identity
        self.address = address
        self._closed = False
        #: The socket monitor's PAIR socket, when `connect` was asked for one
        #: (`binglide.transports.handshake` reads it); None after `stop_monitor`.
        self.monitor: zmq.asyncio.Socket | None = None
        # The peer waits on ZeroMQ's file descriptor itself rather than
        # through zmq.asyncio's futures (whose bookkeeping costs as much as
        # the rest of a hop): one reader on the event loop, and futures of
        # the tasks waiting for ZMQ_EVENTS bits (POLLIN or POLLOUT).
        self._fd = cast("int", sock.getsockopt(zmq.FD))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._blocked_sends = 0

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        identity: str | None = None,
        curve: CurveClientKeys | None = None,
        context: zmq.asyncio.Context | None = None,
        monitor: bool = False,
    ) -> ZmqPeer:
        """Connect a DEALER to the broker at `address` and return this end.

        ZeroMQ connects in the background and reconnects by itself (to a
        restarted broker, too); messages sent meanwhile wait in the socket.

        Args:
            address: the broker's endpoint.
            identity: the routing id, ASCII and unique among the broker's
                peers (default: `new_identity`).
            curve: CURVE keys, needed when the broker uses CURVE.
            context: the ZeroMQ context (default: `shared_context`).
            monitor: also open a socket monitor (`monitor`), before
                connecting so that no event of the first connection is missed.

        Raises:
            ValueError: `identity` is not ASCII or is empty.
            TransportBroken: ZeroMQ refused the address.
        """
        name = identity or new_identity()
        if not name.isascii():
            raise ValueError(f"a routing id must be ASCII, not {name!r}")
        ctx = context or shared_context()
        sock = ctx.socket(zmq.DEALER)
        events = None
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.ROUTING_ID, name.encode("ascii"))
            sock.setsockopt(zmq.SNDHWM, _HWM)
            sock.setsockopt(zmq.RCVHWM, _HWM)
            if curve is not None:
                sock.curve_serverkey = curve.server_public
                sock.curve_publickey = curve.public
                sock.curve_secretkey = curve.secret
            events = sock.get_monitor_socket() if monitor else None
            sock.connect(address)
        except zmq.ZMQError as exc:
            if events is not None:
                events.close(linger=0)
            sock.close(linger=0)
            raise TransportBroken(f"cannot connect to {address!r}: {exc}") from exc
        peer = cls(sock, PeerId(name), address)
        peer.monitor = events
        return peer

    def stop_monitor(self) -> None:
        """Stop the socket monitor and close its socket (a no-op without one)."""
        events, self.monitor = self.monitor, None
        if events is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._socket.disable_monitor()
            events.close(linger=0)

    # ZeroMQ's fd is edge-triggered: it signals that ZMQ_EVENTS may have
    # changed, and reading ZMQ_EVENTS re-arms it. So a task reads ZMQ_EVENTS
    # right before it waits (in the same step: no change can slip between),
    # the reader callback reads it when the fd signals, and a send (which may
    # consume the signal of a message arriving meanwhile) looks again.

    def _on_fd(self) -> None:
        if self._closed:
            return
        try:
            events = _raw_get(self._socket, _EVENTS)
        except zmq.ZMQError:
            events = _POLLIN | _POLLOUT  # let the waiters find out
        self._wake(events)

    def _wake(self, events: int) -> None:
        for mask, waiter in self._waiters:
            if events & mask and not waiter.done():
                waiter.set_result(None)

    async def _wait_events(self, mask: int) -> None:
        """Wait until ZMQ_EVENTS has a bit of `mask` (or this end closes)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            loop.add_reader(self._fd, self._on_fd)
            self._loop = loop
        try:
            if _raw_get(self._socket, _EVENTS) & mask:
                return
        except zmq.ZMQError as exc:
            raise _map_error(exc, self._closed, f"peer {self.identity!r}") from exc
        entry = (mask, loop.create_future())
        self._waiters.append(entry)
        try:
            await entry[1]
        finally:
            self._waiters.remove(entry)
        if self._closed:
            raise TransportClosed(f"peer {self.identity!r} is closed")

    async def send(self, frames: Sequence[Frame]) -> None:
        if self._closed:
            raise TransportClosed(f"peer {self.identity!r} is closed")
        if not self._blocked_sends:
            with contextlib.suppress(anyio.WouldBlock):
                self._send_now(frames)
                return
        # The socket is full: wait for room, in order with other waiting sends.
        self._blocked_sends += 1
        try:
            while True:
                await self._wait_events(_POLLOUT)
                with contextlib.suppress(anyio.WouldBlock):
                    self._send_now(frames)
                    return
        finally:
            self._blocked_sends -= 1

    def send_nowait(self, frames: Sequence[Frame]) -> None:
        """Send `frames` to the broker if that needs no wait.

        Raises:
            anyio.WouldBlock: the socket cannot take them now, or earlier
                sends wait for room (nothing was sent).
            TransportClosed: this end was closed.
            TransportBroken: the socket failed.
        """
        if self._closed:
            raise TransportClosed(f"peer {self.identity!r} is closed")
        if self._blocked_sends:
            raise anyio.WouldBlock  # keep the order of what waits to go
        self._send_now(frames)

    def _send_now(self, frames: Sequence[Frame]) -> None:
        try:
            send_frames(self._socket, frames, _DONTWAIT)
        except zmq.Again:
            raise anyio.WouldBlock from None
        except zmq.ZMQError as exc:
            raise _map_error(exc, self._closed, f"peer {self.identity!r}") from exc
        if self._waiters:
            # The send may have taken the fd's signal of a message arrived.
            self._wake(_raw_get(self._socket, _EVENTS))

    def receive_nowait(self) -> list[Frame]:
        """Return the next message from the broker if one is ready.

        Raises:
            anyio.WouldBlock: none is ready.
            TransportClosed: this end was closed.
        """
        if self._closed:
            raise TransportClosed(f"peer {self.identity!r} is closed")
        try:
            return receive_frames(self._socket, _DONTWAIT)
        except zmq.Again:
            raise anyio.WouldBlock from None
        except zmq.ZMQError as exc:
            raise _map_error(exc, self._closed, f"peer {self.identity!r}") from exc

    async def receive(self) -> list[Frame]:
        sock = self._socket
        while True:
            if self._closed:
                raise TransportClosed(f"peer {self.identity!r} is closed")
            try:
                if has_message(sock):
                    return receive_frames(sock, _DONTWAIT)
            except zmq.Again:
                pass
            except zmq.ZMQError as exc:
                raise _map_error(exc, self._closed, f"peer {self.identity!r}") from exc
            await self._wait_events(_POLLIN)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._loop = None
        for _mask, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # they raise TransportClosed
        self.stop_monitor()
        self._socket.close(linger=0)
