// /accept <user>: continue with a changed key without comparing (not verified).
import { oneUser, type CommandSpec } from "./command.js";
import { errorText, trustText } from "./error-text.js";

/** Continue with a changed key without comparing (not verified). */
export type AcceptCommand = { readonly kind: "accept"; readonly user: string };

export const accept: CommandSpec<AcceptCommand> = {
  name: "accept",
  usage: "/accept <user>",
  summary: "continue with a user's changed key without comparing (NOT verified); it may then join your conversations",
  completes: "user",
  parse: (input) => oneUser("accept", input),
  run(command, { say, session }) {
    const outcome = session.acceptNewKeys(command.user);
    if (!outcome.ok) {
      say("error", errorText(outcome.error));
      return "clear";
    }
    say("warn", trustText(outcome.value));
    return "clear";
  },
};
