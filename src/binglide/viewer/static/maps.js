// Overview maps: a range of a file as buckets of 2**level bytes, tiled like
// HiGlass: a tile is 4096 buckets aligned on its span, fetched once per level,
// shared by every map, cancelled when no map shows it any more.

import {
  BACKGROUND,
  CLASSES,
  ENTROPY_RAMP,
  NO_DATA,
  TILE_BUCKETS,
  el,
  hex,
  human,
  rampTable,
  sizedCanvas,
  xy2d,
} from "./util.js";

export const ROWS = 256;
export const PIXEL = 2;
const AXIS = 84;

/**
 * Columns of bucket cells: 128 (two Hilbert tiles side by side) on a wide
 * window, else 64, so that the maps, the views and the side panels fit in
 * one row at 1920 pixels (1840 and wider), and narrower windows keep the maps beside the views.
 */
export function mapColumns(width = window.innerWidth) {
  return width >= 1840 ? 128 : 64;
}

/**
 * The level (buckets of 2**level bytes) for a range of `length` bytes on a
 * map of `cells` cells: about one bucket a cell, at most a tile fewer than
 * the map holds, so that the tiles touching any range fit.
 */
export function levelFor(length, cells) {
  const capacity = cells - TILE_BUCKETS;
  if (length <= capacity) return 0;
  return Math.min(50, Math.ceil(Math.log2(length / capacity)));
}

const ENTROPY_LUT = rampTable(ENTROPY_RAMP);
const CLASS_RGB = Float64Array.from(CLASSES.flatMap((c) => c.color));
// Hilbert tiles are squares of 64 x 64 cells, side by side when the map is 128 wide.
const HILBERT_INDEX = new Uint16Array(TILE_BUCKETS); // (y * 64 + x) -> distance
for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) HILBERT_INDEX[y * 64 + x] = xy2d(6, x, y);

/** Tiles, fetched on demand and shared; what no map wants any more is cancelled. */
/*
 * The overlay's cell loop lives in a function of typed arrays and numbers
 * only, warmed at load, for the reason the bigram's paint loop does (see
 * views.js): inside `drawOverlay`, with the canvas and the map's fields, V8
 * threw its optimised code out again and again during a drag ("wrong map",
 * "insufficient type feedback", --trace-deopt) and compiled it anew (an
 * 18.6 ms TurboFan compile in one drag), on the cores the workers' kernels
 * need; up to 32,768 cells a paint ran in the interpreter meanwhile.
 */

/**
 * Dim the cells of `buckets` (bucket index per cell, -1 for none) outside
 * [lo, hi): set each cell's alpha in `mask` (RGBA) to 128 outside and 0
 * elsewhere, and mark in `rowsIn` each row holding a cell inside. Returns
 * whether any cell is dimmed.
 */
function maskOutside(buckets, mask, columns, bucket, lo, hi, rowsIn) {
  let dimmed = false;
  const rows = rowsIn.length;
  for (let y = 0; y < rows; y++) {
    let inRow = 0;
    for (let x = 0; x < columns; x++) {
      const cell = y * columns + x;
      const b = buckets[cell];
      const start = b * bucket;
      // Half-transparent black: the cell's colour at half its brightness.
      const outside = b >= 0 && (start + bucket <= lo || start >= hi);
      mask[cell * 4 + 3] = outside ? 128 : 0;
      if (outside) dimmed = true;
      else if (b >= 0) inRow = 1;
    }
    rowsIn[y] = inRow;
  }
  return dimmed;
}

{
  // Warm-up: a wide map's overlay, half its cells inside, into scratch arrays.
  const columns = 128;
  const buckets = new Float64Array(columns * ROWS);
  for (let i = 0; i < buckets.length; i++) buckets[i] = i % 7 === 0 ? -1 : i;
  const mask = new Uint8ClampedArray(buckets.length * 4);
  for (let round = 0; round < 4; round++) {
    maskOutside(buckets, mask, columns, 4096, 4096 * 1000 * round, 4096 * 20000, new Uint8Array(ROWS));
  }
}

export class TileStore {
  constructor(wire) {
    this.wire = wire;
    this.tiles = new Map(); // key -> {data, completion, precision, final, error, id}
    this.wants = new Map(); // consumer -> Set of keys
    this.onchange = () => {};
  }

  static key(file, layer, level, index) {
    return `${file}:${layer}:${level}:${index}`;
  }

  get(key) {
    return this.tiles.get(key);
  }

