// /invite <user> [#room]: protocol v2 — a member adds someone to a room from one of their
// KeyPackages on the relay (an Add commit and a Welcome, PROTOCOL.md §7). The line saying it
// ("you added carol") comes from the session's membership event.
import { userAndOptionalRoom, type CommandSpec } from "./command.js";

export type InviteCommand = { readonly kind: "invite"; readonly user: string; readonly room?: string };

export const invite: CommandSpec<InviteCommand> = {
  name: "invite",
  usage: "/invite <user> [#room]",
  summary: "add someone to a room you are in (default: the current one); protocol v2",
  completes: "user",
  parse: (input) => userAndOptionalRoom("invite", input),
  run(command, { state, here, say, later, session, currentRoom }) {
    const room = command.room ?? currentRoom();
    if (room === undefined) {
      say("error", "/invite without a room works inside a room — usage: /invite <user> [#room]");
      return "clear";
    }
    const inviteMember = session.invite;
    if (inviteMember === undefined) {
      say("error", `/invite needs secure-chat protocol v2 and this session speaks v1, where people join a room themselves (/join ${room})`);
      return "clear";
    }
    if (command.user === state.me) {
      say("error", `that is you: /invite adds someone else to ${room}`);
      return "clear";
    }
    const { user } = command;
    later(`/invite ${user}`, () => inviteMember.call(session, room, user), () => {
      if (room !== here) say("info", `${user} was added to ${room}`);
    });
    return "clear";
  },
};
