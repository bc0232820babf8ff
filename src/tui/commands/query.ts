// /query <user> (also /q): open the private conversation with a user.
import { dmIdFor } from "../../client/types.js";
import { oneUser, type CommandSpec } from "./command.js";

export type QueryCommand = { readonly kind: "query"; readonly user: string };

export const query: CommandSpec<QueryCommand> = {
  name: "query",
  aliases: ["q"],
  usage: "/query <user>",
  summary: "open the private conversation with a user (also /q)",
  completes: "user",
  parse: (input) => oneUser("query", input),
  run(command, { state, dispatch, say }) {
    if (command.user === state.me) {
      say("error", "that is you: /query needs someone else's name");
      return "clear";
    }
    if (!state.peers.some((p) => p.username === command.user)) {
      say("warn", `no user named ${command.user} is known yet; messages will fail until they have connected once`);
    }
    dispatch({ type: "open-conversation", id: dmIdFor(state.me, command.user), focus: true });
    return "clear";
  },
};
