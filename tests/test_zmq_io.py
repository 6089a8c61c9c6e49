"""One multipart message received or sent at a time, and a socket's events read:
pyzmq's path and binglide's compiled one (``_zmqio.c``).

Both must give the same frames (small ones as bytes, large ones as views of
ZeroMQ's buffer that outlive the socket), send a message whole or not at
all, read the same events, raise what pyzmq raises, let other threads run
while they wait, and let a signal handler interrupt the wait.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import zmq

from binglide.core import Frame
from binglide.transports import zeromq
from binglide.transports.zeromq import (
    read_events,
    read_events_compiled,
    read_events_python,
    receive_frames,
    receive_frames_compiled,
    receive_frames_python,
    send_frames,
    send_frames_compiled,
    send_frames_python,
)

from .zmq_helpers import ipc_address

pytestmark = pytest.mark.zmq

Receive = Callable[..., list[Frame]]
Send = Callable[..., None]

_COMPILED_OFF = pytest.mark.skipif(
    zeromq._compiled is None,
    reason="binglide's compiled ZeroMQ calls are off here"
    " (not built, for want of a C compiler at install; or BINGLIDE_PURE_ZMQ is set)",
)
RECEIVES = [
    pytest.param(receive_frames_python, id="python"),
    pytest.param(receive_frames_compiled, id="compiled", marks=_COMPILED_OFF),
]
SENDS = [
    pytest.param(send_frames_python, id="python"),
    pytest.param(send_frames_compiled, id="compiled", marks=_COMPILED_OFF),
]
READS = [
    pytest.param(read_events_python, id="python"),
    pytest.param(read_events_compiled, id="compiled", marks=_COMPILED_OFF),
]

LARGE = 64 << 10  # the size from which frames come as views (`_ZERO_COPY_THRESHOLD`)


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    """A DEALER sending to a ROUTER over ipc:// (the broker's hop), in a fresh context."""
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, b"peer-1")
    with ipc_address() as address:
        router.bind(address)
        dealer.connect(address)
        try:
            yield dealer, router
        finally:
            dealer.close(linger=0)
            router.close(linger=0)
            ctx.term()


@pytest.mark.parametrize("receive", RECEIVES)
@pytest.mark.parametrize(
    "frames",
    [
        [b"MDPW02", b"\x02", b"17", b""],
        [b"x"],
        [b"", b"", b""],
        [b"header", bytes(range(256)) * 256, b"tail"],  # exactly 64 KiB: a view
        [bytes([7]) * (LARGE - 1), bytes([9]) * (3 * LARGE + 5)],  # one short of it, and more
    ],
    ids=["mdp", "one", "empty", "large-middle", "edges"],
)
def test_a_message_comes_whole_small_frames_as_bytes_large_as_views(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], receive: Receive, frames: list[bytes]
) -> None:
    dealer, router = pair
    send_frames(dealer, frames)
    send_frames(dealer, [b"next"])
    got = receive(router)
    assert got[0] == b"peer-1"  # the ROUTER's routing id, a frame like the others
    assert [bytes(f) for f in got[1:]] == frames
    for sent, frame in zip(frames, got[1:], strict=True):
        assert type(frame) is (memoryview if len(sent) >= LARGE else bytes)
    assert receive(router) == [b"peer-1", b"next"]  # nothing of the first left behind


@pytest.mark.parametrize("receive", RECEIVES)
def test_a_large_frame_outlives_its_socket_and_context(receive: Receive) -> None:
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://outlive")
    b.connect("inproc://outlive")
    payload = os.urandom(2 * LARGE)
    send_frames(a, [b"h", payload])
    head, view = receive(b)
    a.close(linger=0)
    b.close(linger=0)
    ctx.term()
    assert head == b"h"
    assert isinstance(view, memoryview)
    assert not view.readonly  # as pyzmq's Frame.buffer: arrays on it are writable
    assert view.nbytes == len(payload)
    assert bytes(view) == payload
    copy = memoryview(view)  # a view of the view keeps the buffer too
    del view
    assert bytes(copy) == payload


@pytest.mark.parametrize("receive", RECEIVES)
def test_nothing_there_raises_again_without_waiting(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], receive: Receive
) -> None:
    _, router = pair
    with pytest.raises(zmq.Again):
        receive(router, zmq.DONTWAIT)


