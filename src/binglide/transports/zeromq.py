"""The ZeroMQ transport: a ROUTER for the broker, a DEALER for each peer.

MDP/0.2 (ZeroMQ RFC 18) puts the broker on a ROUTER socket and every client
and worker on a DEALER. The ROUTER prepends the sender's routing id to what
it receives and routes what it sends by its first frame; here that routing id
is the `PeerId` (decoded as latin-1, so that any bytes round-trip). The
runtime's messages become MDP/0.2 frames here (`binglide.core.frames`), and
only here: a message that does not decode is logged and dropped.

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
- ``send_nowait`` never waits, and delivery drains every message that is
  ready before it waits: the runtime sends what it can at once and only
  awaits when it must. Both ends wait on ZeroMQ's file descriptor
  themselves (`binglide._aio.EdgeWatcher`: one reader on the event loop, which
  delivers what arrived from its callback),
  never through ``zmq.asyncio``'s futures, which cost about as much per wait
  as the rest of a hop. A socket of a ``zmq.asyncio`` context works as well
  as a plain one.
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

import contextlib
import functools
import ipaddress
import logging
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import attrs
import zmq
import zmq.asyncio
import zmq.auth
import zmq.backend

from .._aio import EdgeWatcher, new_event
from ..core import Frame, PeerId, decode, encode
from ..errors import RemoteProtocolError, TransportBroken, TransportClosed
from .base import DEFAULT_MAX_MESSAGE_SIZE, BrokerTransport, PeerTransport
from .iothreads import IoThreadPolicy, start_threads

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from anyio.abc import TaskStatus
    from zmq.auth.thread import ThreadAuthenticator

    from ..core import Message, Outgoing, Protocol
    from .base import BrokerHandler, Dropped, Incoming, PeerHandler

__all__ = (
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CurveClientKeys",
    "CurveServerKeys",
    "ZmqBroker",
    "ZmqPeer",
    "bind_router",
    "generate_keys",
    "events_reader",
    "has_message",
    "is_local_address",
    "new_context",
    "new_identity",
    "read_events",
    "receive_frames",
    "router_incoming",
    "router_outgoing",
    "send_frames",
    "shared_context",
    "shared_io_policy",
)

log = logging.getLogger("binglide.transports.zeromq")

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
    a broker (bench/RESULTS.md). A lone message pays for it where the sender
    and its I/O thread share a core: it leaves once the sender has done what
    follows the send. A worker's context therefore lets its I/O threads
    preempt while its messages come alone (`binglide.transports.iothreads`,
    ``ZmqPeer.connect(..., adaptive_io=True)``). Elsewhere than Linux the
    option does not exist and the context is a plain one.

    Args:
        kind: ``zmq.asyncio.Context`` (default) or ``zmq.Context``.
    """
    ctx = kind()
    batch = getattr(os, "SCHED_BATCH", None)
    if batch is not None:
        with contextlib.suppress(zmq.ZMQError, AttributeError):
            ctx.set(zmq.THREAD_SCHED_POLICY, batch)  # before its first socket starts them
    return ctx


_shared: tuple[int, zmq.asyncio.Context, IoThreadPolicy | None] | None = None


def shared_context() -> zmq.asyncio.Context:
    """Return binglide's context for this process (made by `new_context` on first use).

    binglide's own rather than pyzmq's ``Context.instance()``: the I/O thread
    policy must be set before the context's first socket, which another
    library may already have opened on the shared instance. A forked child
    gets a context of its own (a context does not survive a fork).
    """
    return _shared_now()[1]


def shared_io_policy() -> IoThreadPolicy | None:
    """Return the `IoThreadPolicy` of `shared_context`'s I/O threads (None: not on Linux)."""
    return _shared_now()[2]


def _shared_now() -> tuple[int, zmq.asyncio.Context, IoThreadPolicy | None]:
    global _shared
    pid = os.getpid()
    if _shared is None or _shared[0] != pid:
        ctx: zmq.asyncio.Context = new_context()
        policy = None
        if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH"):
            # Its threads start now, so that they are told from the others.
            policy = IoThreadPolicy(start_threads(ctx))
        _shared = (pid, ctx, policy)
    return _shared


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