  want(consumer, specs) {
    this.wants.set(consumer, new Set(specs.map((s) => TileStore.key(s.file, s.layer, s.level, s.index))));
    const all = new Set();
    for (const keys of this.wants.values()) for (const k of keys) all.add(k);
    for (const [key, tile] of this.tiles) {
      if (!tile.final && tile.id && !all.has(key)) {
        this.wire.cancel(tile.id);
        this.wire.forget(tile.id);
        this.tiles.delete(key);
      }
    }
    for (const s of specs) {
      const key = TileStore.key(s.file, s.layer, s.level, s.index);
      if (this.tiles.has(key)) continue;
      const tile = { data: null, completion: 0, precision: 0, final: false, error: null, id: 0 };
      this.tiles.set(key, tile);
      tile.id = this.wire.request(
        "tile",
        { file: s.file, level: s.level, index: s.index, layer: s.layer },
        {
          onReport: (header, arrays) => {
            tile.data = arrays.entropy || arrays.shares;
            tile.completion = header.completion;
            tile.precision = header.precision;
            tile.cached = !!header.cached;
            this.onchange(key);
          },
          onEnd: (header) => {
            tile.id = 0;
            if (header.kind === "report") tile.final = true;
            else if (header.kind === "error") {
              tile.error = header.message;
              tile.final = true;
            } else this.tiles.delete(key); // cancelled: asked again when wanted
            this.onchange(key);
          },
        },
      );
    }
    this.trim(all);
  }

  trim(keep) {
    // Bound the page's memory: drop the oldest finished tiles nobody shows.
    if (this.tiles.size < 2048) return;
    for (const [key, tile] of this.tiles) {
      if (this.tiles.size < 1536) break;
      if (tile.final && !keep.has(key)) this.tiles.delete(key);
    }
  }
}

/** One overview map: a range of a file, in a linear or Hilbert layout. */
export class OverviewMap {
  constructor(store, { title, onSelect, onCursor, onZoom, onHover, columns = mapColumns() }) {
    this.store = store;
    this.columns = columns;
    this.title = title;
    this.onSelect = onSelect;
    this.onCursor = onCursor;
    this.onZoom = onZoom;
    this.onHover = onHover;
    this.file = 0;
    this.size = 0;
    this.lo = 0;
    this.hi = 0;
    this.child = null;
    this.cursor = null;
    this.mode = "class";
    this.layout = "linear";
    this.image = null;
    // For tests and the benchmark: full repaints of the map's cells, and of
    // its overlay (the highlighted range and the cursor) alone.
    this.paints = 0;
    this.overlayPaints = 0;
    this.build();
    store.onchangeMaps = store.onchangeMaps || [];
  }

  build() {
    this.canvas = el("canvas", { class: "map", tabindex: "-1" });
    this.axis = el("canvas", { class: "map-axis" });
    // Above the axis and the map: the highlighted range and the cursor, so
    // that a range change repaints this layer only, not the map's cells.
    this.overlay = el("canvas", { class: "map-overlay" });
    this.indicator = el("div", { class: "indicator" });
    this.caption = el("div", { class: "map-caption" });
    this.node = el(
      "section",
      { class: "panel map-panel" },
      el("header", {}, el("h2", { text: this.title }), this.indicator),
      el("div", { class: "map-body" }, this.axis, this.canvas, this.overlay),
      this.caption,
    );
    this.offscreen = document.createElement("canvas");
    this.maskCanvas = document.createElement("canvas");
    this.setColumns(this.columns);
    let anchor = null;
    let moved = false;
    this.canvas.addEventListener("mousedown", (e) => {
      const b = this.bucketAt(e);
      if (b < 0) return;
      anchor = b;
      moved = false;
      e.preventDefault();
    });
    window.addEventListener("mousemove", (e) => {
      if (anchor === null) return;
      const b = this.bucketAt(e, true);
      if (b < 0) return;
      // A drag is one history entry: its first move pushes, the rest replace it.
      const first = !moved && b !== anchor;
      if (b !== anchor) moved = true;
      if (moved) this.onSelect(...this.span(anchor, b), first ? "start" : false);
    });
    window.addEventListener("mouseup", (e) => {
      if (anchor === null) return;
      const b = this.bucketAt(e, true);
      if (moved && b >= 0) this.onSelect(...this.span(anchor, b), "end");
      else if (!moved) this.onCursor(Math.min(this.hi - 1, Math.max(this.lo, anchor * this.bucket)));
      anchor = null;
    });
    this.canvas.addEventListener("mousemove", (e) => {
      const b = this.bucketAt(e);
      this.onHover(b < 0 ? null : this.describe(b));
    });
    this.canvas.addEventListener("mouseleave", () => this.onHover(null));
    this.canvas.addEventListener(
      "wheel",
      (e) => {
        const b = this.bucketAt(e);
        if (b < 0) return;
        e.preventDefault();
        this.onZoom(Math.min(this.hi, Math.max(this.lo, b * this.bucket)), e.deltaY > 0 ? 2 : 0.5);
      },
      { passive: false },
    );
  }

