// Submitting a line: parse it, carry it out against the session, and decide what happens to
// the input (cleared and remembered in the conversation's history when done; kept when it needs
// fixing: a line that does not parse, or a message the session refused to send).
import { useCallback, useMemo } from "react";
import type { ChatSession } from "../../client/types.js";
import type { Logger } from "../../protocol/log.js";
import { executeCommand, type InputFate } from "../controller/execute-command.js";
import { parseInput, type Command } from "../state/commands.js";
import type { Action } from "../state/reducer.js";
import type { TuiState } from "../state/state.js";

export interface UseCommandsOptions {
  readonly session: ChatSession;
  /** The latest state (read when a line is submitted). */
  readonly getState: () => TuiState;
  readonly dispatch: (action: Action) => void;
  readonly clock: () => number;
  readonly logger: Logger;
  readonly quit: () => void;
}

export interface Commands {
  /** Carries out a typed line. */
  readonly submit: (line: string) => InputFate;
  /** Carries out a command bound to a key (the input line is left alone). */
  readonly run: (command: Command) => void;
}

export function useCommands({ session, getState, dispatch, clock, logger, quit }: UseCommandsOptions): Commands {
  const submit = useCallback((line: string): InputFate => {
    const state = getState();
    const parsed = parseInput(line);
    const fate: InputFate = parsed.ok
      ? executeCommand(parsed.command, { session, state, dispatch, now: clock, logger, quit })
      : (dispatch({ type: "notice", level: "error", text: parsed.error, atMs: clock(), conversationId: state.current }), "keep");
    if (fate === "clear") dispatch({ type: "input-submitted", conversationId: state.current, text: line });
    return fate;
  }, [session, getState, dispatch, clock, logger, quit]);
  const run = useCallback((command: Command): void => {
    executeCommand(command, { session, state: getState(), dispatch, now: clock, logger, quit });
  }, [session, getState, dispatch, clock, logger, quit]);
  return useMemo(() => ({ submit, run }), [submit, run]);
}
