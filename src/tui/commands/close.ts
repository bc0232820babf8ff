// /close (also /wc): close the current conversation.
import { LOBBY_ID } from "../state/conversations.js";
import { noArguments, type CommandSpec } from "./command.js";

export type CloseCommand = { readonly kind: "close" };

export const close: CommandSpec<CloseCommand> = {
  name: "close",
  aliases: ["wc"],
  usage: "/close",
  summary: "close the current conversation (not the lobby; rooms stay joined; it stays closed after a restart until you reopen it or a message arrives; also /wc)",
  parse: noArguments({ kind: "close" }),
  run(_command, { here, dispatch, say }) {
    if (here === LOBBY_ID) {
      say("error", "the lobby stays open (/quit leaves the chat)");
      return "clear";
    }
    dispatch({ type: "close-conversation", id: here });
    return "clear";
  },
};
