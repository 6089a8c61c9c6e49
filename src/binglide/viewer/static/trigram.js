// The trigram: a 3-D point cloud (WebGL2) of the most frequent byte triples,
// coloured by position, brightness by log(count); the mouse rotates it.

import { el, throttled } from "./util.js";
import { Panel } from "./views.js";

/** The canvas's side, in CSS pixels. */
const SIDE = 272;

const VERTEX = `#version 300 es
in vec3 position;
in float level;
uniform mat4 transform;
uniform float pointSize;
out vec4 color;
void main() {
  gl_Position = transform * vec4(position, 1.0);
  gl_PointSize = pointSize;
  vec3 base = position * 0.5 + 0.5;
  color = vec4((0.25 + 0.75 * base) * (0.2 + 0.8 * level), 1.0);
}`;
const FRAGMENT = `#version 300 es
precision mediump float;
in vec4 color;
out vec4 outColor;
void main() { outColor = color; }`;

function rotation(yaw, pitch) {
  const cy = Math.cos(yaw);
  const sy = Math.sin(yaw);
  const cp = Math.cos(pitch);
  const sp = Math.sin(pitch);
  // Column-major: pitch about x after yaw about y, scaled to fit the view.
  const s = 0.55;
  return new Float32Array([
    s * cy, s * sy * sp, s * sy * cp * 0.1, 0,
    0, s * cp, -s * sp * 0.1, 0,
    -s * sy, s * cy * sp, s * cy * cp * 0.1, 0,
    0, 0, 0, 1,
  ]);
}

export class TrigramView {
  constructor({ onExport, onHover }) {
    this.panel = new Panel("trigram", { exports: ["png", "json", "csv", "npz"], onExport });
    // 272 pixels: the bigram beside it and the page fit in one row at 1920.
    this.canvas = el("canvas", { class: "trigram", width: SIDE, height: SIDE });
    this.canvas.style.width = `${SIDE}px`;
    this.canvas.style.height = `${SIDE}px`;
    this.panel.body.append(this.canvas);
    this.yaw = 0.8;
    this.pitch = 0.5;
    this.count = 0;
    this.points = null;
    this.gl = this.canvas.getContext("webgl2", { preserveDrawingBuffer: true, antialias: false });
    if (this.gl) this.setup();
    else this.ctx2d = this.canvas.getContext("2d");
    let last = null;
    this.canvas.addEventListener("mousedown", (e) => {
      last = [e.clientX, e.clientY];
      e.preventDefault();
    });
    window.addEventListener("mousemove", (e) => {
      if (!last) return;
      this.yaw += (e.clientX - last[0]) * 0.01;
      this.pitch = Math.max(-1.5, Math.min(1.5, this.pitch + (e.clientY - last[1]) * 0.01));
      last = [e.clientX, e.clientY];
      this.draw();
    });
    window.addEventListener("mouseup", () => (last = null));
    this.canvas.addEventListener("mousemove", () => onHover({ text: "drag to rotate · axes: 1st byte (x), 2nd (y), 3rd (z)" }));
    this.canvas.addEventListener("mouseleave", () => onHover(null));
    this.draw();
  }

  setup() {
    const gl = this.gl;
    const compile = (type, source) => {
      const shader = gl.createShader(type);
      gl.shaderSource(shader, source);
      gl.compileShader(shader);
      return shader;
    };
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    this.program = program;
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    this.buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffer);
    const position = gl.getAttribLocation(program, "position");
    const level = gl.getAttribLocation(program, "level");
    gl.enableVertexAttribArray(position);
    gl.vertexAttribPointer(position, 3, gl.FLOAT, false, 16, 0);
    gl.enableVertexAttribArray(level);
    gl.vertexAttribPointer(level, 1, gl.FLOAT, false, 16, 12);
    this.edges = gl.createBuffer();
    const e = [];
    const corners = [-1, 1];
    for (const a of corners) for (const b of corners) {
      e.push(-1, a, b, 0.4, 1, a, b, 0.4, a, -1, b, 0.4, a, 1, b, 0.4, a, b, -1, 0.4, a, b, 1, 0.4);
    }
    this.edgeData = new Float32Array(e);
  }

  update(header, arrays) {
    this.panel.progress(header);
    this.pending = [header, arrays];
    if (!this.scheduled) this.scheduled = throttled(() => this.load(...this.pending));
    this.scheduled();
  }

  load(header, arrays) {
    const cells = arrays.cells;
    const counts = arrays.counts;
    const bits = header.meta.bits || 6;
    const side = 1 << bits;
    let max = 1;
    for (const c of counts) if (c > max) max = c;
    const logMax = Math.log1p(max);
    const points = new Float32Array(cells.length * 4);
    for (let i = 0; i < cells.length; i++) {
      const cell = cells[i];
      const z = cell % side;
      const y = Math.floor(cell / side) % side;
      const x = Math.floor(cell / side / side);
      points[i * 4] = (x / (side - 1)) * 2 - 1;
      points[i * 4 + 1] = (y / (side - 1)) * 2 - 1;
      points[i * 4 + 2] = (z / (side - 1)) * 2 - 1;
      points[i * 4 + 3] = Math.log1p(counts[i]) / logMax;
    }
    this.points = points;
    this.count = cells.length;
    this.meta = header.meta;
    this.panel.caption.textContent = `${Number(header.meta.distinct || 0).toLocaleString()} distinct triples (top ${this.count.toLocaleString()} shown), ${bits} bits per byte`;
    this.draw();
  }

  draw() {
    const transform = rotation(this.yaw, this.pitch);
    if (!this.gl) return this.draw2d(transform);
    const gl = this.gl;
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(0.086, 0.086, 0.1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.useProgram(this.program);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE);
    gl.uniformMatrix4fv(gl.getUniformLocation(this.program, "transform"), false, transform);
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffer);
    gl.bufferData(gl.ARRAY_BUFFER, this.edgeData, gl.STATIC_DRAW);
    gl.drawArrays(gl.LINES, 0, this.edgeData.length / 4);
    if (this.points && this.count) {
      gl.uniform1f(gl.getUniformLocation(this.program, "pointSize"), 2.0);
      gl.bufferData(gl.ARRAY_BUFFER, this.points, gl.DYNAMIC_DRAW);
      gl.drawArrays(gl.POINTS, 0, this.count);
    }
  }

  draw2d(m) {
    // Without WebGL2: the same projection, drawn point by point.
    const ctx = this.ctx2d;
    ctx.fillStyle = "#16161a";
    ctx.fillRect(0, 0, SIDE, SIDE);
    if (!this.points) return;
    for (let i = 0; i < this.count; i++) {
      const x = this.points[i * 4];
      const y = this.points[i * 4 + 1];
      const z = this.points[i * 4 + 2];
      const l = this.points[i * 4 + 3];
      const px = m[0] * x + m[4] * y + m[8] * z;
      const py = m[1] * x + m[5] * y + m[9] * z;
      const c = [x, y, z].map((v) => Math.round((0.25 + 0.75 * (v * 0.5 + 0.5)) * (0.2 + 0.8 * l) * 255));
      ctx.fillStyle = `rgb(${c})`;
      ctx.fillRect(SIDE / 2 + (px * SIDE) / 2, SIDE / 2 - (py * SIDE) / 2, 2, 2);
    }
  }

  toBlob() {
    this.draw();
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }
}
