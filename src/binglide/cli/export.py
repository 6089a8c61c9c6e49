"""Write an analysis result to files: JSON, NPZ, CSV and PNG.

Every writer takes a destination path, or ``-`` for standard output (except
NPZ and PNG, which are binary), and writes the whole file or nothing: the
content goes to a temporary file next to the destination, which is then
renamed over it, so an interrupted export never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import secrets
import stat
import sys
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from numpy.typing import NDArray

    from binglide import Report


__all__ = (
    "Tables",
    "data_offsets",
    "document",
    "is_special",
    "point_edges",
    "tables",
    "to_jsonable",
    "value_spans",
    "write_csv",
    "write_json",
    "write_npz",
    "write_png",
)

Array = np.ndarray[Any, Any]


def to_jsonable(value: Any) -> Any:
    """Return `value` with arrays as (nested) lists and NaN or infinities as None.

    Strict JSON has no NaN; None (``null``) is what readers everywhere accept.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return to_jsonable(value.astype(object))
        return value.tolist() if value.dtype.kind != "O" else to_jsonable(value.tolist())
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def point_edges(start: int, stop: int, points: int) -> NDArray[np.int64]:
    """Return the ``points + 1`` edges of the points of ``[start, stop)``.

    The same split as the profile services use: point ``i`` covers
    ``[start + floor(i*L/R), start + floor((i+1)*L/R))``.
    """
    length = stop - start
    i = np.arange(points + 1, dtype=np.int64)
    q, r = divmod(length, max(points, 1))
    return start + i * q + (i * r) // max(points, 1)


