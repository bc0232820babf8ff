// /members [#room] (also /names): the members of a room, by default the current one.
import { optionalRoom, type CommandSpec } from "./command.js";

export type MembersCommand = { readonly kind: "members"; readonly room?: string };

export const members: CommandSpec<MembersCommand> = {
  name: "members",
  aliases: ["names"],
  usage: "/members [#room]",
  summary: "list the members of a room (default: the current one; also /names)",
  completes: "room",
  parse: (input) => optionalRoom("members", input),
  run(command, { say, later, session, currentRoom }) {
    const room = command.room ?? currentRoom();
    if (room === undefined) {
      say("error", "/members without a room works inside a room — usage: /members [#room]");
      return "clear";
    }
    later(`/members ${room}`, () => session.members(room), (members) => {
      say("info", `${room}: ${members.length} member${members.length === 1 ? "" : "s"}: ${members.join(", ")}`);
    });
    return "clear";
  },
};
