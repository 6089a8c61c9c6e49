"""One multipart message received at a time: pyzmq's path and binglide's compiled one.

Both must give the same frames (small ones as bytes, large ones as views of
ZeroMQ's buffer that outlive the socket), raise what pyzmq raises, let other
threads run while they wait, and let a signal handler interrupt the wait.
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

import pytest
import zmq

from binglide.core import Frame
from binglide.transports import zeromq
from binglide.transports.zeromq import (
    receive_frames,
    receive_frames_compiled,
    receive_frames_python,
    send_frames,
)

from .zmq_helpers import ipc_address

pytestmark = pytest.mark.zmq

Receive = Callable[..., list[Frame]]

compiled = pytest.param(
    receive_frames_compiled,
    id="compiled",
    marks=pytest.mark.skipif(
        zeromq._receive is None,
        reason="binglide's compiled receive is off here"
        " (not built, for want of a C compiler at install; or BINGLIDE_PURE_RECEIVE is set)",
    ),
)
RECEIVES = [pytest.param(receive_frames_python, id="python"), compiled]

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


@pytest.mark.skipif(
    not os.environ.get("BINGLIDE_REQUIRE_COMPILED"),
    reason="BINGLIDE_REQUIRE_COMPILED is not set (.ci/run sets it where a C compiler is)",
)
def test_the_compiled_receive_was_built_where_it_could_be() -> None:
    importlib.import_module("binglide.transports._zmqrecv")  # ImportError: not built


def test_the_compiled_receive_is_the_one_in_use_unless_it_is_off() -> None:
    expected = receive_frames_python if zeromq._receive is None else receive_frames_compiled
    assert receive_frames is expected


def test_binglide_pure_receive_turns_the_compiled_one_off() -> None:
    code = "import binglide.transports.zeromq as z; print(z.receive_frames.__name__)"
    env = dict(os.environ, BINGLIDE_PURE_RECEIVE="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "receive_frames_python"
