// /leave [#room] (also /part): leave a room, by default the current one.
import { LOBBY_ID } from "../state/conversations.js";
import { optionalRoom, type CommandSpec } from "./command.js";

export type LeaveCommand = { readonly kind: "leave"; readonly room?: string };

export const leave: CommandSpec<LeaveCommand> = {
  name: "leave",
  aliases: ["part"],
  usage: "/leave [#room]",
  summary: "leave a room (default: the current one; also /part)",
  completes: "room",
  parse: (input) => optionalRoom("leave", input),
  run(command, { here, dispatch, say, later, session, currentRoom }) {
    const room = command.room ?? currentRoom();
    if (room === undefined) {
      say("error", "/leave without a room works inside a room — usage: /leave [#room]");
      return "clear";
    }
    later(`/leave ${room}`, () => session.leaveRoom(room), () => {
      dispatch({ type: "close-conversation", id: room });
      say("info", `you left ${room}`, room === here ? LOBBY_ID : here);
    });
    return "clear";
  },
};