def _on_closed(name: str, calls: list[Any], *args: Any) -> list[Any]:
    """`calls` (params of RECEIVES, SENDS or READS) applied to a socket and `args`."""
    return [
        pytest.param(
            lambda sock, f=p.values[0]: f(sock, *args), id=f"{name}-{p.id}", marks=p.marks
        )
        for p in calls
    ]


@pytest.mark.parametrize(
    "call",
    [
        *_on_closed("receive", RECEIVES, zmq.DONTWAIT),
        *_on_closed("send", SENDS, [b"late"], zmq.DONTWAIT),
        *_on_closed("events", READS),
    ],
)
def test_a_closed_socket_raises_enotsock(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], call: Callable[[Any], Any]
) -> None:
    # pyzmq releases a closed socket's handle: every call must refuse it, never
    # pass libzmq a freed (or NULL) socket.
    dealer, _ = pair
    dealer.close(linger=0)
    with pytest.raises(zmq.ZMQError) as info:
        call(dealer)
    assert info.value.errno == errno.ENOTSOCK


def _sleeps_in_poll(tid: int) -> bool:
    """Whether thread `tid` of this process sleeps in poll(): ZeroMQ's wait, not the GIL's."""
    try:
        with open(f"/proc/self/task/{tid}/wchan") as wchan:
            return "poll" in wchan.read()
    except OSError:  # the thread ended
        return False


_NEEDS_WCHAN = pytest.mark.skipif(
    not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/wchan"),
    reason="needs Linux's /proc/<pid>/task/<tid>/wchan to see where a thread sleeps",
)


def _asleep_in_zeromq(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `call` in a thread; once that sleeps in ZeroMQ's poll(), return it and its outcome.

    The outcome (a list) gets what `call` returns or raises. A call that held
    the GIL while it waited would keep this thread from looking until the
    call gave up, and the assertion that it still runs fails.
    """
    outcome: list[Any] = []
    tids: list[int] = []

    def run() -> None:
        tids.append(threading.get_native_id())
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not tids or not _sleeps_in_poll(tids[0]):
        assert thread.is_alive(), (
            f"the call ended before it was answered (the GIL held?): {outcome}"
        )
        assert time.monotonic() < deadline, "the calling thread never waited in poll()"
    return thread, outcome


@pytest.mark.timeout(30)
@_NEEDS_WCHAN
@pytest.mark.parametrize("receive", RECEIVES)
def test_a_blocking_receive_lets_other_threads_run(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], receive: Receive
) -> None:
    # The broker's loop waits in a blocking receive while its CURVE
    # authenticator (a thread) must run: this thread sends only once the
    # receiving one sleeps in ZeroMQ's poll.
    dealer, router = pair
    router.setsockopt(zmq.RCVTIMEO, 5000)
    receiving, outcome = _asleep_in_zeromq(lambda: receive(router))
    send_frames(dealer, [b"wake", b"up"])
    receiving.join(timeout=10)
    assert not receiving.is_alive()
    assert outcome == [[b"peer-1", b"wake", b"up"]]


class _Interrupted(Exception):
    pass


@contextlib.contextmanager
def _interrupted_after(seconds: float) -> Iterator[None]:
    """Expect the block to end by a SIGALRM handler's `_Interrupted`, raised after `seconds`."""

    def handler(signum: int, frame: object) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        with pytest.raises(_Interrupted):
            yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
@pytest.mark.parametrize("receive", RECEIVES)
def test_a_signal_handler_interrupts_a_blocking_receive(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], receive: Receive
) -> None:
    # `binglide broker` stops on SIGTERM while it waits for a message: the
    # handler's exception must come out of the wait.
    _, router = pair
    with _interrupted_after(0.05):
        receive(router)


