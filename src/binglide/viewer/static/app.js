// binglide view: the page. Two nested overview maps choose the range; the
// views of that range refine live; the state lives in the URL.

import { HexDump } from "./hexdump.js";
import { UrlHistory } from "./history.js";
import { OverviewMap, TileStore, mapColumns } from "./maps.js";
import { TrigramView } from "./trigram.js";
import { CLASSES, ENTROPY_RAMP, download, el, hex, hex2, human, parseOffset, perFrame, ramp } from "./util.js";
import { BigramView, DiffView, EntropyView, HistogramView, StatsView } from "./views.js";
import { Wire } from "./wire.js";

const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
const wire = new Wire(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${base}ws`);
// For tests and the benchmark: the page's live objects.
window.binglide = { wire, ready: false, requests: 0 };

const state = {
  region: null, // [lo, hi): what the second map shows
  sel: null, // [lo, hi): what the views show
  cursor: 0,
  mode: "class",
  layout: "linear",
  leveling: "log",
  file: 0, // the file the maps and views show
};
let files = [];
let info = null;
let urls = null;

// -- the URL ---------------------------------------------------------------------------

function rangeText(r) {
  return `${hex(r[0], { group: false })}-${hex(r[1], { group: false })}`;
}

function parseRange(text, size) {
  if (!text) return null;
  const m = /^(0x[0-9a-f]+|\d+)-(0x[0-9a-f]+|\d+)$/i.exec(text);
  if (!m) return null;
  const lo = Math.min(size, Number(m[1]));
  const hi = Math.min(size, Number(m[2]));
  return hi > lo ? [lo, hi] : null;
}

function toURL() {
  const q = new URLSearchParams();
  if (state.file) q.set("file", state.file);
  q.set("region", rangeText(state.region));
  q.set("sel", rangeText(state.sel));
  q.set("cursor", hex(state.cursor, { group: false }));
  q.set("mode", state.mode);
  q.set("layout", state.layout);
  q.set("leveling", state.leveling);
  return `${base}?${q}`;
}

function fromURL() {
  const q = new URLSearchParams(location.search);
  const f = Number(q.get("file") || 0);
  state.file = Number.isInteger(f) && f >= 0 && f < files.length ? f : 0;
  const size = files[state.file].size || 0;
  state.region = parseRange(q.get("region"), size) || [0, size];
  state.sel = parseRange(q.get("sel"), size) || state.region.slice();
  state.sel = clip(state.sel, state.region);
  const c = parseOffset(q.get("cursor") || "");
  state.cursor = c !== null && c < Math.max(1, size) ? c : state.sel[0];
  state.mode = q.get("mode") === "entropy" ? "entropy" : "class";
  state.layout = q.get("layout") === "hilbert" ? "hilbert" : "linear";
  state.leveling = q.get("leveling") === "rank" ? "rank" : "log";
}

/**
 * Record the state: a new history entry when `push`, else the current one's
 * new URL. Neither is written at once (UrlHistory says why): a new entry
 * waits for its range's bigram (`urls.flush()` once it is exact, 1 s at
 * most); a drag replaces the URL 20 times a second, and browsers throttle
 * that (and log it), so replacements are folded into one, 250 ms after the
 * last.
 */
function remember(push) {
  urls.record(toURL(), push, push ? 1000 : 250);
}

// -- ranges ----------------------------------------------------------------------------

function size() {
  return files[state.file] ? files[state.file].size || 0 : 0;
}

function clip(r, within) {
  let [lo, hi] = r;
  const len = Math.min(hi - lo, within[1] - within[0]);
  lo = Math.max(within[0], Math.min(lo, within[1] - len));
  return [lo, lo + len];
}

/** Make the region contain the selection (panning it, or growing it). */
function follow() {
  const s = state.sel;
  let [lo, hi] = state.region;
  if (s[0] >= lo && s[1] <= hi) return;
  const len = Math.max(hi - lo, s[1] - s[0]);
  lo = Math.max(0, Math.min(s[0] - Math.floor((len - (s[1] - s[0])) / 2), size() - len));
  state.region = [lo, Math.min(size(), lo + len)];
}

function setSel(lo, hi, commit) {
  const n = size();
  lo = Math.max(0, Math.min(lo, n));
  hi = Math.max(lo + Math.min(1, n), Math.min(hi, n));
  state.sel = [lo, hi];
  follow();
  if (state.cursor < lo || state.cursor >= hi) state.cursor = lo;
  update(commit);
}

function setRegion(lo, hi, commit) {
  const n = size();
  lo = Math.max(0, Math.min(lo, n));
  hi = Math.max(lo + Math.min(1, n), Math.min(hi, n));
  state.region = [lo, hi];
  const s = state.sel;
  if (s[0] < lo || s[1] > hi) state.sel = [lo, hi];
  if (state.cursor < state.sel[0] || state.cursor >= state.sel[1]) state.cursor = state.sel[0];
  update(commit);
}

function setCursor(offset, commit = true) {
  const n = size();
  if (!n) return;
  offset = Math.max(0, Math.min(n - 1, Math.floor(offset)));
  state.cursor = offset;
  // A cursor the user moves shows at once, whatever the bigram is doing.
  hexdumpWaitsFor = 0;
  cursorPinned = true;
  if (offset < state.sel[0] || offset >= state.sel[1]) {
    const len = state.sel[1] - state.sel[0];
    const lo = Math.max(0, Math.min(n - len, offset - Math.floor(len / 2)));
    state.sel = [lo, lo + len];
    follow();
  }
  update(commit);
  cursorPinned = false;
}

function zoomRegion(center, factor) {
  const [lo, hi] = state.region;
  const len = hi - lo;
  const n = size();
  const next = Math.max(Math.min(n, 64), Math.min(n, Math.round(len * factor)));
  const t = (center - lo) / Math.max(1, len);
  let start = Math.round(center - t * next);
  start = Math.max(0, Math.min(n - next, start));
  setRegion(start, start + next, true);
}

// -- the page --------------------------------------------------------------------------

const status = {
  hover: el("span", { class: "hover" }),
  cursor: el("span", { class: "cursor" }),
  sel: el("span", { class: "sel" }),
  conn: el("span", { class: "conn" }),
};

function hover(h) {
  status.hover.textContent = h ? h.text : "";
}

let views = {};
let maps = [];
let hexdump = null;
let tiles = null;

function exportView(name) {
  return async (fmt) => {
    const [start, stop] = state.sel;
    const file = state.file;
    const label = `${files[file].name}.${name}.${hex(start, { group: false })}-${hex(stop, { group: false })}`;
    if (fmt === "png") {
      const blob = await views[name].toBlob();
      download(blob, `${label}.png`);
      return;
    }
    const request = {
      bigram: { op: "ngrams", file, start, stop, n: 2 },
      trigram: { op: "ngrams", file, start, stop, n: 3 },
      histogram: { op: "histogram", file, start, stop },
      stats: { op: "stats", file, start, stop },
      entropy: { op: "entropy", file, start, stop, resolution: 1024 },
      hexdump: { op: "data", file, start: hexdump.window(state.cursor), size: hexdump.rows * 16 },
      diff: { op: "diff", start: state.region[0], stop: state.region[1], resolution: 560 },
    }[name];
    try {
      const { header, arrays } = await wire.ask("export", { request, format: fmt });
      download(new Blob([arrays.bytes]), header.meta.name);
    } catch (e) {
      hover({ text: `export failed: ${e.message}` });
    }
  };
}

async function search(pattern, from, wrap) {
  const [lo, hi] = state.sel;
  try {
    const { header } = await wire.ask("search", { file: state.file, start: from, stop: hi, pattern }, "search");
    let offset = header.meta.offset;
    if (offset === null && wrap && from > lo) {
      offset = (await wire.ask("search", { file: state.file, start: lo, stop: hi, pattern }, "search")).header.meta.offset;
    }
    if (offset !== null) setCursor(offset);
    else hover({ text: `${pattern} not found in the first ${human(header.meta.scanned)} scanned` });
  } catch (e) {
    if (e.message !== "cancelled") hover({ text: e.message });
  }
}

async function nextDifference(direction) {
  try {
    const { header } = await wire.ask("finddiff", { offset: state.cursor, direction }, "finddiff");
    if (header.meta.offset === null) hover({ text: `no ${direction > 0 ? "next" : "previous"} difference` });
    else setCursor(header.meta.offset);
  } catch (e) {
    if (e.message !== "cancelled") hover({ text: e.message });
  }
}

function legend() {
  const node = el("div", { class: "legend-row" });
  const fill = () => {
    if (state.mode === "class") {
      node.replaceChildren(
        ...CLASSES.map((c) => el("span", { class: "swatch" }, el("i", { style: `background: rgb(${c.color})` }), c.name)),
      );
    } else {
      const bar = el("span", { class: "ramp" });
      bar.style.background = `linear-gradient(to right, ${[0, 0.25, 0.5, 0.75, 1].map((t) => `rgb(${ramp(t, ENTROPY_RAMP)})`).join(",")})`;
      node.replaceChildren(el("span", { text: "entropy 0" }), bar, el("span", { text: "8 bits/byte" }));
    }
  };
  fill();
  node.refresh = fill;
  return node;
}

function build() {
  const app = document.getElementById("app");
  tiles = new TileStore(wire);
  const redrawMaps = perFrame(() => maps.forEach((m) => m.draw()));
  tiles.onchange = redrawMaps;
  const whole = new OverviewMap(tiles, {
    title: "whole file",
    onSelect: (lo, hi, commit) => setRegion(lo, hi, commit),
    onCursor: (o) => setCursor(o),
    onZoom: zoomRegion,
    onHover: hover,
  });
  const region = new OverviewMap(tiles, {
    title: "region",
    onSelect: (lo, hi, commit) => setSel(lo, hi, commit),
    onCursor: (o) => setCursor(o),
    onZoom: zoomRegion,
    onHover: hover,
  });
  maps = [whole, region];
  views = {
    bigram: new BigramView({
      onExport: exportView("bigram"),
      onHover: hover,
      onPick: ([a, b]) => search(hex2(a) + hex2(b), state.sel[0], false),
    }),
    histogram: new HistogramView({
      onExport: exportView("histogram"),
      onHover: hover,
      onPick: (b) => search(hex2(b), state.cursor + 1, true),
    }),
    entropy: new EntropyView({
      onExport: exportView("entropy"),
      onHover: hover,
      onPick: (o) => setCursor(o),
      onSelect: (lo, hi) => setSel(lo, hi, true),
    }),
    stats: new StatsView({ onExport: exportView("stats") }),
    trigram: new TrigramView({ onExport: exportView("trigram"), onHover: hover }),
  };
  views.bigram.setLeveling(state.leveling);
  views.bigram.toggle.addEventListener("click", () => {
    state.leveling = views.bigram.leveling;
    remember(true);
    urls.flush(); // no bigram to wait for
  });
  if (files.length > 1) views.diff = new DiffView({ onExport: exportView("diff"), onPick: (o) => setCursor(o), onNext: nextDifference });
  // Two files: both dumps side by side; otherwise the file shown.
  const dumped = files.length === 2 ? files : [files[state.file]];
  hexdump = new HexDump(wire, { files: dumped, onCursor: (o) => setCursor(o), onExport: exportView("hexdump") });
  views.hexdump = hexdump;

  const gotoBox = el("input", { id: "goto", placeholder: "go to offset (g): 0x1000, 4K", spellcheck: "false" });
  gotoBox.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      const o = parseOffset(gotoBox.value);
      if (o === null) hover({ text: `not an offset: ${gotoBox.value}` });
      else setCursor(o);
      gotoBox.blur();
    }
    e.stopPropagation();
  });
  const modeButton = el("button", { class: "toggle", id: "mode", title: "colour by entropy or byte class (e)", onclick: () => toggleMode() });
  const layoutButton = el("button", { class: "toggle", id: "layout", title: "linear or Hilbert layout (h)", onclick: () => toggleLayout() });
  const legendRow = legend();
  const fileLabel = files.map((f) => `${f.name} (${human(f.size || 0)})`).join("  vs  ");
  const fileSelect =
    files.length > 1
      ? el(
          "select",
          { id: "file", title: "the file the maps and views show", onchange: (e) => switchFile(Number(e.target.value)) },
          ...files.map((f) => el("option", { value: f.index, text: f.name })),
        )
      : null;
  const help = el(
    "dialog",
    { id: "help" },
    el("h2", { text: "keys" }),
    el(
      "table",
      {},
      ...[
        ["drag on a map", "select (whole file → region → views)"],
        ["click", "move the hex dump there"],
        ["wheel on a map", "zoom the region"],
        ["← →", "pan the selection by 1/8 (shift: by all of it)"],
        ["PgUp PgDn", "pan the selection by all of it"],
        ["+ −", "zoom the selection in and out"],
        ["↑ ↓", "cursor up and down a row"],
        ["Home End", "selection to the start or end"],
        ["g", "go to an offset"],
        ["e h l", "entropy/class colours, Hilbert/linear, log/rank levelling"],
        ["n p", "next and previous difference (two files)"],
        ["Esc", "close this"],
      ].map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: v }))),
    ),
  );
  help.addEventListener("click", () => help.close());
  app.replaceChildren(
    el(
      "header",
      { class: "top" },
      el("h1", {}, "binglide ", el("span", { class: "file", text: fileLabel })),
      fileSelect,
      gotoBox,
      modeButton,
      layoutButton,
      legendRow,
      info.root ? el("button", { class: "toggle", id: "open", title: "open a file under --root", onclick: () => browse("") }, "open…") : null,
      el("button", { class: "toggle", title: "keys (?)", onclick: () => help.showModal() }, "?"),
    ),
    el(
      "main",
      {},
      el("div", { class: "maps" }, whole.node, region.node),
      el(
        "div",
        { class: "views" },
        el("div", { class: "row" }, views.bigram.panel.node, views.trigram.panel.node),
        views.histogram.panel.node,
        views.entropy.panel.node,
      ),
      el("div", { class: "side" }, views.stats.panel.node, views.diff ? views.diff.panel.node : null, hexdump.panel.node),
    ),
    el("footer", {}, status.cursor, status.sel, status.hover, status.conn),
    help,
    el("dialog", { id: "browse" }),
  );
  const refreshButtons = () => {
    modeButton.textContent = state.mode === "class" ? "classes" : "entropy";
    layoutButton.textContent = state.layout;
    legendRow.refresh();
  };
  refreshButtons();
  build.refreshButtons = refreshButtons;
  layOut();
  // A resized window (or a zoomed page) lays the maps out again once it
  // stops changing; the state, and so the URL, stay as they are.
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      if (layOut()) showMaps();
    }, 150);
  });
  if (fileSelect) fileSelect.value = String(state.file);
  build.fileSelect = fileSelect;

  document.addEventListener("keydown", onKey);
  // Back and forward: show the entry's state (UrlHistory repairs a step
  // taken while entries waited, and calls this once it is done).
  urls = new UrlHistory({
    show: () => {
      fromURL();
      views.bigram.setLeveling(state.leveling);
      if (build.fileSelect) build.fileSelect.value = String(state.file);
      refreshButtons();
      lastSel = null;
      update(null);
    },
  });
}

/**
 * Lay the maps out for the window: wide ones (128 cells) where the window is
 * wide and the page still fits beside them (a huge file's longer hex offsets
 * widen the hex dump), else narrow ones. Return whether anything changed.
 */
function layOut() {
  const wanted = mapColumns();
  let changed = false;
  for (const m of maps) {
    if (!m.laidOutFor(wanted)) {
      m.setColumns(wanted);
      changed = true;
    }
  }
  const page = document.documentElement;
  if (page.scrollWidth > page.clientWidth && maps[0].columns > 64) {
    maps.forEach((m) => m.setColumns(64));
    changed = true;
  }
  // For tests: how many times the maps were laid out again.
  if (changed) window.binglide.layouts = (window.binglide.layouts || 0) + 1;
  return changed;
}

/** List a directory under --root; a click opens a file (the page then shows it). */
async function browse(path) {
  const dialog = document.getElementById("browse");
  try {
    const { header } = await wire.ask("list", { path });
    const { entries } = header.meta;
    const up = path ? path.split("/").slice(0, -1).join("/") : null;
    const join = (name) => (path ? `${path}/${name}` : name);
    dialog.replaceChildren(
      el("h2", { text: `open: ${path || "."}` }),
      el(
        "ul",
        { class: "entries" },
        up !== null ? el("li", {}, el("button", { class: "entry", onclick: () => browse(up) }, "..")) : null,
        ...entries.map((e) =>
          el(
            "li",
            {},
            el(
              "button",
              { class: "entry", onclick: () => (e.dir ? browse(join(e.name)) : open(join(e.name))) },
              e.dir ? `${e.name}/` : `${e.name}  (${human(e.size)})`,
            ),
          ),
        ),
      ),
      el("button", { class: "toggle", onclick: () => dialog.close() }, "close"),
    );
    if (!dialog.open) dialog.showModal();
  } catch (e) {
    hover({ text: e.message });
  }
}

async function open(path) {
  try {
    const { header } = await wire.ask("open", { path });
    urls.flush(); // the entries that wait, before the page leaves
    location.assign(`${base}?file=${header.meta.opened}`);
  } catch (e) {
    hover({ text: e.message });
  }
}

function toggleMode() {
  state.mode = state.mode === "class" ? "entropy" : "class";
  build.refreshButtons();
  update(true);
}

function toggleLayout() {
  state.layout = state.layout === "linear" ? "hilbert" : "linear";
  build.refreshButtons();
  update(true);
}

function switchFile(index) {
  state.file = index;
  state.region = [0, size()];
  state.sel = [0, size()];
  state.cursor = 0;
  lastSel = null;
  update(true);
}

function onKey(e) {
  if (e.target instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey) return;
  const [lo, hi] = state.sel;
  const len = hi - lo;
  const n = size();
  const pan = (d) => {
    const start = Math.max(0, Math.min(n - len, lo + d));
    setSel(start, start + len, true);
  };
  const zoom = (f) => {
    const next = Math.max(1, Math.min(n, Math.round(len * f)));
    const center = lo + len / 2;
    const start = Math.max(0, Math.min(n - next, Math.round(center - next / 2)));
    setSel(start, start + next, true);
  };
  const keys = {
    ArrowLeft: () => pan(-(e.shiftKey ? len : Math.max(1, Math.floor(len / 8)))),
    ArrowRight: () => pan(e.shiftKey ? len : Math.max(1, Math.floor(len / 8))),
    PageUp: () => pan(-len),
    PageDown: () => pan(len),
    ArrowUp: () => setCursor(state.cursor - 16),
    ArrowDown: () => setCursor(state.cursor + 16),
    Home: () => setSel(0, len, true),
    End: () => setSel(n - len, n, true),
    "+": () => zoom(0.5),
    "=": () => zoom(0.5),
    "-": () => zoom(2),
    g: () => document.getElementById("goto").focus(),
    e: toggleMode,
    h: toggleLayout,
    l: () => {
      views.bigram.setLeveling(views.bigram.leveling === "log" ? "rank" : "log");
      state.leveling = views.bigram.leveling;
      remember(true);
      urls.flush(); // no bigram to wait for
    },
    n: () => files.length > 1 && nextDifference(1),
    p: () => files.length > 1 && nextDifference(-1),
    "?": () => document.getElementById("help").showModal(),
  };
  const fn = keys[e.key];
  if (fn) {
    e.preventDefault();
    fn();
  }
}

// -- updating --------------------------------------------------------------------------

let lastSel = null;
/** The views' requests so far: each new range's gets the next number. */
let viewsSerial = 0;
/**
 * The views' request whose bigram a new range's hex dump waits for (its
 * exact answer, or 1 s), or 0: its `data` request and repaint would share
 * the two cores with that bigram. Only that request's answer (or timer)
 * releases it: a superseded one's late timer does not.
 */
let hexdumpWaitsFor = 0;
/** Whether the change under way is the user's move of the cursor. */
let cursorPinned = false;
/** Whether the last change was a drag's move (its views get previews). */
let previewing = false;
let lastRegion = null;

/** Show the state; commit: true pushes a history entry, false replaces it, null neither. */
/**
 * Show the state. `commit`: true pushes a history entry, false replaces the
 * current one, null neither; "start" and "end" are a drag's first move (a
 * push) and its last (a replace). While a drag moves (false, "start"), the
 * views get a preview from a small sample, which starts no exact work; a
 * committed change (true, "end") gets the full, progressive answers.
 */
function update(commit) {
  if (commit !== null) remember(commit === true || commit === "start");
  const dragging = commit === false || commit === "start";
  previewing = dragging;
  // The views' requests go at once (the maps and the hex dump redraw at the
  // next frame); a drag's moves wait for the last answer.
  const serial = viewsSerial;
  requestViewsIfChanged(!dragging, dragging);
  // A new entry with no bigram to wait for (the colours, a cursor within the range) is written now.
  if (commit === true && viewsSerial === serial) urls.flush();
  render();
}

function requestViewsIfChanged(now, preview = false) {
  const selKey = `${state.file}:${state.sel}:${preview ? "preview" : "full"}`;
  if (selKey !== lastSel && mapsFirst() && (now || viewsReady())) {
    lastSel = selKey;
    requestViews(preview);
  }
}

/** Show the state on the maps: each repaints what changed (its cells, or its overlay only). */
function showMaps() {
  const n = size();
  const file = state.file;
  maps[0].show({ file, size: n, lo: 0, hi: n, child: state.region, cursor: state.cursor, mode: state.mode, layout: state.layout });
  maps[1].show({ file, size: n, lo: state.region[0], hi: state.region[1], child: state.sel, cursor: state.cursor, mode: state.mode, layout: state.layout });
}

const render = perFrame(() => {
  showMaps();
  status.cursor.textContent = `cursor ${hex(state.cursor)}`;
  status.sel.textContent = `selection ${hex(state.sel[0])} – ${hex(state.sel[1])} (${human(state.sel[1] - state.sel[0])})`;
  requestViewsIfChanged(false, previewing);
  const regionKey = `${state.region}`;
  if (views.diff && regionKey !== lastRegion) {
    lastRegion = regionKey;
    wire.request(
      "diff",
      { start: state.region[0], stop: state.region[1], resolution: 560 },
      { slot: "diff", onReport: (h, a) => views.diff.update(h, a), onEnd: endOf(views.diff) },
    );
  }
  if (!hexdumpWaitsFor) hexdump.show(state.cursor);
});

/**
 * While the views' last request has not answered (for at most 150 ms), a new
 * range waits: a drag then paints an estimate every time one can be made,
 * rather than cancelling each request before it answers, and about two
 * ranges' worth of work is in flight at most.
 */
let viewsBusySince = 0;
function viewsReady() {
  if (!viewsBusySince || performance.now() - viewsBusySince > 150) return true;
  if (!viewsReady.timer) {
    viewsReady.timer = setTimeout(() => {
      viewsReady.timer = null;
      render();
    }, 155);
  }
  return false;
}

function viewsAnswered() {
  if (!viewsBusySince) return;
  viewsBusySince = 0;
  render();
}

/** On load, the overview paints first: the views wait for it (at most 300 ms). */
let mapsWaited = false;
function mapsFirst() {
  if (mapsWaited || window.binglide.firstMapPaint || !size()) return true;
  if (!mapsFirst.timer) {
    mapsFirst.timer = setTimeout(() => {
      mapsWaited = true;
      render();
    }, 300);
    const poll = () => {
      if (window.binglide.firstMapPaint) {
        mapsWaited = true;
        render();
      } else if (!mapsWaited) requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  }
  return false;
}

function endOf(view) {
  return (header) => {
    if (header.kind === "error") view.panel.failed(header.message);
    window.binglide.ended = (window.binglide.ended || 0) + 1;
  };
}

function requestViews(preview = false) {
  const [start, stop] = state.sel;
  const file = state.file;
  if (!size()) {
    for (const v of [views.bigram, views.histogram, views.entropy, views.stats, views.trigram]) v.panel.progress({ completion: 1, precision: 1 });
    return;
  }
  const range = { file, start, stop };
  window.binglide.requests++;
  viewsBusySince = performance.now();
  // The other views of the last range stop now: their cores go to this bigram.
  for (const slot of ["stats", "entropy", "trigram"]) wire.cancelSlot(slot);
  for (const v of [views.bigram, views.histogram, views.entropy, views.stats, views.trigram]) v.panel.waiting();
  // The bigram first: the other views follow its exact answer, or 1 s after
  // its first one, so that on two cores they do not slow the view people
  // look at (on a huge range they share the cores from then on).
  let others = false;
  const serial = ++viewsSerial;
  // The hex dump at the new cursor waits for the bigram too (see render).
  hexdumpWaitsFor = preview || cursorPinned || state.cursor === hexdump.cursor ? 0 : serial;
  if (hexdumpWaitsFor) hexdump.panel.waiting();
  const rest = () => {
    // The bigram is exact (or 1 s went by): the URL's writes that wait go
    // once it is painted (each costs the browser 20-27 ms of CPU).
    if (serial === viewsSerial && !rest.flushing) {
      rest.flushing = true;
      requestAnimationFrame(() => setTimeout(() => serial === viewsSerial && urls.flush()));
    }
    if (hexdumpWaitsFor === serial) {
      hexdumpWaitsFor = 0;
      render();
    }
    if (others || lastSel !== `${file}:${state.sel}:full`) return;
    others = true;
    requestOthers(range);
  };
  const exact = (h) => h.final && !h.meta.preview;
  views.bigram.reset();
  wire.request("ngrams", { ...range, n: 2, ...(preview ? { preview: 1 } : {}) }, {
    slot: "bigram",
    onReport: (h, a) => {
      window.binglide.bigramPending = { final: exact(h), cached: !!h.cached, start, stop };
      views.bigram.update(h, a);
      if (!preview) {
        if (h.final) rest();
        else setTimeout(rest, 1000);
      }
      viewsAnswered();
    },
    onEnd: (h) => {
      endOf(views.bigram)(h);
      if (!preview) rest();
      viewsAnswered();
    },
  });
  if (!preview) setTimeout(rest, 1000);
}

function requestOthers(range) {
  wire.request("stats", range, {
    slot: "stats",
    onReport: (h, a) => {
      views.histogram.update(h, a);
      views.stats.update(h);
    },
    onEnd: (h) => {
      if (h.kind === "error") {
        views.histogram.panel.failed(h.message);
        views.stats.panel.failed(h.message);
      }
    },
  });
  wire.request("entropy", { ...range, resolution: 1024 }, { slot: "entropy", onReport: (h, a) => views.entropy.update(h, a), onEnd: endOf(views.entropy) });
  wire.request("ngrams", { ...range, n: 3 }, { slot: "trigram", onReport: (h, a) => views.trigram.update(h, a), onEnd: endOf(views.trigram) });
}

async function main() {
  wire.onstate = (s) => {
    status.conn.textContent = s === "open" ? "" : "disconnected: restart binglide view";
    status.conn.classList.toggle("bad", s !== "open");
  };
  const { header } = await wire.ask("info", {});
  info = header.meta;
  files = info.files;
  document.title = `binglide · ${files.map((f) => f.name).join(" vs ")}`;
  fromURL();
  build();
  remember(false);
  render();
  window.binglide.ready = true;
  window.binglide.state = state;
  window.binglide.maps = maps;
  window.binglide.views = views;
  window.binglide.setSel = setSel;
  window.binglide.setRegion = setRegion;
  window.binglide.setCursor = setCursor;
  window.binglide.hexdump = hexdump;
  window.binglide.urls = urls;
}

main().catch((e) => {
  document.getElementById("app").textContent = `binglide view could not start: ${e.message}`;
});
