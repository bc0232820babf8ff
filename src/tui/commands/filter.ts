// /filter [all|smart|none]: which join/leave and online/offline lines this conversation shows.
import { PRESENCE_FILTERS, presenceFilter, type PresenceFilter } from "../state/settings.js";
import { ok, type CommandSpec } from "./command.js";

/** Which presence lines this conversation shows, or show the setting (no argument). */
export type FilterCommand = { readonly kind: "filter"; readonly filter?: PresenceFilter };

const FILTER_WORDS: Readonly<Record<PresenceFilter, string>> = {
  all: "all shown",
  smart: "shown only for people who spoke here in the last 5 minutes",
  none: "hidden",
};

export const filter: CommandSpec<FilterCommand> = {
  name: "filter",
  usage: "/filter [all|smart|none]",
  summary: "join/leave and online/offline lines here: all, only of people who spoke in the last 5 minutes (smart), or none",
  parse({ args, usage }) {
    if (args.length > 1) return usage("takes one setting");
    const arg = args[0]?.toLowerCase();
    const allowed: readonly string[] = PRESENCE_FILTERS;
    if (arg === undefined) return ok({ kind: "filter" });
    if (!allowed.includes(arg)) return usage(`takes ${allowed.join(", ")}, not '${args[0] ?? ""}'`);
    return ok({ kind: "filter", filter: arg as PresenceFilter });
  },
  run(command, { state, here, dispatch, say }) {
    const title = state.conversations[here]?.title ?? here;
    if (command.filter === undefined) {
      say("info", `presence lines in ${title}: ${FILTER_WORDS[presenceFilter(state.settings, here)]} (/filter all|smart|none)`);
      return "clear";
    }
    dispatch({ type: "set-filter", conversationId: here, filter: command.filter });
    say("info", `presence lines in ${title}: ${FILTER_WORDS[command.filter]}`);
    return "clear";
  },
};
