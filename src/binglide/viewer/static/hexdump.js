// The hex dump at the cursor: only the rows shown are fetched (the `data`
// service), one dump per file; with two files, differing bytes are marked.

import { Panel } from "./views.js";
import { classOf, el, hex, hex2 } from "./util.js";


export const ROW = 16;
// What the character column shows for each byte (HTML-escaped).
const CHAR = Array.from({ length: 256 }, (_, b) =>
  b >= 0x20 && b < 0x7f ? ({ "<": "&lt;", ">": "&gt;", "&": "&amp;" }[String.fromCharCode(b)] || String.fromCharCode(b)) : "·",
);
/** Rows shown: 24 for one file, 16 for each of two (stacked). */
export const ROWS = 24;

export class HexDump {
  constructor(wire, { files, onCursor, onExport }) {
    this.wire = wire;
    this.files = files; // [{index, name, size}]
    this.onCursor = onCursor;
    this.panel = new Panel("hex dump", { exports: ["json", "csv"], onExport });
    this.columns = el("div", { class: "hexdump-columns" });
    this.panel.body.append(this.columns);
    this.dumps = files.map((f) => ({ file: f, data: null, start: 0, pre: el("pre", { class: "hexdump" }) }));
    for (const d of this.dumps) {
      this.columns.append(el("div", { class: "hexdump-file" }, el("div", { class: "hexdump-name", text: d.file.name }), d.pre));
      d.pre.addEventListener("click", (e) => {
        const t = e.target.closest("[data-offset]");
        if (t) this.onCursor(Number(t.dataset.offset));
      });
      d.pre.addEventListener(
        "wheel",
        (e) => {
          e.preventDefault();
          this.onCursor(Math.max(0, this.cursor + Math.sign(e.deltaY) * ROW * 3));
        },
        { passive: false },
      );
    }
    this.cursor = 0;
    this.rows = files.length > 1 ? 16 : ROWS;
    this.columns.classList.toggle("stacked", files.length > 1);
    // The dump's width is known before any byte arrives (the page lays out
    // once): the offset's digits, 16 bytes in two groups, 16 characters and
    // the margins between them (style.css).
    const end = Math.max(...files.map((f) => f.size || 0));
    const digits = Math.max(4, Math.max(end, 1).toString(16).length);
    for (const d of this.dumps) {
      d.pre.style.height = `${this.rows * 16}px`;
      d.pre.style.minWidth = `calc(${digits + 16 * 3 + 1 + 16}ch + 14px)`;
    }
  }

  /** The window of rows shown around `cursor`: the cursor's row a third down. */
  window(cursor) {
    const size = Math.max(...this.files.map((f) => f.size || 0));
    const row = Math.floor(cursor / ROW) * ROW;
    let start = Math.max(0, row - Math.floor(this.rows / 3) * ROW);
    const lastRow = Math.max(0, Math.ceil(size / ROW) * ROW - this.rows * ROW);
    start = Math.min(start, lastRow);
    return start;
  }

  show(cursor) {
    this.cursor = cursor;
    const start = this.window(cursor);
    let pending = this.dumps.length;
    let worst = { completion: 1, precision: 1 };
    for (const d of this.dumps) {
      if (d.data && d.start === start) {
        pending--;
        continue;
      }
      this.wire.request(
        "data",
        { file: d.file.index, start, size: this.rows * ROW },
        {
          slot: `hexdump:${d.file.index}`,
          onReport: (header, arrays) => {
            d.data = arrays.bytes;
            d.start = start;
            d.serial = (d.serial || 0) + 1;
            worst = header;
          },
          onEnd: (header) => {
            if (header.kind === "error") this.panel.failed(header.message);
            pending--;
            if (pending <= 0) {
              this.panel.progress(worst);
              this.render();
            }
          },
        },
      );
    }
    if (pending <= 0) {
      this.panel.progress({ completion: 1, precision: 1 });
      this.render();
    }
  }

  render() {
    const key = `${this.cursor}:${this.dumps.map((d) => `${d.start}/${d.data ? d.data.length : -1}/${d.serial || 0}`).join(",")}`;
    if (key === this.rendered) return; // nothing changed: no DOM work
    this.rendered = key;
    this.renders = (this.renders || 0) + 1; // for the benchmark
    const other = (d) => this.dumps.find((x) => x !== d);
    for (const d of this.dumps) {
      // One string per dump: a few hundred spans, built without a DOM call each.
      const data = d.data || new Uint8Array(0);
      const peer = this.dumps.length > 1 ? other(d) : null;
      const peerData = peer && peer.data && peer.start === d.start ? peer.data : null;
      const end = Math.max(d.file.size || 0, peer ? peer.file.size || 0 : 0);
      const digits = Math.max(4, Math.max(end, 1).toString(16).length);
      const html = [];
      for (let r = 0; r < this.rows; r++) {
        const offset = d.start + r * ROW;
        if (offset >= end && r > 0) break;
        let bytes = "";
        let chars = "";
        for (let i = 0; i < ROW; i++) {
          const at = r * ROW + i;
          const o = offset + i;
          const gap = i === 7 ? "  " : " ";
          if (at >= data.length) {
            bytes += `<span class="b none">  </span>${gap}`;
            chars += `<span class="c none"> </span>`;
            continue;
          }
          const b = data[at];
          let cls = `k${classOf(b)}`;
          if (peerData && (at >= peerData.length || peerData[at] !== b)) cls += " differs";
          if (o === this.cursor) cls += " cursor";
          bytes += `<span class="b ${cls}" data-offset="${o}">${hex2(b)}</span>${gap}`;
          chars += `<span class="c ${cls}" data-offset="${o}">${CHAR[b]}</span>`;
        }
        html.push(
          `<div class="row"><span class="off">${offset.toString(16).padStart(digits, "0")}</span><span class="bytes">${bytes}</span><span class="chars">${chars}</span></div>`,
        );
      }
      if (!data.length && !(d.file.size > 0)) html.push(`<div class="row empty">empty file</div>`);
      d.pre.innerHTML = html.join("");
    }
    this.panel.caption.textContent = `cursor ${hex(this.cursor)} · ↑↓ a row, wheel to scroll, click a byte`;
  }
}
