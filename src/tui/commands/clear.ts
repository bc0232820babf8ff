// /clear: clear this conversation, on screen and in the kept history.
import { noArguments, type CommandSpec } from "./command.js";

export type ClearCommand = { readonly kind: "clear" };

export const clear: CommandSpec<ClearCommand> = {
  name: "clear",
  usage: "/clear",
  summary: "clear this conversation (screen and kept history)",
  parse: noArguments({ kind: "clear" }),
  run(_command, { here, session, dispatch }) {
    // On screen and in the kept history: a cleared conversation does not come back at restart.
    session.forgetHistory(here);
    dispatch({ type: "clear-conversation", id: here });
    return "clear";
  },
};
