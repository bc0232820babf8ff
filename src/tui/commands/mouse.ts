// /mouse [on|off]: mouse wheel scrolling; alone: toggles.
import { ok, type CommandSpec } from "./command.js";

/** Mouse wheel scrolling on or off; without an argument, toggles. */
export type MouseCommand = { readonly kind: "mouse"; readonly on?: boolean };

export const mouse: CommandSpec<MouseCommand> = {
  name: "mouse",
  usage: "/mouse [on|off]",
  summary: "scroll with the mouse wheel (off by default: while on, hold Shift to select text)",
  parse({ args, usage }) {
    if (args.length > 1) return usage("takes on or off");
    const arg = args[0]?.toLowerCase();
    if (arg === undefined) return ok({ kind: "mouse" });
    if (arg === "on" || arg === "off") return ok({ kind: "mouse", on: arg === "on" });
    return usage(`takes on or off, not '${args[0] ?? ""}'`);
  },
  run(command, { state, dispatch, say }) {
    const on = command.on ?? !state.mouse;
    dispatch({ type: "set-mouse", on });
    say("info", on
      ? "mouse wheel scrolling is on: to select text, hold Shift while dragging (/mouse off turns it off)"
      : "mouse wheel scrolling is off: the terminal selects text as usual");
    return "clear";
  },
};
