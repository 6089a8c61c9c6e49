// The views of the selected range: bigram, byte histogram, entropy profile,
// ent statistics, and (two files) the diff strip. Each paints whatever report
// it has (estimate first), with its own completion/precision indicator.

import { setIndicator } from "./maps.js";
import {
  CLASSES,
  ENTROPY_RAMP,
  INFERNO,
  TEXT_RAMP,
  classOf,
  count,
  el,
  hex,
  hex2,
  human,
  isPrintable,
  offsetTicks,
  ramp,
  rampTable,
  sizedCanvas,
  throttled,
} from "./util.js";

const INFERNO_LUT = rampTable(INFERNO);
const TEXT_LUT = rampTable(TEXT_RAMP);

/** A ramp table's colours as opaque RGBA pixels, one 32-bit word each (the platform's byte order). */
function pixelTable(lut) {
  const table = new Uint32Array(256);
  const bytes = new Uint8Array(table.buffer);
  for (let v = 0; v < 256; v++) bytes.set([lut[v * 3], lut[v * 3 + 1], lut[v * 3 + 2], 255], v * 4);
  return table;
}
/** The bigram's cell colours by level: the inferno ramp, and the text ramp for printable pairs. */
const BIGRAM_PIXELS = [pixelTable(INFERNO_LUT), pixelTable(TEXT_LUT)];
const EMPTY_CELL = new Uint32Array(new Uint8Array([14, 14, 18, 255]).buffer)[0];
/** 1 where both bytes of the pair (the cell's index: first byte * 256 + second) are printable. */
const PRINTABLE_PAIR = new Uint8Array(65536);
for (let a = 0x20; a < 0x7f; a++) PRINTABLE_PAIR.fill(1, a * 256 + 0x20, a * 256 + 0x7f);

/*
 * The bigram's per-cell loops, each a small function of typed arrays and
 * numbers only. Inside BigramView.draw they shared its optimised code with
 * the DOM, the canvas and the reports' JSON-parsed fields, and V8 threw that
 * code out again and again ("wrong map", "dependent field type constness
 * changed", --trace-deopt): a paint in the drag's final window then ran its
 * 65,536 cells in the interpreter (a 20 ms paint with a young-generation GC,
 * then 35 ms of background compiles in a Chromium trace), while the workers
 * computed that range's exact answer on the same two cores. Here the loops
 * keep their optimised code, and they are warmed at load (below), so that a
 * first paint does not compile them.
 */

/** The largest of the counts (0 for none). */
function countsMax(counts) {
  let max = 0;
  for (let i = 0; i < counts.length; i++) if (counts[i] > max) max = counts[i];
  return max;
}

/** Each cell's pixel at log levelling: log(1 + n) / log(1 + max), a lone pair at level 40 at least. */
function paintLogCells(counts, pixels, logMax) {
  for (let i = 0; i < 65536; i++) {
    const n = counts[i];
    if (n <= 0) {
      pixels[i] = EMPTY_CELL;
      continue;
    }
    const v = Math.max(40, Math.round((Math.log1p(n) / logMax) * 255));
    pixels[i] = BIGRAM_PIXELS[PRINTABLE_PAIR[i]][v];
  }
}

{
  // Warm-up: one paint of a synthetic bigram (every kind of cell) into a scratch image.
  const counts = new Float32Array(65536);
  for (let i = 0; i < 65536; i += 3) counts[i] = (i % 1000) + 0.5;
  paintLogCells(counts, new Uint32Array(65536), Math.log1p(countsMax(counts)));
}

/** A panel: a title, an indicator, export buttons and a body. */
export class Panel {
  constructor(title, { exports = [], onExport, extra = [] } = {}) {
    this.indicator = el("div", { class: "indicator" });
    const buttons = exports.map((fmt) =>
      el("button", { class: "export", title: `export as ${fmt.toUpperCase()}`, "data-format": fmt, onclick: () => onExport(fmt) }, fmt),
    );
    this.body = el("div", { class: "panel-body" });
    this.caption = el("div", { class: "caption" });
    this.node = el(
      "section",
      { class: "panel" },
      el("header", {}, el("h2", { text: title }), ...extra, el("div", { class: "exports" }, ...buttons), this.indicator),
      this.body,
      this.caption,
    );
  }

