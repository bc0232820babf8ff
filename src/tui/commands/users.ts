// /users: who is known, online, and verified.
import type { PeerView } from "../../client/types.js";
import type { TuiState } from "../state/state.js";
import { noArguments, type CommandSpec } from "./command.js";

export type UsersCommand = { readonly kind: "users" };

function describeUsers(state: TuiState, sortPeers: (peers: readonly PeerView[]) => PeerView[]): string {
  const peers = sortPeers(state.peers);
  if (peers.length === 0) return "no users known yet";
  const lines = peers.map((p) => {
    const trust = p.you ? "you" : p.trust === "verified" ? "verified ✓" : p.trust === "key-changed" ? "KEY CHANGED ⚠ — /verify, then /trust or /accept" : "not verified (/verify)";
    return `  ${p.online ? "●" : "○"} ${p.username.padEnd(14)} ${p.online ? "online " : "offline"}  ${trust}`;
  });
  const online = peers.filter((p) => p.online).length;
  return [`users: ${online} online, ${peers.length - online} offline`, ...lines].join("\n");
}

export const users: CommandSpec<UsersCommand> = {
  name: "users",
  usage: "/users",
  summary: "list known users, who is online and whom you have verified",
  parse: noArguments({ kind: "users" }),
  run(_command, { state, say, sortPeers }) {
    say("info", describeUsers(state, sortPeers));
    return "clear";
  },
};