# pyzmq's Python layer (``send_multipart``, ``recv_multipart``) costs about
# 2.5 µs a frame on top of ZeroMQ's own 0.6 µs; a message has 4 to 8 frames
# and crosses three sockets each way. The hot paths call binglide's compiled
# calls (``_zmqio.c``) where they were built, else pyzmq's backend directly.
_raw_send: Any = zmq.backend.Socket.send
_raw_recv: Any = zmq.backend.Socket.recv
# Without the compiled calls, ``ZMQ_EVENTS`` is read through ``zmq_poll`` with a
# zero timeout, never through pyzmq's ``Socket.get``: ``get`` looks the option
# up as a ``SocketOption`` enum and its type through Python properties, ~8,700
# instructions a read against ~2,500 for a poll (callgrind; bench/RESULTS.md,
# issue 13, eighth pass), and an end reads the events two or three times a
# message. libzmq's ``zmq_poll`` reads ``ZMQ_EVENTS`` itself (processing the
# socket's commands, which re-arms its descriptor, exactly as the read does).
_zmq_poll: Any = zmq.backend.zmq_poll
# Plain ints: pyzmq's enum members cost an enum call at every use (``|``, get).
_DONTWAIT, _SNDMORE = int(zmq.DONTWAIT), int(zmq.SNDMORE)
_POLLIN, _POLLOUT = int(zmq.POLLIN), int(zmq.POLLOUT)
_EAGAIN, _ETERM = int(zmq.EAGAIN), int(zmq.ETERM)


def send_frames_python(sock: Any, frames: Sequence[Frame | zmq.Frame], flags: int = 0) -> None:
    """Send one multipart message on `sock` (a pyzmq socket) through pyzmq's backend.

    Small frames are copied; frames of 64 KiB and more go out without a copy.
    With ``zmq.DONTWAIT`` in `flags`, raises ``zmq.Again`` (nothing sent)
    when the socket cannot take the message: ZeroMQ takes a multipart
    message whole or not at all. The send where binglide's compiled one was
    not built, and of every message with a frame of 64 KiB or more
    (`send_frames`).
    """
    # The frames but the last, then the last: no index compared per frame.
    # (Taken together first: a caller's list that changed while the first
    # frame waited for room must not end the message with another frame.)
    *head, f = frames
    more = flags | _SNDMORE
    for part in head:
        if isinstance(part, bytes) and len(part) < _ZERO_COPY_THRESHOLD:
            _raw_send(sock, part, more)
        else:
            _send_large(sock, part, more)
    if isinstance(f, bytes) and len(f) < _ZERO_COPY_THRESHOLD:
        _raw_send(sock, f, flags)
    else:
        _send_large(sock, f, flags)


def _send_large(sock: Any, frame: Frame | zmq.Frame, flags: int) -> None:
    """Send a frame that is not small bytes: without a copy from 64 KiB on."""
    size = frame.nbytes if isinstance(frame, memoryview) else len(frame)
    _raw_send(sock, frame, flags, copy=size < _ZERO_COPY_THRESHOLD)


def receive_frames_python(sock: Any, flags: int = 0) -> list[Frame]:
    """Receive one multipart message from `sock` through pyzmq's backend.

    Small frames come as bytes, large ones as views of ZeroMQ's buffer. With
    ``zmq.DONTWAIT``, raises ``zmq.Again`` when no message is ready. The
    receive where binglide's compiled one was not built (`receive_frames`).
    """
    # ``copy`` (False: a ``zmq.Frame``) by position: a keyword costs the
    # backend's argument parsing ~140 instructions a frame (callgrind).
    frame = _raw_recv(sock, flags, False)
    frames: list[Frame] = [frame.bytes if len(frame) < _ZERO_COPY_THRESHOLD else frame.buffer]
    # ``frame.more`` (set at receive) rather than a RCVMORE get, which costs
    # pyzmq an enum lookup per frame.
    while frame.more:
        frame = _raw_recv(sock, 0, False)
        frames.append(frame.bytes if len(frame) < _ZERO_COPY_THRESHOLD else frame.buffer)
    return frames


def read_events_python(sock: Any) -> int:
    """`read_events` through ``zmq_poll`` (where binglide's compiled calls were not built)."""
    if sock.closed:  # zmq_poll would take a closed socket's NULL handle for fd 0
        raise zmq.ZMQError(zmq.ENOTSOCK)
    ready = _zmq_poll([(sock, _POLLIN | _POLLOUT)], 0)
    return ready[0][1] if ready else 0


