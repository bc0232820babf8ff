// /join #room (also /j): join a room, created if nobody is in it.
import { ok, roomArg, type CommandSpec } from "./command.js";

export type JoinCommand = { readonly kind: "join"; readonly room: string };

export const join: CommandSpec<JoinCommand> = {
  name: "join",
  aliases: ["j"],
  usage: "/join #room",
  summary: "join a room (it is created if nobody is in it; also /j)",
  completes: "room",
  parse({ args, usage }) {
    if (args.length !== 1) return usage(args.length === 0 ? "needs a room" : "takes one room");
    const room = roomArg(args[0] ?? "", "join");
    return typeof room === "string" ? ok({ kind: "join", room }) : room;
  },
  run(command, { dispatch, later, session }) {
    const room = command.room;
    // The session's own room event says "you joined #ops — members: …" in the room.
    later(`/join ${room}`, () => session.joinRoom(room), (view) => {
      dispatch({ type: "open-conversation", id: view.room, focus: true });
    });
    return "clear";
  },
};
