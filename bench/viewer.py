"""The viewer's targets, measured in a real browser (issue 11).

    flock /work/locks/bench.lock python bench/viewer.py [--repeat 5] [--out FILE]

A 1 GiB file of mixed content (``bench/data/``, page cached) and a 64 GiB
sparse file, the embedded default with 2 workers per service, and Debian's
Chromium driven by Playwright (the drags: over its DevTools port, `RawPage`),
all on this machine:

1. **first paint** of the overview after the page's load event, cold (a new
   server and an empty cache each time), on the 1 GiB and the 64 GiB file,
   with this process's anonymous memory (RssAnon: the workers are here) at
   its peak over the 10 s after the load: flat means the file is not read
   into memory;
2. **range change to the bigram's first paint** (in the page: from the
   change to the bigram canvas drawn), each change made on an idle viewer
   (every view exact), cold (the estimate) on new ranges, then on ranges
   seen before: from the viewer's cache of answers, and with that cache off
   (binglide's chunk cache only);
3. **a drag**: 20 range changes a second for 10 s; the broker's tasks in
   flight (pending + dispatched), sampled every 5 ms, in ranges' worth (the
   tasks one range change starts, measured alone), the cancelled and
   completed tasks, and the time from the drag's end until every job left
   belongs to the final range (the workers idle but for it);
4. the **exact bigram of the final range** after the drag (to the page's
   exact bigram), against ``client.ngrams`` of that range alone (the median
   of 3 runs, each on a fresh cold cache, the same 2 workers), with the CPU time each part took
   meanwhile (``/proc/*/task/*/schedstat``, read before the final change
   and once its exact bigram is seen): this process's event loop
   thread (broker, workers, server) and its other threads (the kernels),
   Chromium's renderer and its other processes, Playwright's driver, and
   the whole machine (the other sessions' load included); and what the
   page did meanwhile (its bigram's reports received and painted, the maps'
   repaints, the hex dump's renders).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA_DIR, AnonPeak, GiB, MiB, machine, make_mixed_file, page_in, publish

import binglide
from binglide.viewer import ClassesService, serve

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

CHROMIUM = "/usr/bin/chromium"
#: Runs of ``client.ngrams`` alone after each drag: the baseline is their median.
ALONE_RUNS = 3
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@asynccontextmanager
async def viewer_of(
    path: Path, cache: str, *, answer_cache: bool = True
) -> AsyncIterator[tuple[binglide.Client, Any]]:
    config = binglide.BrokerConfig(heartbeat_interval=float("inf"), service_timeout=float("inf"))
    async with (
        binglide.connect(
            services=[ClassesService], workers=2, cache_dir=cache, config=config
        ) as client,
        serve(client, [path]) as viewer,
    ):
        if not answer_cache:
            viewer.cache.max_bytes = 0
        yield client, viewer


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            await b.close()


class RawPage:
    """A page driven over Chromium's DevTools protocol with no domain enabled.

    Playwright enables the Network domain of every page it drives: Chromium
    then sends each WebSocket frame the page receives, base64, to the driver,
    which passes it on to this process (a 256 KiB bigram report costs a
    350 KB event in the browser process, the driver and this loop). No user
    has that: the drags are measured through this page instead, which only
    evaluates scripts (``Runtime.evaluate`` needs no domain enabled).
    """

    def __init__(self, browser: RawBrowser, target: str, session: str) -> None:
        self.browser = browser
        self.target = target
        self.session = session

    async def goto(self, url: str) -> None:
        await self.browser.send("Page.navigate", {"url": url}, self.session)

    async def evaluate(self, function: str, arg: Any = None) -> Any:
        call = f"({function})({json.dumps(arg) if arg is not None else ''})"
        reply = await self.browser.send(
            "Runtime.evaluate",
            {"expression": call, "awaitPromise": True, "returnByValue": True},
            self.session,
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"in the page: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    # Playwright's signature: the bench's helpers call either page alike.
    async def wait_for_function(self, function: str, timeout: float = 30_000) -> None:  # noqa: ASYNC109
        # No eval in the page (its CSP forbids it): the function is put in the script.
        script = f"""async (timeout) => {{
            const f = ({function});
            const end = performance.now() + timeout;
            while (!f()) {{
                if (performance.now() > end) throw new Error("timeout");
                await new Promise((r) => setTimeout(r, 20));
            }}
        }}"""
        with anyio.fail_after(timeout / 1000 + 5):
            while True:
                try:
                    await self.evaluate(script, timeout)
                    return
                except RuntimeError:  # a navigation replaced the page's context: again
                    await anyio.sleep(0.05)

    async def close(self) -> None:
        await self.browser.send("Target.closeTarget", {"targetId": self.target})


class RawBrowser:
    """Chromium over its DevTools WebSocket, with only what `RawPage` needs."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.waiting: dict[int, anyio.abc.ObjectSendStream[dict[str, Any]]] = {}

    async def read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            stream = self.waiting.pop(data.get("id", -1), None)
            if stream is not None:
                await stream.send(data)

    async def send(self, method: str, params: dict[str, Any], session: str = "") -> Any:
        self.next_id += 1
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](1)
        self.waiting[self.next_id] = send
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_str(json.dumps(message))
        reply = await receive.receive()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def new_page(self, viewport: dict[str, int]) -> RawPage:
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (
            await self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        )["sessionId"]
        metrics = {**viewport, "deviceScaleFactor": 1, "mobile": False}
        await self.send("Emulation.setDeviceMetricsOverride", metrics, session)
        return RawPage(self, target, session)


