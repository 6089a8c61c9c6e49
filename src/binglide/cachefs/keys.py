"""Chunk keys and the file names they map to.

An entry of the cache is named ``<RESOURCE>_<id1>[_<id2>].<start>_<stop>``,
for example ``HIST_3f2a9c.1048576_2097152`` or ``DIFF_3f2a9c_77b01e.0_4096``.
Every part is validated against a narrow alphabet (upper-case letters and
digits for the resource, lower-case letters and digits for the ids, decimal
integers for the range), so a name built from a request can never hold a path
separator, a ``..``, a NUL or anything else a file system treats specially,
and the name parses back to the very key that made it.
"""

from __future__ import annotations

import re

import attrs

__all__ = ("MAX_ID_LENGTH", "MAX_OFFSET", "MAX_RESOURCE_LENGTH", "ChunkKey", "key_prefix")

#: The longest resource name accepted (keeps file names far below 255 bytes).
MAX_RESOURCE_LENGTH = 64
#: The longest source id accepted.
MAX_ID_LENGTH = 64
#: Offsets are below 2**64, like any file offset a 64-bit system can give.
MAX_OFFSET = 2**64 - 1

_RESOURCE = re.compile(rf"[A-Z0-9]{{1,{MAX_RESOURCE_LENGTH}}}")
_ID = re.compile(rf"[0-9a-z]{{1,{MAX_ID_LENGTH}}}")
# Canonical decimal only (no sign, no leading zero), so a name round-trips to
# the same string and two names never denote the same key.
_OFFSET = r"(?:0|[1-9][0-9]{0,19})"
_FILENAME = re.compile(
    r"(?P<resource>[A-Z0-9]+)_(?P<ids>[0-9a-z]+(?:_[0-9a-z]+)?)"
    rf"\.(?P<start>{_OFFSET})_(?P<stop>{_OFFSET})"
)


def _check_resource(resource: object) -> str:
    if not isinstance(resource, str) or _RESOURCE.fullmatch(resource) is None:
        raise ValueError(
            f"invalid cache resource {resource!r}: expected 1 to {MAX_RESOURCE_LENGTH} "
            "upper-case ASCII letters or digits"
        )
    return resource


def _check_ids(ids: object) -> tuple[str, ...]:
    if not isinstance(ids, tuple) or len(ids) not in (1, 2):
        raise ValueError(f"invalid cache source ids {ids!r}: expected a tuple of one or two ids")
    for source_id in ids:
        if not isinstance(source_id, str) or _ID.fullmatch(source_id) is None:
            raise ValueError(
                f"invalid cache source id {source_id!r}: expected 1 to {MAX_ID_LENGTH} "
                "lower-case ASCII letters or digits"
            )
    return ids


def _check_offset(name: str, value: object) -> int:
    # bool is an int subclass; True as an offset is a bug, not a 1.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_OFFSET:
        raise ValueError(f"invalid cache {name} {value!r}: expected an int in [0, 2**64)")
    return value


def key_prefix(resource: str, ids: tuple[str, ...]) -> str:
    """Return the file name prefix shared by every entry of one resource and source.

    Args:
        resource: the analysis and its parameters, e.g. ``"HIST"``.
        ids: the file ids of the sources, one or two.

    Returns:
        ``"<RESOURCE>_<id1>[_<id2>]."``; every entry name of those starts with it.

    Raises:
        ValueError: the resource or ids are not valid (see `ChunkKey`).
    """
    return f"{_check_resource(resource)}_{'_'.join(_check_ids(ids))}."


def _validate_resource(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    _check_resource(value)


def _validate_ids(
    _instance: object, _attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    _check_ids(value)


def _validate_offset(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    _check_offset(attribute.name, value)


@attrs.frozen
class ChunkKey:
    """The identity of one cached chunk: what was computed, on what, over which range.

    Attributes:
        resource: the analysis and its parameters, e.g. ``"HIST"``, ``"NG2B8"``,
            ``"ENTB4096"``: 1 to 64 upper-case ASCII letters or digits.
        ids: the file ids of the sources (one, or two for a diff): each 1 to 64
            lower-case ASCII letters or digits.
        start: the first byte offset of the chunk.
        stop: one past its last byte offset (``0 <= start < stop < 2**64``).

    Raises:
        ValueError: on construction, if any field is refused (wrong type too):
            the file name is then guaranteed safe.
    """

    resource: str = attrs.field(validator=_validate_resource)
    ids: tuple[str, ...] = attrs.field(validator=_validate_ids)
    start: int = attrs.field(validator=_validate_offset)
    stop: int = attrs.field(validator=_validate_offset)

    def __attrs_post_init__(self) -> None:
        if self.start >= self.stop:
            raise ValueError(f"invalid cache range [{self.start}, {self.stop}): start >= stop")

    @property
    def filename(self) -> str:
        """The entry's file name, ``<RESOURCE>_<id1>[_<id2>].<start>_<stop>``."""
        return f"{self.resource}_{'_'.join(self.ids)}.{self.start}_{self.stop}"

    @property
    def prefix(self) -> str:
        """The name prefix shared by every entry of this resource and source."""
        return f"{self.resource}_{'_'.join(self.ids)}."

    @property
    def size(self) -> int:
        """The number of bytes of the source the chunk covers."""
        return self.stop - self.start

    @classmethod
    def from_filename(cls, name: str) -> ChunkKey | None:
        """Parse an entry file name back into its key.

        Args:
            name: a bare file name (no directory).

        Returns:
            The key, or None if the name is not exactly one a key produces
            (temporary files, foreign files, non-canonical numbers).
        """
        match = _FILENAME.fullmatch(name)
        if match is None:
            return None
        try:
            return cls(
                match["resource"],
                tuple(match["ids"].split("_")),
                int(match["start"]),
                int(match["stop"]),
            )
        except ValueError:
            # Well formed but out of bounds: too long, start >= stop, >= 2**64.
            return None
