// /topic [text]: set this room's topic (sent encrypted like a message), or show it.
import { ok, type CommandSpec } from "./command.js";

export type TopicCommand = { readonly kind: "topic"; readonly text?: string };

/** A topic is one line of at most this many characters. */
export const MAX_TOPIC_CHARS = 300;

export const topic: CommandSpec<TopicCommand> = {
  name: "topic",
  usage: "/topic [text]",
  summary: "set this room's topic (encrypted to its members, like a message), or show it",
  parse({ rest, usage }) {
    if (rest === "") return ok({ kind: "topic" });
    if (rest.includes("\n")) return usage("takes one line");
    if ([...rest].length > MAX_TOPIC_CHARS) return usage(`takes at most ${MAX_TOPIC_CHARS} characters`);
    return ok({ kind: "topic", text: rest });
  },
  run(command, { state, say, send, currentRoom, formatStamp }) {
    const room = currentRoom();
    if (room === undefined) {
      say("error", "/topic works inside a room: a topic is shown to that room's members");
      return command.text === undefined ? "clear" : "keep";
    }
    if (command.text === undefined) {
      const topic = state.conversations[room]?.topic;
      say("info", topic === undefined ? `${room} has no topic yet: /topic <text> sets one` : `topic of ${room} (set by ${topic.by} ${formatStamp(topic.atMs)}): ${topic.text}`);
      return "clear";
    }
    return send(room, command.text, "topic");
  },
};
