// /switch <name|number> (also /win, /buffer): go to an open conversation.
import { LOBBY_ID } from "../state/conversations.js";
import type { TuiState } from "../state/state.js";
import { ok, type CommandSpec } from "./command.js";

export type SwitchCommand = { readonly kind: "switch"; readonly target: string };

/** Finds an open conversation by "lobby", "#room", "@user", "user" or its 1-based number. */
export function resolveConversation(state: TuiState, target: string): string | undefined {
  if (/^\d+$/.test(target)) return state.order[Number(target) - 1];
  const wanted = target.toLowerCase();
  const title = wanted === LOBBY_ID || wanted.startsWith("#") || wanted.startsWith("@") ? wanted : `@${wanted}`;
  return state.order.find((id) => state.conversations[id]?.title === title);
}

export const switchCommand: CommandSpec<SwitchCommand> = {
  name: "switch",
  aliases: ["win", "buffer"],
  usage: "/switch <name|number>",
  summary: "go to an open conversation: lobby, #room, @user or its number (also /win, /buffer)",
  completes: "conversation",
  parse({ args, usage }) {
    if (args.length !== 1) return usage(args.length === 0 ? "needs a conversation" : "takes one conversation");
    return ok({ kind: "switch", target: (args[0] ?? "").toLowerCase() });
  },
  run(command, { state, dispatch, say }) {
    const id = resolveConversation(state, command.target);
    if (id === undefined) {
      say("error", `no open conversation '${command.target}': use its number, lobby, #room or @user (see the bar at the top right)`);
      return "clear";
    }
    dispatch({ type: "open-conversation", id, focus: true });
    return "clear";
  },
};