def _compiled_calls() -> Any | None:
    """binglide's compiled ZeroMQ calls (``_zmqio.c``), bound to pyzmq's libzmq.

    None where they were not built (no C compiler at install), where pyzmq's
    backend is not its Cython module (PyPy's CFFI one), or where
    ``BINGLIDE_PURE_ZMQ`` is set: binglide then goes through pyzmq, the same
    frames, its receive four times and its send twice as slow.
    """
    backend = getattr(sys.modules.get("zmq.backend.cython._zmq"), "__file__", None)
    if backend is None or os.environ.get("BINGLIDE_PURE_ZMQ"):
        return None
    try:
        from . import _zmqio  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        _zmqio.bind(backend)
    except OSError as exc:
        log.debug("the compiled ZeroMQ calls are off: %s", exc)
        return None
    return _zmqio


def _zmq_error(errno: int) -> zmq.ZMQError:
    """The exception pyzmq raises for `errno`."""
    if errno == _EAGAIN:
        return zmq.Again()
    if errno == _ETERM:
        return zmq.ContextTerminated()
    return zmq.ZMQError(errno)


_compiled = _compiled_calls()
_receive: Callable[[int, int, int], list[Frame] | int] | None = (
    None if _compiled is None else _compiled.receive
)
_send: Callable[[int, Sequence[Frame | zmq.Frame], int, int], int] | None = (
    None if _compiled is None else _compiled.send
)
_events: Callable[[int], int] | None = None if _compiled is None else _compiled.events


def receive_frames_compiled(sock: Any, flags: int = 0) -> list[Frame]:
    """`receive_frames_python`, one C call a message (``_zmqio.c`` says why).

    Only where `_receive` is not None (binglide's compiled calls were built).
    """
    assert _receive is not None
    frames = _receive(sock.underlying, flags, _ZERO_COPY_THRESHOLD)
    if type(frames) is list:
        return frames
    raise _zmq_error(frames)  # type: ignore[arg-type]  # an errno


def send_frames_compiled(sock: Any, frames: Sequence[Frame | zmq.Frame], flags: int = 0) -> None:
    """`send_frames_python`, one C call a message of small frames (``_zmqio.c``).

    Only where `_send` is not None (binglide's compiled calls were built).
    """
    assert _send is not None
    error = _send(sock.underlying, frames, flags, _ZERO_COPY_THRESHOLD)
    if error:
        if error < 0:  # a frame of 64 KiB or more (nothing sent): pyzmq's zero-copy send
            send_frames_python(sock, frames, flags)
            return
        raise _zmq_error(error)


def read_events_compiled(sock: Any) -> int:
    """`read_events_python`, one C call (``_zmqio.c``): no poll items, no poller."""
    assert _events is not None
    events = _events(sock.underlying)
    if events < 0:
        raise _zmq_error(-events)
    return events


#: Receive one multipart message from a pyzmq socket: small frames as bytes,
#: large ones as views of ZeroMQ's buffer; ``zmq.Again`` when ``zmq.DONTWAIT``
#: finds none. The compiled receive where it was built.
receive_frames: Callable[..., list[Frame]] = (
    receive_frames_python if _receive is None else receive_frames_compiled
)

#: Send one multipart message on a pyzmq socket: small frames copied, those
#: of 64 KiB and more without a copy (the caller must not change them after);
#: with ``zmq.DONTWAIT``, ``zmq.Again`` (nothing sent) when the socket cannot
#: take it, for ZeroMQ takes a multipart message whole or not at all. The
#: compiled send where it was built.
send_frames: Callable[..., None] = send_frames_python if _send is None else send_frames_compiled

#: A pyzmq socket's ``ZMQ_EVENTS`` (``POLLIN``, ``POLLOUT`` bits). Reading
#: them processes the socket's commands, which re-arms its edge-triggered
#: descriptor (see `binglide._aio.EdgeWatcher`). Raises ``zmq.ZMQError`` once
#: the socket is closed (``ENOTSOCK``) or its context terminated.
read_events: Callable[[Any], int] = read_events_python if _events is None else read_events_compiled


def has_message(sock: Any) -> bool:
    """Whether a message is ready on `sock`, from ``ZMQ_EVENTS``.

    Cheaper than the ``zmq.Again`` a non-blocking receive raises when none is
    (pyzmq builds that exception in Python, imports included).

    Raises:
        zmq.ZMQError: `sock` is closed (``ENOTSOCK``) or its context terminated.
    """
    return bool(read_events(sock) & _POLLIN)