  /**
   * Lay the map out `columns` cells wide (64 or 128) at the window's pixel
   * ratio; the next show() draws it.
   */
  setColumns(columns) {
    this.columns = columns;
    this.ratio = window.devicePixelRatio || 1;
    this.ctx = sizedCanvas(this.canvas, columns * PIXEL, ROWS * PIXEL);
    this.axisCtx = sizedCanvas(this.axis, AXIS, ROWS * PIXEL);
    this.overlayCtx = sizedCanvas(this.overlay, AXIS + columns * PIXEL, ROWS * PIXEL);
    this.offscreen.width = columns;
    this.offscreen.height = ROWS;
    this.offctx = this.offscreen.getContext("2d");
    this.image = this.offctx.createImageData(columns, ROWS);
    this.maskCanvas.width = columns;
    this.maskCanvas.height = ROWS;
    this.maskCtx = this.maskCanvas.getContext("2d");
    this.mask = this.maskCtx.createImageData(columns, ROWS);
    this.buckets = new Float64Array(columns * ROWS); // bucket index of each cell, -1 for none
    this.rowsIn = new Uint8Array(ROWS); // the overlay's: rows with a cell in the highlighted range
    this.drawn = null; // what the cells show: none yet
    this.overlaid = null;
  }

  /** Whether the map is laid out for `columns` at the window's current pixel ratio. */
  laidOutFor(columns) {
    return this.columns === columns && this.ratio === (window.devicePixelRatio || 1);
  }

  span(a, b) {
    const lo = Math.max(this.lo, Math.min(a, b) * this.bucket);
    const hi = Math.min(this.hi, (Math.max(a, b) + 1) * this.bucket);
    return [lo, Math.max(hi, lo + 1)];
  }

  bucketAt(e, clamp = false) {
    const r = this.canvas.getBoundingClientRect();
    let x = Math.floor((e.clientX - r.left) / PIXEL);
    let y = Math.floor((e.clientY - r.top) / PIXEL);
    if (clamp) {
      x = Math.max(0, Math.min(this.columns - 1, x));
      y = Math.max(0, Math.min(ROWS - 1, y));
    } else if (x < 0 || y < 0 || x >= this.columns || y >= ROWS) return -1;
    let b = this.buckets[y * this.columns + x];
    if (b < 0 && clamp) {
      // Past the end of the range: the nearest bucket shown.
      const first = Math.floor(this.lo / this.bucket);
      const last = Math.ceil(this.hi / this.bucket) - 1;
      b = y < ROWS / 2 && this.buckets[0] < 0 ? first : last;
    }
    return b;
  }

  describe(b) {
    const offset = b * this.bucket;
    const parts = [`${hex(offset)}`, `bucket ${human(this.bucket)}`];
    const index = Math.floor(b / TILE_BUCKETS);
    const j = b - index * TILE_BUCKETS;
    const ent = this.store.get(this.tileKey("entropy", index));
    if (ent && ent.data) parts.push(`entropy ${ent.data[j].toFixed(2)}`);
    const cls = this.store.get(this.tileKey("classes", index));
    if (cls && cls.data) {
      const shares = [];
      for (let k = 0; k < 5; k++) {
        const v = cls.data[j * 5 + k];
        if (v >= 3) shares.push(`${CLASSES[k].name} ${Math.round((v / 255) * 100)}%`);
      }
      parts.push(shares.join(" "));
    }
    return { offset, text: parts.join(" · ") };
  }

  tileKey(layer, index) {
    return TileStore.key(this.file, layer, this.level, index);
  }

  /** Show [lo, hi) of file (size bytes); child is the range to highlight. */
  show({ file, size, lo, hi, child, cursor, mode, layout }) {
    Object.assign(this, { file, size, lo, hi, child, cursor, mode, layout });
    this.layer = mode === "entropy" ? "entropy" : "classes";
    this.level = levelFor(hi - lo, this.columns * ROWS);
    this.bucket = 2 ** this.level;
    const first = Math.floor(lo / TILE_BUCKETS / this.bucket);
    const last = hi > lo ? Math.ceil(hi / this.bucket / TILE_BUCKETS) : first;
    const specs = [];
    for (let k = first; k < last; k++) specs.push({ file, layer: this.layer, level: this.level, index: k });
    this.store.want(this, specs);
    // The cells repaint when what they show changes (or a tile arrives: draw());
    // a new highlighted range or cursor repaints the overlay only.
    if (this.cellsKey() !== this.drawn) this.draw();
    else this.drawOverlay();
  }

