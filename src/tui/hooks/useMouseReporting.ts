// Mouse wheel scrolling needs the terminal to report the mouse (SGR mode, so positions past
// column 223 work). It stays off unless asked for: while the terminal reports the mouse, a plain
// drag no longer selects text (most terminals select with Shift held then).
import { useStdout } from "ink";
import { useEffect } from "react";

export const MOUSE_REPORTING_ON = "\u001b[?1000h\u001b[?1006h";
export const MOUSE_REPORTING_OFF = "\u001b[?1000l\u001b[?1006l";

export function useMouseReporting(enabled: boolean): void {
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
