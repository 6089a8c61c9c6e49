"""Sliding-window entropy, window after window, from bytes read as they are needed.

The windows ``[lo[k], hi[k])`` come in order (``lo`` and ``hi`` never
decrease). Each window's byte counts come from the window before it: the
bytes that went out (``[lo[k-1], lo[k])``, the *trail*) are removed and
those that came in (``[hi[k-1], hi[k])``, the *lead*) are added; a window
that does not overlap the one before is counted afresh from its own bytes.
So nearby windows cost about one pass over their bytes, and far apart ones
their own bytes only.

The entropy of ``N`` bytes is ``log2(N) - S/N`` with ``S = sum(c * log2(c))``
over the window's counts. ``S`` is updated with each byte that goes out or
comes in, and recomputed from the counts (always summed the same way) when
the window was counted afresh or moved more than `_FRESH_MOVED` bytes (an
update per byte would cost more), when more than `_MAX_UPDATES` updates
piled up since the last time (so that rounding cannot drift), and at every
window whose index is a multiple of `FRESH_EVERY`. The last rule makes the result a
function of the windows alone: cut into runs at multiples of `FRESH_EVERY`
(one run per worker, or per kernel call), the windows give the same bits as
in one run.

The bytes are read a group of windows at a time: the lead and trail bytes of
up to `_MAX_WINDOWS` windows, at most a piece of each, gathered into two
buffers (nearby ranges read through their gap in one read). A window whose
own lead or trail is larger than a piece (windows of more than a MiB) has
its counts added and removed piece by piece, and its ``S`` recomputed (more
than `_MAX_UPDATES` bytes moved: the rule above, so the bits are the same).
Between groups the reader may stop the thread (a cancelled request): each
group is bounded in bytes and windows, so in time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from . import kernels
from .kernels import jit

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("FRESH_EVERY", "sliding_entropies", "sliding_entropy", "windows_around")

U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]
F64Array = npt.NDArray[np.float64]

#: ``S`` is recomputed from the counts at every window whose index is a
#: multiple of this (see the module docstring): cut runs of windows here.
FRESH_EVERY: Final = 64
#: ``S`` is recomputed when more bytes than this moved since the last time.
_MAX_UPDATES: Final = 1 << 16
#: The ``updates`` of a window counted afresh: forces the recomputation.
_RECOUNT: Final = 1 << 40
#: ``S`` is recomputed, not updated, in a window that moved more bytes than this.
_FRESH_MOVED: Final = 256
#: c * log2(c) is tabulated below this count (a lookup instead of a logarithm).
_FLOG_SIZE: Final = 1 << 16
#: Two needed byte ranges at most this far apart are read as one.
_GAP: Final = 16 << 10
#: The most windows per kernel call (bounds its time when windows are dense).
_MAX_WINDOWS: Final = 1 << 16
#: The most windows per batch of the numpy fallback (bounds its count tables).
_NP_WINDOWS: Final = 2048
#: Windows planned at a time (bounds the memory of the plan).
_BATCH: Final = 1 << 20
#: The smallest piece: a window moving more bytes than a piece must also
#: exceed `_MAX_UPDATES`, so that the piece-by-piece path gives the same bits.
_MIN_PIECE: Final = 2 * _MAX_UPDATES


def _flog_table() -> F64Array:
    c = np.arange(_FLOG_SIZE, dtype=np.float64)
    table: F64Array = c * np.log2(np.where(c > 0, c, 1.0))
    return table


_FLOG: Final = _flog_table()
#: The change of c*log2(c) when a count goes from c to c + 1 (the same
#: subtraction the update would do: one lookup instead of two).
_UP: Final = np.diff(_FLOG)


@jit
def _nb_flog(flog: F64Array, c: int) -> float:
    if c < flog.shape[0]:
        return float(flog[c])
    return c * math.log2(c)


@jit
def _nb_up(up: F64Array, flog: F64Array, c: int) -> float:
    if c < up.shape[0]:
        return float(up[c])
    return _nb_flog(flog, c + 1) - _nb_flog(flog, c)


@jit
def _nb_fresh(counts: I64Array, flog: F64Array) -> float:
    # Four sums (one per bin residue mod 4), always added the same way: no
    # chain of 256 dependent additions, and the same bits for the same counts.
    s0 = s1 = s2 = s3 = 0.0
    for v in range(0, 256, 4):
        s0 += _nb_flog(flog, counts[v])
        s1 += _nb_flog(flog, counts[v + 1])
        s2 += _nb_flog(flog, counts[v + 2])
        s3 += _nb_flog(flog, counts[v + 3])
    return (s0 + s1) + (s2 + s3)


@jit
def _nb_value(s: float, width: int) -> float:
    if width <= 0:
        return 0.0
    h = math.log2(width) - s / width
    return min(8.0, max(0.0, h))


@jit
def _nb_windows(
    lo: I64Array,
    hi: I64Array,
    k0: int,
    k1: int,
    base: int,
    lead: U8Array,
    lead_runs: I64Array,
    trail: U8Array,
    trail_runs: I64Array,
    counts: I64Array,
    state: I64Array,
    s_state: F64Array,
    flog: F64Array,
    up: F64Array,
    out: F64Array,
) -> None:
    # state: the current window [cur_lo, cur_hi) and the updates since S was
    # last recomputed; s_state: S. Runs are rows [file lo, file hi, offset in
    # the buffer], sorted: every byte that goes out is in a trail run, every
    # byte that comes in in a lead run (the driver reads them).
    cur_lo = state[0]
    cur_hi = state[1]
    updates = state[2]
    s = s_state[0]
    rl = 0
    rt = 0
    for k in range(k0, k1):
        a = lo[k]
        b = hi[k]
        if a >= cur_hi:
            counts[:] = 0
            cur_lo = a
            cur_hi = a
            updates = _RECOUNT
        else:
            moved = (a - cur_lo) + (b - cur_hi)
            # Updating S costs a dependent addition per byte, recomputing it
            # about as much as 256 bytes: past that, recompute.
            updates += _RECOUNT if moved > _FRESH_MOVED else moved
        # S is recomputed at the end of this window: no need to update it.
        exact = updates > _MAX_UPDATES or (base + k) % FRESH_EVERY == 0
        # Remove before adding: a count then never exceeds the window. (The
        # two directions written out: each inner loop is one tight loop.)
        while cur_lo < a:
            while rt < trail_runs.shape[0] and trail_runs[rt, 1] <= cur_lo:
                rt += 1
            if rt == trail_runs.shape[0] or trail_runs[rt, 0] > cur_lo:
                raise ValueError("sliding windows: a byte going out was not read")
            end = min(a, trail_runs[rt, 1])
            off = trail_runs[rt, 2] - trail_runs[rt, 0]
            if exact:
                for i in range(cur_lo, end):
                    counts[trail[i + off]] -= 1
            else:
                for i in range(cur_lo, end):
                    v = trail[i + off]
                    c = counts[v]
                    s -= _nb_up(up, flog, c - 1)
                    counts[v] = c - 1
            cur_lo = end
        while cur_hi < b:
            while rl < lead_runs.shape[0] and lead_runs[rl, 1] <= cur_hi:
                rl += 1
            if rl == lead_runs.shape[0] or lead_runs[rl, 0] > cur_hi:
                raise ValueError("sliding windows: a byte coming in was not read")
            end = min(b, lead_runs[rl, 1])
            off = lead_runs[rl, 2] - lead_runs[rl, 0]
            if exact:
                for i in range(cur_hi, end):
                    counts[lead[i + off]] += 1
            else:
                for i in range(cur_hi, end):
                    v = lead[i + off]
                    c = counts[v]
                    s += _nb_up(up, flog, c)
                    counts[v] = c + 1
            cur_hi = end
        if exact:
            s = _nb_fresh(counts, flog)
            updates = 0
        out[k] = _nb_value(s, b - a)
    state[0] = cur_lo
    state[1] = cur_hi
    state[2] = updates
    s_state[0] = s


@jit
def _nb_plan(
    lo: I64Array,
    hi: I64Array,
    prev_lo: int,
    prev_hi: int,
    recount: npt.NDArray[np.bool_],
    lead_lo: I64Array,
    trail_lo: I64Array,
    lead_cost: I64Array,
    trail_cost: I64Array,
) -> None:
    # `_Windows._plan` in one pass: for each window, whether it is counted
    # afresh, where the bytes it needs start (in: lead, out: trail), and the
    # cumulative bytes read for them (the needed bytes and the gaps read through).
    lead_cost[0] = 0
    trail_cost[0] = 0
    lc = 0
    tc = 0
    for k in range(lo.shape[0]):
        a = lo[k]
        b = hi[k]
        fresh = a >= prev_hi
        recount[k] = fresh
        ll = a if fresh else prev_hi
        tl = a if fresh else prev_lo
        lead_lo[k] = ll
        trail_lo[k] = tl
        if k > 0:
            gap = ll - hi[k - 1]
            if gap <= _GAP:
                lc += gap
            gap = tl - lo[k - 1]
            if gap <= _GAP:
                tc += gap
        lc += b - ll
        tc += a - tl
        lead_cost[k + 1] = lc
        trail_cost[k + 1] = tc
        prev_lo = a
        prev_hi = b


def _runs(lows: I64Array, highs: I64Array) -> I64Array:
    """Merge sorted, disjoint ranges less than `_GAP` apart: rows [lo, hi, offset]."""
    if lows.shape[0] == 0:
        return np.zeros((0, 3), np.int64)
    breaks = np.flatnonzero(lows[1:] - highs[:-1] > _GAP) + 1
    first = np.concatenate([[0], breaks])
    last = np.concatenate([breaks - 1, [lows.shape[0] - 1]])
    runs = np.empty((first.shape[0], 3), np.int64)
    runs[:, 0] = lows[first]
    runs[:, 1] = highs[last]
    lengths = runs[:, 1] - runs[:, 0]
    runs[:, 2] = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return runs


def _need_histograms(buf: U8Array, runs: I64Array, lows: I64Array, highs: I64Array) -> I64Array:
    """Return the byte counts of each range ``[lows[i], highs[i])``, read into `buf` by `runs`."""
    count = lows.shape[0]
    if count == 0 or runs.shape[0] == 0:
        return np.zeros((count, 256), np.int64)
    # A range lies in one run (runs merge whole ranges); empty ones anywhere.
    r = np.clip(np.searchsorted(runs[:, 1], lows, side="right"), 0, runs.shape[0] - 1)
    at = np.clip(runs[r, 2] + lows - runs[r, 0], 0, buf.shape[0])
    ends = np.minimum(at + (highs - lows), buf.shape[0])
    edges = np.empty(2 * count, np.int64)
    edges[0::2] = at
    edges[1::2] = ends
    # The ranges and the gaps between them alternate: keep the ranges.
    hists = kernels.segment_histograms(buf, np.maximum.accumulate(edges))
    return hists[0::2].astype(np.int64)


class _Windows:
    """The state of a computation over sorted windows, and its driver.

    Windows go by batches of `_BATCH` (the plan of a batch: a few int64
    arrays of its length), each cut into groups whose bytes fit in a piece.
    """

    def __init__(
        self,
        read: Callable[[I64Array, int], U8Array],
        lo: I64Array,
        hi: I64Array,
        base: int,
        piece: int,
    ) -> None:
        self.read = read
        self.all_lo = lo
        self.all_hi = hi
        self.all_out = np.zeros(lo.shape[0], np.float64)
        self.first = base
        self.piece = piece
        self.counts = np.zeros(256, np.int64)
        self.state = np.zeros(3, np.int64)  # cur_lo, cur_hi, updates: starts empty at 0
        self.s = np.zeros(1, np.float64)
        # numba or numpy, the same for every run of windows of every
        # computation: the two paths' entropies differ in their last bits,
        # and a run cut anywhere must give the bits of one whole run.
        self.fast = kernels.numba_always()

    def run(self) -> F64Array:
        for k in range(0, self.all_lo.shape[0], _BATCH):
            self._plan(k, min(self.all_lo.shape[0], k + _BATCH))
            self._run_batch()
        return self.all_out

    def _plan(self, k0: int, k1: int) -> None:
        lo = self.lo = self.all_lo[k0:k1]
        hi = self.hi = self.all_hi[k0:k1]
        self.out = self.all_out[k0:k1]
        self.base = self.first + k0
        self.trail_hi = lo
        m = k1 - k0
        if self.fast:
            self.recount = np.empty(m, np.bool_)
            self.lead_lo = np.empty(m, np.int64)
            self.trail_lo = np.empty(m, np.int64)
            self.lead_cost = np.empty(m + 1, np.int64)
            self.trail_cost = np.empty(m + 1, np.int64)
            _nb_plan(
                lo, hi, int(self.state[0]), int(self.state[1]), self.recount,
                self.lead_lo, self.trail_lo, self.lead_cost, self.trail_cost,
            )  # fmt: skip
            return
        # The window before each: the last of the previous batch for the first.
        prev_lo = np.concatenate([self.state[:1], lo[:-1]])
        prev_hi = np.concatenate([self.state[1:2], hi[:-1]])
        self.recount = lo >= prev_hi
        # The bytes each window needs: in, and out.
        self.lead_lo = np.where(self.recount, lo, prev_hi)
        self.trail_lo = np.where(self.recount, lo, prev_lo)
        # A group's bytes: the needed ranges and the gaps read through.
        self.lead_cost = self._costs(self.lead_lo, hi)
        self.trail_cost = self._costs(self.trail_lo, self.trail_hi)

    @staticmethod
    def _costs(lows: I64Array, highs: I64Array) -> I64Array:
        gaps = lows - np.concatenate([lows[:1], highs[:-1]])
        cost = (highs - lows) + np.where(gaps <= _GAP, gaps, 0)
        return np.concatenate([[0], np.cumsum(cost)])

    def _run_batch(self) -> None:
        m = self.lo.shape[0]
        k = 0
        while k < m:
            k1 = min(
                int(np.searchsorted(self.lead_cost, self.lead_cost[k] + self.piece, "right")) - 1,
                int(np.searchsorted(self.trail_cost, self.trail_cost[k] + self.piece, "right"))
                - 1,
                k + (_MAX_WINDOWS if self.fast else _NP_WINDOWS),
                m,
            )
            if k1 <= k:
                self._large(k)
                k += 1
            else:
                self._group(k, k1)
                k = k1

    def _read(self, runs: I64Array, slot: int) -> U8Array:
        if runs.shape[0] == 0:
            return np.zeros(0, np.uint8)
        return self.read(runs[:, :2], slot)

    def _group(self, k0: int, k1: int) -> None:
        lead_runs = _runs(self.lead_lo[k0:k1], self.hi[k0:k1])
        keep = self.trail_hi[k0:k1] > self.trail_lo[k0:k1]
        trail_runs = _runs(self.trail_lo[k0:k1][keep], self.trail_hi[k0:k1][keep])
        lead = self._read(lead_runs, 0)
        trail = self._read(trail_runs, 1)
        if self.fast:
            _nb_windows(
                self.lo,
                self.hi,
                k0,
                k1,
                self.base,
                lead,
                lead_runs,
                trail,
                trail_runs,
                self.counts,
                self.state,
                self.s,
                _FLOG,
                _UP,
                self.out,
            )
            return
        # numpy: each window's counts from the histograms of what came in and
        # went out, summed from its last fresh count; entropies from counts.
        sl = slice(k0, k1)
        came = _need_histograms(lead, lead_runs, self.lead_lo[sl], self.hi[sl])
        went = _need_histograms(trail, trail_runs, self.trail_lo[sl], self.trail_hi[sl])
        rows = np.empty((k1 - k0 + 1, 256), np.int64)
        rows[0] = self.counts
        np.subtract(came, went, out=rows[1:])
        total = np.cumsum(rows, axis=0)
        index = np.arange(k1 - k0)
        last = np.maximum.accumulate(np.where(self.recount[sl], index, -1))
        before = np.where((last >= 0)[:, None], total[np.maximum(last, 0)], 0)
        counts = total[1:] - before
        self.out[sl] = kernels.entropy_of_counts(counts)
        self.counts[:] = counts[-1]
        self.state[:] = (self.lo[k1 - 1], self.hi[k1 - 1], 0)

    def _add(self, lo: int, hi: int, sign: int) -> None:
        for p in range(lo, hi, self.piece):
            q = min(hi, p + self.piece)
            data = self.read(np.array([[p, q]], np.int64), 0)
            hist = kernels.byte_histogram(data).view(np.int64)
            if sign > 0:
                self.counts += hist
            else:
                self.counts -= hist

    def _large(self, k: int) -> None:
        # More than a piece moves: more than _MAX_UPDATES, so S is recomputed.
        a, b = int(self.lo[k]), int(self.hi[k])
        cur_lo, cur_hi = int(self.state[0]), int(self.state[1])
        if self.recount[k]:
            self.counts[:] = 0
            self._add(a, b, 1)
        else:
            self._add(cur_lo, a, -1)
            self._add(cur_hi, b, 1)
        if self.fast:
            self.s[0] = _nb_fresh(self.counts, _FLOG)
            self.out[k] = _nb_value(self.s[0], b - a)
        else:
            self.out[k] = kernels.entropy_of_counts(self.counts)
        self.state[:] = (a, b, 0)


def sliding_entropies(
    read: Callable[[I64Array, int], U8Array],
    lo: Any,
    hi: Any,
    *,
    base: int = 0,
    piece: int = 1 << 20,
) -> F64Array:
    """Return the entropy (bits per byte) of each window ``[lo[k], hi[k])``.

    Args:
        read: ``read(runs, slot)`` returns the bytes of every ``[start, stop)``
            row of the int64 array ``runs``, one after the other; ``slot``
            (0 or 1) says which of two buffers it may reuse (the array
            returned for one slot is used until that slot is read again).
            It is where a kernel thread may stop for a cancellation.
        lo: the windows' first offsets, never decreasing.
        hi: their end offsets, never decreasing, ``hi[k] >= lo[k]``.
        base: the index of the first window in the whole list (see
            `FRESH_EVERY`: a run cut at a multiple of it gives the same bits).
        piece: the most bytes read at a time, at least 128 KiB.

    Returns:
        One entropy per window, 0 to 8; 0 for an empty window.

    Raises:
        ValueError: the windows are not sorted, or `piece` is too small.
    """
    low = np.ascontiguousarray(lo, dtype=np.int64)
    high = np.ascontiguousarray(hi, dtype=np.int64)
    if low.ndim != 1 or low.shape != high.shape:
        raise ValueError("lo and hi must be 1-D and of the same length")
    if piece < _MIN_PIECE:
        raise ValueError(f"piece must be at least {_MIN_PIECE} bytes, not {piece}")
    if low.shape[0] == 0:
        return np.zeros(0, np.float64)
    if np.any(high < low) or low[0] < 0 or np.any(np.diff(low) < 0) or np.any(np.diff(high) < 0):
        raise ValueError("windows must be sorted: lo and hi never decreasing, hi >= lo >= 0")
    return _Windows(read, low, high, base, piece).run()


def windows_around(positions: Any, window: int, size: int) -> tuple[I64Array, I64Array]:
    """Return the windows of `window` bytes around `positions`, clipped to ``[0, size)``.

    The window of position ``p`` is ``[p - window//2, p - window//2 + window)``.
    """
    pos = np.asarray(positions, dtype=np.int64)
    lo = np.clip(pos - window // 2, 0, size)
    hi = np.clip(pos - window // 2 + window, 0, size)
    return lo, hi


def sliding_entropy(buf: Any, window: int, positions: Any) -> F64Array:
    """Return the entropy of the window around each position, in bits per byte.

    The window of position ``p`` is ``[p - window//2, p - window//2 + window)``
    clipped to ``[0, len(buf))``; an empty window has entropy 0. Nearby
    windows share their counts (each step only adds and removes the bytes that
    differ), so dense positions cost about one pass over the bytes.

    Args:
        buf: a 1-D uint8 array (or any bytes-like object).
        window: the window length in bytes, at least 1.
        positions: the window centres, int64 offsets in any order (they may lie
            outside the buffer).

    Returns:
        A float64 array, one entropy (0 to 8) per position, in the given order.

    Raises:
        ValueError: ``window`` is less than 1, ``positions`` is not 1-D, or
            ``buf`` is not a 1-D uint8 array.
    """
    data = kernels.as_bytes(buf)
    if window < 1:
        raise ValueError(f"window must be at least 1 byte, not {window}")
    pos = np.asarray(positions, dtype=np.int64)
    if pos.ndim != 1:
        raise ValueError("positions must be a 1-D sequence of offsets")
    order = np.argsort(pos, kind="stable")
    lo, hi = windows_around(pos[order], window, data.shape[0])

    def read(runs: I64Array, slot: int) -> U8Array:
        if runs.shape[0] == 1:
            return data[runs[0, 0] : runs[0, 1]]
        return np.concatenate([data[a:b] for a, b in runs.tolist()])

    result = np.zeros(pos.shape[0], np.float64)
    result[order] = sliding_entropies(read, lo, hi)
    return result
