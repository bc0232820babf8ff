// Every key the terminal sends, in order. Ink reads stdin on 'readable' with read() and, when a
// read brings several keys, hands control keys inside it to useInput as garbled text (Ctrl-W
// after a word was lost that way). So the chunks are taken at read(), before Ink sees them (the
// interception point the mouse wheel used), and parsed here: Ink gets nothing to parse. Ink
// still owns raw mode and bracketed paste mode (usePaste turns both on).
import { useStdin, usePaste } from "ink";
import { useLayoutEffect, useRef } from "react";
import { createKeyStream, type KeyStreamTiming } from "../input/key-stream.js";
import type { InputEvent } from "../input/key-parser.js";

type Read = (size?: number) => string | Buffer | null;

const ignore = (): void => {};

export function useTerminalInput(onEvent: (event: InputEvent) => void, timing: Partial<KeyStreamTiming> = {}): void {
  const { stdin } = useStdin();
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const timingRef = useRef(timing);
  // Raw mode and bracketed paste mode on while mounted (pastes never reach Ink's channel).
  usePaste(ignore);
  // A layout effect: in place before Ink's own effects start reading stdin.
  useLayoutEffect(() => {
    const input = stdin as unknown as { read: Read };
    const original = input.read;
    const stream = createKeyStream(timingRef.current);
    let timer: NodeJS.Timeout | undefined;
    let live = true;
    const deliver = (events: readonly InputEvent[]): void => {
      for (const event of events) {
        if (!live) return;
        handler.current(event);
      }
    };
    const schedule = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      const due = stream.deadline();
      if (due === undefined) return;
      timer = setTimeout(() => {
        timer = undefined;
        deliver(stream.expire(Date.now()));
        schedule();
      }, Math.max(0, due - Date.now()));
      timer.unref?.();
    };
    input.read = function read(this: unknown, size?: number) {
      const chunk = original.call(this, size);
      if (chunk === null) return chunk;
      deliver(stream.push(typeof chunk === "string" ? chunk : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength), Date.now()));
      schedule();
      // Ink's parser gets an empty chunk (it keeps reading until read() says null).
      return typeof chunk === "string" ? "" : Buffer.alloc(0);
    };
    return () => {
      live = false;
      if (timer !== undefined) clearTimeout(timer);
      input.read = original;
    };
  }, [stdin]);
}