  /** What the cells show: when it changes, they repaint. */
  cellsKey() {
    return `${this.file}:${this.size}:${this.lo}:${this.hi}:${this.layer}:${this.layout}:${this.level}:${this.columns}`;
  }

  draw() {
    const data = this.image.data;
    const b0 = Math.floor(this.lo / this.bucket);
    const b1 = Math.ceil(this.hi / this.bucket);
    const lastByte = Math.min(this.hi, this.size);
    const hilbert = this.layout === "hilbert";
    const entropy = this.layer === "entropy";
    const columns = this.columns;
    const across = columns / 64; // Hilbert tiles side by side
    const rowBase = Math.floor(b0 / columns);
    const tileBase = Math.floor(b0 / TILE_BUCKETS);
    let tileIndex = -1;
    let tile = null;
    let done = 0;
    let wanted = 0;
    let precision = 1;
    let painted = false;
    const seen = new Set();
    for (let y = 0; y < ROWS; y++) {
      for (let x = 0; x < columns; x++) {
        const cell = y * columns + x;
        let b;
        if (hilbert) {
          const t = tileBase + Math.floor(y / 64) * across + Math.floor(x / 64);
          b = t * TILE_BUCKETS + HILBERT_INDEX[(y % 64) * 64 + (x % 64)];
        } else b = (rowBase + y) * columns + x;
        let r = BACKGROUND[0];
        let g = BACKGROUND[1];
        let bl = BACKGROUND[2];
        const start = b * this.bucket;
        if (b < b0 || b >= b1 || start >= lastByte) {
          this.buckets[cell] = -1;
        } else {
          this.buckets[cell] = b;
          const k = Math.floor(b / TILE_BUCKETS);
          if (k !== tileIndex) {
            tileIndex = k;
            tile = this.store.get(this.tileKey(this.layer, k));
            if (!seen.has(k)) {
              seen.add(k);
              wanted++;
              if (tile) {
                done += tile.final && !tile.error ? 1 : tile.completion || 0;
                precision = Math.min(precision, tile.final && !tile.error ? 1 : tile.precision || 0);
              } else precision = 0;
            }
          }
          r = NO_DATA[0];
          g = NO_DATA[1];
          bl = NO_DATA[2];
          if (tile && tile.data) {
            painted = true;
            const j = b - k * TILE_BUCKETS;
            if (entropy) {
              const v = Math.max(0, Math.min(255, Math.round((tile.data[j] / 8) * 255))) * 3;
              r = ENTROPY_LUT[v];
              g = ENTROPY_LUT[v + 1];
              bl = ENTROPY_LUT[v + 2];
            } else {
              r = 0;
              g = 0;
              bl = 0;
              for (let c = 0; c < 5; c++) {
                const share = tile.data[j * 5 + c];
                r += share * CLASS_RGB[c * 3];
                g += share * CLASS_RGB[c * 3 + 1];
                bl += share * CLASS_RGB[c * 3 + 2];
              }
              r /= 255;
              g /= 255;
              bl /= 255;
            }
          }
        }
        const p = cell * 4;
        data[p] = r;
        data[p + 1] = g;
        data[p + 2] = bl;
        data[p + 3] = 255;
      }
    }
    this.offctx.putImageData(this.image, 0, 0);
    // For the benchmark: when a map first showed data.
    if (painted && window.binglide && !window.binglide.firstMapPaint) window.binglide.firstMapPaint = performance.now();
    const ctx = this.ctx;
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = `rgb(${BACKGROUND})`;
    ctx.fillRect(0, 0, columns * PIXEL, ROWS * PIXEL);
    ctx.drawImage(this.offscreen, 0, 0, columns * PIXEL, ROWS * PIXEL);
    this.drawAxis(rowBase, tileBase, hilbert);
    const drawn = this.cellsKey();
    if (drawn !== this.drawn) this.overlaid = null; // the buckets moved under the overlay
    this.drawn = drawn;
    this.paints++;
    this.drawOverlay();
    const errors = [...seen].map((k) => this.store.get(this.tileKey(this.layer, k))).filter((t) => t && t.error);
    this.completion = wanted ? done / wanted : 1;
    this.precision = wanted ? precision : 1;
    setIndicator(this.indicator, {
      completion: this.completion,
      precision: this.precision,
      error: errors.length ? errors[0].error : null,
      empty: this.size === 0,
    });
    this.caption.textContent =
      this.size === 0
        ? "empty file: nothing to show"
        : `${hex(this.lo)} – ${hex(this.hi)} · ${human(this.hi - this.lo)} · bucket ${human(this.bucket)}`;
  }

