// The fake terminal's stdout for driving the real chat UI in-process in the benchmark: a TTY
// stdout that timestamps every write (the frame writes end the measurement). Unlike the tests'
// FakeStdout (test/tui/helpers/terminal.ts) it keeps only what the measurement reads; the
// benchmark's stdin is the tests' FakeStdin (write() delivers a key synchronously, as a
// keypress does).
import { EventEmitter } from "node:events";

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
