// /notify [all|mentions|none]: how loud this conversation is, or show it.
import { NOTIFY_LEVELS, notifyLevel, type NotifyLevel } from "../state/settings.js";
import { ok, type CommandSpec, type InputFate, type RunContext } from "./command.js";

/** How loud this conversation is, or show it (no argument). */
export type NotifyCommand = { readonly kind: "notify"; readonly level?: NotifyLevel };

const NOTIFY_WORDS: Readonly<Record<NotifyLevel, string>> = {
  all: "every message counts as unread",
  mentions: "only DMs, mentions of you and highlight words count (and ring)",
  none: "muted: nothing counts as unread or rings (/mute again or /notify all to undo)",
};

/** Sets this conversation's level (/notify <level>, /mute), or shows it (`level` undefined). */
export function setNotify(ctx: RunContext, choose: (current: NotifyLevel) => NotifyLevel | undefined): InputFate {
  const { state, here, dispatch, say } = ctx;
  const title = state.conversations[here]?.title ?? here;
  const current = notifyLevel(state.settings, here);
  const level = choose(current);
  if (level === undefined) {
    say("info", `notify level of ${title}: ${NOTIFY_WORDS[current]} (/notify all|mentions|none)`);
    return "clear";
  }
  dispatch({ type: "set-notify", conversationId: here, level });
  say("info", `${title}: ${NOTIFY_WORDS[level]}`);
  return "clear";
}

export const notify: CommandSpec<NotifyCommand> = {
  name: "notify",
  usage: "/notify [all|mentions|none]",
  summary: "what counts as unread here and rings: every message, only DMs and mentions, or nothing",
  parse({ args, usage }) {
    if (args.length > 1) return usage("takes one setting");
    const arg = args[0]?.toLowerCase();
    const allowed: readonly string[] = NOTIFY_LEVELS;
    if (arg === undefined) return ok({ kind: "notify" });
    if (!allowed.includes(arg)) return usage(`takes ${allowed.join(", ")}, not '${args[0] ?? ""}'`);
    return ok({ kind: "notify", level: arg as NotifyLevel });
  },
  run: (command, ctx) => setNotify(ctx, () => command.level),
};
