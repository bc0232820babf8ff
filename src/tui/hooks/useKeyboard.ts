// Keys and pastes. Every key of every chunk comes in order from useTerminalInput (the key parser);
// what a key does is decided by a pure function (keyOutcome) over the key, in Ink's Key shape,
// and a little of the screen's state; this hook carries it out. A paste (bracketed, or fast
// multi-line input without brackets) arrives whole, newlines included, so a multi-line paste is
// one message; a large one is held until the user answers y / e / n. The mouse wheel's reports
// come through here too (useMouseWheel only turns the terminal's reporting on and off).
import type { Key } from "ink";
import { inkKey, NO_KEY } from "../input/ink-key.js";
import type { Command } from "../state/commands.js";
import type { Action, Viewport } from "../state/reducer.js";
import type { TuiState } from "../state/state.js";
import { WHEEL_ROWS } from "../state/mouse-reports.js";
import { useTerminalInput } from "./useTerminalInput.js";

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
  | { readonly kind: "ignore" };

const act = (action: Action): KeyOutcome => ({ kind: "action", action });
const IGNORE: KeyOutcome = { kind: "ignore" };

/** What a key press does, given the state and the screen. */
export function keyOutcome(typed: string, key: Key, state: TuiState, ctx: KeyContext): KeyOutcome {
  // A large paste waits for its answer; nothing else is typed meanwhile.
  if (state.pendingPaste) {
    if (key.ctrl && typed === "c") return { kind: "quit" };
    if (key.ctrl || key.meta) return IGNORE;
    if (key.escape) return act({ type: "paste-answer", answer: "drop" });
    switch (typed.toLowerCase()) {
      case "y":
        return { kind: "paste-send" };
      case "e":
        return act({ type: "paste-answer", answer: "insert" });
      case "n":
        return act({ type: "paste-answer", answer: "drop" });
      default:
        return IGNORE;
    }
  }

  const scroll = (move: Extract<Action, { type: "scroll" }>["move"]): KeyOutcome => act({ type: "scroll", move, viewport: ctx.viewport });
  // Keys with a modifier first: Ctrl-Home is not Home.
  if ((key.ctrl || key.meta) && key.home) return scroll("top");
  if ((key.ctrl || key.meta) && key.end) return scroll("bottom");
  if ((key.ctrl || key.meta) && key.leftArrow) return act({ type: "input-move", move: "word-left" });
  if ((key.ctrl || key.meta) && key.rightArrow) return act({ type: "input-move", move: "word-right" });
  if (key.meta && key.return) return act({ type: "input-insert", text: "\n" });
  if (key.meta && key.backspace) return act({ type: "input-kill", kill: "word-back" });

  if (key.ctrl) {
    switch (typed) {
      case "c":
        return { kind: "quit" };
      case "l":
        return { kind: "redraw" };
      case "d":
        return state.input.text === "" ? { kind: "quit" } : act({ type: "input-delete" });
      case "n":
        return act({ type: "cycle-conversation", delta: 1 });
      case "p":
        return act({ type: "cycle-conversation", delta: -1 });
      case "a":
        return act({ type: "input-move", move: "home" });
      case "e":
        return act({ type: "input-move", move: "end" });
      case "u":
        return act({ type: "input-kill", kill: "to-start" });
      case "k":
        return act({ type: "input-kill", kill: "to-end" });
      case "w":
        return act({ type: "input-kill", kill: "word-back" });
      default:
        return IGNORE;
    }
  }

  if (key.meta && !key.escape) {
    if (/^[1-9]$/.test(typed)) return act({ type: "focus-index", index: Number(typed) - 1 });
    // Alt-J, and Alt-Shift-U (weechat's Alt-U, which here shows / hides the sidebar): up to
    // where the unread ruler is.
    if (typed === "U" || typed.toLowerCase() === "j") return scroll("unread");
    switch (typed.toLowerCase()) {
      case "0":
        return act({ type: "focus-index", index: 9 });
      case "a":
        return act({ type: "next-active" });
      case "u":
        return act({ type: "toggle-sidebar", shown: ctx.sidebarShown, automatic: ctx.sidebarAutomatic });
      case "r":
        return { kind: "run", command: { kind: "retry" } };
      case "b":
        return act({ type: "input-move", move: "word-left" });
      case "f":
        return act({ type: "input-move", move: "word-right" });
      case "d":
        return act({ type: "input-kill", kill: "word-forward" });
      default:
        return IGNORE;
    }
  }

  if (key.return) return { kind: "submit" };
  if (key.tab) return act({ type: "complete", direction: key.shift ? -1 : 1 });
  if (key.pageUp) return scroll("page-up");
  if (key.pageDown) return scroll("page-down");
  if (key.upArrow) return act({ type: "input-up" });
  if (key.downArrow) return act({ type: "input-down" });
  if (key.leftArrow) return act({ type: "input-move", move: "left" });
  if (key.rightArrow) return act({ type: "input-move", move: "right" });
  // Home / End move in the line being typed; with nothing typed they go to the top and the
  // bottom of the scrollback (Ctrl-Home / Ctrl-End always do).
  if (key.home) return state.input.text === "" ? scroll("top") : act({ type: "input-move", move: "home" });
  if (key.end) return state.input.text === "" ? scroll("bottom") : act({ type: "input-move", move: "end" });
  if (key.backspace) return act({ type: "input-backspace" });
  if (key.delete) return act({ type: "input-delete" });
  if (key.escape) return scroll("bottom");
  if (typed === "") return IGNORE;
  return { kind: "type", text: typed };
}

export interface UseKeyboardOptions {
  /** The latest state: several keys can arrive in one chunk, before React re-renders. */
  readonly getState: () => TuiState;
  /** The screen as last drawn. */
  readonly getContext: () => KeyContext;
  readonly dispatch: (action: Action) => void;
  /** Carries out a line (the command runner clears the input when it is done with it). */
  readonly submit: (line: string) => void;
  readonly run: (command: Command) => void;
  readonly quit: () => void;
  /** Ctrl-L: clear the terminal and repaint the whole screen. */
  readonly redraw: () => void;
  /** The mouse wheel turned, `rows` rows (negative: up). */
  readonly wheel: (rows: number) => void;
}

export function useKeyboard({ getState, getContext, dispatch, submit, run, quit, redraw, wheel }: UseKeyboardOptions): void {
  const onKey = (typed: string, key: Key): void => {
    const state = getState();
    const outcome = keyOutcome(typed, key, state, getContext());
    switch (outcome.kind) {
      case "action":
        return dispatch(outcome.action);
      case "quit":
        return quit();
      case "submit":
        return void submit(state.input.text);
      case "paste-send":
        dispatch({ type: "paste-answer", answer: "insert" });
        return void submit(getState().input.text);
      case "run":
        return run(outcome.command);
      case "type":
        // Printable text only: the key parser gives Enter and the other keys as keys.
        return dispatch({ type: "input-insert", text: outcome.text });
      case "redraw":
        return redraw();
      case "ignore":
        return;
    }
  };

  // Input stays active (raw mode) while leaving, so a Ctrl-C pressed while the session closes
  // cannot turn into a SIGINT that kills the process halfway; keys are just ignored then.
  useTerminalInput((event) => {
    if (getState().quitting) return;
    switch (event.kind) {
      case "text":
        return onKey(event.text, NO_KEY);
      case "key": {
        const { typed, key } = inkKey(event);
        return onKey(typed, key);
      }
      case "paste":
        return dispatch({ type: "paste", text: event.text });
      case "wheel":
        return wheel(event.direction * WHEEL_ROWS);
    }
  });
}
