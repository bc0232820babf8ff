// The keymap: every key binding with its help line. What a key does (keyOutcome, carried out by
// src/tui/hooks/useKeyboard.ts) and what /help says about keys (KEYMAP, shown by
// src/tui/commands/help-lines.ts) both come from the table below, so a key cannot be bound
// without a help line, nor documented without a binding (test/tui/keymap.test.ts).
//
// A key is first named ("Ctrl-N", "Alt-Shift-U", "PgUp": keyName), then looked up. Pure: the key
// in Ink's Key shape (src/tui/input/ink-key.ts), the state and the screen in; an outcome out.
import type { Key } from "ink";
import type { Command } from "../state/commands.js";
import { WHEEL_ROWS } from "../state/mouse-reports.js";
import { LARGE_PASTE_BYTES, LARGE_PASTE_LINES } from "../state/paste.js";
import type { Action, Viewport } from "../state/reducer.js";
import type { TuiState } from "../state/state.js";

/** What the screen looks like when a key arrives (the layout belongs to the App). */
export interface KeyContext {
  readonly viewport: Viewport;
  readonly sidebarShown: boolean;
  /** Whether the sidebar would show at this width without the user's choice. */
  readonly sidebarAutomatic: boolean;
}

export type KeyOutcome =
  | { readonly kind: "action"; readonly action: Action }
  | { readonly kind: "quit" }
  /** Enter: carry out the line. */
  | { readonly kind: "submit" }
  /** "y" to a large paste: put it in the line and send. */
  | { readonly kind: "paste-send" }
  | { readonly kind: "run"; readonly command: Command }
  /** Typed text (several printable characters may come in one read). */
  | { readonly kind: "type"; readonly text: string }
  /** Ctrl-L: clear the terminal and draw the whole screen again. */
  | { readonly kind: "redraw" }
  /** The mouse wheel: scroll this many rows per notch (the hook applies the direction). */
  | { readonly kind: "wheel"; readonly rows: number }
  | { readonly kind: "ignore" };

/** What one bound key does, given the state and the screen. */
export type Binding = (state: TuiState, ctx: KeyContext) => KeyOutcome;

/**
 * Where a binding applies: "main" (typing and reading), "paste" (while a large paste asks: only
 * these, and Ctrl-C, which still leaves), "wheel" (mouse wheel reports, after /mouse on).
 */
export type KeyMode = "main" | "paste" | "wheel";

/** One line of the key help and the keys it describes. */
export interface KeyEntry {
  /** The keys as /help names them ("Ctrl-N / Ctrl-P"). */
  readonly keys: string;
  readonly summary: string;
  readonly mode?: KeyMode;
  /** Key name (as keyName gives it) → what it does. Every name is mentioned in the line. */
  readonly bindings: Readonly<Record<string, Binding>>;
}

export interface KeyGroup {
  readonly group: string;
  readonly keys: readonly KeyEntry[];
}

const act = (action: Action): KeyOutcome => ({ kind: "action", action });
const IGNORE: KeyOutcome = { kind: "ignore" };
const scroll = (move: Extract<Action, { type: "scroll" }>["move"]): Binding => (_state, ctx) => act({ type: "scroll", move, viewport: ctx.viewport });
const does = (action: Action): Binding => () => act(action);
const outcome = (o: KeyOutcome): Binding => () => o;
const move = (to: Extract<Action, { type: "input-move" }>["move"]): Binding => does({ type: "input-move", move: to });
const kill = (what: Extract<Action, { type: "input-kill" }>["kill"]): Binding => does({ type: "input-kill", kill: what });
/** Home / End move in the line being typed; with nothing typed they go to the top / bottom of the scrollback. */
const lineOrScroll = (to: "home" | "end"): Binding => (state, ctx) =>
  state.input.text === "" ? scroll(to === "home" ? "top" : "bottom")(state, ctx) : act({ type: "input-move", move: to });

const ALT_DIGITS: Record<string, Binding> = Object.fromEntries([
  ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => [`Alt-${n}`, does({ type: "focus-index", index: n - 1 })]),
  ["Alt-0", does({ type: "focus-index", index: 9 })],
]);

