// /kick <user> [#room]: protocol v2 — the room's creator removes a member (PROTOCOL.md §7). The
// removal is a commit every member processes; the line saying it ("you removed carol from #ops")
// comes from the session's membership event, like everyone else's.
import { userAndOptionalRoom, type CommandSpec } from "./command.js";

export type KickCommand = { readonly kind: "kick"; readonly user: string; readonly room?: string };

export const kick: CommandSpec<KickCommand> = {
  name: "kick",
  usage: "/kick <user> [#room]",
  summary: "remove someone from a room you created (default: the current one; rooms are open: they can /join again)",
  completes: "member",
  parse: (input) => userAndOptionalRoom("kick", input),
  run(command, { state, here, say, later, session, currentRoom }) {
    const room = command.room ?? currentRoom();
    if (room === undefined) {
      say("error", "/kick without a room works inside a room — usage: /kick <user> [#room]");
      return "clear";
    }
    const kickMember = session.kick;
    if (kickMember === undefined) {
      say("error", "/kick needs secure-chat protocol v2 and this session speaks v1, where a room has no creator and nobody can remove a member");
      return "clear";
    }
    if (command.user === state.me) {
      say("error", `that is you: /leave ${room} leaves the room`);
      return "clear";
    }
    const { user } = command;
    later(`/kick ${user}`, () => kickMember.call(session, room, user), () => {
      // In the room itself the membership line says it; typed elsewhere, say it here too.
      if (room !== here) say("info", `${user} was removed from ${room}`);
    });
    return "clear";
  },
};
