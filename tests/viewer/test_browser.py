"""The page in a real headless Chromium (Debian's, driven by Playwright).

Skipped, saying why, where Playwright or Chromium is missing: `.ci/run`
installs Chromium with apt-get; the `test` extra brings Playwright (its own
browser downloads are never used).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from tests.helpers import wait_until

from .helpers import BLOCK, CHROMIUM, CHROMIUM_FLAGS, BlockingChunk, idle, running, synthetic

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright is not installed: pip install -e '.[test]'"
)
pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does, as root)",
)


def decode_png(data: bytes) -> np.ndarray[Any, Any]:
    """The RGB(A) pixels of a PNG file (Pillow's decoder: independent of the browser)."""
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@asynccontextmanager
async def browser_page(width: int = 1720, height: int = 1000) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.errors = errors
            yield page
            assert not errors, errors
        finally:
            await browser.close()


async def opened(page: Any, url: str) -> None:
    await page.goto(url)
    await page.wait_for_function("() => window.binglide && window.binglide.ready")


async def settled(page: Any, selector: str) -> None:
    """Wait until the indicator under `selector` says exact."""
    await page.wait_for_function(
        "s => { const n = document.querySelector(s); return n && n.classList.contains('exact'); }",
        arg=selector,
    )


async def frames(page: Any, count: int = 2) -> None:
    """Wait for `count` animation frames: the page paints at most once a frame."""
    await page.evaluate(
        """n => new Promise(done => {
            const step = k => (k ? requestAnimationFrame(() => step(k - 1)) : done());
            step(n);
        })""",
        count,
    )


async def map_pixel(page: Any, index: int, col: int, row: int) -> list[int]:
    """The colour of one bucket cell (col, row) of overview map `index`."""
    pixel: list[int] = await page.evaluate(
        """([i, x, y]) => {
            const c = document.querySelectorAll('canvas.map')[i];
            const r = window.devicePixelRatio || 1;
            return Array.from(c.getContext('2d').getImageData(
                Math.floor((x * 2 + 1) * r), Math.floor((y * 2 + 1) * r), 1, 1).data.slice(0, 3));
        }""",
        [index, col, row],
    )
    return pixel


async def drag_rows(page: Any, index: int, rows: list[int]) -> None:
    """Drag down overview map `index` through the rows given (column 10)."""
    box = await page.locator("canvas.map").nth(index).bounding_box()
    await page.mouse.move(box["x"] + 21, box["y"] + rows[0] * 2 + 1)
    await page.mouse.down()
    for row in rows[1:]:
        await page.mouse.move(box["x"] + 21, box["y"] + row * 2 + 1)
    await page.mouse.up()


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.bin"
    synthetic(path)
    return path


async def test_the_page_loads_with_the_token_and_is_refused_without(
    sample: Path, tmp_path: Path
) -> None:
    with anyio.fail_after(90):
        async with running([sample], tmp_path / "c") as (_, viewer), browser_page() as page:
            await opened(page, viewer.url)
            assert "sample.bin" in await page.title()
            refused = await page.goto(f"http://127.0.0.1:{viewer.port}/")
            assert refused.status == 403
            assert "token" in await page.content()
            refused = await page.goto(f"http://127.0.0.1:{viewer.port}/not-the-token/")
            assert refused.status == 403


async def test_the_overview_shows_the_blocks_where_they_are(sample: Path, tmp_path: Path) -> None:
    # 3 MiB in buckets of 256 bytes, 64 a row: text rows 0-63, zeros 64-127, random 128-191.
    with anyio.fail_after(90):
        async with running([sample], tmp_path / "c") as (_, viewer), browser_page() as page:
            await opened(page, viewer.url)
            await settled(page, ".map-panel .indicator")
            text, zeros, noise = [await map_pixel(page, 0, 10, row) for row in (30, 100, 160)]
            assert text == [55, 126, 184]  # printable: blue
            assert zeros == [0, 0, 0]
            # Random bytes mix every class: a brownish red, neither of the above.
            assert noise[0] > noise[2] > 40
            assert noise != text
            await page.keyboard.press("e")  # colour by entropy
            # The maps take the new mode (and reset their indicators) at their
            # next frame, and paint the answers at most once a frame: without
            # the frames, "exact" could still be the classes' and the pixels too.
            await frames(page)
            await settled(page, ".map-panel .indicator")
            await frames(page)
            text, zeros, noise = [await map_pixel(page, 0, 10, row) for row in (30, 100, 160)]
            assert zeros == [40, 60, 200]  # entropy 0: the ramp's blue end
            assert noise[0] > 200
            assert noise[2] < 60
            assert text[1] > text[2]  # about 4 bits: green to yellow


async def page_layout(page: Any) -> dict[str, Any]:
    """The page's width, the maps' widths and cells, and where each hex dump's rows end."""
    layout: dict[str, Any] = await page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth,
            window: document.documentElement.clientWidth,
            maps: [...document.querySelectorAll('canvas.map')].map(
                c => c.getBoundingClientRect().width),
            columns: window.binglide.maps.map(m => m.columns),
            overlays: [...document.querySelectorAll('canvas.map-overlay')].map(
                c => c.getBoundingClientRect().width),
            dumps: [...document.querySelectorAll('pre.hexdump')].map(pre => {
                const box = pre.closest('section.panel').getBoundingClientRect();
                const rows = [...pre.querySelectorAll('.row')].map(
                    r => r.querySelector('.chars').getBoundingClientRect().right);
                return {right: box.right, rows: Math.max(...rows), clipped:
                    pre.scrollWidth > pre.clientWidth};
            }),
        })"""
    )
    return layout


def assert_fits(layout: dict[str, Any], dumps: int) -> None:
    """Nothing cut at the window's right edge, every hex dump's rows inside its panel."""
    # No sideways scrolling.
    assert layout["page"] <= layout["window"], layout
    # Every row of every dump, its characters included, inside its panel.
    assert len(layout["dumps"]) == dumps
    for dump in layout["dumps"]:
        assert not dump["clipped"], dump
        assert dump["rows"] <= dump["right"], dump
    # Each map's width is its cells', its overlay over the axis and the map.
    for width, columns, overlay in zip(
        layout["maps"], layout["columns"], layout["overlays"], strict=True
    ):
        assert width == columns * 2
        assert overlay == 84 + width


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (1920, 1080)])
@pytest.mark.parametrize("count", [1, 2, "64 GiB"])
async def test_the_page_fits_the_window_and_the_hex_dump_its_panel(
    width: int, height: int, count: int | str, sample: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(sample.read_bytes()[::-1])
    files = [sample, other][: count if isinstance(count, int) else 1]
    if count == "64 GiB":
        # A huge (sparse) file: ten hex digits of offsets widen the hex dump.
        files = [tmp_path / "huge.img"]
        with files[0].open("wb") as stream:
            stream.truncate(64 << 30)
    with anyio.fail_after(90):
        async with (
            running(files, tmp_path / "c") as (_, viewer),
            browser_page(width, height) as page,
        ):
            await opened(page, viewer.url)
            if count == "64 GiB":  # its maps' estimate is enough: reading it all takes long
                await page.wait_for_function("() => window.binglide.firstMapPaint")
            else:
                await settled(page, ".map-panel .indicator")
            await page.wait_for_function("() => document.querySelector('pre.hexdump .row .chars')")
            layout = await page_layout(page)
            assert_fits(layout, len(files))
            # The maps take the room there is: 128 cells across at 1920 pixels,
            # unless the huge file's wider hex dump needs it.
            wide = width >= 1920 and count != "64 GiB"
            assert layout["maps"] == [256 if wide else 128] * 2
            if wide:
                # The right half of the wide map shows the blocks where they are
                # (3 MiB in buckets of 128 bytes, 128 a row: the same rows as at 64).
                text, zeros = [await map_pixel(page, 0, 100, row) for row in (30, 100)]
                assert text == [55, 126, 184]
                assert zeros == [0, 0, 0]
                # and a click there is the offset of that bucket.
                await click_at(page, "canvas.map >> nth=0", 100 * 2 + 1, 50 * 2 + 1)
                assert (await cursor_shown(page))["cursor"] == (50 * 128 + 100) * 128


async def lit(page: Any, cells: list[tuple[int, int]]) -> list[bool]:
    """Whether each bigram cell (first, second) is lit on the bigram canvas."""
    on: list[bool] = await page.evaluate(
        """cells => {
            const c = document.querySelector('canvas.bigram');
            const r = window.devicePixelRatio || 1;
            const g = c.getContext('2d');
            return cells.map(([a, b]) => {
                const x = Math.floor((24 + (b + 0.5) * 276 / 256) * r);
                const y = Math.floor(((a + 0.5) * 280 / 256) * r);
                const d = g.getImageData(x, y, 1, 1).data;
                return d[0] + d[1] + d[2] > 60;
            });
        }""",
        cells,
    )
    return on


async def test_selecting_the_text_block_lights_the_printable_square(
    sample: Path, tmp_path: Path
) -> None:
    data = sample.read_bytes()
    with anyio.fail_after(90):
        async with running([sample], tmp_path / "c") as (_, viewer), browser_page() as page:
            await opened(page, viewer.url)
            await drag_rows(page, 1, [2, 20, 40, 60])  # inside the text block
            state = await page.evaluate("window.binglide.state")
            lo, hi = state["sel"]
            assert 0 <= lo < hi <= BLOCK
            await settled(page, "section.panel:has(canvas.bigram) .indicator")
            pairs = {(a, b) for a, b in zip(data[lo : hi - 1], data[lo + 1 : hi], strict=True)}
            # The printable square, less its edges (where its outline is drawn).
            printable = [(a, b) for a in range(0x21, 0x7E) for b in range(0x21, 0x7E)]
            inside = await lit(page, printable)
            assert sum(inside) == len([c for c in printable if c in pairs]) > 30
            assert all(on == (c in pairs) for on, c in zip(inside, printable, strict=True))
            outside = [(a, b) for a in range(0x80, 0x100, 3) for b in range(0, 0x100, 5)]
            assert not any(await lit(page, outside))


async def test_a_drag_cancels_superseded_tasks_at_the_workers(
    sample: Path, tmp_path: Path
) -> None:
    BlockingChunk.reset()
    with anyio.fail_after(120):
        async with (
            running([sample], tmp_path / "c", blocking=True) as (client, viewer),
            browser_page() as page,
        ):
            await opened(page, viewer.url)
            # The whole file's views hold chunk tasks at the workers.
            await wait_until(lambda: bool(BlockingChunk.started))
            held = set(BlockingChunk.started)
            box = await page.locator("canvas.map").nth(1).bounding_box()
            await page.mouse.move(box["x"] + 21, box["y"] + 3)
            await page.mouse.down()
            for row in range(8, 180, 8):  # 22 selections, each superseding the last
                await page.mouse.move(box["x"] + 21, box["y"] + row * 2 + 1)
                await page.wait_for_timeout(30)
            # While it moves, the views show previews: no chunk task starts.
            assert set(BlockingChunk.started) == held
            await page.mouse.up()
            final = await page.evaluate("window.binglide.state.sel")
            # What the superseded ranges started is cancelled at its worker; what
            # still holds a worker is the final range's (bigram, then stats, trigram).
            await wait_until(lambda: held <= set(BlockingChunk.cancelled))
            await wait_until(lambda: bool(set(BlockingChunk.started) - held))
            assert len(set(BlockingChunk.started) - set(BlockingChunk.cancelled)) <= 3
            assert viewer.statistics().cancelled >= 1
            assert BlockingChunk.release is not None
            BlockingChunk.release.set()
            await settled(page, "section.panel:has(canvas.bigram) .indicator")
            meta = await page.evaluate("window.binglide.views.bigram.meta")
            assert [meta["start"], meta["stop"]] == final
            assert not meta.get("preview")
            assert client.broker is not None
            await wait_until(lambda: idle(client))


async def test_the_url_round_trips_the_state(sample: Path, tmp_path: Path) -> None:
    with anyio.fail_after(90):
        async with running([sample], tmp_path / "c") as (_, viewer), browser_page() as page:
            await opened(page, viewer.url)
            first = await page.evaluate("({...window.binglide.state})")
            await drag_rows(page, 0, [70, 90, 120])
            await drag_rows(page, 1, [10, 30])
            await page.keyboard.press("e")
            await page.keyboard.press("h")
            await page.keyboard.press("l")
            await page.fill("#goto", f"{BLOCK + 0x123:#x}")
            await page.press("#goto", "Enter")
            state = await page.evaluate("({...window.binglide.state})")
            assert state["cursor"] == BLOCK + 0x123
            assert (state["mode"], state["layout"], state["leveling"]) == (
                "entropy",
                "hilbert",
                "rank",
            )
            # The go-to's new entry is written once its range's bigram is exact.
            await page.wait_for_function(
                "c => Number(new URLSearchParams(location.search).get('cursor')) === c",
                arg=BLOCK + 0x123,
            )
            url = page.url
            assert "mode=entropy" in url
            assert "layout=hilbert" in url
            # The same URL in a new page shows the same state.
            again = await page.context.browser.new_page(viewport={"width": 1720, "height": 1000})
            await opened(again, url)
            assert await again.evaluate("({...window.binglide.state})") == state
            # Back and forward walk through the states.
            await page.go_back()
            await page.wait_for_function(
                f"() => window.binglide.state.cursor !== {state['cursor']}"
            )
            await page.go_forward()
            await page.wait_for_function(
                f"() => window.binglide.state.cursor === {state['cursor']}"
            )
            for _ in range(6):  # two drags, three keys and a go-to: six entries
                await page.go_back()
            await page.wait_for_function("() => window.binglide.state.mode === 'class'")
            back = await page.evaluate("({...window.binglide.state})")
            assert back["region"] == first["region"]
            assert back["mode"] == "class"


async def test_export_writes_a_png_and_a_json_that_match_the_library(
    sample: Path, tmp_path: Path
) -> None:
    with anyio.fail_after(90):
        async with running([sample], tmp_path / "c") as (client, viewer), browser_page() as page:
            await opened(page, viewer.url)
            await drag_rows(page, 1, [10, 50])
            await settled(page, "section.panel:has(canvas.bigram) .indicator")
            lo, hi = await page.evaluate("window.binglide.state.sel")
            expected = (await client.ngrams(str(sample), (lo, hi), n=2)).array
            panel = page.locator("section.panel:has(canvas.bigram)")
            async with page.expect_download() as info:
                await panel.locator("button[data-format=json]").click()
            download = await info.value
            doc = json.loads(Path(await download.path()).read_text())
            assert doc["service"] == "ngrams"
            assert doc["precision"] == 1.0
            np.testing.assert_array_equal(np.array(doc["data"]), expected)
            assert download.suggested_filename.endswith(".json")
            async with page.expect_download() as info:
                await panel.locator("button[data-format=png]").click()
            download = await info.value
            png = decode_png(Path(await download.path()).read_bytes())
            assert png.shape[0] == png.shape[1]
            assert png.shape[1] % 300 == 0
            ratio = png.shape[1] // 300
            for a, b in [(0x74, 0x68), (0x68, 0x65), (0x20, 0x71), (0x00, 0x00), (0xF0, 0x0F)]:
                x = int((24 + (b + 0.5) * 276 / 256) * ratio)
                y = int(((a + 0.5) * 280 / 256) * ratio)
                assert (int(png[y, x, :3].sum()) > 60) == bool(expected[a, b] > 0), (a, b)


@pytest.mark.parametrize("size", [0, 1, 4096])
async def test_tiny_files_show_sensibly(size: int, tmp_path: Path) -> None:
    path = tmp_path / "tiny.bin"
    path.write_bytes(b"A\x00\xff" * (size // 3) + b"Z" * (size % 3))
    with anyio.fail_after(90):
        async with running([path], tmp_path / "c") as (_, viewer), browser_page() as page:
            await opened(page, viewer.url)
            if size == 0:
                await page.wait_for_function(
                    "() => document.querySelector('.map-caption').textContent.includes('empty')"
                )
                assert "empty file" in await page.locator(".hexdump").first.inner_text()
                return
            await settled(page, ".map-panel .indicator")
            await settled(page, "section.panel:has(canvas.bigram) .indicator")
            await settled(page, "section.panel:has(table.stats) .indicator")
            dump = await page.locator(".hexdump").first.inner_text()
            assert ("41 00 ff" if size > 1 else "5a") in dump
            state = await page.evaluate("window.binglide.state")
            assert state["sel"] == [0, size]
            assert state["cursor"] == 0


async def test_a_file_under_the_root_opens_from_the_page(sample: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "inner.bin").write_bytes(b"inside the root " * 64)
    with anyio.fail_after(90):
        async with (
            running([sample], tmp_path / "c", root=root) as (_, viewer),
            browser_page() as page,
        ):
            await opened(page, viewer.url)
            await page.click("#open")
            await page.click("button.entry:has-text('sub/')")
            await page.click("button.entry:has-text('inner.bin')")
            await page.wait_for_url("**?file=1*")
            await page.wait_for_function("() => window.binglide && window.binglide.ready")
            assert await page.evaluate("window.binglide.state.file") == 1
            await page.wait_for_function(
                "() => [...document.querySelectorAll('.hexdump')]"
                ".some(n => n.textContent.includes('inside'))"
            )


async def cursor_shown(page: Any) -> dict[str, Any]:
    """Wait until every hex dump shows the state's cursor; return the cursor and the dumps."""
    await page.wait_for_function(
        """() => {
            const c = window.binglide.state.cursor;
            const dumps = [...document.querySelectorAll('pre.hexdump')];
            return dumps.length && dumps.every(d => {
                const n = d.querySelector('.cursor');
                return n && Number(n.dataset.offset) === c;
            });
        }"""
    )
    shown: dict[str, Any] = await page.evaluate(
        """() => ({
            cursor: window.binglide.state.cursor,
            sel: window.binglide.state.sel,
            dumps: [...document.querySelectorAll('pre.hexdump')].map(d =>
                [...d.querySelectorAll('.cursor')].map(n => n.dataset.offset)),
        })"""
    )
    return shown


