// /lobby: back to the lobby.
import { LOBBY_ID } from "../state/conversations.js";
import { noArguments, type CommandSpec } from "./command.js";

export type LobbyCommand = { readonly kind: "lobby" };

export const lobby: CommandSpec<LobbyCommand> = {
  name: "lobby",
  usage: "/lobby",
  summary: "go back to the lobby (everyone online)",
  parse: noArguments({ kind: "lobby" }),
  run(_command, { dispatch }) {
    dispatch({ type: "open-conversation", id: LOBBY_ID, focus: true });
    return "clear";
  },
};
