// Mouse wheel scrolling, while the user has turned it on (/mouse on, or runTui's mouse option):
// the terminal is asked to report the mouse (SGR mode, so columns past 223 work). The reports
// are taken out of the input by the key parser (useTerminalInput), which turns wheel notches into
// events for useKeyboard. It stays off unless asked for: while the terminal reports the mouse, a
// plain drag no longer selects text (most terminals select with Shift held then).
import { useStdout } from "ink";
import { useEffect } from "react";

export const MOUSE_REPORTING_ON = "\u001b[?1000h\u001b[?1006h";
export const MOUSE_REPORTING_OFF = "\u001b[?1000l\u001b[?1006l";

export function useMouseWheel(enabled: boolean): void {
  const { stdout } = useStdout();
  useEffect(() => {
    if (!enabled) return;
    // Mode switches only: nothing is printed and the cursor does not move, so Ink's frame
    // bookkeeping is unaffected.
    stdout.write(MOUSE_REPORTING_ON);
    return () => {
      stdout.write(MOUSE_REPORTING_OFF);
    };
  }, [enabled, stdout]);
}
