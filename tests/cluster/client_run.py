"""A corpus run on a remote broker, as a client host runs it: one JSON line per file.

    python client_run.py ADDRESS CURVE_DIR OUT.jsonl PATH...

Run inside a cluster host by the cluster tests; prints ``done`` when the run
is over. (The ``binglide`` command's own batch mode does the same.)
"""

from __future__ import annotations

import json
import sys

import anyio

import binglide
from binglide.connect import connect_remote
from binglide.transports.zeromq import CurveClientKeys


async def main(address: str, curve_dir: str, out: str, paths: list[str]) -> None:
    curve = CurveClientKeys.from_directory(curve_dir, "client")
    async with connect_remote(address, curve=curve) as client:
        with anyio.fail_after(60):
            await client.wait_connected()
        with open(out, "w") as f:  # noqa: ASYNC230 - a line per file, in one process
            async with binglide.analyse_files(client, paths, recursive=True) as run:
                async for result in run:
                    record: dict[str, object] = {"path": result.path, "size": result.size}
                    if result.ok:
                        meta = result.reports["stats"].meta
                        record["stats"] = {k: meta[k] for k in ("size", "entropy", "mean")}
                    else:
                        record["error"] = f"{type(result.error).__name__}: {result.error}"
                    f.write(json.dumps(record) + "\n")
                    f.flush()
    print("done", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
