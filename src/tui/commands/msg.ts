// /msg <user> <text>: a private message, and the conversation with that user opens.
import { dmIdFor } from "../../client/types.js";
import { ok, userArg, type CommandSpec } from "./command.js";

export type MsgCommand = { readonly kind: "msg"; readonly user: string; readonly text: string };

export const msg: CommandSpec<MsgCommand> = {
  name: "msg",
  usage: "/msg <user> <text>",
  summary: "send a private message and open the conversation with that user",
  completes: "user",
  parse({ rest, usage }) {
    const m = /^(\S+)\s+([\s\S]*\S[\s\S]*)$/.exec(rest);
    if (rest === "") return usage("needs a user and a message");
    if (!m) return usage(`needs a message for ${rest}`);
    const user = userArg(m[1] ?? "", "msg");
    return typeof user === "string" ? ok({ kind: "msg", user, text: m[2] ?? "" }) : user;
  },
  run(command, { state, dispatch, say, send }) {
    if (command.user === state.me) {
      say("error", "that is you: /msg needs someone else's name");
      return "keep";
    }
    const id = dmIdFor(state.me, command.user);
    const fate = send(id, command.text, "text");
    if (fate === "clear") dispatch({ type: "open-conversation", id, focus: true });
    return fate;
  },
};
