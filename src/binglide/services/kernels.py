"""Compute kernels over byte arrays: histograms, n-grams, entropy, diffs, ``ent``.

Every kernel takes a 1-D ``uint8`` array (usually a piece of a file read into
a reused buffer, see `binglide.services.sources`) and returns a small numpy
result, or adds into one given (``out=``), so that a range is counted piece
by piece. They are pure functions of their inputs, so a chunk's result can be
cached and re-computed anywhere.

Two implementations of each loop live here:

- a numba one (``@njit(nogil=True, cache=True)``), used when numba imports.
  ``nogil`` matters: the runtime runs kernels in worker threads, and only a
  kernel that releases the GIL lets those threads use every core;
- a plain numpy one, used when numba is missing or when the environment
  variable ``BINGLIDE_NO_NUMBA=1`` is set. It works in blocks of about a MiB,
  because numpy's whole-array idioms (``np.bincount`` on bytes makes an int64
  copy of its input) would copy a multi-GiB input.

Both give identical integer results; floating-point results (entropies) agree
to about 1e-12, since the summation orders differ.
"""

from __future__ import annotations

import importlib.util
import math
import operator
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, Final, TypedDict, TypeVar, cast

import attrs
import numpy as np
import numpy.typing as npt

__all__ = (
    "NUMBA_AVAILABLE",
    "UNDEFINED_CORRELATION",
    "EntAccumulator",
    "EntPartial",
    "EntStats",
    "as_bytes",
    "byte_histogram",
    "decimate",
    "diff_counts",
    "ent_finish",
    "ent_merge",
    "ent_partial",
    "entropy_of_counts",
    "jit",
    "ngram_histogram",
    "numba_always",
    "numba_for",
    "preload_numba",
    "segment_entropies",
    "segment_histograms",
)

U8Array = npt.NDArray[np.uint8]
U64Array = npt.NDArray[np.uint64]
UIntArray = npt.NDArray[np.unsignedinteger[Any]]
I64Array = npt.NDArray[np.int64]
F64Array = npt.NDArray[np.float64]
_F = TypeVar("_F", bound=Callable[..., Any])


def _numba_disabled() -> bool:
    return os.environ.get("BINGLIDE_NO_NUMBA", "").strip() not in ("", "0")


#: Whether the compiled kernels can be used: numba is installed and not disabled.
#: It is imported only when an input needs it (`numba_for`): importing it and
#: loading the compiled kernels takes about half a second, several times
#: what a small input costs numpy, and a command on a small file never pays it.
NUMBA_AVAILABLE: Final[bool] = (
    not _numba_disabled() and importlib.util.find_spec("numba") is not None
)

#: Inputs smaller than this (bytes, or counts for `entropy_of_counts`) are
#: counted by numpy while numba is not loaded yet (their entropies always,
#: see `numba_for`); the first larger one loads it.
_SMALL: Final = 1 << 20