def events_reader(sock: Any) -> Callable[[], int]:
    """Return a function that reads `sock`'s ``ZMQ_EVENTS`` (`read_events`)."""
    return functools.partial(read_events, sock)


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


# -- error mapping, codec ------------------------------------------------------------


def _map_error(exc: zmq.ZMQError, closed: bool, what: str) -> TransportClosed | TransportBroken:
    if closed or exc.errno in (zmq.ENOTSOCK, zmq.ETERM):
        return TransportClosed(f"{what} is closed")
    return TransportBroken(f"{what} failed: {exc}")


def router_outgoing(out: Outgoing) -> list[Frame]:
    """Return the frames a broker's ROUTER sends for `out`: the peer's routing id first."""
    frames = encode(out.message, protocol=out.protocol, from_broker=True, extended=out.extended)
    frames.insert(0, out.peer.encode("latin-1"))
    return frames


def router_incoming(frames: Sequence[Frame], dropped: Dropped | None = None) -> Incoming | None:
    """Decode what a broker's ROUTER received (routing id first).

    A malformed message is dropped (None) and told to `dropped` (default: a
    warning logged): one rogue peer never stops the broker serving everyone
    else.
    """
    # PeerId is a NewType, whose call is a Python function call on 3.11: a
    # broker decodes a routing id per message, and the str is the id.
    peer: PeerId = bytes(frames[0]).decode("latin-1")  # type: ignore[assignment]
    try:
        protocol, message = decode(frames, from_broker=False, start=1)
    except RemoteProtocolError as exc:
        if dropped is None:
            log.warning("dropped a message from peer %r: %s", peer, exc)
        else:
            dropped(peer, exc)
        return None
    return peer, protocol, message


# -- the two ends -------------------------------------------------------------------

#: Messages an end delivers in a row without waiting before it lets other tasks run.
_DRAIN = 64


