"""A custom analysis: a `binglide.Service` that builds on a built-in one.

``printable`` answers "what share of the bytes is printable ASCII text?". It
does not read the file itself: it asks the built-in ``histogram`` service with
a sub-request of the same job (``ctx.histogram``), so it gets the chunked,
cached, progressive computation for free, and passes each refined answer on.
Sub-requests never hold a service hostage: a worker that waits tells the
broker, which gives it other tasks meanwhile.

Run it::

    python examples/custom_service.py [FILE]   # default: the Python interpreter
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

import numpy as np

import binglide

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

#: Printable ASCII, plus tab, newline and carriage return.
PRINTABLE = np.zeros(256, dtype=bool)
PRINTABLE[0x20:0x7F] = True
PRINTABLE[[0x09, 0x0A, 0x0D]] = True


class Printable(binglide.Service):
    """The count and share of printable bytes in a range."""

    name = "printable"

    async def handle(
        self, task: binglide.Task, ctx: binglide.Context
    ) -> AsyncIterator[binglide.Report]:
        # The request body has the common shape: {"inputs": [{source, start, stop}]}.
        source = task.body["inputs"][0]
        call = ctx.histogram(source["source"], (source.get("start"), source.get("stop")))
        async for hist in call:
            counts = hist.array
            total = int(counts.sum())
            printable = int(counts[PRINTABLE].sum())
            yield binglide.Report(
                np.array([printable, total], dtype=np.uint64),
                completion=hist.completion,
                precision=hist.precision,
                meta={"share": printable / total if total else 0.0},
            )


async def main(path: str) -> None:
    async with binglide.connect(services=[Printable], workers=2) as client:
        body = {"inputs": [{"source": path, "start": None, "stop": None}], "options": {}}
        async for report in client.request("printable", body):
            printable, total = (int(v) for v in report.array)
            kind = "final" if report.final else "partial"
            print(
                f"{kind:7}  precision {report.precision:4.0%}"
                f"  {printable:,} of {total:,} bytes printable ({report.meta['share']:.1%})"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=sys.executable, help="the file to analyse")
    asyncio.run(main(parser.parse_args().file))
