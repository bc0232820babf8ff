// /verify <user>: the safety number to compare with a user.
import { oneUser, type CommandSpec } from "./command.js";

export type VerifyCommand = { readonly kind: "verify"; readonly user: string };

export const verify: CommandSpec<VerifyCommand> = {
  name: "verify",
  usage: "/verify <user>",
  summary: "show the safety number to compare with a user",
  completes: "user",
  parse: (input) => oneUser("verify", input),
  run(command, { here, dispatch, now, later, session }) {
    // Keys not fetched yet (a peer who just appeared) are looked up first: one /verify is enough.
    later("/verify", () => session.verify(command.user), (info) => dispatch({ type: "verify-info", info, atMs: now(), conversationId: here }));
    return "clear";
  },
};