@asynccontextmanager
async def raw_browser() -> AsyncIterator[RawBrowser]:
    """Chromium with the same flags as `browser`, driven over its DevTools port."""
    import aiohttp

    with tempfile.TemporaryDirectory(
        prefix="bench-viewer-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = await anyio.open_process(
            [CHROMIUM, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            with anyio.fail_after(30):
                # Chromium writes the file once it listens; nothing to wait on but the file.
                while not port_file.exists() or len(port_file.read_text().split()) < 2:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            port, path = port_file.read_text().split()[:2]
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0) as ws,
                anyio.create_task_group() as tg,
            ):
                b = RawBrowser(ws)
                tg.start_soon(b.read)
                try:
                    yield b
                finally:
                    tg.cancel_scope.cancel()
        finally:
            process.terminate()
            with anyio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
            await process.aclose()


async def open_page(b: Any, url: str) -> Any:
    """Open the page with a 64 KiB selection: nothing of the file's bigram is cached yet."""
    page = await b.new_page(viewport={"width": 1720, "height": 1000})
    await page.goto(url + "?sel=0x0-0x10000")
    await page.wait_for_function("() => window.binglide && window.binglide.ready")
    return page


async def first_paint(b: Any, path: Path) -> tuple[float, float, int]:
    """Return (ms from load to the first map paint, from navigation, RssAnon added at peak)."""
    with tempfile.TemporaryDirectory(prefix="bench-viewer-", ignore_cleanup_errors=True) as cache:
        async with viewer_of(path, cache) as (_, viewer):
            with AnonPeak() as memory:
                page = await b.new_page(viewport={"width": 1720, "height": 1000})
                await page.goto(viewer.url)
                await page.wait_for_function(
                    "() => window.binglide && window.binglide.firstMapPaint"
                )
                times = await page.evaluate(
                    """() => ({
                        paint: window.binglide.firstMapPaint,
                        load: performance.getEntriesByType('navigation')[0].loadEventEnd,
                    })"""
                )
                # Memory while the exact passes run over the file.
                await anyio.sleep(10)
                await page.close()
            return times["paint"] - times["load"], times["paint"], memory.added


async def settle(page: Any) -> None:
    """Wait until the bigram is exact."""
    await page.wait_for_function(
        """() => document.querySelector('section.panel:has(canvas.bigram) .indicator')
                   .classList.contains('exact')""",
        timeout=600_000,
    )


async def quiet(page: Any) -> None:
    """Wait until every view is exact: the viewer is idle."""
    await page.wait_for_function(
        "() => [...document.querySelectorAll('.views .indicator, .side .indicator')]"
        ".every(n => n.classList.contains('exact'))",
        timeout=600_000,
    )


async def maps_exact(page: Any) -> None:
    await page.wait_for_function(
        "() => [...document.querySelectorAll('.map-panel .indicator')]"
        ".every(n => n.classList.contains('exact'))",
        timeout=600_000,
    )


async def change_to_bigram(page: Any, lo: int, hi: int) -> tuple[float, bool]:
    """Change the selection; return (ms to the bigram's first draw, whether from the cache)."""
    result = await page.evaluate(
        """async ([lo, hi]) => {
            const b = window.binglide;
            b.bigramPainted = null;
            const t0 = performance.now();
            b.setSel(lo, hi, true);
            const p = () => b.bigramPainted;
            while (!(p() && p().start === lo && p().stop === hi)) {
                await new Promise(r => setTimeout(r, 1));
            }
            return {ms: b.bigramPainted.at - t0, cached: b.bigramPainted.cached};
        }""",
        [lo, hi],
    )
    return result["ms"], result["cached"]