def _sent_kinds() -> list[list[Any]]:
    """Messages of every kind of frame a sender passes, small and large."""
    small = np.arange(8, dtype=np.uint32)
    big = np.arange(LARGE // 4 + 3, dtype=np.uint32)  # just over 64 KiB
    return [
        [b"MDPC02", b"\x01", b"echo", b'{"n":1}'],
        [b""],
        [b"head", memoryview(b"view"), bytearray(b"array"), small.data, zmq.Frame(b"frame")],
        [b"head", big.data, b"tail"],  # a large frame in the middle
        [b"x" * (LARGE - 1), b"y" * LARGE],  # one short of large, then large last
        [bytes([i]) if i % 2 else memoryview(bytes([i] * i)) for i in range(20)],  # many
    ]


@pytest.mark.parametrize("send", SENDS)
def test_a_message_goes_whole_whatever_its_frames(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], send: Send
) -> None:
    # Received by pyzmq's own recv_multipart: the reference for what went.
    dealer, router = pair
    router.rcvtimeo = 10_000  # a message left unended fails, not hangs
    messages = _sent_kinds()
    for message in messages:
        send(dealer, message)
    for message in messages:
        _, *got = router.recv_multipart()
        assert got == [bytes(f) for f in message]
    assert not router.poll(0)


@_COMPILED_OFF
def test_the_compiled_send_leaves_a_message_with_a_large_frame_to_pyzmq(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    # Large frames go without a copy, which only pyzmq's send does (it keeps
    # the object alive until ZeroMQ is done with it): the C call sends
    # nothing of such a message and says so; then `send_frames_compiled`
    # hands the whole message to pyzmq.
    assert zeromq._send is not None
    dealer, router = pair
    large = [b"head", bytes(LARGE), b"tail"]
    assert zeromq._send(dealer.underlying, large, 0, LARGE) == -1
    assert zeromq._send(dealer.underlying, [b"next"], 0, LARGE) == 0
    assert router.recv_multipart() == [b"peer-1", b"next"]  # nothing of the large one
    send_frames_compiled(dealer, large)
    assert router.recv_multipart() == [b"peer-1", *large]


@pytest.fixture
def unheard() -> Iterator[tuple[zmq.Socket[bytes], str]]:
    """A DEALER that no send can leave yet, and the ipc:// address it waits for a peer on.

    With ZMQ_IMMEDIATE a DEALER has no pipe until its peer is there: a send
    without waiting fails at its first frame, and a blocking one waits.
    """
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IMMEDIATE, 1)
    try:
        with ipc_address() as address:
            dealer.connect(address)
            yield dealer, address
    finally:
        dealer.close(linger=0)
        ctx.term()


def _peer(dealer: zmq.Socket[bytes], address: str) -> zmq.Socket[bytes]:
    """Bind a ROUTER on `address` (on `dealer`'s context), the peer `dealer` waits for."""
    router: zmq.Socket[bytes] = dealer.context.socket(zmq.ROUTER)
    router.rcvtimeo = 10_000  # a message that never comes fails, not hangs
    router.linger = 0
    router.bind(address)
    return router


def _sent_once_heard(
    dealer: zmq.Socket[bytes], address: str, sending: threading.Thread, outcome: list[Any]
) -> list[bytes]:
    """Bind the peer `dealer` waits for; once the waiting send ended, return what came."""
    router = _peer(dealer, address)
    try:
        sending.join(timeout=10)
        assert not sending.is_alive()
        assert outcome == [None]
        return router.recv_multipart()[1:]
    finally:
        router.close()


@pytest.mark.parametrize("send", SENDS)
def test_a_send_that_cannot_go_raises_again_and_sends_nothing(
    unheard: tuple[zmq.Socket[bytes], str], send: Send
) -> None:
    # Nothing of the failed message may be left behind to prefix the next.
    dealer, address = unheard
    with pytest.raises(zmq.Again):
        send(dealer, [b"lost", b"frames"], zmq.DONTWAIT)
    router = _peer(dealer, address)
    try:
        assert dealer.poll(10_000, zmq.POLLOUT)  # the connection is up
        send(dealer, [b"kept"], zmq.DONTWAIT)
        assert router.recv_multipart()[1:] == [b"kept"]
    finally:
        router.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("send", SENDS)
def test_a_blocking_send_gives_up_when_its_timeout_runs_out(
    unheard: tuple[zmq.Socket[bytes], str], send: Send
) -> None:
    dealer, _ = unheard
    dealer.sndtimeo = 50
    with pytest.raises(zmq.Again):
        send(dealer, [b"nobody", b"there"])


