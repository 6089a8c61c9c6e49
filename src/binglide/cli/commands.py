"""The analyses as commands: their options, the request, and what is shown of the answer.

Each `Analysis` knows four things about one service: the options it adds to
its sub-command, how to ask for it (`Analysis.start`), how a person reads the
final report at a glance (`Analysis.text`), and how it is drawn
(`Analysis.picture`) or exported row by row (`Analysis.csv`). The command
(`binglide.cli.main`) does the rest the same way for all of them: the client,
the progress bar, Ctrl-C, errors and exports.
"""

from __future__ import annotations

import argparse
import math
import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from binglide.cli.export import point_edges, tables, value_spans
from binglide.cli.text import (
    diff_text,
    entropy_profile_text,
    hexdump_text,
    histogram_text,
    human_bytes,
    ngrams_text,
    stats_text,
)
from binglide.cli.usage import non_negative_int, positive_int

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from binglide import Call, Client, Report

__all__ = ("ANALYSES", "Analysis", "PictureUnavailable", "point_edges")

Array = np.ndarray[Any, Any]


class PictureUnavailable(Exception):
    """This analysis (with these options) has no picture; the message says what to do."""


def _positive_int(text: str) -> int:
    from binglide.cli.text import parse_offset

    try:
        value = parse_offset(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _power_of_two(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 2 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two from 2 on, not {text}")
    return value


def _range_text(meta: dict[str, Any]) -> str:
    start, stop = int(meta.get("start", 0)), int(meta.get("stop", 0))
    return f"{start:#x}..{stop:#x} ({human_bytes(stop - start)})"


def _title(args: argparse.Namespace, meta: dict[str, Any]) -> str:
    names = " vs ".join(os.path.basename(f) for f in args.files)
    return f"{names}  {_range_text(meta)}"


def _png(figure: Figure, title: str) -> bytes:
    from binglide.cli.pictures.figure import to_png

    return to_png(figure, title=title)


class Analysis(ABC):
    """One analysis as a sub-command (see the module docstring)."""

    #: The service and sub-command name.
    name: ClassVar[str]
    #: One line for ``--help``.
    summary: ClassVar[str]
    #: How many files it takes.
    sources: ClassVar[int] = 1

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - optional
        """Add the options of this analysis to its sub-command's parser."""

    def check(self, args: argparse.Namespace) -> str | None:
        """Return what is wrong with the options together, or None."""
        return None

    def header(self, report: Report) -> tuple[str, ...]:
        """Return the CSV header."""
        return tables(self.name, report).header

    def options(self, args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
        """Return the keywords of the client method of this analysis, for every file.

        `extra` holds the ``reports`` and ``cache`` keywords. A batch run
        (`binglide.cli.batch`) asks every file with these.
        """
        return {"range": args.range, **extra}

    def start(self, client: Client, args: argparse.Namespace, extra: dict[str, Any]) -> Call:
        """Send the request for the file of `args`."""
        call: Call = getattr(client, self.name)(args.files[0], **self.options(args, extra))
        return call

    @abstractmethod
    def text(self, report: Report, args: argparse.Namespace) -> str:
        """Return what a person reads of the final report."""

    @abstractmethod
    def brief(self, report: Report) -> str:
        """Return the final report in one line, for a batch run's list of files."""

    def picture(self, report: Report, args: argparse.Namespace) -> bytes:
        """Return the picture of the final report, as a PNG file.

        The drawing modules (and matplotlib) are imported here, when a
        picture is asked for, so that other runs start without them.

        Raises:
            PictureUnavailable: this analysis draws none.
        """
        raise PictureUnavailable(f"{self.name} has no picture")

    def arrays(self, report: Report, args: argparse.Namespace) -> dict[str, Array]:
        """Return the arrays to export: ``data`` and any coordinates that go with it."""
        return tables(self.name, report).arrays

    def csv(self, report: Report, args: argparse.Namespace) -> Iterable[Sequence[Any]]:
        """Return the CSV rows (after the `header`)."""
        return tables(self.name, report).rows

    def range_length(self, meta: dict[str, Any]) -> int:
        """Return the bytes the request covers, from a report's meta (0 if unknown)."""
        if "start" in meta and "stop" in meta:
            return max(0, int(meta["stop"]) - int(meta["start"]))
        return 0


class HistogramAnalysis(Analysis):
    """``binglide histogram``."""

    name = "histogram"
    summary = "count every byte value (the most frequent first)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--top", type=positive_int, default=16, metavar="N", help="bytes listed (default 16)"
        )
        parser.add_argument(
            "--linear", action="store_true", help="--png: bar heights by count, not log(count)"
        )

    def text(self, report: Report, args: argparse.Namespace) -> str:
        return histogram_text(report.array, top=args.top)

    def brief(self, report: Report) -> str:
        counts = report.array
        total = int(counts.sum())
        if not total:
            return "no bytes"
        top = np.argsort(counts, kind="stable")[::-1][:3]
        shares = ", ".join(f"{b:#04x} {counts[b] / total:.1%}" for b in top.tolist())
        return f"{np.count_nonzero(counts)} distinct byte values; most frequent {shares}"

    def picture(self, report: Report, args: argparse.Namespace) -> bytes:
        from binglide.cli import pictures

        title = _title(args, report.meta)
        figure = pictures.histogram_picture(report.array, log=not args.linear, title=title)
        return _png(figure, title)


class NGramsAnalysis(Analysis):
    """``binglide ngrams``."""

    name = "ngrams"
    summary = "count byte pairs (-n 2, the bigram plot) or triples (-n 3)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-n", type=int, choices=(2, 3), default=2, help="2 or 3 (default 2)")
        parser.add_argument(
            "--bits",
            type=int,
            choices=range(1, 9),
            metavar="{1..8}",
            help="top bits kept of each byte (default 8 for -n 2, 7 for -n 3)",
        )
        parser.add_argument(
            "--top", type=positive_int, default=16, metavar="N", help="n-grams listed (default 16)"
        )
        parser.add_argument(
            "--leveling",
            choices=("log", "rank"),
            default="log",
            help="--png of bigrams: brightness by log(count) or by rank (default log)",
        )

    def options(self, args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
        return {"range": args.range, "n": args.n, "bits": args.bits, **extra}

    def text(self, report: Report, args: argparse.Namespace) -> str:
        return ngrams_text(report.array, bits=int(report.meta["bits"]), top=args.top)

    def brief(self, report: Report) -> str:
        table = report.array
        total = int(table.sum())
        if not total:
            return "no n-grams"
        width = max(1, (int(report.meta.get("bits", 8)) + 3) // 4)
        flat = table.reshape(-1)
        top = np.argsort(flat, kind="stable")[::-1][:3]
        cells = [np.unravel_index(i, table.shape) for i in top.tolist()]
        shares = ", ".join(
            " ".join(f"{int(c):0{width}x}" for c in cell) + f" {flat[i] / total:.1%}"
            for cell, i in zip(cells, top.tolist(), strict=True)
        )
        return f"{np.count_nonzero(flat):,} distinct of {total:,}; most frequent {shares}"

    def picture(self, report: Report, args: argparse.Namespace) -> bytes:
        from binglide.cli import pictures

        table = report.array
        title = _title(args, report.meta)
        if table.ndim == 3:
            return _png(pictures.trigram_picture(table, title=title), title)
        # Fewer bits: each cell stands for a square of byte pairs; spread it
        # over them so the axes keep their byte values.
        factor = 256 // table.shape[0]
        full = table.repeat(factor, axis=0).repeat(factor, axis=1)
        bits = int(report.meta.get("bits", 8))
        figure = pictures.bigram_picture(full, leveling=args.leveling, bits=bits, title=title)
        return _png(figure, title)


class EntropyAnalysis(Analysis):
    """``binglide entropy``."""

    name = "entropy"
    summary = "an entropy profile along the file (bits per byte)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--mode",
            choices=("resolution", "block", "sliding"),
            default="resolution",
            help="resolution: that many points over the range (default); block: one point"
            " per --block bytes; sliding: a --window around each of --resolution points",
        )
        parser.add_argument(
            "--resolution",
            type=_positive_int,
            help="points (default 1024, fewer on a small range: at least 256 bytes each)",
        )
        parser.add_argument("--block", type=_positive_int, help="block size, for --mode block")
        parser.add_argument(
            "--window",
            type=_positive_int,
            help="window in bytes, for --mode sliding (default 256)",
        )
        parser.add_argument(
            "--hilbert",
            action="store_true",
            help="--png: a Hilbert-curve map of side*side points instead of a profile",
        )
        parser.add_argument(
            "--side",
            type=_power_of_two,
            default=128,
            help="--hilbert: the map's side in points, a power of two (default 128)",
        )

    def _resolution(self, args: argparse.Namespace) -> int | None:
        if args.hilbert and args.png:
            return int(args.side * args.side)
        return None if args.resolution is None else int(args.resolution)

    def check(self, args: argparse.Namespace) -> str | None:
        if args.mode == "block" and args.block is None:
            return "--mode block needs --block SIZE"
        if args.block is not None and args.mode != "block":
            return "--block goes with --mode block"
        if args.hilbert and not args.png:
            return "--hilbert draws a picture: give --png FILE too"
        return None

    def options(self, args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "range": args.range,
            "mode": args.mode,
            "resolution": self._resolution(args),
            "block": args.block,
            "window": args.window,
            **extra,
        }

    def text(self, report: Report, args: argparse.Namespace) -> str:
        meta = report.meta
        return entropy_profile_text(
            report.array,
            start=meta["start"],
            stop=meta["stop"],
            point_bytes=meta.get("point_bytes"),
        )

    def brief(self, report: Report) -> str:
        values = report.array
        if not len(values):
            return "no points"
        return (
            f"entropy mean {float(values.mean()):.2f}, min {float(values.min()):.2f},"
            f" max {float(values.max()):.2f} bits per byte over {len(values):,} points"
        )

    def picture(self, report: Report, args: argparse.Namespace) -> bytes:
        from binglide.cli import pictures

        meta = report.meta
        title = _title(args, meta)
        lo, hi = self.spans(report)
        # The bytes behind each value, exactly (the meta's point_bytes is one
        # number for them all).
        sizes = np.asarray(hi - lo, dtype=np.int64)
        if args.hilbert:
            order = max(0, math.ceil(math.log2(max(len(report.array), 1)) / 2))
            figure = pictures.hilbert_entropy_picture(
                report.array, point_bytes=sizes, order=order, title=title
            )
        else:
            if meta["mode"] == "sliding":
                # A window narrower than the spacing: bars still meet.
                edges = point_edges(int(meta["start"]), int(meta["stop"]), len(report.array))
                lo, hi = edges[:-1], edges[1:]
            figure = pictures.entropy_picture(
                report.array, starts=lo, stops=hi, point_bytes=sizes, title=title
            )
        return _png(figure, title)

    def spans(self, report: Report) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Return the first and last-plus-one offsets of the bytes behind each value."""
        return value_spans(report.meta, len(report.array))


class DiffAnalysis(Analysis):
    """``binglide diff``."""

    name = "diff"
    summary = "where and how much two files differ"
    sources = 2

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--resolution", type=_positive_int, default=1024, help="points (default 1024)"
        )

    def start(self, client: Client, args: argparse.Namespace, extra: dict[str, Any]) -> Call:
        a, b = args.files
        return client.diff(a, b, args.range, resolution=args.resolution, **extra)

    def brief(self, report: Report) -> str:
        return f"{int(report.meta['total']):,} bytes differ"

    def edges(self, report: Report) -> NDArray[np.int64]:
        """Return the edges of the diff's points."""
        meta = report.meta
        return point_edges(int(meta["start"]), int(meta["stop"]), len(report.array))

    def text(self, report: Report, args: argparse.Namespace) -> str:
        meta = report.meta
        return diff_text(
            report.array,
            start=meta["start"],
            stop=meta["stop"],
            total=meta["total"],
            sizes=meta["sizes"],
            first_offsets=meta.get("first_offsets", []),
        )

    def picture(self, report: Report, args: argparse.Namespace) -> bytes:
        from binglide.cli import pictures

        meta = report.meta
        edges = self.edges(report)
        title = _title(args, meta)
        figure = pictures.diff_picture(
            report.array,
            starts=edges[:-1],
            stops=edges[1:],
            total=meta["total"],
            sizes=meta["sizes"],
            title=title,
        )
        return _png(figure, title)


class DataAnalysis(Analysis):
    """``binglide data``."""

    name = "data"
    summary = "a hex dump of the bytes, or of evenly spread runs of them (--size)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--size",
            type=_positive_int,
            help="bytes in the view (default 512, or side*side with --png); a larger range"
            " is shown as runs spread evenly over it",
        )
        parser.add_argument(
            "--side",
            type=_power_of_two,
            default=256,
            help="--png: the Hilbert map's side in bytes, a power of two (default 256)",
        )
        parser.add_argument(
            "--lines",
            type=non_negative_int,
            default=64,
            metavar="N",
            help="hex dump lines shown at most (default 64)",
        )

    def options(self, args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
        size = args.size
        if size is None:
            size = args.side * args.side if args.png else 512
        # The view is one answer: no estimate or progress to ask for.
        extra = {k: v for k, v in extra.items() if k != "reports"}
        return {"range": args.range, "size": size, **extra}

    def brief(self, report: Report) -> str:
        head = report.array[:16].tobytes()
        shown = " ".join(f"{b:02x}" for b in head)
        more = " ..." if len(report.array) > len(head) else ""
        start = int(report.meta.get("start", 0))
        return f"{len(report.array):,} bytes from {start:#x}: {shown}{more}"

    def text(self, report: Report, args: argparse.Namespace) -> str:
        meta = report.meta
        runs = meta.get("runs", [])
        count = len(report.array)
        if meta.get("exact"):
            head = f"{count:,} bytes at {_range_text(meta)}"
        else:
            head = (
                f"{count:,} bytes of {_range_text(meta)}, in {len(runs)} runs spread evenly"
                " (-- marks a gap)"
            )
        return head + "\n" + hexdump_text(report.array, runs, max_lines=args.lines)

    def picture(self, report: Report, args: argparse.Namespace) -> bytes:
        from binglide.cli import pictures

        meta = report.meta
        title = _title(args, meta)
        note = pictures.sample_note(
            len(report.array), meta.get("runs", []), start=meta["start"], stop=meta["stop"]
        )
        return _png(pictures.byte_class_picture(report.array, note=note, title=title), title)


class StatsAnalysis(Analysis):
    """``binglide stats``."""

    name = "stats"
    summary = "the statistics Fourmilab's ent prints (entropy, chi square, mean, pi, ...)"

    def brief(self, report: Report) -> str:
        meta = report.meta
        if not meta.get("size"):
            return "0 bytes"

        def number(key: str, digits: int) -> str:
            value = meta.get(key)
            return "undefined" if value is None else f"{float(value):.{digits}f}"

        return (
            f"{int(meta['size']):,} bytes, entropy {number('entropy', 6)} bits per byte,"
            f" chi square {number('chi_square', 2)}, mean {number('mean', 4)},"
            f" pi {number('monte_carlo_pi', 6)}, serial correlation"
            f" {number('serial_correlation', 6)}"
        )

    def text(self, report: Report, args: argparse.Namespace) -> str:
        # The service sends None where ent prints nan (JSON has no nan).
        meta = {k: math.nan if v is None else v for k, v in report.meta.items()}
        return stats_text(meta)

    def picture(self, report: Report, args: argparse.Namespace) -> bytes:
        from binglide.cli import pictures

        title = _title(args, report.meta)
        return _png(pictures.stats_picture(report.array, report.meta, title=title), title)


#: Every analysis sub-command, by name, in the order ``--help`` lists them.
ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        StatsAnalysis(),
        EntropyAnalysis(),
        HistogramAnalysis(),
        NGramsAnalysis(),
        DiffAnalysis(),
        DataAnalysis(),
    )
}
