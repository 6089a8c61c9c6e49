"""Progressive reports and cancellation, in a plain asyncio application.

Two requests run at once on the embedded default (a broker and workers in this
process):

- a histogram, whose every report is shown as it arrives: a quick estimate
  from a sample of the file first (``precision`` below 1), refined reports as
  chunks finish, then the exact answer;
- an entropy profile, cancelled after its first report: awaiting it then
  raises `binglide.JobCancelled`, and every sub-task it caused is cancelled
  too, in every worker.

Run it::

    python examples/progressive.py [FILE]      # default: the Python interpreter
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import binglide


async def show_histogram(client: binglide.Client, path: str) -> None:
    async for report in client.histogram(path):
        counts = report.array
        kind = "final" if report.final else "partial"
        print(
            f"histogram {kind:7}  completion {report.completion:4.0%}"
            f"  precision {report.precision:4.0%}"
            f"  bytes counted {int(counts.sum()):,}  most frequent 0x{int(counts.argmax()):02x}"
        )


async def cancel_entropy(client: binglide.Client, path: str) -> None:
    call = client.entropy(path, resolution=4096)
    async for report in call:
        if report.final:
            # A small or cached file can be done before we get to cancel it.
            print("entropy   finished before it could be cancelled")
            return
        print(f"entropy   first report at completion {report.completion:.0%}: cancelling")
        call.cancel()
        break  # iterating on would raise JobCancelled, as awaiting does
    try:
        await call
    except binglide.JobCancelled as exc:
        print(f"entropy   cancelled: {exc}")


async def main(path: str) -> None:
    async with binglide.connect(workers=2) as client:
        await asyncio.gather(show_histogram(client, path), cancel_entropy(client, path))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=sys.executable, help="the file to analyse")
    asyncio.run(main(parser.parse_args().file))
