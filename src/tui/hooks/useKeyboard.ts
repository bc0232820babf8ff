// Keys and pastes. Every key of every chunk comes in order from useTerminalInput (the key parser);
// what a key does is decided by the keymap (keyOutcome in src/tui/input/keymap.ts) over the key,
// in Ink's Key shape, and a little of the screen's state; this hook carries it out. A paste
// (bracketed, or fast multi-line input without brackets) arrives whole, newlines included, so a
// multi-line paste is one message; a large one is held until the user answers y / e / n. The
// mouse wheel's reports come through here too (useMouseWheel only turns the terminal's reporting
// on and off).
import type { Key } from "ink";
import { inkKey, NO_KEY } from "../input/ink-key.js";
import { keyOutcome, wheelOutcome, type KeyContext, type KeyOutcome } from "../input/keymap.js";
import type { Command } from "../state/commands.js";
import type { Action } from "../state/reducer.js";
import type { TuiState } from "../state/state.js";
import { useTerminalInput } from "./useTerminalInput.js";

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
  const carryOut = (outcome: KeyOutcome, state: TuiState, direction = 1): void => {
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
      case "wheel":
        return wheel(direction * outcome.rows);
      case "ignore":
        return;
    }
  };
  const onKey = (typed: string, key: Key): void => {
    const state = getState();
    carryOut(keyOutcome(typed, key, state, getContext()), state);
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
      case "wheel": {
        const state = getState();
        return carryOut(wheelOutcome(state, getContext()), state, event.direction);
      }
    }
  });
}