#: What the page did (a function the drag's scripts share): the final range's
#: bigram reports (received, painted, waited) and, where the page counts them,
#: the maps' full repaints and overlay repaints and the hex dump's renders.
PAGE_COUNTS = """
const pageCounts = (b) => {
    const out = { ...(b.views.bigram.stats || {}) };
    const maps = b.maps || [];
    if (maps.length && maps[0].paints !== undefined) {
        out["map paints"] = maps.reduce((n, m) => n + m.paints, 0);
        out["overlay paints"] = maps.reduce((n, m) => n + m.overlayPaints, 0);
    }
    if (b.hexdump && b.hexdump.renders !== undefined) out["hex dump renders"] = b.hexdump.renders;
    return out;
};
"""


def _on_cpu_ms(pid: int | str) -> dict[str, float]:
    """CPU time of each thread of process `pid` by thread id, in ms (0 for vanished ones)."""
    times = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as stream:
                times[tid] = int(stream.read().split()[0]) / 1e6
        except (OSError, ValueError, IndexError):
            continue
    return times


def cpu_snapshot() -> dict[str, float]:
    """CPU ms so far: this process's loop thread and other threads, Chromium, Playwright, all."""
    me = os.getpid()
    mine = _on_cpu_ms(me)
    loop = mine.pop(str(me), 0.0)
    by_name: dict[str, float] = {}
    for tid, ms in mine.items():
        try:
            with open(f"/proc/{me}/task/{tid}/comm") as comm:
                name = comm.read().strip()
        except OSError:
            name = "?"
        by_name[f"threads:{name}"] = by_name.get(f"threads:{name}", 0.0) + ms
    parts = {
        "loop": loop,
        "threads": sum(mine.values()),
        **by_name,
        "renderer": 0.0,
        "browser": 0.0,
        "driver": 0.0,
    }
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stream:
                parents[pid] = stream.read().rpartition(")")[2].split()[1]
        except (OSError, IndexError):
            continue

    def ours(pid: str) -> bool:
        # Only this bench's browser and driver: other sessions may run Chromium too.
        while pid in parents and pid != "1":
            pid = parents[pid]
            if pid == str(me):
                return True
        return False

    for pid in filter(ours, parents):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                command = stream.read().replace(b"\0", b" ")
        except OSError:
            continue
        if command.startswith(b"/usr/lib/chromium/"):
            kind = "renderer" if b"--type=renderer" in command else "browser"
        elif b"playwright/driver" in command:
            kind = "driver"
        else:
            continue
        parts[kind] += sum(_on_cpu_ms(pid).values())
    with open("/proc/stat") as stream:
        ticks = [int(x) for x in stream.readline().split()[1:]]
    # user, nice, system, irq, softirq, steal: busy; at 100 ticks a second.
    parts["machine"] = (sum(ticks[:3]) + sum(ticks[5:8])) * 10.0
    return parts


def in_flight(client: binglide.Client) -> tuple[int, int]:
    assert client.broker is not None
    s = client.broker.statistics()
    return s.pending + s.dispatched, s.jobs


