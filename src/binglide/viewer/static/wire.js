// The page's end of the protocol (docs/viewer.md): JSON requests out, binary
// frames in (a JSON header, then typed arrays straight over the frame's bytes).

const TYPED = {
  u8: Uint8Array,
  i8: Int8Array,
  u16: Uint16Array,
  i16: Int16Array,
  u32: Uint32Array,
  i32: Int32Array,
  f32: Float32Array,
  f64: Float64Array,
};

/** Decode one frame: {header, arrays: {name: TypedArray}}. */
export function decodeFrame(buffer) {
  const view = new DataView(buffer);
  const length = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const base = Math.ceil((4 + length) / 8) * 8;
  const arrays = {};
  for (const item of header.arrays || []) {
    const Type = TYPED[item.dtype];
    arrays[item.name] = new Type(buffer, base + item.offset, item.length / Type.BYTES_PER_ELEMENT);
    arrays[item.name].shape = item.shape;
  }
  delete header.arrays;
  return { header, arrays };
}

/** One WebSocket to the viewer's server; requests by id, answered by callbacks. */
export class Wire {
  constructor(url) {
    this.url = url;
    this.nextId = 1;
    this.handlers = new Map();
    this.slots = new Map();
    this.queue = [];
    this.open = false;
    this.onstate = () => {};
    this.stats = { sent: 0, frames: 0, bytes: 0 };
    this.connect();
  }

  connect() {
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.open = true;
      this.onstate("open");
      for (const m of this.queue) ws.send(m);
      this.queue = [];
    };
    ws.onclose = () => {
      this.open = false;
      this.onstate("closed");
      // Every open request ends: the server cancelled them with the session.
      for (const [id, h] of this.handlers) {
        h.onEnd && h.onEnd({ id, kind: "error", final: true, message: "the viewer's server went away" });
      }
      this.handlers.clear();
    };
    ws.onmessage = (event) => this.receive(event.data);
    this.ws = ws;
  }

  receive(data) {
    if (!(data instanceof ArrayBuffer)) return;
    this.stats.frames++;
    this.stats.bytes += data.byteLength;
    const { header, arrays } = decodeFrame(data);
    const h = this.handlers.get(header.id);
    if (!h) {
      if (header.kind === "error") console.warn("binglide:", header.message);
      return;
    }
    if (header.kind === "report" || header.kind === "info" || header.kind === "file") {
      h.onReport && h.onReport(header, arrays);
    }
    if (header.final) {
      this.handlers.delete(header.id);
      h.onEnd && h.onEnd(header, arrays);
    }
  }

  send(message) {
    const text = JSON.stringify(message);
    this.stats.sent++;
    if (this.open) this.ws.send(text);
    else this.queue.push(text);
  }

  /** Send a request; returns its id. A slot cancels the request that held it. */
  request(op, params, { slot, onReport, onEnd } = {}) {
    const id = this.nextId++;
    this.handlers.set(id, { onReport, onEnd });
    const message = { id, op, ...params };
    if (slot) {
      // The server cancels the slot's previous request; its late frames are moot.
      const old = this.slots.get(slot);
      if (old !== undefined) this.handlers.delete(old);
      this.slots.set(slot, id);
      message.slot = slot;
    }
    this.send(message);
    return id;
  }

  /** Ask for one answer: resolves with the final {header, arrays}, rejects on error. */
  ask(op, params, slot) {
    return new Promise((resolve, reject) => {
      this.request(op, params, {
        slot,
        onEnd: (header, arrays) => {
          if (header.kind === "error") reject(new Error(header.message));
          else if (header.kind === "cancelled") reject(new Error("cancelled"));
          else resolve({ header, arrays });
        },
      });
    });
  }

  /** Cancel whatever request holds `slot` (its end frame is ignored). */
  cancelSlot(slot) {
    const id = this.slots.get(slot);
    if (id === undefined) return;
    this.slots.delete(slot);
    this.cancel(id);
    this.forget(id);
  }

  cancel(id) {
    if (this.handlers.has(id)) this.send({ cancel: id });
  }

  /** Forget a request's callbacks (its end frame is then ignored). */
  forget(id) {
    this.handlers.delete(id);
  }
}