@pytest.mark.timeout(30)
@_NEEDS_WCHAN
@pytest.mark.parametrize("send", SENDS)
def test_a_blocking_send_lets_other_threads_run(
    unheard: tuple[zmq.Socket[bytes], str], send: Send
) -> None:
    # A send that must wait (no peer yet) waits in ZeroMQ without the GIL:
    # this thread binds the peer the send waits for once the sender sleeps.
    dealer, address = unheard
    dealer.sndtimeo = 5000
    sending, outcome = _asleep_in_zeromq(lambda: send(dealer, [b"at", b"last"]))
    assert _sent_once_heard(dealer, address, sending, outcome) == [b"at", b"last"]


@pytest.mark.timeout(30)
@_NEEDS_WCHAN
@pytest.mark.parametrize("send", SENDS)
def test_a_list_changed_while_its_send_waits_still_goes_as_it_was(
    unheard: tuple[zmq.Socket[bytes], str], send: Send
) -> None:
    # The send waits with the GIL released: another thread may empty the
    # caller's list meanwhile (and its frames be freed, were the list the
    # only holder). The message must go as the list was at the call: a
    # compiled send that read the list's items after its wait read freed
    # memory; one that took the last frame from the list then, the wrong one.
    dealer, address = unheard
    dealer.sndtimeo = 5000
    frames = [os.urandom(32) for _ in range(4)]  # held by the list alone
    sent = [bytes(f) for f in frames]
    sending, outcome = _asleep_in_zeromq(lambda: send(dealer, frames))
    frames.clear()
    frames.extend(os.urandom(32) for _ in range(64))  # reuse what was freed
    gc.collect()
    assert _sent_once_heard(dealer, address, sending, outcome) == sent


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
@pytest.mark.parametrize("send", SENDS)
def test_a_signal_handler_interrupts_a_blocking_send(
    unheard: tuple[zmq.Socket[bytes], str], send: Send
) -> None:
    dealer, _ = unheard
    with _interrupted_after(0.05):
        send(dealer, [b"never", b"sent"])


@pytest.mark.parametrize("read", READS)
def test_the_events_read_are_zmq_events(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], read: Callable[[Any], int]
) -> None:
    # pyzmq's own get(EVENTS) is the reference.
    dealer, router = pair
    assert read(router) == router.get(zmq.EVENTS) == zmq.POLLOUT
    send_frames(dealer, [b"a", b"b"])
    assert router.poll(10_000)  # over ipc://: in ZeroMQ's I/O threads' time
    assert read(router) == router.get(zmq.EVENTS) == zmq.POLLIN | zmq.POLLOUT
    router.recv_multipart()
    assert read(router) == router.get(zmq.EVENTS) == zmq.POLLOUT


@pytest.mark.skipif(
    not os.environ.get("BINGLIDE_REQUIRE_COMPILED"),
    reason="BINGLIDE_REQUIRE_COMPILED is not set (.ci/run sets it where a C compiler is)",
)
def test_the_compiled_calls_were_built_where_they_could_be() -> None:
    # Built and bound to pyzmq's libzmq, whether in use or not (BINGLIDE_PURE_ZMQ).
    module = importlib.import_module("binglide.transports._zmqio")  # ImportError: not built
    module.bind(sys.modules["zmq.backend.cython._zmq"].__file__)  # OSError: not bound
    for name in ("receive", "send", "events"):
        assert callable(getattr(module, name))


def test_the_compiled_calls_are_the_ones_in_use_unless_they_are_off() -> None:
    if zeromq._compiled is None:
        expected = (receive_frames_python, send_frames_python, read_events_python)
    else:
        expected = (receive_frames_compiled, send_frames_compiled, read_events_compiled)
    assert (receive_frames, send_frames, read_events) == expected


def test_binglide_pure_zmq_turns_the_compiled_calls_off() -> None:
    code = (
        "import binglide.transports.zeromq as z; "
        "print(z.receive_frames.__name__, z.send_frames.__name__, z.read_events.__name__)"
    )
    env = dict(os.environ, BINGLIDE_PURE_ZMQ="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [
        "receive_frames_python",
        "send_frames_python",
        "read_events_python",
    ]
