// /search <text>: the messages containing the text, in every conversation and the kept history.
import type { ChatMessage } from "../../client/types.js";
import { describeConversation } from "../state/conversations.js";
import { searchEverywhere } from "../state/search.js";
import { ok, type CommandSpec } from "./command.js";

/** The messages of this conversation containing the text. */
export type SearchCommand = { readonly kind: "search"; readonly text: string };

export const search: CommandSpec<SearchCommand> = {
  name: "search",
  usage: "/search <text>",
  summary: "find the text in every conversation and the whole kept history (the newest 20 hits, each with its conversation)",
  parse: ({ rest, usage }) => (rest === "" ? usage("needs the text to look for") : ok({ kind: "search", text: rest })),
  run(command, { state, session, say, logger, formatStamp }) {
    // Every open conversation and the whole kept history (closed conversations included).
    let kept: readonly ChatMessage[] = [];
    try {
      kept = session.searchHistory?.(command.text) ?? [];
    } catch (e) {
      logger.warn("tui.search-history-failed", { reason: e instanceof Error ? e.message : String(e) });
    }
    const open = state.order.flatMap((id) => (state.conversations[id] ? [state.conversations[id].entries] : []));
    const titleOf = (id: string): string => state.conversations[id]?.title ?? describeConversation(id, state.me)?.title ?? id;
    const found = searchEverywhere(open, kept, command.text, formatStamp, titleOf);
    const what = `"${command.text}"`;
    if (found.total === 0) say("info", `no message in any conversation contains ${what}`);
    else {
      const head = found.total > found.lines.length
        ? `${found.total} messages contain ${what}; the newest ${found.lines.length}:`
        : `${found.total} message${found.total === 1 ? "" : "s"} contain${found.total === 1 ? "s" : ""} ${what}:`;
      say("info", [head, ...found.lines].join("\n"));
    }
    return "clear";
  },
};
