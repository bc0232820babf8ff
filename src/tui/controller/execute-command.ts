// Carries out a parsed command against the session and reports back through actions. This is
// the one place commands meet the ChatSession; it never throws: every failure (an Outcome with
// ok false, a rejected promise) becomes an error line in the conversation the command came from.
// What each slash command does is in its own file (src/tui/commands/<name>.ts, listed in
// src/tui/commands/index.ts); here is what they share: the RunContext (how a notice, a session
// call or a message is carried out) and what they need of the view.
import type { Outcome } from "../../client/types.js";
import type { CommandContext, InputFate, RunContext } from "../commands/command.js";
import { helpLines } from "../commands/help-lines.js";
import { commandOf } from "../commands/index.js";
import type { Command } from "../state/commands.js";
import { describeConversation } from "../state/conversations.js";
import { sortPeers } from "../view/sidebar-rows.js";
import { formatStamp } from "../view/time.js";
import { errorText } from "../commands/error-text.js";

export type { CommandContext, InputFate } from "../commands/command.js";

/** What a command may use when it runs: the context, the helpers below, and the view's functions. */
function runContext(ctx: CommandContext): RunContext {
  const { session, state, dispatch, now } = ctx;
  const here = state.current;
  const say = (level: "info" | "warn" | "error", text: string, conversationId = here): void =>
    dispatch({ type: "notice", level, text, atMs: now(), conversationId });
  /** Runs an async session call; its answer (or failure) lands where the command was typed. */
  const later = <T>(what: string, run: () => Promise<Outcome<T>>, done: (value: T) => void): void => {
    let promise: Promise<Outcome<T>>;
    try {
      promise = run();
    } catch (e) {
      promise = Promise.reject(e);
    }
    promise.then(
      (outcome) => (outcome.ok ? done(outcome.value) : say("error", errorText(outcome.error))),
      (e: unknown) => {
        ctx.logger.warn("tui.command-failed", { command: what, reason: e instanceof Error ? e.message : String(e) });
        say("error", `${what} failed: ${e instanceof Error ? e.message : String(e)}`);
      },
    );
  };
  const send = (conversationId: string, text: string, kind: "text" | "action" | "topic"): InputFate => {
    const outcome = session.send(conversationId, text, kind);
    if (!outcome.ok) {
      say("error", errorText(outcome.error));
      return "keep";
    }
    return "clear";
  };
  const currentRoom = (): string | undefined => (describeConversation(here, state.me)?.kind === "room" ? here : undefined);
  return { ...ctx, here, say, later, send, currentRoom, helpLines, formatStamp, sortPeers };
}

export function executeCommand(command: Command, ctx: CommandContext): InputFate {
  switch (command.kind) {
    case "nothing":
      return "clear";
    case "say": {
      const { here, send } = runContext(ctx);
      return send(here, command.text, "text");
    }
    default:
      return commandOf(command).run(command, runContext(ctx));
  }
}
