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


__all__ = (
    "document",
    "is_special",
    "to_jsonable",
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