class _Deferred:
    """A numba kernel not compiled yet: numba replaces it in its module when it loads."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.py_func = fn

    def __call__(self, *args: Any) -> Any:
        _load_numba()
        return self.py_func.__globals__[self.py_func.__name__](*args)


_deferred: list[_Deferred] = []
_numba_lock = threading.Lock()
_numba_loaded = False


def _jit(fn: _F) -> _F:
    # Without numba the loop functions below are never called (the numpy
    # paths are), but they must still be definable.
    if not NUMBA_AVAILABLE:
        return fn
    deferred = _Deferred(fn)
    _deferred.append(deferred)
    return cast("_F", deferred)


def _load_numba() -> None:
    """Import numba and compile (or load from its disk cache) every kernel, once."""
    global _numba_loaded
    with _numba_lock:
        if _numba_loaded:
            return
        import numba

        njit = numba.njit(nogil=True, cache=True)
        for deferred in _deferred:
            # In their module's namespace, so that kernels calling kernels
            # find numba's dispatchers there when they compile.
            fn = deferred.py_func
            fn.__globals__[fn.__name__] = njit(fn)
        _numba_loaded = True


#: Compile a kernel loop with numba (``njit(nogil=True, cache=True)``) when
#: an input first needs it (`numba_for`), or leave it plain Python when numba
#: is missing or disabled.
jit = _jit

# Read at call time, so that tests can run both paths in one process: True
# always numba (loading it), False never, None numba from `_SMALL` bytes on
# and, for the integer kernels, for everything once it is loaded.
_use_numba: bool | None = None if NUMBA_AVAILABLE else False


def numba_for(size: int, *, floats: bool = False) -> bool:
    """Whether the compiled loops run for an input of `size` bytes (loading numba if they must).

    Decide once per computation: a kernel's numba and numpy paths give the
    same integers, but entropies only to about 1e-12 (numpy's vector log2
    and its pairwise sums round differently from the compiled loops).

    Args:
        size: the input's size (bytes, or counts for `entropy_of_counts`).
        floats: the kernel computes floating-point results. Their path then
            depends on `size` alone, never on whether numba happens to be
            loaded already: the same input gives the same bits in every
            process (a command on a small file and the library in a process
            that has loaded numba agree, and so do a cached answer and a
            fresh one). Integer kernels take the compiled loops for any size
            once numba is loaded: their results are the same either way.
    """
    use = _use_numba
    if use is False:
        return False
    if use is None and size < _SMALL and (floats or not _numba_loaded):
        return False
    _load_numba()
    return True


def numba_always() -> bool:
    """Whether the compiled loops run whatever the input's size (loading numba if they must).

    For a floating-point computation that is cut into runs of any size and
    whose two paths compute differently (the sliding windows' entropies): a
    choice by size would give a run its own path, and the bits would depend
    on where the cuts fall. So it is numba for every run wherever numba is
    installed, even for a few windows.
    """
    if _use_numba is False:
        return False
    _load_numba()
    return True


_preload: threading.Thread | None = None


def preload_numba() -> threading.Thread | None:
    """Start loading numba and ``ent``'s compiled piece kernel on a thread, once.

    Importing numba and loading a kernel from its disk cache takes about half
    a second, mostly on one core: a batch that knows it will need them (it
    has found a large file) starts it here, so that it overlaps the walk and
    the small files instead of stalling the first large one. Small inputs
    keep their numpy path until the loading is over (`numba_for`).

    Returns:
        The loading thread (the same one on every call; join it to wait), or
        None when the compiled kernels are not used (numba missing, disabled,
        or switched off).
    """
    global _preload
    if _use_numba is False:
        return None
    with _numba_lock:
        if _preload is None:
            # Not a daemon: the interpreter must not finalise under an import.
            _preload = threading.Thread(target=_load_and_warm, name="binglide-numba", daemon=False)
            _preload.start()
        return _preload


def _load_and_warm() -> None:
    _load_numba()
    # The first call of each signature loads it from numba's cache (type
    # inference of the arguments, about 0.1 s): make it with the types that
    # `EntAccumulator.add` passes, on this thread rather than a kernel thread.
    # A batch's files, and most requests, start at offset 0: the partials of
    # one residue (`EntAccumulator(residue=0)`), not all six.
    EntAccumulator(residue=0).add(np.zeros(2 * _MONTE_BYTES, np.uint8), _MONTE_BYTES)


#: Bytes per block in the numpy fallbacks: large enough to amortise numpy's
#: per-call overhead, small enough that the int64 temporaries stay in the
#: last-level cache and never amount to a copy of a large input.
_BLOCK: Final = 1 << 20

#: ent's Monte Carlo circle: two 24-bit coordinates, inside when
#: x*x + y*y <= (2**24 - 1) ** 2 (ent's ``incirc``).
_MONTE_BYTES: Final = 6
_INCIRC: Final = ((1 << 24) - 1) ** 2


def as_bytes(buf: Any, name: str = "buf") -> U8Array:
    """Return ``buf`` as a 1-D uint8 ndarray without copying it."""
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8 or buf.ndim != 1:
            raise ValueError(f"{name} must be a 1-D uint8 array, not {buf.dtype} {buf.shape}")
        # np.asarray drops ndarray subclasses (np.memmap), which numba does not type.
        return np.asarray(buf)
    return np.frombuffer(memoryview(buf).cast("B"), dtype=np.uint8)


def _as_edges(edges: Any, size: int) -> I64Array:
    arr = np.asarray(edges, dtype=np.int64)
    if arr.ndim != 1 or arr.shape[0] < 1:
        raise ValueError("edges must be a 1-D sequence of at least one offset")
    if arr[0] < 0 or arr[-1] > size or (arr.shape[0] > 1 and bool(np.any(np.diff(arr) < 0))):
        raise ValueError(f"edges must be sorted offsets within [0, {size}]")
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------
# byte histogram


#: Entries per sub-table of the compiled byte histogram: 256 counters and a
#: 64-byte gap, so that the tables of one array do not start 4 KiB apart
#: (the same byte value in two tables would then falsely alias for the
#: CPU's store-to-load forwarding: 0.78x on zeros).
_HIST_STRIDE: Final = 256 + 16


@_jit
def _nb_hist_into(buf: U8Array, lo: int, hi: int, out: I64Array) -> None:
    # Sixteen sub-tables: a run of equal bytes (zero padding is everywhere in
    # binaries) would otherwise make every increment wait for the previous
    # store to the same counter; with sixteen tables sixteen chains run at
    # once. The bytes come as two 8-byte words a step (one load for eight
    # counters), into tables in one array (each counter a base register plus
    # a constant offset; unsigned indices, no wraparound check): 1.1-1.3x
    # eight tables fed 4-byte words (bench/RESULTS.md, corpus7). uint32
    # counters (half the cache footprint) run about 1.7x faster than one
    # int64 table; they are flushed into `out` every 2**30 bytes, long before
    # one could overflow. Which table counts which byte does not matter.
    if hi - lo < 1024:
        for i in range(lo, hi):
            out[buf[i]] += 1
        return
    t = np.zeros(16 * _HIST_STRIDE, np.uint32)
    # A strided view (every other byte...) cannot be read as words.
    contiguous = buf.strides[0] == 1
    low = np.uint64(0xFF)
    i = lo
    while i < hi:
        end = min(hi, i + (1 << 30))
        stop = i + ((end - i) & ~15)
        if contiguous:
            words = buf[i:stop].view(np.uint64)
            for k in range(words.shape[0] // 2):
                w = words[2 * k]
                v = words[2 * k + 1]
                t[w & low] += 1
                t[((w >> np.uint64(8)) & low) + np.uint64(1 * _HIST_STRIDE)] += 1
                t[((w >> np.uint64(16)) & low) + np.uint64(2 * _HIST_STRIDE)] += 1
                t[((w >> np.uint64(24)) & low) + np.uint64(3 * _HIST_STRIDE)] += 1
                t[((w >> np.uint64(32)) & low) + np.uint64(4 * _HIST_STRIDE)] += 1
                t[((w >> np.uint64(40)) & low) + np.uint64(5 * _HIST_STRIDE)] += 1
                t[((w >> np.uint64(48)) & low) + np.uint64(6 * _HIST_STRIDE)] += 1
                t[(w >> np.uint64(56)) + np.uint64(7 * _HIST_STRIDE)] += 1
                t[(v & low) + np.uint64(8 * _HIST_STRIDE)] += 1
                t[((v >> np.uint64(8)) & low) + np.uint64(9 * _HIST_STRIDE)] += 1
                t[((v >> np.uint64(16)) & low) + np.uint64(10 * _HIST_STRIDE)] += 1
                t[((v >> np.uint64(24)) & low) + np.uint64(11 * _HIST_STRIDE)] += 1
                t[((v >> np.uint64(32)) & low) + np.uint64(12 * _HIST_STRIDE)] += 1
                t[((v >> np.uint64(40)) & low) + np.uint64(13 * _HIST_STRIDE)] += 1
                t[((v >> np.uint64(48)) & low) + np.uint64(14 * _HIST_STRIDE)] += 1
                t[(v >> np.uint64(56)) + np.uint64(15 * _HIST_STRIDE)] += 1
        else:
            for k in range(i, stop, 16):
                for j in range(16):
                    t[np.uint64(buf[k + j]) + np.uint64(j * _HIST_STRIDE)] += 1
        for k in range(stop, end):
            t[buf[k]] += 1
        i = end
        for j in range(256):
            total = np.int64(0)
            for table in range(16):
                total += np.int64(t[table * _HIST_STRIDE + j])
                t[table * _HIST_STRIDE + j] = 0
            out[j] += total


def _np_hist_into(buf: U8Array, out: I64Array) -> None:
    for s in range(0, buf.shape[0], _BLOCK):
        out += np.bincount(buf[s : s + _BLOCK], minlength=256)


def byte_histogram(buf: Any, *, out: U64Array | None = None) -> U64Array:
    """Count the occurrences of each byte value.

    Args:
        buf: a 1-D uint8 array (or any bytes-like object).
        out: a ``(256,)`` uint64 array to add the counts into (to count a
            range piece by piece); default a new zeroed one.

    Returns:
        A ``(256,)`` uint64 array: entry ``v`` is the number of bytes equal to
        ``v`` (plus what `out` held).

    Raises:
        ValueError: ``buf`` is an array of another dtype or shape, or ``out``
            is not a ``(256,)`` uint64 array.
    """
    data = as_bytes(buf)
    if out is None:
        out = np.zeros(256, np.uint64)
    elif out.dtype != np.uint64 or out.shape != (256,) or not out.flags.c_contiguous:
        raise ValueError(f"out must be a (256,) uint64 array, not {out.dtype} {out.shape}")
    # The counts never come near 2**63: the same bits as int64 counters.
    counts = out.view(np.int64)
    if numba_for(data.shape[0]):
        _nb_hist_into(data, 0, data.shape[0], counts)
    else:
        _np_hist_into(data, counts)
    return out


# --------------------------------------------------------------------------
# n-gram histograms


@_jit
def _nb_ngram_loop(buf: U8Array, n: int, bits: int, lo: int, hi: int, table: Any) -> None:
    # Count the n-grams starting at lo .. hi-1 into table (uint32 or uint64).
    shift = 8 - bits
    mask = (1 << (n * bits)) - 1
    one = table.dtype.type(1)
    idx = 0
    for i in range(lo, lo + n - 1):
        idx = (idx << bits) | (buf[i] >> shift)
    for i in range(lo, hi):
        idx = ((idx << bits) | (buf[i + n - 1] >> shift)) & mask
        table[idx] += one


#: n-grams per pass into a uint32 table: its counters cannot overflow.
_NGRAM_SLICE: Final = 1 << 31


@_jit
def _nb_ngrams(buf: U8Array, n: int, bits: int, count: int, out: UIntArray) -> None:
    size = out.shape[0]
    if size > 1 << 16 and count < 4 * size:
        # Clearing and flushing a big scratch table would cost more than the
        # counting itself: count straight into the output.
        _nb_ngram_loop(buf, n, bits, 0, count, out)
        return
    # Otherwise count into uint32 counters: half the cache footprint of the
    # uint64 table, which is what bounds this loop (random table accesses).
    scratch = np.zeros(size, np.uint32)
    for lo in range(0, count, _NGRAM_SLICE):
        hi = min(count, lo + _NGRAM_SLICE)
        if lo:
            scratch[:] = 0
        _nb_ngram_loop(buf, n, bits, lo, hi, scratch)
        for j in range(size):
            out[j] += np.uint64(scratch[j])


def _np_ngrams(buf: U8Array, n: int, bits: int, count: int, out: Any) -> None:
    shift = 8 - bits
    small = out.shape[0] <= 1 << 16
    for s in range(0, count, _BLOCK):
        m = min(_BLOCK, count - s)
        idx = np.zeros(m, np.int64)
        for k in range(n):
            idx <<= bits
            idx |= buf[s + k : s + k + m] >> shift
        if small:
            out += np.bincount(idx, minlength=out.shape[0]).astype(out.dtype)
        else:
            # A bincount of a 2**24 table per block would allocate 128 MiB a
            # time; numpy >= 1.25 made ufunc.at fast enough for a fallback.
            np.add.at(out, idx, out.dtype.type(1))


def ngram_histogram(
    buf: Any,
    n: int,
    bits: int,
    count: int | None = None,
    *,
    out: UIntArray | None = None,
) -> UIntArray:
    """Count the n-grams of ``buf``, each byte reduced to its top ``bits`` bits.

    The n-gram starting at offset ``i`` is ``(buf[i] >> (8-bits), ...,
    buf[i+n-1] >> (8-bits))``; it is counted at that index of the table.

    To count a file in chunks, pass each chunk with ``n - 1`` bytes of the next
    one appended and ``count`` set to the chunk's own length: each n-gram
    straddling a boundary is then counted once, by the chunk it starts in.

    Args:
        buf: a 1-D uint8 array (or any bytes-like object).
        n: the n-gram length, 2 or 3.
        bits: how many top bits of each byte to keep, 1 to 8.
        count: how many n-grams to count, those starting at offsets
            ``0 .. count-1``; default all of them, ``max(0, len(buf) - n + 1)``.
        out: a C-contiguous table of shape ``(2**bits,) * n`` to add the
            counts into (so a worker accumulates many chunks in one table);
            default a new zeroed uint64 table. A uint32 table is counted
            into straight (the caller keeps its counts below ``2**32``): it
            halves the cache footprint of large tables (trigrams), which is
            what bounds this loop, when many pieces are counted into one.

    Returns:
        The table, of shape ``(2**bits,) * n``: ``out`` itself when given.

    Raises:
        ValueError: ``n``, ``bits``, ``count`` or ``out`` are out of range, or
            ``buf`` is not a 1-D uint8 array.
    """
    data = as_bytes(buf)
    if n not in (2, 3):
        raise ValueError(f"n must be 2 or 3, not {n!r}")
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be between 1 and 8, not {bits!r}")
    available = max(0, data.shape[0] - n + 1)
    if count is None:
        count = available
    elif not 0 <= count <= available:
        raise ValueError(
            f"count must be between 0 and {available} for {data.shape[0]} bytes and n={n},"
            f" not {count}"
        )
    shape = (1 << bits,) * n
    if out is None:
        out = np.zeros(shape, np.uint64)
    elif (
        out.dtype not in (np.uint64, np.uint32) or out.shape != shape or not out.flags.c_contiguous
    ):
        raise ValueError(
            f"out must be a C-contiguous uint64 or uint32 array of shape {shape},"
            f" not {out.dtype} {out.shape}"
        )
    flat = out.reshape(-1)
    if count:
        fast = numba_for(count)
        if fast and flat.dtype == np.uint32:
            _nb_ngram_loop(data, n, bits, 0, count, flat)
        elif fast:
            _nb_ngrams(data, n, bits, count, flat)
        else:
            _np_ngrams(data, n, bits, count, flat)
    return out


# --------------------------------------------------------------------------
# segment histograms, entropy


@_jit
def _nb_segment_hists(buf: U8Array, edges: I64Array, out: I64Array) -> None:
    for k in range(edges.shape[0] - 1):
        _nb_hist_into(buf, edges[k], edges[k + 1], out[k])


#: At most this many segments per block of the numpy fallback, so that the
#: bincount table (segments * 256) stays small however short the segments are.
_MAX_SEGMENTS_PER_BLOCK: Final = 4096


def _np_segment_hists(buf: U8Array, edges: I64Array, out: I64Array) -> None:
    nseg = edges.shape[0] - 1
    j0 = 0
    pos = int(edges[0])
    end = int(edges[-1])
    while pos < end:
        # Skip the segments that end at or before pos (empty ones included).
        while edges[j0 + 1] <= pos:
            j0 += 1
        j_lim = min(nseg, j0 + _MAX_SEGMENTS_PER_BLOCK)
        stop = min(pos + _BLOCK, int(edges[j_lim]))
        j1 = int(np.searchsorted(edges, stop, side="left"))  # segments j0 .. j1-1
        lo = np.clip(edges[j0:j1], pos, stop)
        hi = np.clip(edges[j0 + 1 : j1 + 1], pos, stop)
        ids = np.repeat(np.arange(j1 - j0, dtype=np.int64), hi - lo)
        key = ids * 256 + buf[pos:stop]
        out[j0:j1] += np.bincount(key, minlength=(j1 - j0) * 256).reshape(j1 - j0, 256)
        pos = stop


def segment_histograms(buf: Any, edges: Any) -> U64Array:
    """Count the byte values of each segment ``buf[edges[i]:edges[i+1]]``.

    Args:
        buf: a 1-D uint8 array (or any bytes-like object).
        edges: sorted offsets within ``[0, len(buf)]``, at least one; equal
            neighbours make empty segments.

    Returns:
        A ``(len(edges) - 1, 256)`` uint64 array, one histogram a row.

    Raises:
        ValueError: ``edges`` are unsorted or out of range, or ``buf`` is not a
            1-D uint8 array.
    """
    data = as_bytes(buf)
    e = _as_edges(edges, data.shape[0])
    out = np.zeros((e.shape[0] - 1, 256), np.int64)
    if out.shape[0]:
        if numba_for(data.shape[0]):
            _nb_segment_hists(data, e, out)
        else:
            _np_segment_hists(data, e, out)
    return out.view(np.uint64)


@_jit
def _nb_row_entropy(counts: F64Array, out: F64Array) -> None:
    for r in range(counts.shape[0]):
        total = 0.0
        for j in range(counts.shape[1]):
            total += counts[r, j]
        ent = 0.0
        if total > 0:
            for j in range(counts.shape[1]):
                c = counts[r, j]
                if c > 0:
                    p = c / total
                    ent -= p * np.log2(p)
        out[r] = ent


@_jit
def _nb_segment_entropies(buf: U8Array, edges: I64Array, out: F64Array) -> None:
    # Histogram and entropy fused per segment: no (k, 256) table in memory.
    h = np.zeros(256, np.int64)
    for k in range(edges.shape[0] - 1):
        lo, hi = edges[k], edges[k + 1]
        h[:] = 0
        _nb_hist_into(buf, lo, hi, h)
        n = hi - lo
        ent = 0.0
        if n > 0:
            for j in range(256):
                if h[j] > 0:
                    p = h[j] / n
                    ent -= p * np.log2(p)
        out[k] = ent


def segment_entropies(buf: Any, edges: Any) -> F64Array:
    """Return the entropy (bits per byte) of each segment ``buf[edges[i]:edges[i+1]]``.

    The same numbers as ``entropy_of_counts(segment_histograms(buf, edges))``,
    without the table of histograms (about 3x faster with numba).

    Raises:
        ValueError: ``edges`` are unsorted or out of range, or ``buf`` is not bytes.
    """
    data = as_bytes(buf)
    e = _as_edges(edges, data.shape[0])
    out = np.zeros(e.shape[0] - 1, np.float64)
    if not out.shape[0]:
        return out
    if numba_for(data.shape[0], floats=True):
        _nb_segment_entropies(data, e, out)
        return out
    for lo in range(0, out.shape[0], 4096):
        hi = min(out.shape[0], lo + 4096)
        a = int(e[lo])
        out[lo:hi] = entropy_of_counts(
            segment_histograms(data[a : int(e[hi])], e[lo : hi + 1] - a)
        )
    return out


def entropy_of_counts(counts: Any) -> F64Array:
    """Return the Shannon entropy, in bits per symbol, of each row of counts.

    For byte histograms (rows of 256) that is bits per byte, from 0 to 8.

    Args:
        counts: an array of non-negative counts, ``(..., 256)`` for bytes; each
            row along the last axis is one distribution. An all-zero row has
            entropy 0.

    Returns:
        A float64 array of shape ``counts.shape[:-1]`` (0-d for one row).

    Raises:
        ValueError: ``counts`` is 0-d.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim < 1:
        raise ValueError("counts must have at least one axis (the bins)")
    if c.size and numba_for(c.size, floats=True):
        rows = np.ascontiguousarray(c.reshape(-1, c.shape[-1]))
        flat = np.zeros(rows.shape[0], np.float64)
        _nb_row_entropy(rows, flat)
        return flat.reshape(c.shape[:-1])
    total = c.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(total > 0, c / total, 0.0)
        terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    result: F64Array = terms.sum(axis=-1)
    return result


# --------------------------------------------------------------------------
# diff


#: One in each byte of a uint64 (to gather a word's per-byte flags).
_ONES: Final = np.uint64(0x0101010101010101)


@_jit
def _nb_differing(a: U8Array, b: U8Array, lo: int, hi: int) -> int:
    # Eight bytes a step: x = a ^ b has a nonzero byte where they differ;
    # folding each byte's bits into its lowest bit and summing the bytes (a
    # multiply by 0x0101...) counts them. About 2x numpy's compare and
    # count_nonzero, and no temporary array.
    n = 0
    stop8 = lo + ((hi - lo) & ~7)
    wa = a[lo:stop8].view(np.uint64)
    wb = b[lo:stop8].view(np.uint64)
    for k in range(wa.shape[0]):
        x = wa[k] ^ wb[k]
        x |= x >> np.uint64(4)
        x |= x >> np.uint64(2)
        x |= x >> np.uint64(1)
        n += ((x & _ONES) * _ONES) >> np.uint64(56)
    for i in range(stop8, hi):
        n += a[i] != b[i]
    return n


@_jit
def _nb_diff_counts(a: U8Array, b: U8Array, edges: I64Array, out: I64Array) -> None:
    for k in range(edges.shape[0] - 1):
        out[k] = _nb_differing(a, b, edges[k], edges[k + 1])


def _np_diff_counts(a: U8Array, b: U8Array, edges: I64Array, out: I64Array) -> None:
    # D(x) = differing bytes in [edges[0], x), evaluated at every edge block by block.
    d_at_edges = np.zeros(edges.shape[0], np.int64)
    base = 0
    start = int(edges[0])
    end = int(edges[-1])
    for s in range(start, end, _BLOCK):
        e = min(s + _BLOCK, end)
        cs = np.zeros(e - s + 1, np.int64)
        np.cumsum(a[s:e] != b[s:e], out=cs[1:])
        j0 = int(np.searchsorted(edges, s, side="right"))
        j1 = int(np.searchsorted(edges, e, side="right"))
        d_at_edges[j0:j1] = base + cs[edges[j0:j1] - s]
        base += int(cs[-1])
    out[:] = np.diff(d_at_edges)


def diff_counts(a: Any, b: Any, edges: Any) -> I64Array:
    """Count the differing bytes of ``a`` and ``b`` in each segment.

    Args:
        a: a 1-D uint8 array (or any bytes-like object).
        b: another, of the same length.
        edges: sorted offsets within ``[0, len(a)]``, at least one.

    Returns:
        An int64 array of ``len(edges) - 1`` counts: entry ``i`` is the number
        of offsets ``j`` in ``[edges[i], edges[i+1])`` where ``a[j] != b[j]``.

    Raises:
        ValueError: the lengths differ, ``edges`` are unsorted or out of range,
            or an input is not a 1-D uint8 array.
    """
    x = as_bytes(a, "a")
    y = as_bytes(b, "b")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"a and b must have the same length, not {x.shape[0]} and {y.shape[0]}")
    e = _as_edges(edges, x.shape[0])
    out = np.zeros(e.shape[0] - 1, np.int64)
    if out.shape[0]:
        if numba_for(x.shape[0]):
            _nb_diff_counts(x, y, e, out)
        else:
            _np_diff_counts(x, y, e, out)
    return out