def value_spans(
    meta: Mapping[str, Any], points: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return the first and last-plus-one offsets of the bytes behind each entropy value."""
    start, stop = int(meta["start"]), int(meta["stop"])
    if meta["mode"] == "block":
        block = int(meta["block"])
        lo = start + np.arange(points, dtype=np.int64) * block
        return lo, np.minimum(lo + block, stop)
    edges = point_edges(start, stop, points)
    if meta["mode"] == "sliding":
        # The window around the middle of each point, as the kernel takes it.
        window = int(meta["window"])
        centre = edges[:-1] + (edges[1:] - edges[:-1]) // 2
        lo = np.clip(centre - window // 2, start, stop)
        return lo, np.clip(centre - window // 2 + window, start, stop)
    return edges[:-1], edges[1:]


def data_offsets(meta: Mapping[str, Any]) -> NDArray[np.int64]:
    """Return the file offset of every byte of a ``data`` view, from its runs."""
    parts = [np.arange(a, a + n, dtype=np.int64) for a, n in meta.get("runs", [])]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class Tables:
    """What an analysis's result exports as: named arrays, and CSV rows under a header.

    Attributes:
        arrays: ``data`` and the coordinates that go with it (JSON, NPZ).
        header: the CSV header.
        rows: the CSV rows (an iterator: read once).
    """

    def __init__(
        self, arrays: dict[str, Array], header: tuple[str, ...], rows: Iterable[Sequence[Any]]
    ) -> None:
        self.arrays = arrays
        self.header = header
        self.rows = rows


def _ngram_rows(table: Array) -> Iterator[Sequence[Any]]:
    # Only the cells that occur: a trigram table has millions of zeros.
    nonzero = np.nonzero(table)
    for *cell, count in zip(*(a.tolist() for a in nonzero), table[nonzero].tolist(), strict=True):
        yield (*cell, count)


def tables(service: str, report: Report) -> Tables:
    """Return how the final report of `service` exports (the command's and the viewer's).

    Raises:
        ValueError: `service` is not one of the analyses.
    """
    data = report.array
    meta = report.meta
    if service in ("histogram", "stats"):
        return Tables({"data": data}, ("byte", "count"), enumerate(data.tolist()))
    if service == "ngrams":
        header = (*("first", "second", "third")[: data.ndim], "count")
        return Tables({"data": data}, header, _ngram_rows(data))
    if service == "entropy":
        lo, hi = value_spans(meta, len(data))
        rows = (
            (i, a, b, repr(v))
            for i, (a, b, v) in enumerate(
                zip(lo.tolist(), hi.tolist(), data.tolist(), strict=True)
            )
        )
        return Tables(
            {"data": data, "start": lo, "stop": hi}, ("index", "start", "stop", "entropy"), rows
        )
    if service == "diff":
        edges = point_edges(int(meta["start"]), int(meta["stop"]), len(data))
        listed = edges.tolist()
        return Tables(
            {"data": data, "start": edges[:-1], "stop": edges[1:]},
            ("index", "start", "stop", "differing"),
            ((i, listed[i], listed[i + 1], v) for i, v in enumerate(data.tolist())),
        )
    if service == "data":
        offsets = data_offsets(meta)
        return Tables(
            {"data": data, "offset": offsets},
            ("offset", "byte"),
            zip(offsets.tolist(), data.tolist(), strict=True),
        )
    raise ValueError(f"{service!r} has no export layout")


def document(
    *,
    service: str,
    sources: Sequence[str],
    options: Mapping[str, Any],
    meta: Mapping[str, Any],
    completion: float,
    precision: float,
) -> dict[str, Any]:
    """Return what describes a result besides its arrays (JSON-able)."""
    from binglide import __version__

    return to_jsonable(  # type: ignore[no-any-return]
        {
            "binglide": __version__,
            "service": service,
            "sources": [os.path.abspath(s) for s in sources],
            "options": dict(options),
            "completion": completion,
            "precision": precision,
            "meta": dict(meta),
        }
    )


def is_special(path: str) -> bool:
    """Return whether `path` is there and is neither a regular file nor a directory."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def _replacing(path: str, mode: str) -> Iterator[IO[Any]]:
    """Open a temporary file next to `path`; move it over `path` if all went well.

    A `path` that is there and is not a regular file (``/dev/null``,
    ``/dev/stdout``, a named pipe) is written into: there is no file to
    replace, and a rename would put a file in the device's place.
    """
    newline = "" if "b" not in mode else None
    if is_special(path):
        with open(path, mode, newline=newline) as stream:
            yield stream
        return
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f".binglide-{secrets.token_hex(8)}.tmp")
    # Mode 0o666 less the umask, as any file the user creates (mkstemp's 0o600 is not).
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, newline=newline) as stream:
            yield stream
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def _text_output(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with _replacing(path, "w") as stream:
        yield stream


def write_json(path: str, doc: Mapping[str, Any], arrays: Mapping[str, Array]) -> None:
    """Write `doc` with `arrays` as (nested) lists under their names.

    Raises:
        OSError: the file cannot be written.
    """
    full = {**doc, **{name: to_jsonable(a) for name, a in arrays.items()}}
    with _text_output(path) as stream:
        json.dump(full, stream, allow_nan=False, separators=(",", ":"))
        stream.write("\n")


def write_npz(path: str, doc: Mapping[str, Any], arrays: Mapping[str, Array]) -> None:
    """Write `arrays` under their names and `doc` as a JSON string named ``meta``.

    Read it back with ``np.load(path)`` and ``json.loads(str(npz["meta"]))``.

    Raises:
        OSError: the file cannot be written.
    """
    with _replacing(path, "wb") as stream:
        named: dict[str, Any] = {"meta": np.array(json.dumps(doc)), **arrays}
        np.savez_compressed(stream, **named)


def write_csv(path: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a header line and one line per row.

    Raises:
        OSError: the file cannot be written.
    """
    with _text_output(path) as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_png(path: str, data: bytes) -> None:
    """Write a picture, already encoded as a PNG file (see `binglide.cli.pictures.to_png`).

    Raises:
        OSError: the file cannot be written.
    """
    with _replacing(path, "wb") as stream:
        stream.write(data)
