// The stdout Ink draws on: a stand-in for the terminal that plays Ink's output onto a screen
// model and writes to the real terminal only the cells that changed (screen-model.ts). Ink sees
// a TTY of the real terminal's size; a resize of the real terminal reaches the model first
// (which then repaints everything once), then Ink.
import { EventEmitter } from "node:events";
import { ScreenModel } from "./screen-model.js";

type Callback = (error?: Error | null) => void;

export class FrameStdout extends EventEmitter {
  readonly isTTY = true;
  readonly #target: NodeJS.WritableStream;
  readonly #model: ScreenModel;
  #scheduled: NodeJS.Immediate | undefined;
  /** Bytes written to the terminal (tests and the benchmark read it). */
  bytesWritten = 0;

  readonly #onWrite: (() => void) | undefined;

  /** `onWrite` is called after each write to the terminal (a sign of activity). */
  constructor(target: NodeJS.WritableStream, onWrite?: () => void) {
    super();
    this.#target = target;
    this.#onWrite = onWrite;
    this.#model = new ScreenModel(this.columns, this.rows);
    target.on("resize", this.#onResize);
  }

  get columns(): number {
    return (this.#target as { columns?: number }).columns ?? 80;
  }

  get rows(): number {
    return (this.#target as { rows?: number }).rows ?? 24;
  }

  get writable(): boolean {
    return (this.#target as { writable?: boolean }).writable ?? true;
  }

  /** Repaint the whole screen at the next frame (the terminal's content may be damaged). */
  invalidate(): void {
    this.#model.invalidate();
    this.#schedule();
  }

  write(chunk: string | Uint8Array, encodingOrCallback?: BufferEncoding | Callback, callback?: Callback): boolean {
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    this.#send(this.#model.write(text));
    if (this.#model.needsFlush) this.#schedule();
    const cb = typeof encodingOrCallback === "function" ? encodingOrCallback : callback;
    if (cb) queueMicrotask(() => cb());
    return true;
  }

  /** Writes any change not yet on the terminal now. */
  flush(): void {
    if (this.#scheduled !== undefined) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    this.#send(this.#model.flush());
  }

  /** Stops following the terminal's size (after the UI has ended). */
  close(): void {
    this.flush();
    this.#target.off("resize", this.#onResize);
  }

  // Changes written outside a synchronized update (Ink's erase before a redraw, a cursor
  // switch) are gathered and sent together once the current work is done.
  #schedule(): void {
    this.#scheduled ??= setImmediate(() => {
      this.#scheduled = undefined;
      this.#send(this.#model.flush());
    });
  }

  #send(out: string): void {
    if (out === "") return;
    this.bytesWritten += Buffer.byteLength(out);
    this.#target.write(out);
    this.#onWrite?.();
  }

  #onResize = (): void => {
    this.#model.resize(this.columns, this.rows);
    this.emit("resize");
    this.#schedule();
  };
}
