// Fake terminal streams for driving the real chat UI in-process in the benchmark: a TTY stdin
// that Ink reads keys from (write() delivers them synchronously, as a keypress does), and a TTY
// stdout that timestamps every write (the frame writes end the measurement). Unlike the tests'
// (test/tui/helpers/terminal.ts), they keep only what the measurement reads.
import { EventEmitter } from "node:events";

export class BenchStdin extends EventEmitter {
  isTTY = true;
  isRaw = false;
  #buffered: string[] = [];

  write(data: string): void {
    this.#buffered.push(data);
    this.emit("readable");
  }

  read(): string | null {
    return this.#buffered.shift() ?? null;
  }

  setEncoding(): this {
    return this;
  }

  setRawMode(mode: boolean): this {
    this.isRaw = mode;
    return this;
  }

  resume(): this {
    return this;
  }

  pause(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  /** This fake, typed as the stream Ink and runTui take. */
  get stream(): NodeJS.ReadStream {
    return this as unknown as NodeJS.ReadStream;
  }
}

export class BenchStdout extends EventEmitter {
  isTTY = true;
  /** performance.now() of every write since the last reset. */
  times: number[] = [];
  bytes = 0;
  /** The text of the latest writes (kept short). */
  recent = "";

  constructor(readonly columns: number, readonly rows: number) {
    super();
  }

  write(chunk: string | Uint8Array, encodingOrCallback?: unknown, callback?: unknown): boolean {
    this.times.push(performance.now());
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    this.bytes += text.length;
    this.recent = (this.recent + text).slice(-200_000);
    const cb = typeof encodingOrCallback === "function" ? encodingOrCallback : callback;
    if (typeof cb === "function") queueMicrotask(cb as () => void);
    return true;
  }

  reset(): void {
    this.times = [];
    this.recent = "";
  }

  /** This fake, typed as the stream Ink and runTui take. */
  get stream(): NodeJS.WriteStream {
    return this as unknown as NodeJS.WriteStream;
  }
}
