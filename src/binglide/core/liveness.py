"""Heartbeat bookkeeping shared by the client and worker machines.

Theory of operation: a peer sends a HEARTBEAT when it has sent nothing else
for ``interval`` seconds, and considers the broker dead after ``liveness``
intervals without hearing anything from it (MDP/0.2's heartbeating, applied in
both directions). Time arrives as ``now``; nothing here reads a clock.
"""

from __future__ import annotations

import attrs

__all__ = ("Liveness",)


@attrs.define
class Liveness:
    """When to send the next heartbeat, and when the broker counts as dead."""

    interval: float
    liveness: int = 3
    next_send: float | None = None
    expiry: float | None = None
    #: Whether the broker was ever heard from: a broker that never answered
    #: is not one that stopped answering, and the reports say which.
    answered: bool = False

    def sent(self, now: float) -> None:
        """Note that something was sent at `now`."""
        self.next_send = now + self.interval

    def heard(self, now: float) -> None:
        """Note that the broker was heard from at `now`."""
        self.answered = True
        # `_restart`, inline: every message a peer gets from its broker comes here.
        self.expiry = now + self.interval * self.liveness

    def _restart(self, now: float) -> None:
        self.expiry = now + self.interval * self.liveness

    def due(self, now: float) -> bool:
        """Return whether a heartbeat should be sent at `now`."""
        return self.next_send is None or self.next_send <= now

    def dead(self, now: float) -> bool:
        """Return whether the broker has been silent for too long at `now`."""
        return self.expiry is not None and self.expiry <= now

    def tick(self, now: float) -> tuple[bool, bool]:
        """Return whether to send a heartbeat now and whether the broker is lost.

        A lost broker is reported once per silence: the count starts again.
        """
        if self.expiry is None:
            self._restart(now)
        beat = self.due(now)
        if beat:
            self.sent(now)
        lost = self.dead(now)
        if lost:
            self._restart(now)
        return beat, lost

    def next_deadline(self) -> float | None:
        """Return the next time something is due."""
        times = [t for t in (self.next_send, self.expiry) if t is not None]
        return min(times, default=None)
