// /link CODE: link the new device showing CODE (PROTOCOL.md §4.6), on the primary device only;
// /link yes | /link no answers the question about the digits both screens show.
import type { ChatSession } from "../../client/types.js";
import { ok, type CommandSpec } from "./command.js";

export type LinkCommand =
  | { readonly kind: "link"; readonly code: string }
  | { readonly kind: "link"; readonly answer: boolean };

/** The question waiting for /link yes|no, per session (one linking at a time). */
interface Pending {
  readonly deviceName: string;
  readonly sas: string;
  answer: ((yes: boolean) => void) | undefined;
}
const linking = new WeakMap<ChatSession, Pending | "starting">();

export const link: CommandSpec<LinkCommand> = {
  name: "link",
  usage: "/link <code>",
  summary: "link a new device (run chat-tui <you> --link on it first): type the code it shows, compare the digits both show, then answer /link yes or /link no (primary device only)",
  parse({ args, rest, usage }) {
    if (args.length === 0) return usage("needs the code the new device shows (chat-tui <you> --link shows it), or yes / no");
    const word = rest.toLowerCase();
    if (word === "yes" || word === "y") return ok({ kind: "link", answer: true });
    if (word === "no" || word === "n") return ok({ kind: "link", answer: false });
    return ok({ kind: "link", code: rest });
  },
  run(command, { session, say }) {
    const current = linking.get(session);
    if ("answer" in command) {
      if (current === undefined || current === "starting" || current.answer === undefined) {
        say("error", "/link: no linking is waiting for an answer (start one with /link <code>)");
        return "clear";
      }
      const answer = current.answer;
      current.answer = undefined;
      say("info", command.answer ? `Linking ${current.deviceName}…` : `Not linking ${current.deviceName}.`);
      answer(command.answer);
      return "clear";
    }
    if (session.linkDevice === undefined) {
      say("error", "/link: this session cannot link devices (linking needs protocol v2)");
      return "clear";
    }
    if (current !== undefined) {
      say("error", current !== "starting" && current.answer !== undefined
        ? `/link: a linking waits for your answer first: does ${current.deviceName} show ${current.sas}? /link yes or /link no`
        : "/link: a linking is already in progress");
      return "clear";
    }
    linking.set(session, "starting");
    say("info", "Looking for the new device with this code on the relay…");
    const confirm = (sas: string, deviceName: string): Promise<boolean> =>
      new Promise((resolve) => {
        linking.set(session, { deviceName, sas, answer: resolve });
        say("warn", `Does ${deviceName} show ${sas}? If the digits are the same, /link yes; if not, /link no (someone else may be using the code).`);
      });
    session.linkDevice(command.code, confirm).then(
      (outcome) => {
        linking.delete(session);
        if (outcome.ok) {
          say("info", `Linked ${outcome.name}: it is one of your devices now (device list v${outcome.version}). It joins your conversations from here on; earlier messages are not on it.` +
            (outcome.confirmed ? "" : ` ${outcome.name} did not say it finished: if it shows an error, unlink it and link again.`));
        } else {
          say("error", `/link: ${outcome.reason}`);
        }
      },
      (e: unknown) => {
        linking.delete(session);
        say("error", `/link failed: ${e instanceof Error ? e.message : String(e)}`);
      },
    );
    return "clear";
  },
};
