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


@pytest.mark.parametrize("receive", RECEIVES)
def test_a_closed_socket_raises_enotsock(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], receive: Receive
) -> None:
    _, router = pair
    router.close(linger=0)
    with pytest.raises(zmq.ZMQError) as info:
        receive(router, zmq.DONTWAIT)
    assert info.value.errno == errno.ENOTSOCK


def _sleeps_in_poll(tid: int) -> bool:
    """Whether thread `tid` of this process sleeps in poll(): ZeroMQ's wait, not the GIL's."""
    try:
        with open(f"/proc/self/task/{tid}/wchan") as wchan:
            return "poll" in wchan.read()
    except OSError:  # the thread ended
        return False


@pytest.mark.timeout(30)
@pytest.mark.skipif(
    not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/wchan"),
    reason="needs Linux's /proc/<pid>/task/<tid>/wchan to see where a thread sleeps",
)
@pytest.mark.parametrize("receive", RECEIVES)
def test_a_blocking_receive_lets_other_threads_run(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], receive: Receive
) -> None:
    # The broker's loop waits in a blocking receive while its CURVE
    # authenticator (a thread) must run. This thread reads where the
    # receiving one sleeps until it sleeps in ZeroMQ's poll, then sends: a
    # wait that held the GIL would keep this thread from going on after its
    # first read until the receive gave up (RCVTIMEO), and the test fails.
    dealer, router = pair
    router.setsockopt(zmq.RCVTIMEO, 5000)
    got: list[list[Frame]] = []
    started = threading.Event()
    tids: list[int] = []

    def wait() -> None:
        tids.append(threading.get_native_id())
        started.set()
        with contextlib.suppress(zmq.Again):  # (the GIL held: see above)
            got.append(receive(router))

    waiting = threading.Thread(target=wait)
    waiting.start()
    assert started.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not _sleeps_in_poll(tids[0]):
        assert waiting.is_alive(), "the receive ended with no message: it held the GIL"
        assert time.monotonic() < deadline, "the receiving thread never waited in poll()"
    send_frames(dealer, [b"wake", b"up"])
    waiting.join(timeout=10)
    assert not waiting.is_alive()
    assert got == [[b"peer-1", b"wake", b"up"]]


class _Interrupted(Exception):
    pass


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
@pytest.mark.parametrize("receive", RECEIVES)
def test_a_signal_handler_interrupts_a_blocking_receive(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], receive: Receive
) -> None:
    # `binglide broker` stops on SIGTERM while it waits for a message: the
    # handler's exception must come out of the wait.
    _, router = pair

    def handler(signum: int, frame: object) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(_Interrupted):
            receive(router)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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


@pytest.mark.parametrize("send", SENDS)
def test_a_send_that_cannot_go_raises_again_and_sends_nothing(send: Send) -> None:
    # A DEALER with ZMQ_IMMEDIATE has no pipe until its peer is there: a
    # send without waiting fails at its first frame, and leaves nothing
    # behind that would prefix the next message.
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IMMEDIATE, 1)
    try:
        with ipc_address() as address:
            dealer.connect(address)
            with pytest.raises(zmq.Again):
                send(dealer, [b"lost", b"frames"], zmq.DONTWAIT)
            router = ctx.socket(zmq.ROUTER)
            router.rcvtimeo = 10_000
            router.bind(address)
            assert dealer.poll(10_000, zmq.POLLOUT)  # the connection is up
            send(dealer, [b"kept"], zmq.DONTWAIT)
            assert router.recv_multipart()[1:] == [b"kept"]
            router.close(linger=0)
    finally:
        dealer.close(linger=0)
        ctx.term()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("send", SENDS)
def test_a_blocking_send_gives_up_when_its_timeout_runs_out(send: Send) -> None:
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IMMEDIATE, 1)
    dealer.sndtimeo = 50
    try:
        with ipc_address() as address:
            dealer.connect(address)
            with pytest.raises(zmq.Again):
                send(dealer, [b"nobody", b"there"])
    finally:
        dealer.close(linger=0)
        ctx.term()


@pytest.mark.parametrize("send", SENDS)
def test_a_send_on_a_closed_socket_raises_enotsock(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], send: Send
) -> None:
    dealer, _ = pair
    dealer.close(linger=0)
    with pytest.raises(zmq.ZMQError) as info:
        send(dealer, [b"late"], zmq.DONTWAIT)
    assert info.value.errno == errno.ENOTSOCK


@pytest.mark.timeout(30)
@pytest.mark.skipif(
    not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/wchan"),
    reason="needs Linux's /proc/<pid>/task/<tid>/wchan to see where a thread sleeps",
)
@pytest.mark.parametrize("send", SENDS)
def test_a_blocking_send_lets_other_threads_run(send: Send) -> None:
    # A send that must wait (no peer yet) waits in ZeroMQ without the GIL:
    # this thread sees the sender asleep in poll(), then binds the peer the
    # send waits for. A wait that held the GIL would keep this thread from
    # going on until the send gave up (SNDTIMEO), and the test fails.
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IMMEDIATE, 1)
    dealer.sndtimeo = 5000
    router = ctx.socket(zmq.ROUTER)
    router.rcvtimeo = 10_000
    errors: list[BaseException] = []
    tids: list[int] = []
    try:
        with ipc_address() as address:
            dealer.connect(address)

            def wait() -> None:
                tids.append(threading.get_native_id())
                try:
                    send(dealer, [b"at", b"last"])
                except BaseException as exc:  # (zmq.Again: the GIL held, see above)
                    errors.append(exc)

            sending = threading.Thread(target=wait)
            sending.start()
            deadline = time.monotonic() + 10
            while not tids or not _sleeps_in_poll(tids[0]):
                assert sending.is_alive(), f"the send ended before its peer was there: {errors}"
                assert time.monotonic() < deadline, "the sending thread never waited in poll()"
            router.bind(address)
            sending.join(timeout=10)
            assert not sending.is_alive()
            assert errors == []
            assert router.recv_multipart()[1:] == [b"at", b"last"]
    finally:
        router.close(linger=0)
        dealer.close(linger=0)
        ctx.term()


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
@pytest.mark.parametrize("send", SENDS)
def test_a_signal_handler_interrupts_a_blocking_send(send: Send) -> None:
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IMMEDIATE, 1)

    def handler(signum: int, frame: object) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        with ipc_address() as address:
            dealer.connect(address)
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            with pytest.raises(_Interrupted):
                send(dealer, [b"never", b"sent"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        dealer.close(linger=0)
        ctx.term()


@pytest.mark.parametrize("read", READS)
def test_the_events_read_are_zmq_events_and_a_closed_socket_is_refused(
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
    router.close(linger=0)
    with pytest.raises(zmq.ZMQError) as info:
        read(router)
    assert info.value.errno == errno.ENOTSOCK


@pytest.mark.skipif(
    not os.environ.get("BINGLIDE_REQUIRE_COMPILED"),
    reason="BINGLIDE_REQUIRE_COMPILED is not set (.ci/run sets it where a C compiler is)",
)
def test_the_compiled_calls_were_built_where_they_could_be() -> None:
    importlib.import_module("binglide.transports._zmqio")  # ImportError: not built
    assert zeromq._compiled is not None


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
