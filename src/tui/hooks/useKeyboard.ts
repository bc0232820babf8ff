// Keys and pastes. Typed text and editing keys become reducer actions; Enter submits; a
// bracketed paste is inserted whole (newlines included), so a multi-line paste is one message.
import { useInput, usePaste, type Key } from "ink";
import { splitTyped } from "../state/input-buffer.js";
import type { Action } from "../state/reducer.js";
import type { TuiState } from "../state/state.js";

export interface UseKeyboardOptions {
  /** The latest state: several keys can arrive in one chunk, before React re-renders. */
  readonly getState: () => TuiState;
  readonly dispatch: (action: Action) => void;
  /** Submits a line (the command runner clears the input when it is done with it). */
  readonly submit: (line: string) => void;
  readonly quit: () => void;
}

/** What a key press does: an action, leaving, submitting the line, or nothing. */
export function keyAction(typed: string, key: Key): Action | "quit" | "submit" | undefined {
  if (key.ctrl) {
    switch (typed) {
      case "c":
      case "d":
        return "quit";
      case "n":
        return { type: "cycle-conversation", delta: 1 };
      case "p":
        return { type: "cycle-conversation", delta: -1 };
      case "a":
        return { type: "input-move", move: "home" };
      case "e":
        return { type: "input-move", move: "end" };
      case "u":
        return { type: "input-clear" };
    }
  }
  if (key.return) return "submit";
  if (key.backspace) return { type: "input-backspace" };
  if (key.delete) return { type: "input-delete" };
  if (key.leftArrow) return { type: "input-move", move: "left" };
  if (key.rightArrow) return { type: "input-move", move: "right" };
  if (key.home) return { type: "input-move", move: "home" };
  if (key.end) return { type: "input-move", move: "end" };
  return undefined;
}

export function useKeyboard({ getState, dispatch, submit, quit }: UseKeyboardOptions): void {
  // Input stays active (raw mode) while leaving, so a Ctrl-C pressed while the session closes
  // cannot turn into a SIGINT that kills the process halfway; keys are just ignored then.
  useInput((typed, key) => {
    if (getState().quitting) return;
    const action = keyAction(typed, key);
    if (action === "quit") return quit();
    if (action === "submit") return submit(getState().input.text);
    if (action !== undefined) return dispatch(action);
    if (key.ctrl || key.meta || key.escape || key.tab || typed === "") return;
    // Several keystrokes can arrive as one chunk ("hi\r"): replay them in order.
    for (const part of splitTyped(typed)) {
      if (part.kind === "text") dispatch({ type: "input-insert", text: part.text });
      else submit(getState().input.text);
    }
  });

  usePaste((text) => {
    if (!getState().quitting) dispatch({ type: "input-insert", text });
  });
}