async def click_at(page: Any, selector: str, x: float, y: float) -> None:
    box = await page.locator(selector).bounding_box()
    await page.mouse.click(box["x"] + x, box["y"] + y)


async def test_every_view_moves_both_hex_dumps_in_lockstep_and_keys_navigate(
    sample: Path, tmp_path: Path
) -> None:
    data = sample.read_bytes()
    changed = bytearray(data)
    differ = [BLOCK // 2 + 3, BLOCK + 0x4321, 2 * BLOCK + 0x10]
    for offset in differ:
        changed[offset] ^= 0xFF
    other = tmp_path / "changed.bin"
    other.write_bytes(bytes(changed))
    with anyio.fail_after(120):
        async with (
            running([sample, other], tmp_path / "c") as (_, viewer),
            browser_page() as page,
        ):
            await opened(page, viewer.url)
            await settled(page, ".map-panel .indicator")

            # A map cell: 3 MiB in buckets of 256 bytes, 64 a row.
            await click_at(page, "canvas.map >> nth=0", 10 * 2 + 1, 100 * 2 + 1)
            shown = await cursor_shown(page)
            assert shown["cursor"] == (100 * 64 + 10) * 256
            # Both files' dumps mark the same byte (its hex and its character).
            assert shown["dumps"] == [[str(shown["cursor"])] * 2] * 2

            # Next and previous difference, from there: keys and the diff's buttons.
            # Next and previous difference, from there: keys and the diff's buttons.
            assert differ[1] < shown["cursor"] < differ[2]
            steps = [("n", 2), ("p", 1), ("text=◀ prev", 0), ("text=next ▶", 1)]
            for action, expected in steps:
                if action.startswith("text="):
                    await page.click(action)
                else:
                    await page.keyboard.press(action)
                await page.wait_for_function(
                    f"() => window.binglide.state.cursor === {differ[expected]}"
                )
                assert (await cursor_shown(page))["cursor"] == differ[expected]
            # A point of the diff strip (the region: the whole file).
            await click_at(page, "canvas.diff", 470 * 0.5, 20)
            shown = await cursor_shown(page)
            # (the mouse lands on a whole pixel: within one pixel's bytes)
            assert abs(shown["cursor"] - len(data) // 2) <= len(data) // 470 + 1

            # Select the text block's first 64 KiB; every view of it settles.
            await page.evaluate(f"window.binglide.setSel(0, {1 << 16}, true)")
            for view in ("bigram", "histogram", "entropy"):
                await settled(page, f"section.panel:has(canvas.{view}) .indicator")

            # An entropy point: the offset under it.
            await click_at(page, "canvas.entropy", 30 + 578 * 0.5, 60)
            shown = await cursor_shown(page)
            assert abs(shown["cursor"] - (1 << 15)) <= (1 << 16) // 578 + 1

            # A histogram bar ('q'): its next occurrence after the cursor.
            before = shown["cursor"]
            await click_at(page, "canvas.histogram", 44 + (ord("q") + 0.5) * 564 / 256, 100)
            await page.wait_for_function(f"() => window.binglide.state.cursor !== {before}")
            shown = await cursor_shown(page)
            assert shown["cursor"] == data.index(b"q", before + 1)

            # A bigram cell ('o', 'x'): the pair's first occurrence in the selection.
            # (cells are about a pixel: the whole pixel the page maps to that cell)
            x, y = await page.evaluate(
                """([a, b]) => {
                    const v = window.binglide.views.bigram;
                    const r = v.canvas.getBoundingClientRect();
                    const x0 = Math.round(r.left + 24 + (b + 0.5) * 276 / 256);
                    const y0 = Math.round(r.top + (a + 0.5) * 280 / 256);
                    for (const dx of [0, -1, 1]) for (const dy of [0, -1, 1]) {
                        const c = v.cellAt({clientX: x0 + dx, clientY: y0 + dy});
                        if (c && c[0] === a && c[1] === b) return [x0 + dx, y0 + dy];
                    }
                    return null;
                }""",
                [ord("o"), ord("x")],
            )
            before = shown["cursor"]
            await page.mouse.click(x, y)
            await page.wait_for_function(f"() => window.binglide.state.cursor !== {before}")
            shown = await cursor_shown(page)
            assert shown["cursor"] == data.index(b"ox")

            # The keys: a row down, pan by an eighth and by all, to the ends.
            cursor = shown["cursor"]
            await page.keyboard.press("ArrowDown")
            assert (await cursor_shown(page))["cursor"] == cursor + 16
            length = 1 << 16
            await page.keyboard.press("ArrowRight")
            assert (await cursor_shown(page))["sel"] == [length // 8, length // 8 + length]
            await page.keyboard.press("PageDown")
            assert (await cursor_shown(page))["sel"] == [
                length // 8 + length,
                length // 8 + 2 * length,
            ]
            await page.keyboard.press("End")
            shown = await cursor_shown(page)
            assert shown["sel"] == [len(data) - length, len(data)]
            assert shown["cursor"] == len(data) - length
            await page.keyboard.press("Home")
            assert (await cursor_shown(page))["sel"] == [0, length]
            await page.keyboard.press("-")
            assert (await cursor_shown(page))["sel"] == [0, 2 * length]


async def test_the_bigram_paints_its_estimate_and_exact_answer_at_once_and_refinements_spaced(
    sample: Path, tmp_path: Path
) -> None:
    with anyio.fail_after(90):
        async with running([sample], tmp_path / "c") as (_, viewer), browser_page() as page:
            await opened(page, viewer.url)
            await settled(page, "section.panel:has(canvas.bigram) .indicator")
            # The page's own request has ended; feed the view reports as a request would.
            seen = await page.evaluate(
                """async () => {
                    const v = window.binglide.views.bigram;
                    const indicator = v.panel.indicator;
                    const shown = () => ({ ...v.stats, completion: indicator.dataset.completion });
                    const counts = new Float32Array(65536);
                    const report = (p, final = false) => [
                        { completion: p, precision: p, final, meta: {} }, { counts }];
                    const out = { before: shown() };
                    v.reset();
                    v.update(...report(0.01));
                    out.estimate = shown();
                    v.update(...report(0.25));
                    v.update(...report(0.5));
                    out.refinements = shown();
                    await new Promise((resolve) => {
                        const poll = () => v.stats.painted > out.refinements.painted
                            ? resolve() : requestAnimationFrame(poll);
                        poll();
                    });
                    out.later = shown();
                    v.update(...report(0.75));
                    v.update(...report(1, true));
                    out.exact = shown();
                    return out;
                }"""
            )
    painted = seen["before"]["painted"]
    # The estimate paints at once.
    assert seen["estimate"]["painted"] == painted + 1
    assert seen["estimate"]["completion"] == "0.01"
    # Two refinements inside REFINE_MS: nothing painted yet, then the newest alone.
    assert seen["refinements"]["painted"] == painted + 1
    assert seen["refinements"]["deferred"] == seen["before"]["deferred"] + 2
    assert seen["refinements"]["completion"] == "0.01"
    assert seen["later"]["painted"] == painted + 2
    assert seen["later"]["completion"] == "0.5"
    # The exact answer paints at once, however soon after a refinement.
    assert seen["exact"]["painted"] == painted + 3
    assert seen["exact"]["completion"] == "1"


async def canvas_digest(page: Any, selector: str, index: int = 0) -> str:
    """Every pixel of a canvas, as one string to compare (the backing store, not the screen)."""
    digest: str = await page.evaluate(
        """([s, i]) => {
            const c = document.querySelectorAll(s)[i];
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let h = 0, k = 0;
            for (const v of d) { h = (h * 31 + v) | 0; k += v; }
            return `${c.width}x${c.height}:${h}:${k}`;
        }""",
        [selector, index],
    )
    return digest


async def overlay_alpha(page: Any, index: int, col: int, row: int) -> int:
    """The overlay's opacity over bucket cell (col, row) of map `index` (0: clear)."""
    alpha: int = await page.evaluate(
        """([i, x, y]) => {
            const c = document.querySelectorAll('canvas.map-overlay')[i];
            const r = window.devicePixelRatio || 1;
            return c.getContext('2d').getImageData(
                Math.floor((84 + x * 2 + 1) * r), Math.floor((y * 2 + 1) * r), 1, 1).data[3];
        }""",
        [index, col, row],
    )
    return alpha


async def screen_pixel(page: Any, index: int, col: int, row: int) -> list[int]:
    """What the window shows over bucket cell (col, row) of map `index`: map and overlay."""
    box = await page.locator("canvas.map").nth(index).bounding_box()
    shot = decode_png(
        await page.screenshot(clip={"x": box["x"] + col * 2, "y": box["y"] + row * 2,
                                    "width": 2, "height": 2})
    )  # fmt: skip
    return [int(v) for v in shot[0, 0, :3]]


async def test_a_range_change_repaints_the_maps_overlay_only(sample: Path, tmp_path: Path) -> None:
    # 3 MiB in buckets of 256 bytes, 64 a row: text rows 0-63, zeros 64-127, random 128-191.
    with anyio.fail_after(90):
        async with running([sample], tmp_path / "c") as (_, viewer), browser_page() as page:
            await opened(page, viewer.url)
            await settled(page, ".map-panel .indicator")
            await frames(page)
            counts = "window.binglide.maps.map(m => [m.paints, m.overlayPaints])"
            before = await page.evaluate(counts)
            cells = [await canvas_digest(page, "canvas.map", i) for i in (0, 1)]
            blue = await screen_pixel(page, 1, 10, 30)
            assert blue == [55, 126, 184]
            for lo, hi, inside, outside in [(0, BLOCK, 30, 160), (2 * BLOCK, 3 * BLOCK, 160, 30)]:
                await page.evaluate(f"window.binglide.setSel({lo}, {hi}, true)")
                await frames(page)
                # The region map's cells are as they were, not one repainted ...
                assert [await canvas_digest(page, "canvas.map", i) for i in (0, 1)] == cells
                assert [p for p, _ in await page.evaluate(counts)] == [p for p, _ in before]
                # ... while its overlay dims what is outside the new selection,
                assert await overlay_alpha(page, 1, 10, inside) == 0
                assert await overlay_alpha(page, 1, 10, outside) == 128
                # which the window shows over the map: the cells there at half brightness.
                shown = await screen_pixel(page, 1, 10, outside)
                expected = await map_pixel(page, 1, 10, outside)
                assert all(abs(s - e / 2) <= 2 for s, e in zip(shown, expected, strict=True))
                assert await screen_pixel(page, 1, 10, inside) == await map_pixel(
                    page, 1, 10, inside
                )
            after = await page.evaluate(counts)
            # The region map's overlay followed both changes (the whole file's: the cursor).
            assert after[1][1] >= before[1][1] + 2


async def test_the_maps_follow_a_resized_window_keeping_the_state(
    sample: Path, tmp_path: Path
) -> None:
    with anyio.fail_after(120):
        async with (
            running([sample], tmp_path / "c") as (_, viewer),
            browser_page(1280, 800) as page,
        ):
            await opened(page, viewer.url)
            await page.evaluate(f"window.binglide.setSel({BLOCK}, {2 * BLOCK}, true)")
            await settled(page, ".map-panel .indicator")
            await page.wait_for_function("() => document.querySelector('pre.hexdump .row .chars')")
            state = await page.evaluate("({...window.binglide.state})")
            url = page.url
            assert (await page_layout(page))["columns"] == [64, 64]
            for (width, height), columns in [((1920, 1080), 128), ((1280, 800), 64)]:
                await page.set_viewport_size({"width": width, "height": height})
                # Laid out again once the window stops changing (not at every resize event).
                await page.wait_for_function(
                    f"() => window.binglide.maps.every(m => m.columns === {columns})"
                )
                await frames(page)
                await settled(page, ".map-panel .indicator")
                await frames(page)
                layout = await page_layout(page)
                assert layout["columns"] == [columns] * 2
                assert_fits(layout, 1)
                # The same state and URL: the resize is no history entry.
                assert await page.evaluate("({...window.binglide.state})") == state
                assert page.url == url
                # 3 MiB, 64 buckets a row of 256 bytes or 128 of 128: the blocks on
                # the same rows; a cell near the right edge shows them too.
                col = columns - 4
                text, zeros = [await map_pixel(page, 0, col, row) for row in (30, 100)]
                assert text == [55, 126, 184]
                assert zeros == [0, 0, 0]
                # The region map (the whole file) dims all but the selection, the zeros.
                assert await overlay_alpha(page, 1, col, 30) == 128
                assert await overlay_alpha(page, 1, col, 100) == 0
                # A click there is that bucket's offset (inside the selection: it stays).
                await click_at(page, "canvas.map >> nth=0", col * 2 + 1, 100 * 2 + 1)
                bucket = 256 if columns == 64 else 128
                assert (await cursor_shown(page))["cursor"] == (100 * columns + col) * bucket
                await page.evaluate(f"window.binglide.setCursor({state['cursor']})")
                await cursor_shown(page)
                assert await page.evaluate("({...window.binglide.state})") == state


async def test_a_new_ranges_hex_dump_waits_for_its_own_bigram_and_a_moved_cursor_does_not(
    sample: Path, tmp_path: Path
) -> None:
    BlockingChunk.reset()  # no exact answer until released: every bigram stays an estimate
    with anyio.fail_after(120):
        async with (
            running([sample], tmp_path / "c", blocking=True) as (_, viewer),
            browser_page() as page,
        ):
            await opened(page, viewer.url)
            assert (await cursor_shown(page))["cursor"] == 0  # the first range's: at once
            # The views ask once the overview has painted (a range before that is
            # shown at once): from then on a new range's hex dump waits.
            await page.wait_for_function("() => window.binglide.requests >= 1")
            # Range A, then B 300 ms later: B's hex dump waits for B's bigram, 1 s at
            # most while it is an estimate; A's timer, due 700 ms after B, is not B's.
            seen = await page.evaluate(
                """async ([a, b]) => {
                    const g = window.binglide;
                    const frame = () => new Promise((r) => requestAnimationFrame(r));
                    const tA = performance.now();
                    g.setSel(a, a + (1 << 20), true);
                    while (performance.now() - tA < 300) await frame();
                    const duringA = g.hexdump.cursor;
                    const tB = performance.now();
                    g.setSel(b, b + (1 << 20), true);
                    const shown = new Set();
                    while (g.hexdump.cursor !== b) {
                        shown.add(g.hexdump.cursor);
                        await frame();
                    }
                    return { duringA, shown: [...shown], afterB: performance.now() - tB,
                             exact: !!(g.bigramPainted && g.bigramPainted.final) };
                }""",
                [BLOCK, 2 * BLOCK],
            )
            assert seen["duringA"] == 0
            assert seen["shown"] == [0]  # never A's cursor
            assert not seen["exact"]
            assert seen["afterB"] >= 900, seen  # 1 s (timers may fire a few ms early)
            assert (await cursor_shown(page))["cursor"] == 2 * BLOCK
            # A cursor the user moves shows at once, the bigram an estimate or not.
            moved = await page.evaluate(
                """async (at) => {
                    const g = window.binglide;
                    g.setCursor(at);
                    for (let i = 0; i < 3; i++) await new Promise((r) => requestAnimationFrame(r));
                    return g.hexdump.cursor;
                }""",
                2 * BLOCK + 0x1230,
            )
            assert moved == 2 * BLOCK + 0x1230
            # A range whose bigram is exact shows its hex dump then, not 1 s later.
            assert BlockingChunk.release is not None
            BlockingChunk.release.set()
            await settled(page, "section.panel:has(canvas.bigram) .indicator")
            order = await page.evaluate(
                """async (a) => {
                    const g = window.binglide;
                    const frame = () => new Promise((r) => requestAnimationFrame(r));
                    const t0 = performance.now();
                    g.setSel(a, a + 4096, true);
                    const exact = () => g.bigramPending && g.bigramPending.final
                        && g.bigramPending.start === a;
                    while (!exact()) await frame();
                    const at = performance.now() - t0;
                    await frame();
                    await frame();
                    return { at, cursor: g.hexdump.cursor };
                }""",
                BLOCK + 0x8000,
            )
            # The next frame after the exact answer (unless that took the 1 s anyway).
            assert order["cursor"] == BLOCK + 0x8000 or order["at"] >= 900, order


@pytest.mark.parametrize("leveling", ["log", "rank"])
async def test_the_bigram_paints_each_cell_at_its_level_in_its_ramp(
    leveling: str, sample: Path, tmp_path: Path
) -> None:
    # Counts with empty cells, lone pairs, and both printable and other pairs.
    rng = np.random.default_rng(11)
    counts = rng.integers(0, 5000, 65536).astype(np.float32)
    counts[rng.random(65536) < 0.3] = 0
    counts[rng.random(65536) < 0.05] = 1
    with anyio.fail_after(90):
        async with running([sample], tmp_path / "c") as (_, viewer), browser_page() as page:
            await opened(page, viewer.url)
            await settled(page, "section.panel:has(canvas.bigram) .indicator")
            shown = await page.evaluate(
                """async ([counts, leveling]) => {
                    const util = await import(new URL("static/util.js", location.href).href);
                    const v = window.binglide.views.bigram;
                    v.counts = Float32Array.from(counts);
                    v.leveling = leveling;
                    v.draw();
                    return {
                        pixels: Array.from(v.image.data),
                        inferno: Array.from(util.rampTable(util.INFERNO)),
                        text: Array.from(util.rampTable(util.TEXT_RAMP)),
                    };
                }""",
                [counts.tolist(), leveling],
            )
    pixels = np.array(shown["pixels"], dtype=np.uint8).reshape(256, 256, 4)
    inferno = np.array(shown["inferno"], dtype=np.uint8).reshape(256, 3)
    text = np.array(shown["text"], dtype=np.uint8).reshape(256, 3)
    # The reference: each non-empty cell's level, 40 at least (a lone pair stays
    # visible), in the text ramp where both bytes are printable.
    if leveling == "log":
        t = np.log1p(counts.astype(np.float64)) / np.log1p(float(counts.max()))
    else:
        values = np.unique(counts[counts > 0])
        t = (np.searchsorted(values, counts) + 1) / len(values)
    level = np.maximum(40, np.floor(t * 255 + 0.5)).astype(int).reshape(256, 256)
    printable = (np.arange(256) >= 0x20) & (np.arange(256) < 0x7F)
    pair = printable[:, None] & printable[None, :]
    expected = np.where(pair[..., None], text[level], inferno[level])
    expected[counts.reshape(256, 256) <= 0] = [14, 14, 18]
    assert (pixels[..., 3] == 255).all()
    np.testing.assert_array_equal(pixels[..., :3], expected)


#: The selection in the page's URL, as numbers (what the browser's history holds).
URL_SEL = "() => (new URLSearchParams(location.search).get('sel') || '').split('-').map(Number)"


async def url_sel(page: Any) -> list[int]:
    sel: list[int] = await page.evaluate(URL_SEL)
    return sel


async def test_a_new_ranges_history_entry_waits_for_its_bigram(
    sample: Path, tmp_path: Path
) -> None:
    BlockingChunk.reset()  # no exact answer until released: every bigram stays an estimate
    with anyio.fail_after(120):
        async with (
            running([sample], tmp_path / "c", blocking=True) as (_, viewer),
            browser_page() as page,
        ):
            await opened(page, viewer.url)
            await page.wait_for_function("() => window.binglide.requests >= 1")
            await page.wait_for_function("() => location.search.includes('sel=')")
            entries = await page.evaluate("history.length")
            # The first new entry over the page's first is written at once: a
            # Back before it was written would leave the page.
            await page.evaluate("window.binglide.setSel(0, 4096, true)")
            assert await url_sel(page) == [0, 4096]
            assert await page.evaluate("history.length") == entries + 1
            script = (
                """async ([a, b, mode]) => {
                const g = window.binglide;
                const frame = () => new Promise((r) => requestAnimationFrame(r));
                const sel = """
                + URL_SEL
                + """;
                const entries = history.length;
                const t0 = performance.now();
                g.setSel(a, b, true);
                const out = { now: sel() };
                if (mode === "timer") {
                    for (let i = 0; i < 3; i++) await frame();
                    out.waiting = sel();
                    out.entriesWaiting = history.length - entries;
                    while (sel()[0] !== a) await frame();
                } else {
                    const exact = () => g.bigramPending && g.bigramPending.final
                        && g.bigramPending.start === a;
                    out.early = false;
                    while (!exact()) {
                        if (sel()[0] === a) out.early = true;
                        await frame();
                    }
                    while (sel()[0] !== a) await frame();
                }
                out.at = performance.now() - t0;
                out.written = sel();
                out.entries = history.length - entries;
                return out;
            }"""
            )
            # The bigram stays an estimate: the entry is written 1 s after the change.
            held = await page.evaluate(script, [BLOCK, 2 * BLOCK, "timer"])
            assert held["now"] == [0, 4096], held
            assert held["waiting"] == [0, 4096], held
            assert held["entriesWaiting"] == 0, held
            assert held["at"] >= 900, held  # timers may fire a few ms early
            assert held["written"] == [BLOCK, 2 * BLOCK]
            assert held["entries"] == 1
            # A change with no bigram to wait for (the colours) is written at once.
            await page.keyboard.press("e")
            assert "mode=entropy" in await page.evaluate("location.search")
            # With exact answers: written once the bigram is exact, not before.
            assert BlockingChunk.release is not None
            BlockingChunk.release.set()
            await settled(page, "section.panel:has(canvas.bigram) .indicator")
            exact = await page.evaluate(script, [2 * BLOCK, 3 * BLOCK, "exact"])
            assert exact["now"][0] == BLOCK, exact
            assert not exact["early"], exact
            assert exact["written"] == [2 * BLOCK, 3 * BLOCK]
            assert exact["entries"] == 1
            # Back: each change kept its own entry.
            await page.go_back()
            await page.wait_for_function(f"() => window.binglide.state.sel[0] === {BLOCK}")
            assert await page.evaluate("window.binglide.state.mode") == "entropy"
            await page.go_back()
            await page.wait_for_function("() => window.binglide.state.mode === 'class'")
            assert await page.evaluate("window.binglide.state.sel") == [BLOCK, 2 * BLOCK]


async def test_back_and_forward_while_an_entry_waits_step_from_the_newest_state(
    sample: Path, tmp_path: Path
) -> None:
    BlockingChunk.reset()  # the bigrams stay estimates: new entries wait (1 s)
    with anyio.fail_after(120):
        async with (
            running([sample], tmp_path / "c", blocking=True) as (_, viewer),
            browser_page() as page,
        ):
            await opened(page, viewer.url)
            await page.wait_for_function("() => window.binglide.requests >= 1")
            await page.wait_for_function("() => location.search.includes('sel=')")
            await page.evaluate("window.binglide.setSel(0, 4096, true)")  # written at once
            entries = await page.evaluate("history.length")
            sel = "window.binglide.state.sel"
            # A change, and Back before its entry is written: the state before it.
            before = await page.evaluate(
                """([a, b]) => {
                    const g = window.binglide;
                    g.setSel(a, b, true);
                    const waiting = g.urls.waiting;
                    history.back();
                    return waiting;
                }""",
                [BLOCK, 2 * BLOCK],
            )
            assert before is True
            await page.wait_for_function("() => window.binglide.urls.stats.repairs === 1")
            await page.wait_for_function(f"() => {sel}[0] === 0 && !window.binglide.urls.repair")
            assert await page.evaluate(sel) == [0, 4096]
            assert await url_sel(page) == [0, 4096]
            # The change kept its entry: Forward shows it.
            assert await page.evaluate("history.length") == entries + 1
            await page.go_forward()
            await page.wait_for_function(f"() => {sel}[0] === {BLOCK}")
            assert await url_sel(page) == [BLOCK, 2 * BLOCK]
            await page.go_back()
            await page.wait_for_function(f"() => {sel}[0] === 0")
            # A change there, and Forward before its entry is written: a new entry
            # drops those ahead of it, so Forward finds nothing and the change stays.
            await page.evaluate(
                """([a, b]) => {
                    window.binglide.setSel(a, b, true);
                    history.forward();
                }""",
                [2 * BLOCK, 3 * BLOCK],
            )
            await page.wait_for_function("() => window.binglide.urls.stats.repairs === 2")
            await page.wait_for_function("() => !window.binglide.urls.repair")
            await page.wait_for_function(f"s => {URL_SEL}()[0] === s", arg=2 * BLOCK)
            assert await page.evaluate(sel) == [2 * BLOCK, 3 * BLOCK]
            assert await page.evaluate("history.length") == entries + 1
            await page.go_back()
            await page.wait_for_function(f"() => {sel}[0] === 0")
            await page.go_forward()
            await page.wait_for_function(f"() => {sel}[0] === {2 * BLOCK}")
            assert await url_sel(page) == [2 * BLOCK, 3 * BLOCK]
            assert await page.evaluate("window.binglide.urls.queue.length") == 0


async def test_opening_a_file_writes_the_entry_that_waits_first(tmp_path: Path) -> None:
    BlockingChunk.reset()  # the bigrams stay estimates: new entries wait
    files = tmp_path / "files"
    files.mkdir()
    synthetic(files / "sample.bin")
    (files / "other.bin").write_bytes(b"other" * 1000)
    with anyio.fail_after(120):
        async with (
            running([files / "sample.bin"], tmp_path / "c", blocking=True, root=files) as (
                _,
                viewer,
            ),
            browser_page() as page,
        ):
            await opened(page, viewer.url)
            # The views ask once the overview is painted (a change before has no bigram
            # to wait for: it is written at once).
            await page.wait_for_function("() => window.binglide.requests >= 1")
            await page.evaluate("window.binglide.setSel(0, 4096, true)")  # written at once
            await page.evaluate(f"window.binglide.setSel({BLOCK}, {2 * BLOCK}, true)")
            assert await page.evaluate("window.binglide.urls.waiting")
            await page.click("#open")
            await page.click("button.entry:has-text('other.bin')")
            await page.wait_for_url("**file=1**")
            await page.wait_for_function("() => window.binglide && window.binglide.ready")
            # Back from the opened file: the state it was opened from, not the one before.
            await page.go_back()
            await page.wait_for_function("() => window.binglide && window.binglide.ready")
            assert await page.evaluate("window.binglide.state.sel") == [BLOCK, 2 * BLOCK]


async def test_back_while_a_replacement_waits_writes_it_on_its_own_entry(
    sample: Path, tmp_path: Path
) -> None:
    BlockingChunk.reset()  # no exact bigram: the drag's last replacement waits (250 ms)
    with anyio.fail_after(120):
        async with (
            running([sample], tmp_path / "c", blocking=True) as (_, viewer),
            browser_page() as page,
        ):
            await opened(page, viewer.url)
            await page.wait_for_function("() => window.binglide.requests >= 1")
            await page.wait_for_function("() => location.search.includes('sel=')")
            whole = await url_sel(page)
            await page.evaluate("window.binglide.setSel(0, 4096, true)")  # written at once
            # A drag ends (its last move replaces the entry), and Back at once.
            await page.evaluate(
                """([a, b]) => {
                    window.binglide.setSel(a, b, "end");
                    history.back();
                }""",
                [BLOCK, 2 * BLOCK],
            )
            await page.wait_for_function("() => window.binglide.urls.stats.repairs === 1")
            await page.wait_for_function("() => !window.binglide.urls.repair")
            await page.wait_for_function(f"() => window.binglide.state.sel[1] === {whole[1]}")
            # Nothing waits that could write the dragged range over this entry later.
            assert await page.evaluate("window.binglide.urls.queue.length") == 0
            assert await page.evaluate("window.binglide.urls.timer") is None
            assert await url_sel(page) == whole
            # The replacement went to its own entry: Forward shows the dragged range.
            await page.go_forward()
            await page.wait_for_function(f"() => window.binglide.state.sel[0] === {BLOCK}")
            assert await url_sel(page) == [BLOCK, 2 * BLOCK]