  progress(header) {
    setIndicator(this.indicator, {
      completion: header.completion,
      precision: header.precision,
      error: header.kind === "error" ? header.message : null,
    });
  }

  waiting() {
    setIndicator(this.indicator, { completion: 0, precision: 0 });
  }

  failed(message) {
    setIndicator(this.indicator, { completion: 0, precision: 0, error: message });
  }
}

/** The bigram's refinements between the estimate and the exact answer: one per this many ms at most. */
export const REFINE_MS = 120;

/** The bigram: 256 x 256 cells, log or rank levelling, printable pairs tinted. */
export class BigramView {
  constructor({ onExport, onPick, onHover }) {
    this.leveling = "log";
    this.toggle = el("button", { class: "toggle", title: "levelling (l)", onclick: () => this.setLeveling(this.leveling === "log" ? "rank" : "log") }, "log");
    this.panel = new Panel("bigram", { exports: ["png", "json", "csv", "npz"], onExport, extra: [this.toggle] });
    this.canvas = el("canvas", { class: "bigram" });
    this.legend = el("canvas", { class: "legend" });
    this.panel.body.append(el("div", { class: "plot-with-axes" }, this.canvas), this.legend);
    this.ctx = sizedCanvas(this.canvas, 300, 300);
    this.legendCtx = sizedCanvas(this.legend, 300, 28);
    this.off = document.createElement("canvas");
    this.off.width = 256;
    this.off.height = 256;
    this.image = this.off.getContext("2d").createImageData(256, 256);
    this.pixels = new Uint32Array(this.image.data.buffer);
    this.counts = null;
    // Reports received and painted, and refinements that waited (REFINE_MS).
    this.stats = { received: 0, painted: 0, deferred: 0 };
    this.canvas.addEventListener("mousemove", (e) => {
      const cell = this.cellAt(e);
      if (!cell) return onHover(null);
      const [a, b] = cell;
      const n = this.counts ? this.counts[a * 256 + b] : 0;
      const text = isPrintable(a) && isPrintable(b) ? ` '${String.fromCharCode(a, b)}'` : "";
      onHover({ text: `pair ${hex2(a)} ${hex2(b)}${text} · ${Math.round(n).toLocaleString()}× · click: first occurrence` });
    });
    this.canvas.addEventListener("mouseleave", () => onHover(null));
    this.canvas.addEventListener("click", (e) => {
      const cell = this.cellAt(e);
      if (cell && this.counts && this.counts[cell[0] * 256 + cell[1]] > 0) onPick(cell);
    });
  }

  cellAt(e) {
    const r = this.canvas.getBoundingClientRect();
    // Rows are the first byte (top to bottom), columns the second.
    const b = Math.floor(((e.clientX - r.left - 24) / (r.width - 24)) * 256);
    const a = Math.floor(((e.clientY - r.top) / (r.height - 20)) * 256);
    if (a < 0 || b < 0 || a > 255 || b > 255) return null;
    return [a, b];
  }

  setLeveling(mode) {
    this.leveling = mode;
    this.toggle.textContent = mode;
    this.draw();
  }

  /** A new request: its first report paints at once. */
  reset() {
    this.fresh = true;
    clearTimeout(this.refineTimer);
    this.refineTimer = null;
  }

  /**
   * Take a report. The first one of a request (the estimate) and the exact
   * one paint at once; refinements in between paint at most every
   * REFINE_MS, the newest one, since on two cores each repaint (the page's
   * and the compositor's) is CPU the workers computing the exact answer
   * do not get.
   */
  update(header, arrays) {
    this.counts = arrays.counts;
    this.meta = header.meta;
    this.header = header;
    this.stats.received++;
    const first = this.fresh;
    this.fresh = false;
    const since = performance.now() - (this.paintedAt ?? -Infinity);
    if (header.final || first || since >= REFINE_MS) {
      this.paint();
      return;
    }
    this.stats.deferred++;
    if (!this.refineTimer) this.refineTimer = setTimeout(() => this.paint(), REFINE_MS - since);
  }

