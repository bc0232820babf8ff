// /retry [all] (also Alt-R): send my last failed message here again; all: every failed one, in order.
import { listFindLastIndex, listGet, listToArray } from "../state/chunked-list.js";
import { ok, type CommandSpec, type RunContext } from "./command.js";
import { errorText } from "./error-text.js";

/** `all`: every failed message of this conversation, oldest first (default: the newest one). */
export type RetryCommand = { readonly kind: "retry"; readonly all?: boolean };

/** /retry all: every failed message of mine here that was not sent again yet, oldest first. */
function retryAll({ here, state, session, dispatch, say }: RunContext): void {
  const entries = state.conversations[here]?.entries;
  const failed = entries === undefined ? [] : listToArray(entries).flatMap((e) =>
    (e.kind === "message" && e.message.own && e.message.state === "failed" && !e.retried ? [e.message.id] : []));
  if (failed.length === 0) {
    say("error", "no failed message of yours in this conversation to send again");
    return;
  }
  let sent = 0;
  for (const id of failed) {
    const outcome = session.retry(here, id);
    if (!outcome.ok) {
      // The same reason would stop the rest (e.g. a key change): say it once and keep them.
      say("error", `${errorText(outcome.error)}${sent > 0 ? ` (${sent} of ${failed.length} sent again)` : ""}`);
      return;
    }
    dispatch({ type: "message-retried", conversationId: here, id });
    sent++;
  }
  say("info", `${sent} failed message${sent === 1 ? "" : "s"} sent again, in their order`);
}

export const retry: CommandSpec<RetryCommand> = {
  name: "retry",
  usage: "/retry [all]",
  summary: "send your last failed message in this conversation again (also Alt-R); all: every failed one, in order",
  parse({ args, usage }) {
    if (args.length === 1 && args[0]?.toLowerCase() === "all") return ok({ kind: "retry", all: true });
    return args.length === 0 ? ok({ kind: "retry" }) : usage(`takes nothing or all, not '${args.join(" ")}'`);
  },
  run(command, ctx) {
    const { here, state, session, dispatch, say } = ctx;
    if (command.all === true) {
      retryAll(ctx);
      return "clear";
    }
    const entries = state.conversations[here]?.entries;
    const failed = entries === undefined
      ? undefined
      : listGet(entries, listFindLastIndex(entries, (e) => e.kind === "message" && e.message.own && e.message.state === "failed" && !e.retried));
    const failedId = failed?.kind === "message" ? failed.message.id : undefined;
    if (failedId === undefined) {
      say("error", "no failed message of yours in this conversation to send again");
      return "clear";
    }
    const outcome = session.retry(here, failedId);
    if (outcome.ok) dispatch({ type: "message-retried", conversationId: here, id: failedId });
    else say("error", errorText(outcome.error));
    return "clear";
  },
};