  /**
   * The overlay: the cells outside the highlighted range (the next map's, or
   * the views') dimmed, a bar beside its rows, and the cursor's cell framed.
   */
  drawOverlay() {
    const key = `${this.child}:${this.cursor}`;
    if (key === this.overlaid) return;
    this.overlaid = key;
    this.overlayPaints++;
    const ctx = this.overlayCtx;
    const columns = this.columns;
    const left = AXIS;
    ctx.clearRect(0, 0, AXIS + columns * PIXEL, ROWS * PIXEL);
    if (this.child && this.size > 0) {
      const [childLo, childHi] = this.child;
      const rowsIn = this.rowsIn;
      const dimmed = maskOutside(this.buckets, this.mask.data, columns, this.bucket, childLo, childHi, rowsIn);
      ctx.fillStyle = "#ffd400";
      for (let y = 0; y < ROWS; y++) if (rowsIn[y]) ctx.fillRect(AXIS - 3, y * PIXEL, 3, PIXEL);
      if (dimmed) {
        this.maskCtx.putImageData(this.mask, 0, 0);
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(this.maskCanvas, left, 0, columns * PIXEL, ROWS * PIXEL);
      }
    }
    if (this.cursor === null || this.cursor < this.lo || this.cursor >= this.hi) return;
    const b = Math.floor(this.cursor / this.bucket);
    for (let cell = 0; cell < this.buckets.length; cell++) {
      if (this.buckets[cell] === b) {
        const x = left + (cell % columns) * PIXEL;
        const y = Math.floor(cell / columns) * PIXEL;
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, 0, columns * PIXEL, ROWS * PIXEL); // the frame stays on the map
        ctx.clip();
        ctx.strokeStyle = "#ffd400";
        ctx.lineWidth = 1.5;
        ctx.strokeRect(x - 3, y - 3, PIXEL + 6, PIXEL + 6);
        ctx.restore();
        return;
      }
    }
  }

  drawAxis(rowBase, tileBase, hilbert) {
    const ctx = this.axisCtx;
    ctx.clearRect(0, 0, AXIS, ROWS * PIXEL);
    ctx.fillStyle = "#a8a8b3";
    ctx.font = "10px ui-monospace, monospace";
    ctx.textAlign = "right";
    ctx.textBaseline = "top";
    if (this.size === 0) return;
    const step = hilbert ? 64 : 32;
    for (let y = 0; y < ROWS; y += step) {
      const b = hilbert ? (tileBase + (y / 64) * (this.columns / 64)) * TILE_BUCKETS : (rowBase + y) * this.columns;
      const offset = b * this.bucket;
      if (offset >= this.size || offset >= this.hi) break;
      ctx.fillText(hex(offset), AXIS - 6, y * PIXEL + 1);
      ctx.fillRect(AXIS - 5, y * PIXEL, 2, 1);
    }
  }
}

/** Fill an indicator: a bar for completion and a word for precision. */
export function setIndicator(node, { completion, precision, error, empty, running }) {
  let bar = node.querySelector(".bar > i");
  let label = node.querySelector("span");
  if (!bar) {
    node.append(el("div", { class: "bar" }, el("i")), el("span"));
    bar = node.querySelector(".bar > i");
    label = node.querySelector("span");
  }
  bar.style.width = `${Math.round((completion || 0) * 100)}%`;
  node.classList.toggle("exact", !error && completion >= 1 && precision >= 1);
  node.classList.toggle("error", !!error);
  node.title = error || "";
  if (error) label.textContent = "error";
  else if (empty) label.textContent = "empty";
  else if (completion >= 1 && precision >= 1) label.textContent = "exact";
  else if (precision > 0) {
    const pct = precision * 100;
    const digits = pct < 0.1 ? 3 : pct < 1 ? 2 : pct < 10 ? 1 : 0;
    label.textContent = `${Number(pct.toFixed(digits))}% read`;
  } else label.textContent = running === false ? "" : "waiting";
  node.dataset.completion = String(completion || 0);
  node.dataset.precision = String(precision || 0);
}
