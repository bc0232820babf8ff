// /quit [text] (also /exit): leave; with text, first say goodbye in the lobby.
import { LOBBY_ID } from "../state/conversations.js";
import { ok, type CommandSpec } from "./command.js";

/** `text`: a goodbye sent to the lobby before leaving (end-to-end encrypted like any message). */
export type QuitCommand = { readonly kind: "quit"; readonly text?: string };

/** How long /quit <text> waits for the relay to take the goodbye before leaving anyway. */
export const QUIT_WAIT_MS = 3_000;

export const quit: CommandSpec<QuitCommand> = {
  name: "quit",
  aliases: ["exit"],
  usage: "/quit [text]",
  summary: "leave (also /exit); with text, first say goodbye in the lobby (* alice quit: text)",
  parse: ({ rest }) => ok(rest === "" ? { kind: "quit" } : { kind: "quit", text: rest }),
  run(command, ctx) {
    const { session } = ctx;
    if (command.text === undefined) {
      ctx.quit();
      return "clear";
    }
    // The goodbye goes to the lobby, sealed like any message; leave once the relay took it
    // (or after QUIT_WAIT_MS: then it stays in the outbox and is sent at the next start).
    const sent = session.send(LOBBY_ID, `quit: ${command.text}`, "action");
    if (!sent.ok) {
      ctx.quit();
      return "clear";
    }
    let done = false;
    const leave = (): void => {
      if (done) return;
      done = true;
      unsubscribe();
      clearTimeout(timer);
      ctx.quit();
    };
    const unsubscribe = session.subscribe((e) => {
      if (e.type === "message-state" && e.id === sent.value.id && e.state !== "pending") leave();
    });
    const timer = setTimeout(leave, QUIT_WAIT_MS);
    return "clear";
  },
};
