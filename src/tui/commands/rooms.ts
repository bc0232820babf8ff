// /rooms: the rooms on the relay, and which I joined.
import { noArguments, type CommandSpec } from "./command.js";

export type RoomsCommand = { readonly kind: "rooms" };

export const rooms: CommandSpec<RoomsCommand> = {
  name: "rooms",
  usage: "/rooms",
  summary: "list rooms",
  parse: noArguments({ kind: "rooms" }),
  run(_command, { say, later, session }) {
    later("/rooms", () => session.listRooms(), (listing) => {
      const joined = new Set(listing.joined.map((r) => r.room));
      const lines = listing.all.length === 0
        ? ["no rooms yet: /join #name creates one"]
        : [`rooms (${listing.all.length}):`, ...listing.all.map((r) =>
            `  ${r.room.padEnd(20)} ${r.memberCount} member${r.memberCount === 1 ? "" : "s"}${joined.has(r.room) ? "  (joined)" : ""}`)];
      say("info", lines.join("\n"));
    });
    return "clear";
  },
};
