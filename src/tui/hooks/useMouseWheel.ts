// Mouse wheel scrolling, while the user has turned it on (/mouse on, or runTui's mouse option):
// the terminal is asked to report the mouse (SGR mode, so columns past 223 work), and the
// reports are taken out of stdin before Ink reads it, which would otherwise drop them as
// unknown sequences. It stays off unless asked for: while the terminal reports the mouse, a
// plain drag no longer selects text (most terminals select with Shift held then).
import { useStdin, useStdout } from "ink";
import { useEffect, useRef } from "react";
import { splitMouseReports } from "../state/mouse-reports.js";

export const MOUSE_REPORTING_ON = "\u001b[?1000h\u001b[?1006h";
export const MOUSE_REPORTING_OFF = "\u001b[?1000l\u001b[?1006l";

type Read = (size?: number) => string | Buffer | null;

export function useMouseWheel(enabled: boolean, onWheel: (rows: number) => void): void {
  const { stdin } = useStdin();
  const { stdout } = useStdout();
  const handler = useRef(onWheel);
  handler.current = onWheel;
  useEffect(() => {
    if (!enabled) return;
    const input = stdin as unknown as { read: Read };
    const original = input.read;
    // Ink reads stdin on 'readable' with read(): filter what it gets.
    input.read = function read(this: unknown, size?: number) {
      const chunk = original.call(this, size);
      if (chunk === null) return chunk;
      const text = typeof chunk === "string" ? chunk : chunk.toString("utf8");
      const { rest, wheel } = splitMouseReports(text);
      for (const rows of wheel) handler.current(rows);
      if (wheel.length === 0) return chunk;
      return typeof chunk === "string" ? rest : Buffer.from(rest, "utf8");
    };
    // Mode switches only: nothing is printed and the cursor does not move, so Ink's frame
    // bookkeeping is unaffected.
    stdout.write(MOUSE_REPORTING_ON);
    return () => {
      input.read = original;
      stdout.write(MOUSE_REPORTING_OFF);
    };
  }, [enabled, stdin, stdout]);
}