async def drag(b: Any, path: Path, size: int, span: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-viewer-", ignore_cleanup_errors=True) as cache:
        async with viewer_of(path, cache) as (client, viewer):
            page = await open_page(b, viewer.url)
            await maps_exact(page)
            await settle(page)
            assert client.broker is not None
            # One range's worth of tasks: what one change starts, alone.
            before = client.broker.statistics()
            await change_to_bigram(page, 0, span)
            await settle(page)
            while viewer.statistics().open:  # noqa: ASYNC110 - the page's requests, over a socket
                await anyio.sleep(0.01)
            after = client.broker.statistics()
            per_range = after.completed - before.completed
            # The drag: 200 changes, 50 ms apart, a span sliding over the first half;
            # the last one jumps to a range never seen, so nothing of it is cached.
            final = (size - span, size)
            before = client.broker.statistics()
            samples: list[int] = []
            stop_sampling = anyio.Event()

            async def sample() -> None:
                while not stop_sampling.is_set():
                    samples.append(in_flight(client)[0])
                    await anyio.sleep(0.005)

            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                await page.evaluate(
                    """async ([size, span]) => {
                        const b = window.binglide;
                        const step = Math.floor((size / 2 - span) / 199 / 4096) * 4096;
                        for (let i = 0; i < 199; i++) {
                            b.setSel(i * step, i * step + span, false);
                            await new Promise(r => setTimeout(r, 50));
                        }
                    }""",
                    [size, span],
                )
                # Before the final change, as before client.ngrams alone: reading
                # /proc blocks this loop (the server's) for 1-25 ms on a busy machine.
                cpu_before = cpu_snapshot()
                ended, bigram_before = await page.evaluate(
                    """async (last) => {"""
                    + PAGE_COUNTS
                    + """
                        const b = window.binglide;
                        const before = pageCounts(b);
                        b.setSel(last[0], last[1], true);
                        return [performance.now(), before];
                    }""",
                    list(final),
                )
                drag_end = time.perf_counter()
                # Idle but for the final range: every job left is one the page still waits for.
                idle_at = None
                while idle_at is None:
                    jobs = in_flight(client)[1]
                    if jobs <= viewer.statistics().open:
                        idle_at = time.perf_counter()
                    else:
                        await anyio.sleep(0.002)
                stop_sampling.set()
            exact, bigram_after = await page.evaluate(
                """async ([lo, hi]) => {"""
                + PAGE_COUNTS
                + """
                    const b = window.binglide;
                    while (!(b.bigramPainted && b.bigramPainted.final &&
                             b.bigramPainted.start === lo && b.bigramPainted.stop === hi)) {
                        await new Promise(r => setTimeout(r, 20));
                    }
                    return [b.bigramPainted.at, pageCounts(b)];
                }""",
                list(final),
            )
            cpu_after = cpu_snapshot()
            after = client.broker.statistics()
            # Refinements the server's outbox dropped unsent, over the whole drag.
            dropped = sum(
                getattr(getattr(x, "outbox", None), "dropped", 0) for x in viewer._sessions
            )
            await page.close()
    # The baseline: the same request alone, on a cold cache, the same 2 workers;
    # the median of ALONE_RUNS (one run moved 0.09-0.44 s with the machine's load).
    alones: list[tuple[float, dict[str, float]]] = []
    for _ in range(ALONE_RUNS):
        with tempfile.TemporaryDirectory(
            prefix="bench-viewer-", ignore_cleanup_errors=True
        ) as cache:
            async with binglide.connect(workers=2, cache_dir=cache) as client:
                alone_before = cpu_snapshot()
                t = time.perf_counter()
                await client.ngrams(str(path), final, n=2)
                seconds = time.perf_counter() - t
                alone_after = cpu_snapshot()
        alones.append(
            (seconds, {k: alone_after[k] - alone_before.get(k, 0.0) for k in alone_after})
        )
    alones.sort(key=lambda x: x[0])
    alone, alone_cpu = alones[len(alones) // 2]
    return {
        "per_range": per_range,
        "max_in_flight": max(samples),
        "mean_in_flight": statistics.fmean(samples),
        "cancelled": after.cancelled - before.cancelled,
        "completed": after.completed - before.completed,
        "idle_ms": (idle_at - drag_end) * 1000,
        "exact_s": (exact - ended) / 1000,
        "alone_s": alone,
        "alone_all": [x[0] for x in alones],
        "cpu": {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after},
        "alone_cpu": alone_cpu,
        # What the page did for the final range (PAGE_COUNTS).
        "bigram": {k: bigram_after[k] - bigram_before[k] for k in bigram_after}
        if bigram_before and bigram_after
        else {},
        "dropped": dropped,
    }


async def range_changes(b: Any, path: Path, size: int, span: int, *, cached: bool) -> Any:
    with tempfile.TemporaryDirectory(prefix="bench-viewer-", ignore_cleanup_errors=True) as cache:
        async with viewer_of(path, cache, answer_cache=cached) as (_, viewer):
            page = await open_page(b, viewer.url)
            await settle(page)
            await maps_exact(page)
            ranges = [(k * size // 8, k * size // 8 + span) for k in range(1, 7)]
            cold = []
            for lo, hi in ranges:
                await quiet(page)
                ms, _ = await change_to_bigram(page, lo, hi)
                cold.append(ms)
            again = []
            hits = 0
            for lo, hi in ranges:
                await quiet(page)
                ms, hit = await change_to_bigram(page, lo, hi)
                again.append(ms)
                hits += hit
            await page.close()
            return cold, again, hits


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ms (min {min(values):.0f}, max {max(values):.0f})"


async def drags(b: Any, path: Path, args: argparse.Namespace, lines: list[str]) -> None:
    """Measure the drags over `path` with each driver asked; append their figures to `lines`."""
    if args.drag_driver in ("cdp", "both"):
        async with raw_browser() as raw:
            await drags_by(raw, "page over raw CDP", path, args.repeat, lines)
    if args.drag_driver in ("playwright", "both"):
        await drags_by(b, "page driven by Playwright", path, args.repeat, lines)


async def drags_by(b: Any, driver: str, path: Path, repeat: int, lines: list[str]) -> None:
    """Measure `repeat` drags over `path`; append their figures to `lines`."""
    span = 64 * MiB
    runs = [await drag(b, path, GiB, span) for _ in range(repeat)]
    ratios = sorted(r["exact_s"] / r["alone_s"] for r in runs)
    lines.append(
        f"- ({driver}) exact bigram of the final range over client.ngrams alone, median of"
        f" {len(runs)} drags: {statistics.median(ratios):.2f}x"
        f" (each: {', '.join(f'{x:.2f}' for x in ratios)})"
    )
    for r in runs:
        lines.append(
            "- drag, 200 changes in 10 s: {per_range} tasks a range; in flight at most"
            " {max_in_flight} ({ranges:.1f} ranges' worth), mean {mean_in_flight:.0f};"
            " {cancelled} tasks cancelled, {completed} completed; workers idle but for"
            " the final range {idle_ms:.0f} ms after the drag's end; exact bigram of the"
            " final range {exact_s:.2f} s vs client.ngrams alone {alone_s:.2f} s"
            " (median of {alones}) ({ratio:.2f}x)".format(
                **r,
                alones=", ".join(f"{x:.2f}" for x in r["alone_all"]),
                ranges=r["max_in_flight"] / max(1, r["per_range"]),
                ratio=r["exact_s"] / r["alone_s"],
            )
        )
    for r in runs:
        lines.append(
            "- CPU ms from the drag's end to the exact bigram seen: "
            + ", ".join(f"{k} {v:.0f}" for k, v in r["cpu"].items())
            + "; client.ngrams alone: "
            + ", ".join(f"{k} {v:.0f}" for k, v in r["alone_cpu"].items() if v >= 1)
        )
    for r in runs:
        lines.append(
            "- the page from the final change to its exact bigram: "
            + (", ".join(f"{k} {v}" for k, v in r["bigram"].items()) or "not counted")
            + f"; refinements the server dropped unsent during the drag: {r['dropped']}"
        )


async def main(args: argparse.Namespace) -> None:
    path = make_mixed_file(DATA_DIR / "mixed-1g.bin", GiB, period=64 * MiB)
    page_in(path)
    sparse = DATA_DIR / "sparse-64g.bin"
    if not sparse.exists() or sparse.stat().st_size != 64 * GiB:
        with sparse.open("wb") as f:
            f.truncate(64 * GiB)
            f.seek(10 * GiB)
            f.write(path.read_bytes()[: 64 * MiB])
    lines = [f"# bench/viewer.py (repeat {args.repeat})", ""]
    lines += [f"- {k}: {v}" for k, v in machine().items()]
    async with browser() as b:
        if args.only == "drag":
            await drags(b, path, args, lines)
            publish("\n".join(lines), args.out)
            return
        for name, target in (("1 GiB mixed", path), ("64 GiB sparse", sparse)):
            loads, navs, mems = [], [], []
            for _ in range(args.repeat):
                from_load, from_nav, added = await first_paint(b, target)
                loads.append(from_load)
                navs.append(from_nav)
                mems.append(added)
            lines.append(
                f"- first paint of the overview, {name}, cold: {med(loads)} after the load event"
                f" ({med(navs)} after navigation); RssAnon added at peak over 10 s:"
                f" median {statistics.median(mems) / MiB:.0f} MiB, max {max(mems) / MiB:.0f} MiB"
            )
        span = 64 * MiB
        cold, again, hits = await range_changes(b, path, GiB, span, cached=True)
        lines.append(
            f"- range change to the bigram's first draw, cold (64 MiB ranges): {med(cold)}"
        )
        lines.append(
            f"- the same ranges again, viewer's answer cache: {med(again)} ({hits}/6 from it)"
        )
        _, again_chunks, _ = await range_changes(b, path, GiB, span, cached=False)
        lines.append(f"- the same ranges again, chunk cache only: {med(again_chunks)}")
        await drags(b, path, args, lines)
    publish("\n".join(lines), args.out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default="")
    parser.add_argument(
        "--drag-driver",
        choices=("cdp", "playwright", "both"),
        default="cdp",
        help="how the drags' page is driven (RawPage says why cdp)",
    )
    parser.add_argument(
        "--only", choices=("all", "drag"), default="all", help="drag: the drags only (item 3, 4)"
    )
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    anyio.run(main, parser.parse_args(), backend="asyncio")
