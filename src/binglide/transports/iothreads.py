"""A ZeroMQ context's I/O threads, between latency and throughput, as the load goes.

binglide's contexts start their I/O threads ``SCHED_BATCH`` (`zeromq.new_context`):
a send does not preempt its sender, so the sends of a burst wake the I/O thread
once, not once a message (through a broker at 128 requests in flight, 15% more
requests a second on 2 cores). A lone message pays for it: it waits in its
socket until the sender has done what follows the send, and on a busy core that
is a worker's bookkeeping after its reply, then a turn of its event loop. With
its I/O thread ``SCHED_OTHER``, a worker's lone reply leaves as it is sent, and a
sequential request through broker and worker took 10-14% less time (bench/RESULTS.md,
issue 13, the tenth session's lead section).

`IoThreadPolicy` gives a peer both: its context's I/O threads go ``SCHED_OTHER``
once `LONE_RUN` deliveries in a row came alone, and back to ``SCHED_BATCH`` at
the first burst (the transport says which, `_ZmqEnd._deliver`). An unprivileged
thread may switch between the two (sched(7)); where that is refused (a seccomp
filter, say) the policy stops trying and the threads stay as they started.
Linux only: elsewhere there is no policy (`shared_io_policy` returns None).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ("LONE_RUN", "IoThreadPolicy", "start_threads")

log = logging.getLogger(__name__)

#: Deliveries in a row that came alone before the I/O threads go ``SCHED_OTHER``.
#: More than one: a burst's last message, or a heartbeat between two bursts,
#: comes alone too, and each switch is a system call a thread.
LONE_RUN = 4

_TASKS = Path("/proc/self/task")


def start_threads(ctx: zmq.Context[Any]) -> tuple[int, ...]:
    """Start `ctx`'s threads and return the ids of the threads that started.

    A context starts its reaper and I/O threads with its first socket: this
    opens one and closes it, and returns the threads that were not there
    before (``()`` where ``/proc/self/task`` cannot be read, or when `ctx`
    had started them already). Which of them are I/O threads their names say
    (`IoThreadPolicy` reads them when it first switches: a thread names itself
    once it runs, which may be after this returns).
    """
    try:
        before = set(os.listdir(_TASKS))
    except OSError:
        return ()
    # A plain socket on the same context: an asyncio one wants a loop.
    zmq.Socket(ctx, zmq.DEALER).close(linger=0)
    try:
        after = set(os.listdir(_TASKS))
    except OSError:
        return ()
    return tuple(sorted(int(tid) for tid in after - before))


def _io_threads(candidates: Sequence[int]) -> tuple[int, ...]:
    """The threads among `candidates` that are a ZeroMQ context's I/O threads, by name."""
    found = []
    for tid in candidates:
        try:
            name = (_TASKS / str(tid) / "comm").read_text()
        except OSError:
            continue  # ended
        if name.startswith("ZMQbg/IO/"):
            found.append(tid)
    return tuple(found)


def _set_policy(tid: int, policy: int) -> None:
    os.sched_setscheduler(tid, policy, os.sched_param(0))


class IoThreadPolicy:
    """Switches a context's I/O threads to ``SCHED_OTHER`` while messages come alone.

    Call `lone` after each delivery of one message with none after it, and
    `burst` when a delivery found several ready. Both are a few attribute
    reads unless they switch.

    Args:
        threads: the context's threads (`start_threads`); the I/O threads
            among them are found by name at the first switch.
        set_policy: sets a thread's policy (``os.sched_setscheduler``'s
            work; raises OSError when refused).
        lone_run: lone deliveries in a row before ``SCHED_OTHER``.
    """

    def __init__(
        self,
        threads: Sequence[int],
        *,
        set_policy: Callable[[int, int], None] = _set_policy,
        lone_run: int = LONE_RUN,
    ) -> None:
        self._candidates = tuple(threads)
        self._threads: tuple[int, ...] | None = None  # found at the first switch
        self._set_policy = set_policy
        self._lone_run = lone_run
        self._lone = 0
        #: Whether the I/O threads are ``SCHED_OTHER`` now (they start ``SCHED_BATCH``).
        self.latency = False
        #: Whether switching was refused (or there is nothing to switch): no more tries.
        self.off = False

    def lone(self) -> None:
        """A delivery came alone: after `lone_run` in a row, favour latency."""
        if self.latency or self.off:
            return
        self._lone += 1
        if self._lone >= self._lone_run:
            self._switch(latency=True)

    def burst(self) -> None:
        """A delivery found several messages ready: favour throughput."""
        self._lone = 0
        if self.latency:
            self._switch(latency=False)

    def _switch(self, *, latency: bool) -> None:
        if self._threads is None:
            self._threads = _io_threads(self._candidates)
            if not self._threads:
                self.off = True
                return
        policy = os.SCHED_OTHER if latency else os.SCHED_BATCH
        try:
            for tid in self._threads:
                self._set_policy(tid, policy)
        except OSError as exc:
            self.off = True
            self.latency = False
            log.debug("the I/O threads' policy stays SCHED_BATCH: %s", exc)
            for tid in self._threads:  # undo any switched before the refusal
                with contextlib.suppress(OSError):
                    self._set_policy(tid, os.SCHED_BATCH)
            return
        self.latency = latency