/** Every key, for /help grouped as it shows them. */
export const KEYMAP: readonly KeyGroup[] = [
  {
    group: "Typing",
    keys: [
      { keys: "Enter", summary: "send the line", bindings: { Enter: outcome({ kind: "submit" }) } },
      {
        keys: "Alt-Enter", summary: "new line inside the message (a pasted text keeps its lines and is sent as one message)",
        bindings: { "Alt-Enter": does({ type: "input-insert", text: "\n" }) },
      },
      {
        keys: "Tab / Shift-Tab", summary: "complete a command, user or room; press again for the next / previous match",
        bindings: { Tab: does({ type: "complete", direction: 1 }), "Shift-Tab": does({ type: "complete", direction: -1 }) },
      },
      {
        keys: "Up / Down", summary: "earlier / later lines you sent in this conversation (in a multi-line message: move between its lines)",
        bindings: { Up: does({ type: "input-up" }), Down: does({ type: "input-down" }) },
      },
      { keys: "Left / Right", summary: "move by a character", bindings: { Left: move("left"), Right: move("right") } },
      {
        keys: "Alt-B / Alt-F, Ctrl-Left / Ctrl-Right", summary: "move by a word (also Alt-Left / Alt-Right)",
        bindings: {
          "Alt-B": move("word-left"), "Alt-F": move("word-right"), "Ctrl-Left": move("word-left"), "Ctrl-Right": move("word-right"),
          "Alt-Left": move("word-left"), "Alt-Right": move("word-right"),
        },
      },
      {
        keys: "Home / End, Ctrl-A / Ctrl-E", summary: "start / end of the line (press again: of the whole message)",
        bindings: { Home: lineOrScroll("home"), End: lineOrScroll("end"), "Ctrl-A": move("home"), "Ctrl-E": move("end") },
      },
      {
        keys: "Backspace / Delete", summary: "delete before / under the cursor",
        bindings: { Backspace: does({ type: "input-backspace" }), Delete: does({ type: "input-delete" }) },
      },
      {
        keys: "Ctrl-W / Alt-D", summary: "delete the word before / after the cursor (also Alt-Backspace: the word before)",
        bindings: { "Ctrl-W": kill("word-back"), "Alt-D": kill("word-forward"), "Alt-Backspace": kill("word-back") },
      },
      { keys: "Ctrl-U / Ctrl-K", summary: "delete everything before / after the cursor", bindings: { "Ctrl-U": kill("to-start"), "Ctrl-K": kill("to-end") } },
      {
        keys: `a paste over ${LARGE_PASTE_LINES} lines or ${LARGE_PASTE_BYTES / 1024} KB`, summary: "asks first: y sends it, e puts it in the line to edit, n or Esc drops it",
        mode: "paste",
        bindings: {
          y: outcome({ kind: "paste-send" }),
          e: does({ type: "paste-answer", answer: "insert" }),
          n: does({ type: "paste-answer", answer: "drop" }),
          Esc: does({ type: "paste-answer", answer: "drop" }),
        },
      },
    ],
  },
  {
    group: "Reading",
    keys: [
      {
        keys: "PgUp / PgDn", summary: "scroll the conversation a page up / down (new messages do not move what you read)",
        bindings: { PgUp: scroll("page-up"), PgDn: scroll("page-down") },
      },
      {
        keys: "Ctrl-Home / Ctrl-End", summary: "oldest / newest message (also Home / End with nothing typed, Alt-Home / Alt-End; Esc: newest)",
        bindings: { "Ctrl-Home": scroll("top"), "Ctrl-End": scroll("bottom"), "Alt-Home": scroll("top"), "Alt-End": scroll("bottom"), Esc: scroll("bottom") },
      },
      {
        keys: "Alt-J (or Alt-Shift-U)", summary: "up to the unread ruler, where you left this conversation",
        // Alt-Shift-U is weechat's Alt-U, which here shows / hides the sidebar.
        bindings: { "Alt-J": scroll("unread"), "Alt-Shift-U": scroll("unread") },
      },
      { keys: "Ctrl-L", summary: "clear the terminal and draw the whole screen again", bindings: { "Ctrl-L": outcome({ kind: "redraw" }) } },
      { keys: "mouse wheel", summary: "scroll, after /mouse on", mode: "wheel", bindings: { "mouse wheel": outcome({ kind: "wheel", rows: WHEEL_ROWS }) } },
    ],
  },
  {
    group: "Conversations",
    keys: [
      { keys: "Alt-1 … Alt-9, Alt-0", summary: "go to conversation 1 … 9 of the bar at the top (Alt-0: the 10th)", bindings: ALT_DIGITS },
      {
        keys: "Ctrl-N / Ctrl-P", summary: "next / previous conversation",
        bindings: { "Ctrl-N": does({ type: "cycle-conversation", delta: 1 }), "Ctrl-P": does({ type: "cycle-conversation", delta: -1 }) },
      },
      { keys: "Alt-A", summary: "next conversation with activity (mentions of you and DMs first)", bindings: { "Alt-A": does({ type: "next-active" }) } },
      {
        keys: "Alt-U", summary: "show / hide the users sidebar (it hides by itself when the terminal is narrow)",
        bindings: { "Alt-U": (_state, ctx) => act({ type: "toggle-sidebar", shown: ctx.sidebarShown, automatic: ctx.sidebarAutomatic }) },
      },
      { keys: "Alt-R", summary: "send your last failed message here again (/retry)", bindings: { "Alt-R": outcome({ kind: "run", command: { kind: "retry" } }) } },
      {
        keys: "Ctrl-C, or Ctrl-D on an empty line", summary: "leave",
        bindings: {
          "Ctrl-C": outcome({ kind: "quit" }),
          // In a line with text, Ctrl-D deletes under the cursor, as in a shell.
          "Ctrl-D": (state) => (state.input.text === "" ? { kind: "quit" } : act({ type: "input-delete" })),
        },
      },
    ],
  },
];

