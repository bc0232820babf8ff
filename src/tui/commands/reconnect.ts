// /reconnect: connect now instead of after the backoff.
import { noArguments, type CommandSpec } from "./command.js";
import { errorText, reconnectText } from "./error-text.js";

/** Connect now instead of after the backoff. */
export type ReconnectCommand = { readonly kind: "reconnect" };

export const reconnect: CommandSpec<ReconnectCommand> = {
  name: "reconnect",
  usage: "/reconnect",
  summary: "connect to the relay now instead of waiting for the next retry",
  parse: noArguments({ kind: "reconnect" }),
  run(_command, { session, say }) {
    const outcome = session.reconnectNow?.();
    if (outcome === undefined) say("error", "this session cannot reconnect on request");
    else say(outcome.ok ? "info" : "error", outcome.ok ? reconnectText(outcome.value) : errorText(outcome.error));
    return "clear";
  },
};
