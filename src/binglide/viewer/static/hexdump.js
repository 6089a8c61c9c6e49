// The hex dump at the cursor: only the rows shown are fetched (the `data`
// service), one dump per file; with two files, differing bytes are marked.

import { Panel } from "./views.js";
import { classOf, el, hex, hex2 } from "./util.js";


export const ROW = 16;
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
  }

  /** The window of rows shown around `cursor`: the cursor's row a third down. */
  window(cursor) {
    const size = Math.max(...this.files.map((f) => f.size || 0));
    const row = Math.floor(cursor / ROW) * ROW;
    let start = Math.max(0, row - Math.floor(ROWS / 3) * ROW);
    const lastRow = Math.max(0, Math.ceil(size / ROW) * ROW - ROWS * ROW);
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
        { file: d.file.index, start, size: ROWS * ROW },
        {
          slot: `hexdump:${d.file.index}`,
          onReport: (header, arrays) => {
            d.data = arrays.bytes;
            d.start = start;
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
    const other = (d) => this.dumps.find((x) => x !== d);
    for (const d of this.dumps) {
      const lines = [];
      const data = d.data || new Uint8Array(0);
      const peer = this.dumps.length > 1 ? other(d) : null;
      const peerData = peer && peer.data && peer.start === d.start ? peer.data : null;
      const digits = Math.max(4, Math.max(d.file.size || 0, 1).toString(16).length);
      for (let r = 0; r < ROWS; r++) {
        const offset = d.start + r * ROW;
        if (offset >= Math.max(d.file.size || 0, peer ? peer.file.size || 0 : 0) && r > 0) break;
        const line = el("div", { class: "row" }, el("span", { class: "off", text: offset.toString(16).padStart(digits, "0") }));
        const hexes = el("span", { class: "bytes" });
        const chars = el("span", { class: "chars" });
        for (let i = 0; i < ROW; i++) {
          const at = r * ROW + i;
          const o = offset + i;
          if (at >= data.length) {
            hexes.append(el("span", { class: "b none", text: "  " }), " ");
            chars.append(el("span", { class: "c none", text: " " }));
            continue;
          }
          const b = data[at];
          let cls = `b k${classOf(b)}`;
          if (peerData && (at >= peerData.length || peerData[at] !== b)) cls += " differs";
          if (o === this.cursor) cls += " cursor";
          hexes.append(el("span", { class: cls, "data-offset": o, text: hex2(b) }), i === 7 ? "  " : " ");
          const ch = b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "·";
          chars.append(el("span", { class: cls.replace(/\bb\b/, "c"), "data-offset": o, text: ch }));
        }
        line.append(hexes, chars);
        lines.push(line);
      }
      if (!data.length && !(d.file.size > 0)) lines.push(el("div", { class: "row empty", text: "empty file" }));
      d.pre.replaceChildren(...lines);
    }
    this.panel.caption.textContent = `cursor ${hex(this.cursor)} · ↑↓ a row, wheel to scroll, click a byte`;
  }
}