  paint() {
    clearTimeout(this.refineTimer);
    this.refineTimer = null;
    this.paintedAt = performance.now();
    this.stats.painted++;
    this.panel.progress(this.header);
    this.schedule();
  }

  /** Draw at most once a frame, however many reports arrive. */
  schedule() {
    if (!this.scheduled) this.scheduled = throttled(() => this.draw());
    this.scheduled();
  }

  draw() {
    if (window.binglide && this.meta && this.counts) {
      window.binglide.bigramPainted = { ...(window.binglide.bigramPending || {}), at: performance.now() };
    }
    const ctx = this.ctx;
    ctx.fillStyle = "#16161a";
    ctx.fillRect(0, 0, 300, 300);
    const counts = this.counts;
    const max = counts ? countsMax(counts) : 0;
    let levels = null;
    if (counts) {
      if (this.leveling === "rank") {
        // Rank levelling: cells by the rank of their count among the non-zero ones.
        const values = Array.from(new Set(Array.from(counts).filter((v) => v > 0))).sort((a, b) => a - b);
        levels = new Map(values.map((v, i) => [v, (i + 1) / values.length]));
      }
    }
    // Each paint of a new range shares the two cores with the kernels
    // computing its exact answer: one 32-bit word per cell from precomputed
    // tables (the per-cell test of both bytes and three byte writes made a
    // paint 7.6 ms rather than 5.8 ms here), in functions of their own (see
    // paintLogCells).
    const pixels = this.pixels;
    if (!counts) pixels.fill(EMPTY_CELL);
    else if (!levels) paintLogCells(counts, pixels, Math.log1p(max));
    else {
      for (let i = 0; i < 65536; i++) {
        const n = counts[i];
        if (n <= 0) {
          pixels[i] = EMPTY_CELL;
          continue;
        }
        const v = Math.max(40, Math.round(levels.get(n) * 255)); // a lone pair stays visible
        pixels[i] = BIGRAM_PIXELS[PRINTABLE_PAIR[i]][v];
      }
    }
    this.off.getContext("2d").putImageData(this.image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.off, 24, 0, 276, 280);
    // Axes: first byte down, second byte across, every 0x40.
    ctx.fillStyle = "#a8a8b3";
    ctx.font = "9px ui-monospace, monospace";
    ctx.textAlign = "right";
    for (let v = 0; v <= 0xc0; v += 0x40) ctx.fillText(hex2(v), 20, (v / 256) * 280 + 8);
    ctx.fillText("ff", 20, 278);
    ctx.textAlign = "center";
    for (let v = 0; v <= 0xc0; v += 0x40) ctx.fillText(hex2(v), 24 + (v / 256) * 276 + 6, 294);
    ctx.fillText("ff", 296, 294);
    // The printable square's outline.
    ctx.strokeStyle = "rgba(120, 200, 255, 0.35)";
    ctx.strokeRect(24 + (0x20 / 256) * 276, (0x20 / 256) * 280, (0x5f / 256) * 276, (0x5f / 256) * 280);
    this.drawLegend(max);
    const m = this.meta;
    this.panel.caption.textContent = m ? `${hex(m.start)} – ${hex(m.stop)} · rows: first byte, columns: second · max ${count(max)}` : "";
  }

  drawLegend(max) {
    const ctx = this.legendCtx;
    ctx.clearRect(0, 0, 300, 28);
    for (let x = 0; x < 120; x++) {
      const v = Math.round((x / 119) * 255);
      ctx.fillStyle = `rgb(${INFERNO_LUT[v * 3]},${INFERNO_LUT[v * 3 + 1]},${INFERNO_LUT[v * 3 + 2]})`;
      ctx.fillRect(24 + x, 2, 1, 10);
      ctx.fillStyle = `rgb(${TEXT_LUT[v * 3]},${TEXT_LUT[v * 3 + 1]},${TEXT_LUT[v * 3 + 2]})`;
      ctx.fillRect(160 + x, 2, 1, 10);
    }
    ctx.fillStyle = "#a8a8b3";
    ctx.font = "9px system-ui, sans-serif";
    ctx.textAlign = "left";
    const scale = !max ? "(no data yet)" : this.leveling === "log" ? `1 … ${count(max)} (log)` : "by rank";
    ctx.fillText(`pairs ${scale}`, 24, 24);
    ctx.fillText("printable pairs", 160, 24);
  }

