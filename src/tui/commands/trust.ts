// /trust <user> <digits>: mark a user verified, naming the digits compared (/verify shows them).
import { ok, userArg, type CommandSpec } from "./command.js";
import { errorText, trustText } from "./error-text.js";

/** The digits the user compared: the groups /verify shows in its /trust command. */
export type TrustCommand = { readonly kind: "trust"; readonly user: string; readonly groups: readonly string[] };

export const trust: CommandSpec<TrustCommand> = {
  name: "trust",
  usage: "/trust <user> <digits>",
  summary: "mark a user verified ✓: name the digits you compared (/verify shows the exact command); accepts a changed key",
  completes: "user",
  parse({ args, usage }) {
    if (args.length === 0) return usage("needs a user and the digits you compared (/verify <user> shows the exact command)");
    const user = userArg(args[0] ?? "", "trust");
    if (typeof user !== "string") return user;
    const groups = args.slice(1);
    if (groups.length === 0) return usage(`needs the digits you compared: /verify ${user} shows the exact command`);
    if (!groups.every((g) => /^\d+$/.test(g))) return usage("takes a user and groups of digits, as /verify shows them");
    return ok({ kind: "trust", user, groups });
  },
  run(command, { say, session }) {
    const outcome = session.trust(command.user, command.groups);
    if (!outcome.ok) {
      say("error", errorText(outcome.error));
      return "clear";
    }
    say("info", trustText(outcome.value));
    return "clear";
  },
};
