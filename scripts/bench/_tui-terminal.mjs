// Fake terminal streams for driving the real chat UI in-process in the benchmark: a TTY stdin
// that Ink reads keys from (write() delivers them synchronously, as a keypress does), and a TTY
// stdout that timestamps every write (the frame writes end the measurement).
import { EventEmitter } from "node:events";

export class BenchStdin extends EventEmitter {
  isTTY = true;
  isRaw = false;
  #buffered = [];

  write(data) {
    this.#buffered.push(data);
    this.emit("readable");
  }

  read() {
    return this.#buffered.shift() ?? null;
  }

  setEncoding() {
    return this;
  }

  setRawMode(mode) {
    this.isRaw = mode;
    return this;
  }

  resume() {
    return this;
  }

  pause() {
    return this;
  }

  ref() {
    return this;
  }

  unref() {
    return this;
  }
}

export class BenchStdout extends EventEmitter {
  isTTY = true;
  /** performance.now() of every write since the last reset. */
  times = [];
  bytes = 0;
  /** The text of the latest writes (kept short). */
  recent = "";

  constructor(columns, rows) {
    super();
    this.columns = columns;
    this.rows = rows;
  }

  write(chunk, encodingOrCallback, callback) {
    this.times.push(performance.now());
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    this.bytes += text.length;
    this.recent = (this.recent + text).slice(-200_000);
    const cb = typeof encodingOrCallback === "function" ? encodingOrCallback : callback;
    if (typeof cb === "function") queueMicrotask(cb);
    return true;
  }

  reset() {
    this.times = [];
    this.recent = "";
  }
}