function bindingsOf(mode: KeyMode): ReadonlyMap<string, Binding> {
  const map = new Map<string, Binding>();
  for (const entry of KEYMAP.flatMap((g) => g.keys)) {
    if ((entry.mode ?? "main") !== mode) continue;
    for (const [name, binding] of Object.entries(entry.bindings)) {
      if (map.has(name)) throw new Error(`keymap: ${name} is bound twice in ${mode} mode`);
      map.set(name, binding);
    }
  }
  return map;
}

/** Every binding by mode and key name, from KEYMAP. */
export const BINDINGS: Readonly<Record<KeyMode, ReadonlyMap<string, Binding>>> = {
  main: bindingsOf("main"),
  paste: bindingsOf("paste"),
  wheel: bindingsOf("wheel"),
};

/**
 * The name of a key as the keymap binds it: "Ctrl-N", "Alt-Shift-U", "PgUp"; null for a key with
 * Ctrl or Alt that has no name here (never typed); undefined for plain text. Keys with a modifier
 * come first: Ctrl-Home is not Home.
 */
export function keyName(typed: string, key: Key): string | null | undefined {
  const mod = key.ctrl ? "Ctrl" : "Alt";
  if ((key.ctrl || key.meta) && key.home) return `${mod}-Home`;
  if ((key.ctrl || key.meta) && key.end) return `${mod}-End`;
  if ((key.ctrl || key.meta) && key.leftArrow) return `${mod}-Left`;
  if ((key.ctrl || key.meta) && key.rightArrow) return `${mod}-Right`;
  if (key.meta && key.return) return "Alt-Enter";
  if (key.meta && key.backspace) return "Alt-Backspace";
  if (key.ctrl) return /^[a-z]$/.test(typed) ? `Ctrl-${typed.toUpperCase()}` : null;
  if (key.meta && !key.escape) {
    if (typed === "U") return "Alt-Shift-U";
    return /^[a-z0-9]$/i.test(typed) ? `Alt-${typed.toUpperCase()}` : null;
  }
  if (key.return) return "Enter";
  if (key.tab) return key.shift ? "Shift-Tab" : "Tab";
  if (key.pageUp) return "PgUp";
  if (key.pageDown) return "PgDn";
  if (key.upArrow) return "Up";
  if (key.downArrow) return "Down";
  if (key.leftArrow) return "Left";
  if (key.rightArrow) return "Right";
  if (key.home) return "Home";
  if (key.end) return "End";
  if (key.backspace) return "Backspace";
  if (key.delete) return "Delete";
  if (key.escape) return "Esc";
  return undefined;
}

/** A key's name while a large paste asks: its answers are letters, in either case. */
function pasteKeyName(typed: string, key: Key): string | null {
  if (key.ctrl && typed === "c") return "Ctrl-C";
  if (key.ctrl || key.meta) return null;
  if (key.escape) return "Esc";
  return typed.toLowerCase();
}

/** What a key press does, given the state and the screen. */
export function keyOutcome(typed: string, key: Key, state: TuiState, ctx: KeyContext): KeyOutcome {
  // A large paste waits for its answer; nothing else is typed meanwhile (Ctrl-C still leaves).
  if (state.pendingPaste) {
    const name = pasteKeyName(typed, key);
    const binding = name === null ? undefined : name === "Ctrl-C" ? BINDINGS.main.get(name) : BINDINGS.paste.get(name);
    return binding === undefined ? IGNORE : binding(state, ctx);
  }
  const name = keyName(typed, key);
  if (name === undefined) return typed === "" ? IGNORE : { kind: "type", text: typed };
  const binding = name === null ? undefined : BINDINGS.main.get(name);
  return binding === undefined ? IGNORE : binding(state, ctx);
}

/** What a turn of the mouse wheel does (whatever the mode: the wheel only scrolls). */
export function wheelOutcome(state: TuiState, ctx: KeyContext): KeyOutcome {
  return BINDINGS.wheel.get("mouse wheel")?.(state, ctx) ?? IGNORE;
}