class _ZmqEnd:
    """What both ends share: a socket, watching its descriptor, delivery, ordered sends."""

    def __init__(self, sock: zmq.Socket[Any], what: str) -> None:
        self._socket = sock
        self._what = what
        self._closed = False
        self._watcher = EdgeWatcher(cast("int", sock.getsockopt(zmq.FD)), events_reader(sock))
        #: Sends waiting for room: a send_nowait must not overtake them.
        self._blocked_sends = 0
        #: Set when delivery must end (closed, or it failed), with why.
        self._delivery_ended: anyio.Event | None = None
        self._delivery_error: BaseException | None = None
        #: Whether `_delivery_ended` is set (a plain flag: read after every delivery).
        self._delivery_over = False
        #: Whether the reader callback is delivering (its sends leave the
        #: look at the events to it), and whether such a send happened.
        self._delivering = False
        self._sent_delivering = False
        #: Told how messages come (`IoThreadPolicy`), when this end's context
        #: switches its I/O threads with the load (`ZmqPeer.connect`'s
        #: ``adaptive_io``); set before delivery starts.
        self.io_policy: IoThreadPolicy | None = None

    def _error(self, exc: zmq.ZMQError) -> TransportClosed | TransportBroken:
        return _map_error(exc, self._closed, self._what)

    def _send_frames_nowait(self, frames: Sequence[Frame]) -> None:
        if self._closed:
            raise TransportClosed(f"{self._what} is closed")
        if self._blocked_sends:
            raise anyio.WouldBlock  # keep the order of what waits to go
        self._push(frames)

    def _push(self, frames: Sequence[Frame]) -> None:
        try:
            send_frames(self._socket, frames, _DONTWAIT)
        except zmq.Again:
            raise anyio.WouldBlock from None
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                return  # a ROUTER's peer is gone: lose it silently
            raise self._error(exc) from exc
        # The send may have taken the descriptor's signal of a message arrived:
        # look again, unless this runs inside the delivery, which looks once
        # when its handler is done (one look a message received, not two).
        if self._delivering:
            self._sent_delivering = True
        else:
            self._watcher.check()

    async def _send_frames(self, frames: Sequence[Frame]) -> None:
        if self._closed:
            raise TransportClosed(f"{self._what} is closed")
        if not self._blocked_sends:
            with contextlib.suppress(anyio.WouldBlock):
                self._push(frames)
                return
        # The socket is full: wait for room, in order with other waiting sends.
        self._blocked_sends += 1
        try:
            while True:
                try:
                    await self._watcher.wait(_POLLOUT)
                except zmq.ZMQError as exc:
                    raise self._error(exc) from exc
                if self._closed:
                    raise TransportClosed(f"{self._what} is closed")
                with contextlib.suppress(anyio.WouldBlock):
                    self._push(frames)
                    return
        finally:
            self._blocked_sends -= 1

    async def _deliver(
        self,
        drain: Callable[[list[list[Frame]]], None],
        task_status: TaskStatus[None],
    ) -> None:
        """Hand what arrives to `drain`, from the loop's reader callback, until this end closes.

        The first message of a signal goes to `drain` alone, as soon as it is
        received; when another is there after it, they come in a burst, and
        `drain` gets every message ready at once from then on (the broker's
        turn takes them together, and the handler's sends go out together).
        """
        if self._closed:
            raise TransportClosed(f"{self._what} is closed")
        if self._delivery_ended is not None:
            raise anyio.BusyResourceError("delivering from")
        self._delivery_ended = ended = new_event()
        self._delivery_error = None
        self._delivery_over = False
        sock = self._socket
        watcher = self._watcher
        policy = self.io_policy

        def ready() -> None:
            # Up to _DRAIN messages a turn: then the others in this loop get theirs.
            # The watcher calls this when the descriptor signals (eagerly:
            # without reading ZMQ_EVENTS first), which is nearly always for a
            # message arrived (all but 2 of 4,000 signals of a peer in a run
            # of sequential requests): the first receive is the check, and
            # when it fails (zmq.Again) it has processed ZeroMQ's commands,
            # which re-arms the fd as a read of the events does. After each
            # delivery one look (`read_events`) says whether another
            # message is there, and re-arms the fd after the last; it is also
            # the look that a send made by the handler meanwhile (a worker's
            # reply, a client's next request) calls for: a message delivered
            # alone costs one look. Once a look has found another, messages
            # come in a burst and are taken together, each received until a
            # receive fails: the handler's sends go out together then, and
            # wake ZeroMQ's I/O thread once (pipelined, a send between every
            # two receives cost each peer a fifth more CPU a request). A
            # receive of a message that is there makes no system call; a
            # look makes two (a poll and a getpid; three through zmq_poll),
            # and a look after each message of a burst was each peer's one
            # look a request at 128 in flight (bursts of ~28): the failed
            # receive at a burst's end costs a zmq.Again instead, once
            # (bench/RESULTS.md, issue 13, thirteenth pass).
            delivered = 0
            burst = False
            self._delivering = True
            try:
                while True:
                    messages: list[list[Frame]] = []
                    try:
                        messages.append(receive_frames(sock, _DONTWAIT))
                        if burst:
                            while delivered + len(messages) < _DRAIN:
                                messages.append(receive_frames(sock, _DONTWAIT))
                    except zmq.Again:
                        if not messages:
                            return  # nothing (more): the failed receive re-armed the fd
                    except zmq.ZMQError as exc:
                        self._end_delivery(self._error(exc))
                        return
                    try:
                        drain(messages)
                    except Exception as exc:  # the handler's: its end's deliver_to raises it
                        self._end_delivery(exc)
                        return
                    if self._closed or self._delivery_over:
                        return
                    delivered += len(messages)
                    if delivered >= _DRAIN:
                        self._sent_delivering = False
                        watcher.schedule()  # looks at the events at the next turn
                        return
                    if watcher.waiting:  # a send waits for room: the full look
                        self._sent_delivering = False
                        watcher.check()
                        return
                    self._sent_delivering = False
                    if not read_events(sock) & _POLLIN:
                        if policy is not None and not burst:
                            policy.lone()
                        return
                    if policy is not None and not burst:
                        policy.burst()
                    burst = True
            finally:
                self._delivering = False
                if self._sent_delivering:  # (the delivery ended early)
                    self._sent_delivering = False
                    watcher.check()

        self._watcher.deliver(_POLLIN, ready, eager=True)
        try:
            task_status.started()
            await ended.wait()
        finally:
            self._watcher.deliver(_POLLIN, None)
            self._delivery_ended = None
        raise self._why_delivery_ended()

    def _why_delivery_ended(self) -> BaseException:
        return self._delivery_error or TransportClosed(f"{self._what} is closed")

    def _end_delivery(self, error: BaseException | None) -> None:
        self._watcher.deliver(_POLLIN, None)
        if self._delivery_ended is not None:
            self._delivery_error = error
            self._delivery_over = True
            self._delivery_ended.set()

    def _close(self) -> None:
        self._closed = True
        self._end_delivery(None)
        self._watcher.close()
        self._socket.close(linger=0)


