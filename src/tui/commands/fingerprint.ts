// /fingerprint: my own key fingerprints.
import { noArguments, type CommandSpec } from "./command.js";

export type FingerprintCommand = { readonly kind: "fingerprint" };

export const fingerprint: CommandSpec<FingerprintCommand> = {
  name: "fingerprint",
  usage: "/fingerprint",
  summary: "show your own key fingerprints",
  parse: noArguments({ kind: "fingerprint" }),
  run(_command, { say, session }) {
    say("info", `your key fingerprints: ${session.fingerprint()}\nPeers see these when they /verify you; the safety number you compare with them is shown by /verify <user>.`);
    return "clear";
  },
};