# --------------------------------------------------------------------------
# decimation


def decimate(length: int, size: int) -> I64Array:
    """Pick about ``size`` offsets of ``range(length)``, in runs, evenly spread.

    The offsets come in runs of about ``sqrt(size)`` consecutive offsets, so
    that a view of the picked bytes keeps local patterns (n-grams, strings,
    instruction encodings) while covering the whole length; the first run
    starts at 0 and the last one ends at ``length``.

    Args:
        length: the number of offsets to choose from.
        size: how many to pick.

    Returns:
        Sorted unique int64 offsets: exactly ``size`` of them when
        ``length > size``, else all of ``range(length)``.

    Raises:
        ValueError: ``length`` or ``size`` is negative.
    """
    if length < 0 or size < 0:
        raise ValueError(f"length and size must be non-negative, not {length} and {size}")
    if length <= size:
        return np.arange(length, dtype=np.int64)
    if size == 0:
        return np.zeros(0, np.int64)
    run = max(1, math.isqrt(size))
    nruns = -(-size // run)
    k = np.arange(nruns, dtype=np.int64)
    # Run lengths differ by at most one and sum to size.
    lengths = size // nruns + (k < size % nruns)
    before = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    gap_total = length - size
    gaps = (k * gap_total) // (nruns - 1) if nruns > 1 else np.full(1, gap_total // 2)
    starts = before + gaps
    offsets = np.repeat(starts - before, lengths) + np.arange(size, dtype=np.int64)
    return offsets.astype(np.int64, copy=False)


# --------------------------------------------------------------------------
# ent statistics


#: Monte Carlo hits are tallied in rows of this many offsets (a multiple of 6,
#: and of the vector widths): lane ``j`` of every row has the residue ``j mod 6``.
_ENT_LANES: Final = 96

#: Bytes per block of the compiled ``ent`` scan: its coordinates (4 bytes per
#: offset) stay in L1/L2; a multiple of `_ENT_LANES`, so every block starts at
#: residue 0; and the block's pair sum fits a uint32 (32736 * 255**2 < 2**32).
_ENT_BLOCK: Final = 341 * _ENT_LANES


@_jit
def _nb_block_pairs(b0: U8Array, b1: U8Array, m: int) -> np.uint32:
    # The sum of b0[i] * b1[i] for i < m <= _ENT_BLOCK (b1 is b0 one byte
    # on): a uint32 sum (`vpmaddwd`), which a block's pairs cannot overflow.
    block_pairs = np.uint32(0)
    for i in range(m):
        block_pairs = np.uint32(block_pairs + np.uint32(b0[i]) * np.uint32(b1[i]))
    return block_pairs


@_jit
def _nb_ent_scan(buf: U8Array, count: int, phase: int, inside: I64Array) -> int:
    # The sum of adjacent products, and for every offset t the 6-byte Monte
    # Carlo group starting there, tallied by (phase + t) mod 6 (a partial
    # does not know where in the stream it lies), for t < count: the bytes
    # from count on are look-ahead (the next piece's first bytes).
    #
    # Written as simple loops that LLVM vectorizes (2.5-3x the speed of one
    # fused loop with a register per residue), per block: a uint32 pair sum;
    # the 24-bit coordinate starting at every offset into a small scratch (a
    # group's x at t is its y at t - 3, so each is built once); then each
    # 96-offset row's hits added lane by lane, each lane one residue. The
    # loops index views shifted by 0..5 bytes with one loop counter: indexing
    # `buf[t + k]` instead makes numba's negative-index wraparound defeat the
    # vectorizer (it falls back to byte-by-byte inserts).
    n = buf.shape[0]
    pair_end = min(count, n - 1)
    group_end = min(count, n - _MONTE_BYTES + 1)
    coords = np.empty(_ENT_BLOCK + 3, np.int32)
    by_lane = np.zeros(_ENT_LANES, np.uint32)
    pairs = 0
    for s in range(0, count, _ENT_BLOCK):
        b0 = buf[s:]
        b1 = buf[s + 1 :]
        pairs += int(_nb_block_pairs(b0, b1, min(pair_end - s, _ENT_BLOCK)))
        groups = min(group_end - s, _ENT_BLOCK)
        if groups <= 0:
            continue
        b2 = buf[s + 2 :]
        # Offsets up to groups + 2: the y of the block's last group.
        for i in range(groups + 3):
            coords[i] = np.int32(
                (np.int64(b0[i]) << 16) | (np.int64(b1[i]) << 8) | np.int64(b2[i])
            )
        rows_end = groups - groups % _ENT_LANES
        for r in range(0, rows_end, _ENT_LANES):
            xs = coords[r:]
            ys = coords[r + 3 :]
            for j in range(_ENT_LANES):
                x = np.int64(xs[j])
                y = np.int64(ys[j])
                by_lane[j] += np.uint32(x * x + y * y <= _INCIRC)
        # s is a multiple of 6: offset s + j has the residue of phase + j.
        for j in range(_ENT_LANES):
            inside[(phase + j) % _MONTE_BYTES] += by_lane[j]
            by_lane[j] = 0
        for j in range(rows_end, groups):
            x = np.int64(coords[j])
            y = np.int64(coords[j + 3])
            inside[(phase + j) % _MONTE_BYTES] += 1 if x * x + y * y <= _INCIRC else 0
    return pairs


def _np_ent_scan(buf: U8Array, count: int, phase: int, inside: I64Array) -> int:
    n = buf.shape[0]
    pairs = 0
    for s in range(0, count, _BLOCK):
        e = min(s + _BLOCK, count)
        a = buf[s : min(e + _MONTE_BYTES - 1, n)].astype(np.int64)
        m = min(e - s, a.shape[0] - 1)  # pairs starting in [s, s + m)
        if m > 0:
            pairs += int(np.dot(a[:m], a[1 : m + 1]))
        groups = min(e - s, a.shape[0] - _MONTE_BYTES + 1)  # groups starting in [s, s+groups)
        if groups > 0:
            x = (a[:groups] << 16) | (a[1 : groups + 1] << 8) | a[2 : groups + 2]
            y = (a[3 : groups + 3] << 16) | (a[4 : groups + 4] << 8) | a[5 : groups + 5]
            hit = x * x + y * y <= _INCIRC
            for p in range(_MONTE_BYTES):
                first = (p - phase - s) % _MONTE_BYTES
                inside[p] += int(np.count_nonzero(hit[first::_MONTE_BYTES]))
    return pairs


@_jit
def _nb_ent_piece(buf: U8Array, count: int, phase: int, inside: I64Array, counts: I64Array) -> int:
    # A piece's byte counts and `_nb_ent_scan`, in one compiled call: one
    # dispatch and one GIL release per piece instead of two (for the 8 GiB
    # corpus, 16,000 fewer, each a wait for the GIL while the event loop or
    # another kernel thread holds it). The piece is in the CPU's caches for
    # the second loop either way.
    _nb_hist_into(buf, 0, count, counts)
    return _nb_ent_scan(buf, count, phase, inside)


#: Whether a uint32 word holds its first byte in its low bits (the Monte
#: Carlo groups read as words below); a constant to numba.
_LITTLE_ENDIAN: Final = sys.byteorder == "little"


@_jit
def _nb_ent_groups_at(buf: U8Array, count: int, first: int) -> int:
    # How many of the Monte Carlo groups starting at offsets first, first + 6,
    # ... (< count, and whole within buf: the bytes from count on are
    # look-ahead) fall inside the circle: one residue, where `_nb_ent_scan`
    # tallies all six. Two groups at a time from three uint32 words, a loop
    # LLVM vectorizes (3x the speed of `_nb_ent_scan`'s six residues, which
    # need a hit test at every offset; byte by byte, a stride-6 loop runs at
    # a third of this, its loads shuffled into place one byte at a time).
    group_end = min(count, buf.shape[0] - _MONTE_BYTES + 1)
    groups = max(0, (group_end - first + _MONTE_BYTES - 1) // _MONTE_BYTES)
    # A strided view (every other byte...) cannot be read as words.
    doubles = groups // 2 if _LITTLE_ENDIAN and buf.strides[0] == 1 else 0
    hits = 0
    if doubles:
        words = buf[first : first + 2 * _MONTE_BYTES * doubles].view(np.uint32)
        low = np.uint64(0xFF)
        mid = np.uint64(0xFF00)
        incirc = np.uint64(_INCIRC)
        for k in range(doubles):
            # Bytes 0-3, 4-7, 8-11 of the pair of groups, byte 0 in the low
            # bits; each coordinate is three bytes, big-endian.
            w0 = np.uint64(words[3 * k])
            w1 = np.uint64(words[3 * k + 1])
            w2 = np.uint64(words[3 * k + 2])
            x0 = ((w0 & low) << np.uint64(16)) | (w0 & mid) | ((w0 >> np.uint64(16)) & low)
            y0 = ((w0 >> np.uint64(24)) << np.uint64(16)) | ((w1 & low) << np.uint64(8))
            y0 |= (w1 >> np.uint64(8)) & low
            x1 = ((w1 >> np.uint64(16)) & low) << np.uint64(16)
            x1 |= ((w1 >> np.uint64(24)) << np.uint64(8)) | (w2 & low)
            y1 = (
                ((w2 & mid) << np.uint64(8)) | ((w2 >> np.uint64(8)) & mid) | (w2 >> np.uint64(24))
            )
            hits += int(x0 * x0 + y0 * y0 <= incirc) + int(x1 * x1 + y1 * y1 <= incirc)
    g = buf[first:]
    for k in range(2 * doubles, groups):
        t = _MONTE_BYTES * k
        x = (np.int64(g[t]) << 16) | (np.int64(g[t + 1]) << 8) | np.int64(g[t + 2])
        y = (np.int64(g[t + 3]) << 16) | (np.int64(g[t + 4]) << 8) | np.int64(g[t + 5])
        hits += 1 if x * x + y * y <= _INCIRC else 0
    return hits


@_jit
def _nb_ent_piece_at(buf: U8Array, count: int, first: int, counts: I64Array) -> tuple[int, int]:
    # `_nb_ent_piece` for a run that counts the Monte Carlo groups of one
    # residue (`EntAccumulator(residue=...)`): the byte counts, the pair sum
    # and the hits of the groups at offsets first, first + 6, ...
    _nb_hist_into(buf, 0, count, counts)
    n = buf.shape[0]
    pair_end = min(count, n - 1)
    pairs = 0
    for s in range(0, pair_end, _ENT_BLOCK):
        pairs += int(_nb_block_pairs(buf[s:], buf[s + 1 :], min(pair_end - s, _ENT_BLOCK)))
    return pairs, _nb_ent_groups_at(buf, count, first)


def _in_circle(group: bytes) -> bool:
    x = int.from_bytes(group[:3], "big")
    y = int.from_bytes(group[3:6], "big")
    return x * x + y * y <= _INCIRC


#: The entries of a packed `EntPartial` (`EntPartial.to_array`).
_PACKED: Final = 276


@attrs.frozen
class EntPartial:
    """What ``ent`` needs to know of a run of bytes, mergeable with its neighbours.

    Make one with `ent_partial`, combine adjacent ones with `ent_merge`, and
    turn the whole file's into statistics with `ent_finish`. A partial does not
    depend on where its bytes lie in the file, so it can be cached by range.

    Attributes:
        size: the number of bytes.
        counts: the 256 byte counts.
        pair_sum: the sum of ``b[i] * b[i+1]`` over adjacent bytes.
        head: the first ``min(size, 5)`` bytes.
        tail: the last ``min(size, 5)`` bytes.
        inside: for each ``r`` in 0..5, how many of the 6-byte Monte Carlo groups
            that start at an offset ``i ≡ r (mod 6)`` (and end within the bytes)
            fall inside ent's circle. ent groups the stream from its start, so
            the stream start decides which residue counts; groups that straddle
            two partials are rebuilt from ``tail`` and ``head`` when merging.
    """

    size: int
    counts: tuple[int, ...]
    pair_sum: int
    head: bytes
    tail: bytes
    inside: tuple[int, ...]

    def to_array(self) -> U64Array:
        """Pack the partial into a flat uint64 array (to cache or send it).

        Returns:
            ``[size, pair_sum, len(head), len(tail), *counts, *inside,
            *head (padded to 5), *tail (padded to 5)]``, 276 entries.
        """
        head = list(self.head) + [0] * (5 - len(self.head))
        tail = list(self.tail) + [0] * (5 - len(self.tail))
        fields = [self.size, self.pair_sum, len(self.head), len(self.tail)]
        return np.array(
            [*fields, *self.counts, *self.inside, *head, *tail],
            dtype=np.uint64,
        )

    @classmethod
    def from_array(cls, array: Any) -> EntPartial:
        """Unpack a partial packed by `to_array`.

        Args:
            array: the 276 uint64 entries.

        Returns:
            The partial.

        Raises:
            ValueError: the array does not have 276 entries.
        """
        # tolist() gives Python ints, as the fields are.
        a = np.asarray(array, dtype=np.uint64).reshape(-1).tolist()
        if len(a) != _PACKED:
            raise ValueError(f"a packed EntPartial has {_PACKED} entries, not {len(a)}")
        size, pair_sum, nhead, ntail = a[:4]
        head_start = 4 + 256 + 6
        return cls(
            size=size,
            counts=tuple(a[4:260]),
            pair_sum=pair_sum,
            head=bytes(a[head_start : head_start + nhead]),
            tail=bytes(a[head_start + 5 : head_start + 5 + ntail]),
            inside=tuple(a[260:266]),
        )


class EntAccumulator:
    """Build the `EntPartial` of a run of bytes given piece by piece, in order.

    The partial is the same as `ent_partial` of the whole run, with each byte
    read once (no merge per piece).

    Args:
        residue: None (the default) to count the Monte Carlo groups at every
            offset, tallied by residue, so that the partial merges exactly
            whatever lies before it. Or 0 to 5: count only the groups that
            start at offsets of the run with that residue mod 6, about a
            third of the work: every entry of the partial's ``inside`` is
            then that count, exact at index `residue` only. That is all a
            stream needs when it is known to start a multiple of 6 bytes
            before the run (`ent_finish` reads ``inside[0]`` of the stream's
            partial, which `ent_merge` takes from its parts' entries at
            those residues).

    Raises:
        ValueError: `residue` is not None or within 0..5.
    """

    def __init__(self, residue: int | None = None) -> None:
        if residue is not None and not 0 <= residue < _MONTE_BYTES:
            raise ValueError(f"residue must be None or within [0, 5], not {residue}")
        self._residue = residue
        self._size = 0
        self._counts = np.zeros(256, np.uint64)
        self._pairs = 0
        self._inside = np.zeros(_MONTE_BYTES, np.int64)
        self._head = b""
        self._tail = b""

    def add(self, buf: Any, count: int | None = None) -> None:
        """Add the first `count` bytes of `buf` (default all) to the run.

        The bytes of `buf` after the first `count` are look-ahead: the next
        bytes of the run (up to 5 are used), given again in the next piece.
        Without them the pairs and Monte Carlo groups across the boundary
        are lost, so pass them unless the run ends here.

        Raises:
            ValueError: ``count`` is not within ``[0, len(buf)]``, or ``buf`` is not bytes.
        """
        data = as_bytes(buf)
        if count is None:
            count = data.shape[0]
        elif not 0 <= count <= data.shape[0]:
            raise ValueError(f"count must be within [0, {data.shape[0]}], not {count}")
        if not count:
            return
        data = data[: count + _MONTE_BYTES - 1]
        piece = data[:count]
        phase = self._size % _MONTE_BYTES
        residue = self._residue
        # The counts never come near 2**63: the same bits as int64 counters.
        counts = self._counts.view(np.int64)
        if not numba_for(count):
            byte_histogram(piece, out=self._counts)
            inside = self._inside if residue is None else np.zeros(_MONTE_BYTES, np.int64)
            self._pairs += int(_np_ent_scan(data, count, phase, inside))
            if residue is not None:
                self._inside += inside[residue]
        elif residue is None:
            self._pairs += int(_nb_ent_piece(data, count, phase, self._inside, counts))
        else:
            # The piece's offset t has the run's residue (phase + t) mod 6.
            pairs, hits = _nb_ent_piece_at(data, count, (residue - phase) % _MONTE_BYTES, counts)
            self._pairs += int(pairs)
            self._inside += hits
        if len(self._head) < 5:
            self._head += piece[: 5 - len(self._head)].tobytes()
        self._tail = (self._tail + piece[-5:].tobytes())[-5:]
        self._size += count

    def partial(self) -> EntPartial:
        """Return the partial of the bytes added so far."""
        return EntPartial(
            size=self._size,
            # tolist() gives Python ints already.
            counts=tuple(self._counts.tolist()),
            pair_sum=self._pairs,
            head=self._head,
            tail=self._tail,
            inside=tuple(self._inside.tolist()),
        )

    def to_array(self) -> U64Array:
        """Return ``self.partial().to_array()``, packed without the tuples in between.

        A corpus's files are each one such array: packing straight from the
        counters saves most of the packing's time.
        """
        out = np.zeros(_PACKED, dtype=np.uint64)
        out[:4] = (self._size, self._pairs, len(self._head), len(self._tail))
        out[4:260] = self._counts
        out[260:266] = self._inside
        out[266 : 266 + len(self._head)] = np.frombuffer(self._head, dtype=np.uint8)
        out[271 : 271 + len(self._tail)] = np.frombuffer(self._tail, dtype=np.uint8)
        return out


def ent_partial(buf: Any) -> EntPartial:
    """Compute the mergeable ``ent`` statistics of a run of bytes.

    Args:
        buf: a 1-D uint8 array (or any bytes-like object).

    Returns:
        The partial; `ent_merge` combines it with the partials of the bytes
        just before and after it.

    Raises:
        ValueError: ``buf`` is an array of another dtype or shape.
    """
    acc = EntAccumulator()
    acc.add(buf)
    return acc.partial()


def ent_merge(left: EntPartial, right: EntPartial) -> EntPartial:
    """Combine the partials of two adjacent runs of bytes, ``left`` just before ``right``.

    The merge is exact and associative: merging the partials of any split of
    a file gives the partial of the whole file.

    Args:
        left: the partial of the first run.
        right: the partial of the run that immediately follows it.

    Returns:
        The partial of the concatenation.
    """
    if not left.size:
        return right
    if not right.size:
        return left
    nl = left.size
    n = nl + right.size
    inside = [left.inside[r] + right.inside[(r - nl) % _MONTE_BYTES] for r in range(_MONTE_BYTES)]
    # The groups that start in left's last five bytes and end in right.
    joined = left.tail + right.head
    joined_start = nl - len(left.tail)  # stream offset of joined[0]
    for i in range(max(0, nl - _MONTE_BYTES + 1), nl):
        if i + _MONTE_BYTES <= n:
            j = i - joined_start
            if _in_circle(joined[j : j + _MONTE_BYTES]):
                inside[i % _MONTE_BYTES] += 1
    return EntPartial(
        size=n,
        counts=tuple(a + b for a, b in zip(left.counts, right.counts, strict=True)),
        pair_sum=left.pair_sum + right.pair_sum + left.tail[-1] * right.head[0],
        head=(left.head + right.head)[:5],
        tail=(left.tail + right.tail)[-5:],
        inside=tuple(inside),
    )


class EntStats(TypedDict):
    """The statistics ``ent -t`` prints, under binglide's names."""

    size: int
    entropy: float
    chi_square: float
    mean: float
    monte_carlo_pi: float
    serial_correlation: float


#: The serial correlation ``ent -t`` writes when it is undefined (every byte equal).
UNDEFINED_CORRELATION: Final = -100000.0

#: ent computes log2 as log10 times this constant (its own ``log2``).
_LOG2_OF_10: Final = 3.32192809488736234787
#: Each byte value, and its square (`ent_finish`).
_BYTE_VALUES: Final = np.arange(256, dtype=np.float64)
_SQUARES: Final = [v * v for v in range(256)]


def ent_finish(partial: EntPartial) -> EntStats:
    """Compute ``ent``'s statistics from the partial of a whole stream.

    The definitions, and the order of the floating-point operations, are
    ``ent``'s (John Walker's randtest.c), so the results print as ``ent -t``
    prints them: Shannon entropy in bits per byte; chi-square over 256 bins
    with expectation ``size/256``; the arithmetic mean; Monte Carlo pi from the
    groups of 6 bytes from the stream start (24-bit x, then 24-bit y; a point
    is inside when ``x*x + y*y <= (2**24-1)**2``); and the circular serial
    correlation (the last byte is followed by the first). As in ``ent``, an
    empty stream gives NaN chi-square, mean and pi, and a zero-variance
    stream gives a serial correlation of -100000.

    Args:
        partial: the partial of the whole stream (from its first byte).

    Returns:
        The statistics.
    """
    n = partial.size
    counts = partial.counts
    # ent's serial correlation is circular: the last byte is followed by the first.
    t1 = float(partial.pair_sum + partial.tail[-1] * partial.head[0]) if n else 0.0
    # Sums of Python ints, exact in any order.
    t2 = float(sum(map(operator.mul, range(256), counts)))
    t3 = float(sum(map(operator.mul, _SQUARES, counts)))
    t2 = t2 * t2
    den = n * t3 - t2
    scc = UNDEFINED_CORRELATION if den == 0.0 else (n * t1 - t2) / den
    if not n:
        nan = float("nan")
        return EntStats(
            size=0,
            entropy=0.0,
            chi_square=nan,
            mean=nan,
            monte_carlo_pi=nan,
            serial_correlation=scc,
        )
    # ent's loops, each term as ent computes it and the terms added one after
    # the other (`np.add.accumulate` adds in order, where `np.sum` would add
    # pairwise), for the same bits in less time. The logs are `math.log10`'s
    # (the C library's): numpy's vector log10 can differ in the last bit.
    expected = n / 256.0
    c = np.array(counts, dtype=np.float64)  # each count as ent's loop converts it
    a = c - expected
    chisq = float(np.add.accumulate((a * a) / expected)[-1])
    datasum = float(np.add.accumulate(_BYTE_VALUES * c)[-1])
    ent = 0.0
    for term in [p * (_LOG2_OF_10 * math.log10(1.0 / p)) for p in [x / n for x in counts if x]]:
        ent += term
    groups = n // _MONTE_BYTES
    montepi = 4.0 * (partial.inside[0] / groups) if groups else float("nan")
    return EntStats(
        size=n,
        entropy=ent,
        chi_square=chisq,
        mean=datasum / n,
        monte_carlo_pi=montepi,
        serial_correlation=scc,
    )