  toBlob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }
}

/** The byte histogram: 256 bars on a log axis, coloured by byte class. */
export class HistogramView {
  constructor({ onExport, onPick, onHover }) {
    this.panel = new Panel("byte histogram", { exports: ["png", "json", "csv", "npz"], onExport });
    this.canvas = el("canvas", { class: "histogram" });
    this.panel.body.append(this.canvas);
    this.width = 616;
    this.height = 170;
    this.ctx = sizedCanvas(this.canvas, this.width, this.height);
    this.counts = null;
    this.canvas.addEventListener("mousemove", (e) => {
      const b = this.byteAt(e);
      if (b === null) return onHover(null);
      const n = this.counts ? this.counts[b] : 0;
      const ch = isPrintable(b) ? ` '${String.fromCharCode(b)}'` : "";
      onHover({ text: `byte ${hex2(b)}${ch} · ${Math.round(n).toLocaleString()}× · click: next occurrence` });
    });
    this.canvas.addEventListener("mouseleave", () => onHover(null));
    this.canvas.addEventListener("click", (e) => {
      const b = this.byteAt(e);
      if (b !== null && this.counts && this.counts[b] > 0) onPick(b);
    });
  }

  byteAt(e) {
    const r = this.canvas.getBoundingClientRect();
    const b = Math.floor(((e.clientX - r.left - 44) / (this.width - 52)) * 256);
    return b >= 0 && b < 256 ? b : null;
  }

  update(header, arrays) {
    this.counts = arrays.counts;
    this.panel.progress(header);
    if (!this.scheduled) this.scheduled = throttled(() => this.draw());
    this.scheduled();
  }

  draw() {
    const ctx = this.ctx;
    const w = this.width;
    const h = this.height;
    ctx.fillStyle = "#16161a";
    ctx.fillRect(0, 0, w, h);
    const left = 44;
    const plotW = w - 52;
    const top = 6;
    const plotH = h - 28;
    const counts = this.counts;
    let max = 1;
    if (counts) for (const v of counts) if (v > max) max = v;
    const decades = Math.max(1, Math.ceil(Math.log10(max + 1)));
    ctx.strokeStyle = "#2c2c34";
    ctx.fillStyle = "#a8a8b3";
    ctx.font = "9px ui-monospace, monospace";
    ctx.textAlign = "right";
    for (let d = 0; d <= decades; d++) {
      const y = top + plotH - (d / decades) * plotH;
      ctx.beginPath();
      ctx.moveTo(left, y + 0.5);
      ctx.lineTo(left + plotW, y + 0.5);
      ctx.stroke();
      ctx.fillText(d === 0 ? "1" : `1e${d}`, left - 4, y + 3);
    }
    if (counts) {
      const bw = plotW / 256;
      for (let b = 0; b < 256; b++) {
        const n = counts[b];
        if (n <= 0) continue;
        const hgt = Math.max(2, (Math.log10(n + 1) / decades) * plotH);
        const c = CLASSES[classOf(b)].color;
        // 0x00 is black and 0xFF white in the class colours: outline them.
        ctx.fillStyle = b === 0 ? "#6b6b78" : `rgb(${c})`;
        ctx.fillRect(left + b * bw, top + plotH - hgt, Math.max(1, bw - 0.3), hgt);
      }
    }
    ctx.textAlign = "center";
    ctx.fillStyle = "#a8a8b3";
    for (let v = 0; v <= 0xff; v += 0x20) ctx.fillText(hex2(v), left + (v + 0.5) * (plotW / 256), h - 10);
    ctx.fillText("ff", left + 255.5 * (plotW / 256), h - 10);
    ctx.textAlign = "left";
    ctx.fillText("count (log)", 2, h - 2);
  }

  toBlob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }
}

/** The ent statistics of the range. */
export class StatsView {
  constructor({ onExport }) {
    this.panel = new Panel("statistics (ent)", { exports: ["json", "csv"], onExport });
    this.table = el("table", { class: "stats" });
    this.panel.body.append(this.table);
  }

