// Fake terminal streams for rendering the UI in-process: a TTY stdin the test types into, and a
// TTY stdout with a size that can change (ink-testing-library's is fixed at 100 columns with
// no rows). Everything written is kept.
import { EventEmitter } from "node:events";

// CSI/OSC/other escape sequences, for reading frames as plain text.
const ANSI = /\u001B(?:\[[0-?]*[ -/]*[@-~]|\][^\u0007\u001B]*(?:\u0007|\u001B\\)|[@-Z\\-_])/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

export class FakeStdin extends EventEmitter {
  isTTY = true;
  rawMode = false;
  private buffered: string[] = [];

  constructor() {
    super();
    // Like a real stream: a reader that starts listening late still gets what was typed.
    this.on("newListener", (event: string) => {
      if (event === "readable" && this.buffered.length > 0) queueMicrotask(() => this.emit("readable"));
    });
  }

  /** True once the UI reads keys. */
  get listening(): boolean {
    return this.listenerCount("readable") > 0;
  }

  /** Types raw bytes, as a terminal would deliver them. */
  write(data: string): void {
    this.buffered.push(data);
    this.emit("readable");
    this.emit("data", data);
  }

  read(): string | null {
    return this.buffered.shift() ?? null;
  }

  /** This fake, typed as the stream Ink and runTui take. */
  get stream(): NodeJS.ReadStream {
    return this as unknown as NodeJS.ReadStream;
  }

  setEncoding(): this {
    return this;
  }

  setRawMode(mode: boolean): this {
    this.rawMode = mode;
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
}

export class FakeStdout extends EventEmitter {
  isTTY = true;
  /** Every write, in order. */
  readonly writes: string[] = [];

  constructor(public columns = 100, public rows = 30) {
    super();
  }

  write(chunk: string | Uint8Array, encodingOrCallback?: unknown, callback?: unknown): boolean {
    this.writes.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
    const cb = typeof encodingOrCallback === "function" ? encodingOrCallback : callback;
    if (typeof cb === "function") queueMicrotask(() => (cb as () => void)());
    return true;
  }

  /** This fake, typed as the stream Ink and runTui take. */
  get stream(): NodeJS.WriteStream {
    return this as unknown as NodeJS.WriteStream;
  }

  resize(columns: number, rows: number): void {
    this.columns = columns;
    this.rows = rows;
    this.emit("resize");
  }

  /** Everything written, escape sequences removed. */
  text(): string {
    return stripAnsi(this.writes.join(""));
  }
}

/** The keys tests press, as the bytes a terminal sends. */
export const KEY = {
  enter: "\r",
  backspace: "\u007F",
  delete: "\u001B[3~",
  left: "\u001B[D",
  right: "\u001B[C",
  home: "\u001B[H",
  end: "\u001B[F",
  ctrlC: "\u0003",
  ctrlD: "\u0004",
  ctrlN: "\u000E",
  ctrlP: "\u0010",
  ctrlA: "\u0001",
  ctrlU: "\u0015",
  ctrlE: "\u0005",
  ctrlK: "\u000B",
  ctrlW: "\u0017",
  up: "\u001B[A",
  down: "\u001B[B",
  tab: "\t",
  shiftTab: "\u001B[Z",
  pageUp: "\u001B[5~",
  pageDown: "\u001B[6~",
  ctrlHome: "\u001B[1;5H",
  ctrlEnd: "\u001B[1;5F",
  altHome: "\u001B[1;3H",
  altEnd: "\u001B[1;3F",
  ctrlLeft: "\u001B[1;5D",
  escape: "\u001B",
  altEnter: "\u001B\r",
  /** Alt (Meta) with a key: ESC then the key, as terminals send it. */
  alt: (key: string) => `\u001B${key}`,
  /** SGR mouse reports of the wheel (sent only while mouse reporting is on). */
  wheelUp: "\u001B[<64;10;5M",
  wheelDown: "\u001B[<65;10;5M",
  paste: (text: string) => `\u001B[200~${text}\u001B[201~`,
} as const;
