"""What every sub-command shares: exit statuses, the one-line error, the parser.

Every error the command prints is one line on standard error that starts with
``binglide: error:``, whichever sub-command printed it.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from binglide.cachefs import parse_size

__all__ = (
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "PROG",
    "Parser",
    "UsageError",
    "byte_count",
    "fail",
    "non_negative_int",
    "positive_int",
    "seconds",
)

#: The job failed (other than by bad input).
EXIT_FAILED = 1
#: Bad input: usage, a file, a range, an option, an output path.
EXIT_USAGE = 2
#: Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

PROG = "binglide"


class UsageError(Exception):
    """Bad input found by the command itself; exits with `EXIT_USAGE`."""


class Parser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line: ``binglide: error: ...``."""

    def error(self, message: str) -> NoReturn:
        """Print the error as one line with a hint, and exit with `EXIT_USAGE`."""
        hint = f" (see '{self.prog} --help')"
        self.exit(EXIT_USAGE, f"{PROG}: error: {message}{hint}\n")


def fail(message: str, code: int) -> int:
    """Print `message` as the one error line; return `code`."""
    # One line, whatever the message: a traceback or a wrapped line is noise.
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def _int(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected an integer") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    return _int(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    return _int(text, 0)


def seconds(text: str) -> float:
    """An argparse type: a duration in seconds, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: expected seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def byte_count(text: str) -> int:
    """An argparse type: a number of bytes as people write them (4096, 0x1000, 4G)."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