  update(header) {
    this.panel.progress(header);
    const m = header.meta || {};
    const f = (v, d = 4) => (v === null || v === undefined ? "n/a" : Number(v).toFixed(d));
    const rows = [
      ["entropy", `${f(m.entropy, 6)} bits per byte`],
      ["chi square", f(m.chi_square, 2)],
      ["arithmetic mean", f(m.mean, 4)],
      ["Monte Carlo π", f(m.monte_carlo_pi, 6)],
      ["serial correlation", f(m.serial_correlation, 6)],
      ["bytes", m.start !== undefined ? `${human(m.stop - m.start)} at ${hex(m.start)}` : "–"],
    ];
    this.table.replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: v }))));
  }
}

/** The entropy profile of the range, with its point size shown. */
export class EntropyView {
  constructor({ onExport, onPick, onSelect, onHover }) {
    this.panel = new Panel("entropy profile", { exports: ["png", "json", "csv", "npz"], onExport });
    this.canvas = el("canvas", { class: "entropy" });
    this.panel.body.append(this.canvas);
    this.width = 616;
    this.height = 150;
    this.ctx = sizedCanvas(this.canvas, this.width, this.height);
    this.values = null;
    this.meta = null;
    let anchor = null;
    const offsetAt = (e) => {
      if (!this.meta) return null;
      const r = this.canvas.getBoundingClientRect();
      const t = Math.max(0, Math.min(1, (e.clientX - r.left - 30) / (this.width - 38)));
      return Math.floor(this.meta.start + t * (this.meta.stop - this.meta.start));
    };
    this.canvas.addEventListener("mousedown", (e) => {
      anchor = offsetAt(e);
      e.preventDefault();
    });
    this.canvas.addEventListener("mouseup", (e) => {
      const o = offsetAt(e);
      if (anchor !== null && o !== null) {
        if (Math.abs(o - anchor) > (this.meta.stop - this.meta.start) / 100) onSelect(Math.min(o, anchor), Math.max(o, anchor) + 1);
        else onPick(anchor);
      }
      anchor = null;
    });
    this.canvas.addEventListener("mousemove", (e) => {
      const o = offsetAt(e);
      if (o === null || !this.values) return onHover(null);
      const i = Math.min(this.values.length - 1, Math.floor(((o - this.meta.start) / Math.max(1, this.meta.stop - this.meta.start)) * this.values.length));
      onHover({ offset: o, text: `${hex(o)} · entropy ${this.values[i].toFixed(3)} bits per byte` });
    });
    this.canvas.addEventListener("mouseleave", () => onHover(null));
  }

  update(header, arrays) {
    this.values = arrays.entropy;
    this.meta = header.meta;
    this.panel.progress(header);
    if (!this.scheduled) this.scheduled = throttled(() => this.draw());
    this.scheduled();
  }

  draw() {
    const ctx = this.ctx;
    const w = this.width;
    const h = this.height;
    const left = 30;
    const plotW = w - 38;
    const top = 6;
    const plotH = h - 30;
    ctx.fillStyle = "#16161a";
    ctx.fillRect(0, 0, w, h);
    ctx.strokeStyle = "#2c2c34";
    ctx.fillStyle = "#a8a8b3";
    ctx.font = "9px ui-monospace, monospace";
    ctx.textAlign = "right";
    for (let v = 0; v <= 8; v += 2) {
      const y = top + plotH - (v / 8) * plotH;
      ctx.beginPath();
      ctx.moveTo(left, y + 0.5);
      ctx.lineTo(left + plotW, y + 0.5);
      ctx.stroke();
      ctx.fillText(String(v), left - 4, y + 3);
    }
    const values = this.values;
    const m = this.meta;
    if (values && values.length && m) {
      const n = values.length;
      for (let x = 0; x < plotW; x++) {
        // Each pixel shows the highest point under it: short peaks stay visible.
        const i0 = Math.floor((x / plotW) * n);
        const i1 = Math.max(i0 + 1, Math.floor(((x + 1) / plotW) * n));
        let v = 0;
        for (let i = i0; i < i1 && i < n; i++) v = Math.max(v, values[i]);
        const c = ramp(v / 8, ENTROPY_RAMP);
        ctx.fillStyle = `rgb(${c})`;
        const hgt = (v / 8) * plotH;
        ctx.fillRect(left + x, top + plotH - hgt, 1, Math.max(1, hgt));
      }
      ctx.textAlign = "center";
      ctx.fillStyle = "#a8a8b3";
      for (const t of offsetTicks(m.start, m.stop, 5)) {
        const x = left + ((t - m.start) / Math.max(1, m.stop - m.start)) * plotW;
        ctx.fillText(hex(t), Math.min(w - 30, Math.max(left + 20, x)), h - 12);
        ctx.fillRect(x, top + plotH, 1, 3);
      }
      ctx.textAlign = "left";
      ctx.fillText(`bits/byte · ${n.toLocaleString()} points of ${human(m.point_bytes)}`, left, h - 1);
    }
  }