class ZmqBroker(_ZmqEnd, BrokerTransport):
    """The broker's end: a ROUTER socket bound to an address.

    Use `ZmqBroker.bind`; close with `aclose` (or ``async with``).
    """

    def __init__(
        self,
        sock: zmq.Socket[Any],
        address: str,
        *,
        context: zmq.Context[Any] | None = None,
        authenticator: ThreadAuthenticator | None = None,
    ) -> None:
        super().__init__(sock, "the broker's ZeroMQ transport")
        self.address = address
        self._own_context = context
        self._authenticator = authenticator

    @classmethod
    def bind(
        cls,
        address: str,
        *,
        curve: CurveServerKeys | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        context: zmq.Context[Any] | None = None,
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
        own_context: zmq.Context[Any] | None = None
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

    def send_nowait(self, out: Outgoing) -> None:
        self._send_frames_nowait(router_outgoing(out))

    async def send(self, out: Outgoing) -> None:
        await self._send_frames(router_outgoing(out))

    async def deliver_to(
        self,
        handler: BrokerHandler,
        *,
        dropped: Dropped | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        def drain(messages: list[list[Frame]]) -> None:
            batch = [
                item
                for frames in messages
                if (item := router_incoming(frames, dropped)) is not None
            ]
            if batch:
                handler(batch)

        await self._deliver(drain, task_status)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._close()
        if self._authenticator is not None:
            self._authenticator.stop()
        if self._own_context is not None:
            self._own_context.term()


class ZmqPeer(_ZmqEnd, PeerTransport):
    """A client's or worker's end: a DEALER socket connected to the broker.

    Use `ZmqPeer.connect`; close with `aclose` (or ``async with``).
    """

    def __init__(self, sock: zmq.Socket[Any], identity: PeerId, address: str) -> None:
        super().__init__(sock, f"peer {identity!r}")
        self.identity = identity
        self.address = address
        #: The socket monitor's PAIR socket, when `connect` was asked for one
        #: (`binglide.transports.handshake` reads it); None after `stop_monitor`.
        self.monitor: zmq.asyncio.Socket | None = None

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        identity: str | None = None,
        curve: CurveClientKeys | None = None,
        context: zmq.Context[Any] | None = None,
        monitor: bool = False,
        adaptive_io: bool = False,
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
            adaptive_io: let the shared context's I/O threads preempt this
                process while its messages come alone, and batch again at a
                burst (`binglide.transports.iothreads`): what a worker wants,
                whose lone reply then leaves at once. Ignored with `context`.

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
        if adaptive_io and context is None:
            peer.io_policy = shared_io_policy()
        return peer

    def stop_monitor(self) -> None:
        """Stop the socket monitor and close its socket (a no-op without one)."""
        events, self.monitor = self.monitor, None
        if events is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._socket.disable_monitor()
            events.close(linger=0)

    def send_nowait(self, protocol: Protocol, message: Message) -> None:
        # `_send_frames_nowait`, inline (every message a peer sends comes here).
        if self._closed:
            raise TransportClosed(f"{self._what} is closed")
        if self._blocked_sends:
            raise anyio.WouldBlock  # keep the order of what waits to go
        self._push(encode(message, protocol=protocol, from_broker=False))

    async def send(self, protocol: Protocol, message: Message) -> None:
        await self._send_frames(encode(message, protocol=protocol, from_broker=False))

    async def deliver_to(
        self,
        handler: PeerHandler,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        def drain(messages: list[list[Frame]]) -> None:
            for frames in messages:
                try:
                    protocol, message = decode(frames, from_broker=True)
                except RemoteProtocolError as exc:
                    log.warning("dropped a malformed message from the broker: %s", exc)
                    continue
                handler(protocol, message)

        await self._deliver(drain, task_status)

    async def aclose(self) -> None:
        if not self._closed:
            self.stop_monitor()
            self._close()
