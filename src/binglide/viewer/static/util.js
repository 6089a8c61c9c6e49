// Shared helpers: offsets as hex, colour ramps (the same as `binglide ... --png`),
// the Hilbert curve, and small DOM helpers.

export const TILE_BUCKETS = 4096;

/** An offset as hex, grouped by 4 digits from the right: 0x1_0000_0000. */
export function hex(n, { group = true } = {}) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  const s = Math.floor(n).toString(16);
  if (!group || s.length <= 4) return "0x" + s;
  const parts = [];
  for (let i = s.length; i > 0; i -= 4) parts.unshift(s.slice(Math.max(0, i - 4), i));
  return "0x" + parts.join("_");
}

/** A byte as two hex digits. */
export function hex2(b) {
  return b.toString(16).padStart(2, "0");
}

/** A size for people: 1.5 MiB. */
export function human(n) {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${units[i]}`;
}

/** A count for people: 1,234 or 6.8e10. */
export function count(n) {
  return n < 1e7 ? Math.round(n).toLocaleString("en") : n.toExponential(1).replace("+", "");
}

/** Parse "0x1000", "4096", "4K", "1.5M", "2G" into a byte offset, or null. */
export function parseOffset(text) {
  const t = String(text).trim().replace(/_/g, "").toLowerCase();
  if (!t) return null;
  if (/^0x[0-9a-f]+$/.test(t)) return parseInt(t.slice(2), 16);
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/.exec(t);
  if (!m) return null;
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]];
  return Math.floor(parseFloat(m[1]) * mult);
}

// Colour ramps as [position, [r, g, b]] stops (cli/pictures.py has the same).
export const INFERNO = [
  [0.0, [12, 6, 40]],
  [0.25, [87, 16, 110]],
  [0.5, [188, 55, 84]],
  [0.75, [249, 142, 9]],
  [1.0, [252, 255, 164]],
];
export const TEXT_RAMP = [
  [0.0, [8, 22, 60]],
  [0.3, [18, 62, 140]],
  [0.6, [28, 140, 200]],
  [0.8, [80, 210, 240]],
  [1.0, [225, 255, 255]],
];
export const ENTROPY_RAMP = [
  [0.0, [40, 60, 200]],
  [0.3, [0, 150, 230]],
  [0.55, [30, 190, 90]],
  [0.75, [235, 215, 20]],
  [0.88, [250, 130, 10]],
  [1.0, [225, 25, 25]],
];
// Byte classes of scurve/binvis (and `binglide data --png`), ColorBrewer Set1.
export const CLASSES = [
  { name: "0x00", color: [0, 0, 0] },
  { name: "control", color: [77, 175, 74] },
  { name: "printable", color: [55, 126, 184] },
  { name: "0x80–0xFE", color: [228, 26, 28] },
  { name: "0xFF", color: [255, 255, 255] },
];
export const NO_DATA = [40, 40, 44];
export const BACKGROUND = [22, 22, 26];

/** The colour at t in [0, 1] along a ramp. */
export function ramp(t, stops) {
  if (!(t > 0)) return stops[0][1];
  if (t >= 1) return stops[stops.length - 1][1];
  for (let i = 1; i < stops.length; i++) {
    if (t <= stops[i][0]) {
      const [p0, c0] = stops[i - 1];
      const [p1, c1] = stops[i];
      const f = (t - p0) / (p1 - p0);
      return [0, 1, 2].map((k) => Math.round(c0[k] + (c1[k] - c0[k]) * f));
    }
  }
  return stops[stops.length - 1][1];
}

/** A 256-entry lookup table (Uint8Array of r, g, b) of a ramp. */
export function rampTable(stops) {
  const table = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) table.set(ramp(i / 255, stops), i * 3);
  return table;
}

/** The class (index into CLASSES) of a byte value. */
export function classOf(b) {
  if (b === 0) return 0;
  if (b === 0xff) return 4;
  if ((b >= 0x20 && b < 0x7f) || b === 9 || b === 10 || b === 13) return 2;
  if (b < 0x80) return 1;
  return 3;
}

export function isPrintable(b) {
  return b >= 0x20 && b < 0x7f;
}

/** Hilbert curve: distance d along a curve of side 2**order to [x, y]. */
export function d2xy(order, d) {
  let x = 0;
  let y = 0;
  let t = d;
  for (let s = 1; s < 1 << order; s <<= 1) {
    const rx = 1 & (t >> 1);
    const ry = 1 & (t ^ rx);
    if (ry === 0) {
      if (rx === 1) {
        x = s - 1 - x;
        y = s - 1 - y;
      }
      const tmp = x;
      x = y;
      y = tmp;
    }
    x += s * rx;
    y += s * ry;
    t >>= 2;
  }
  return [x, y];
}

/** Hilbert curve: [x, y] to the distance along a curve of side 2**order. */
export function xy2d(order, x, y) {
  let d = 0;
  for (let s = (1 << order) >> 1; s > 0; s >>= 1) {
    const rx = (x & s) > 0 ? 1 : 0;
    const ry = (y & s) > 0 ? 1 : 0;
    d += s * s * ((3 * rx) ^ ry);
    if (ry === 0) {
      if (rx === 1) {
        x = s - 1 - x;
        y = s - 1 - y;
      }
      const tmp = x;
      x = y;
      y = tmp;
    }
  }
  return d;
}

/** Create an element: el("div", {class: "x", onclick: f}, child, "text", ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the page's CSP
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c);
  }
  return node;
}

/** A canvas whose backing store matches the device pixels of its CSS size. */
export function sizedCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.style.width = width + "px";
  canvas.style.height = height + "px";
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

/** Call fn at most once per animation frame, with the latest arguments. */
export function perFrame(fn) {
  let pending = null;
  return (...args) => {
    const first = pending === null;
    pending = args;
    if (first) {
      requestAnimationFrame(() => {
        const a = pending;
        pending = null;
        fn(...a);
      });
    }
  };
}

/**
 * Call fn now if it has not run in the last frame, else once at the next
 * frame with the latest arguments: the first answer paints at once, a burst
 * of answers paints once a frame.
 */
export function throttled(fn) {
  let last = -Infinity;
  let pending = null;
  return (...args) => {
    const now = performance.now();
    if (pending === null && now - last >= 16) {
      last = now;
      fn(...args);
      return;
    }
    const first = pending === null;
    pending = args;
    if (first) {
      requestAnimationFrame(() => {
        const a = pending;
        pending = null;
        last = performance.now();
        fn(...a);
      });
    }
  };
}

/** Nice tick positions for an axis over [lo, hi): powers of two for offsets. */
export function offsetTicks(lo, hi, count) {
  const span = Math.max(1, hi - lo);
  let step = 2 ** Math.ceil(Math.log2(span / Math.max(1, count)));
  step = Math.max(1, step);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push(t);
  return ticks;
}

/** Save a blob as a file the browser downloads. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