  toBlob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }
}

/** Two files: the differing bytes along the region, and where they start. */
export class DiffView {
  constructor({ onExport, onPick, onNext }) {
    this.panel = new Panel("diff", {
      exports: ["png", "json", "csv", "npz"],
      onExport,
      extra: [
        el("button", { class: "toggle", title: "previous difference (p)", onclick: () => onNext(-1) }, "◀ prev"),
        el("button", { class: "toggle", title: "next difference (n)", onclick: () => onNext(1) }, "next ▶"),
      ],
    });
    this.canvas = el("canvas", { class: "diff" });
    this.list = el("div", { class: "diff-offsets" });
    this.panel.body.append(this.canvas, this.list);
    this.width = 470;
    this.height = 40;
    this.ctx = sizedCanvas(this.canvas, this.width, this.height);
    this.onPick = onPick;
    this.canvas.addEventListener("click", (e) => {
      if (!this.meta) return;
      const r = this.canvas.getBoundingClientRect();
      const t = (e.clientX - r.left) / this.width;
      onPick(Math.floor(this.meta.start + t * (this.meta.stop - this.meta.start)));
    });
  }

  update(header, arrays) {
    this.counts = arrays.counts;
    this.meta = header.meta;
    this.panel.progress(header);
    const ctx = this.ctx;
    ctx.fillStyle = "#16161a";
    ctx.fillRect(0, 0, this.width, this.height);
    const n = this.counts.length;
    const per = (this.meta.stop - this.meta.start) / Math.max(1, n);
    for (let x = 0; x < this.width; x++) {
      const i0 = Math.floor((x / this.width) * n);
      const i1 = Math.max(i0 + 1, Math.floor(((x + 1) / this.width) * n));
      let v = 0;
      for (let i = i0; i < i1 && i < n; i++) v = Math.max(v, this.counts[i] / Math.max(1, per));
      if (v > 0) {
        const c = ramp(0.35 + 0.65 * Math.min(1, v), INFERNO);
        ctx.fillStyle = `rgb(${c})`;
        ctx.fillRect(x, 4, 1, this.height - 8);
      }
    }
    const m = this.meta;
    // Where the differences start: the exact first ones (consecutive offsets
    // as one run), then the start of each further point that differs.
    const starts = [];
    for (const o of m.first_offsets || []) {
      const last = starts[starts.length - 1];
      if (last && o === last.at + last.length) last.length++;
      else starts.push({ at: o, length: 1, exact: true });
    }
    const covered = starts.length ? starts[starts.length - 1].at + starts[starts.length - 1].length : 0;
    for (let i = 0; i < n && starts.length < 6; i++) {
      const at = Math.floor(m.start + i * per);
      if (this.counts[i] > 0 && at + per > covered) starts.push({ at: Math.max(at, covered), length: 0, exact: false });
    }
    this.list.replaceChildren(
      el("span", { text: `${count(Number(m.total || 0))} bytes differ${m.length_differs ? ` (sizes ${m.sizes.map(human).join(" vs ")})` : ""}` }),
      ...starts.map((s) =>
        el(
          "button",
          { class: "offset", title: s.exact ? "a run of differing bytes" : "a part that differs (n: its first byte)", onclick: () => this.onPick(s.at) },
          `${s.exact ? "" : "≈"}${hex(s.at)}${s.length > 1 ? ` +${s.length}` : ""}`,
        ),
      ),
    );
  }

  toBlob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }
}
