// Carries out a parsed command against the session and reports back through actions. This is
// the one place commands meet the ChatSession; it never throws: every failure (an Outcome with
// ok false, a rejected promise) becomes an error line in the conversation the command came from.
import { dmIdFor, type ChatSession, type Outcome } from "../../client/types.js";
import type { Logger } from "../../protocol/log.js";
import { listFindLastIndex, listGet, listToArray } from "../state/chunked-list.js";
import type { Command } from "../state/commands.js";
import { helpLines } from "../state/commands.js";
import { searchMessages } from "../state/search.js";
import { LOBBY_ID, describeConversation } from "../state/conversations.js";
import type { Action } from "../state/reducer.js";
import type { TuiState } from "../state/state.js";
import { sortPeers } from "../view/sidebar-rows.js";
import { formatStamp } from "../view/time.js";

export interface CommandContext {
  readonly session: ChatSession;
  /** The state when the line was submitted. */
  readonly state: TuiState;
  readonly dispatch: (action: Action) => void;
  readonly now: () => number;
  readonly logger: Logger;
  /** Leaves the app (closes the session, restores the terminal). */
  readonly quit: () => void;
}

/**
 * What the input line should do after a command: clear, or keep the text when a message the
 * user wrote was not sent (so it is not lost and can be fixed or sent again).
 */
export type InputFate = "clear" | "keep";

/** Finds an open conversation by "lobby", "#room", "@user", "user" or its 1-based number. */
export function resolveConversation(state: TuiState, target: string): string | undefined {
  if (/^\d+$/.test(target)) return state.order[Number(target) - 1];
  const wanted = target.toLowerCase();
  const title = wanted === LOBBY_ID || wanted.startsWith("#") || wanted.startsWith("@") ? wanted : `@${wanted}`;
  return state.order.find((id) => state.conversations[id]?.title === title);
}

function describeUsers(state: TuiState): string {
  const peers = sortPeers(state.peers);
  if (peers.length === 0) return "no users known yet";
  const lines = peers.map((p) => {
    const trust = p.you ? "you" : p.trust === "verified" ? "verified ✓" : p.trust === "key-changed" ? "KEY CHANGED ⚠ — /verify, then /trust or /accept" : "not verified (/verify)";
    return `  ${p.online ? "●" : "○"} ${p.username.padEnd(14)} ${p.online ? "online " : "offline"}  ${trust}`;
  });
  const online = peers.filter((p) => p.online).length;
  return [`users: ${online} online, ${peers.length - online} offline`, ...lines].join("\n");
}

export function executeCommand(command: Command, ctx: CommandContext): InputFate {
  const { session, state, dispatch, now } = ctx;
  const here = state.current;
  const say = (level: "info" | "warn" | "error", text: string, conversationId = here): void =>
    dispatch({ type: "notice", level, text, atMs: now(), conversationId });
  /** Runs an async session call; its answer (or failure) lands where the command was typed. */
  const later = <T>(what: string, run: () => Promise<Outcome<T>>, done: (value: T) => void): void => {
    let promise: Promise<Outcome<T>>;
    try {
      promise = run();
    } catch (e) {
      promise = Promise.reject(e);
    }
    promise.then(
      (outcome) => (outcome.ok ? done(outcome.value) : say("error", outcome.error)),
      (e: unknown) => {
        ctx.logger.warn("tui.command-failed", { command: what, reason: e instanceof Error ? e.message : String(e) });
        say("error", `${what} failed: ${e instanceof Error ? e.message : String(e)}`);
      },
    );
  };
  const send = (conversationId: string, text: string, kind: "text" | "action"): InputFate => {
    const outcome = session.send(conversationId, text, kind);
    if (!outcome.ok) {
      say("error", outcome.error);
      return "keep";
    }
    return "clear";
  };
  /** /retry all: every failed message of mine here that was not sent again yet, oldest first. */
  const retryAll = (): void => {
    const entries = state.conversations[here]?.entries;
    const failed = entries === undefined ? [] : listToArray(entries).flatMap((e) =>
      (e.kind === "message" && e.message.own && e.message.state === "failed" && !e.retried ? [e.message.id] : []));
    if (failed.length === 0) {
      say("error", "no failed message of yours in this conversation to send again");
      return;
    }
    let sent = 0;
    for (const id of failed) {
      const outcome = session.retry(here, id);
      if (!outcome.ok) {
        // The same reason would stop the rest (e.g. a key change): say it once and keep them.
        say("error", `${outcome.error}${sent > 0 ? ` (${sent} of ${failed.length} sent again)` : ""}`);
        return;
      }
      dispatch({ type: "message-retried", conversationId: here, id });
      sent++;
    }
    say("info", `${sent} failed message${sent === 1 ? "" : "s"} sent again, in their order`);
  };
  const currentRoom = (): string | undefined => (describeConversation(here, state.me)?.kind === "room" ? here : undefined);

  switch (command.kind) {
    case "nothing":
      return "clear";
    case "say":
      return send(here, command.text, "text");
    case "me":
      return send(here, command.action, "action");
    case "msg": {
      if (command.user === state.me) {
        say("error", "that is you: /msg needs someone else's name");
        return "keep";
      }
      const id = dmIdFor(state.me, command.user);
      const fate = send(id, command.text, "text");
      if (fate === "clear") dispatch({ type: "open-conversation", id, focus: true });
      return fate;
    }
    case "query": {
      if (command.user === state.me) {
        say("error", "that is you: /query needs someone else's name");
        return "clear";
      }
      if (!state.peers.some((p) => p.username === command.user)) {
        say("warn", `no user named ${command.user} is known yet; messages will fail until they have connected once`);
      }
      dispatch({ type: "open-conversation", id: dmIdFor(state.me, command.user), focus: true });
      return "clear";
    }
    case "switch": {
      const id = resolveConversation(state, command.target);
      if (id === undefined) {
        say("error", `no open conversation '${command.target}': use its number, lobby, #room or @user (see the bar at the top right)`);
        return "clear";
      }
      dispatch({ type: "open-conversation", id, focus: true });
      return "clear";
    }
    case "lobby":
      dispatch({ type: "open-conversation", id: LOBBY_ID, focus: true });
      return "clear";
    case "close":
      if (here === LOBBY_ID) {
        say("error", "the lobby stays open (/quit leaves the chat)");
        return "clear";
      }
      dispatch({ type: "close-conversation", id: here });
      return "clear";
    case "users":
      say("info", describeUsers(state));
      return "clear";
    case "help":
      say("info", helpLines().join("\n"));
      return "clear";
    case "fingerprint":
      say("info", `your key fingerprints: ${session.fingerprint()}\nPeers see these when they /verify you; the safety number you compare with them is shown by /verify <user>.`);
      return "clear";
    case "verify":
      // Keys not fetched yet (a peer who just appeared) are looked up first: one /verify is enough.
      later("/verify", () => session.verify(command.user), (info) => dispatch({ type: "verify-info", info, atMs: now(), conversationId: here }));
      return "clear";
    case "trust":
    case "accept": {
      const outcome = command.kind === "trust" ? session.trust(command.user, command.groups) : session.acceptNewKeys(command.user);
      if (!outcome.ok) {
        say("error", outcome.error);
        return "clear";
      }
      say(command.kind === "trust" ? "info" : "warn", outcome.value);
      return "clear";
    }
    case "join": {
      const room = command.room;
      // The session's own room event says "you joined #ops — members: …" in the room.
      later(`/join ${room}`, () => session.joinRoom(room), (view) => {
        dispatch({ type: "open-conversation", id: view.room, focus: true });
      });
      return "clear";
    }
    case "leave": {
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
    }
    case "rooms":
      later("/rooms", () => session.listRooms(), (listing) => {
        const joined = new Set(listing.joined.map((r) => r.room));
        const lines = listing.all.length === 0
          ? ["no rooms yet: /join #name creates one"]
          : [`rooms (${listing.all.length}):`, ...listing.all.map((r) =>
              `  ${r.room.padEnd(20)} ${r.memberCount} member${r.memberCount === 1 ? "" : "s"}${joined.has(r.room) ? "  (joined)" : ""}`)];
        say("info", lines.join("\n"));
      });
      return "clear";
    case "members": {
      const room = command.room ?? currentRoom();
      if (room === undefined) {
        say("error", "/members without a room works inside a room — usage: /members [#room]");
        return "clear";
      }
      later(`/members ${room}`, () => session.members(room), (members) => {
        say("info", `${room}: ${members.length} member${members.length === 1 ? "" : "s"}: ${members.join(", ")}`);
      });
      return "clear";
    }
    case "retry": {
      if (command.all === true) {
        retryAll();
        return "clear";
      }
      const entries = state.conversations[here]?.entries;
      const failed = entries === undefined
        ? undefined
        : listGet(entries, listFindLastIndex(entries, (e) => e.kind === "message" && e.message.own && e.message.state === "failed" && !e.retried));
      const failedId = failed?.kind === "message" ? failed.message.id : undefined;
      if (failedId === undefined) {
        say("error", "no failed message of yours in this conversation to send again");
        return "clear";
      }
      const outcome = session.retry(here, failedId);
      if (outcome.ok) dispatch({ type: "message-retried", conversationId: here, id: failedId });
      else say("error", outcome.error);
      return "clear";
    }
    case "search": {
      const conversation = state.conversations[here];
      if (conversation === undefined) return "clear";
      const found = searchMessages(conversation.entries, command.text, formatStamp);
      const what = `"${command.text}"`;
      if (found.total === 0) say("info", `no message in ${conversation.title} contains ${what}`);
      else {
        const head = found.total > found.lines.length
          ? `${found.total} messages in ${conversation.title} contain ${what}; the newest ${found.lines.length}:`
          : `${found.total} message${found.total === 1 ? "" : "s"} in ${conversation.title} contain${found.total === 1 ? "s" : ""} ${what}:`;
        say("info", [head, ...found.lines].join("\n"));
      }
      return "clear";
    }
    case "clear":
      // On screen and in the kept history: a cleared conversation does not come back at restart.
      session.forgetHistory(here);
      dispatch({ type: "clear-conversation", id: here });
      return "clear";
    case "mouse": {
      const on = command.on ?? !state.mouse;
      dispatch({ type: "set-mouse", on });
      say("info", on
        ? "mouse wheel scrolling is on: to select text, hold Shift while dragging (/mouse off turns it off)"
        : "mouse wheel scrolling is off: the terminal selects text as usual");
      return "clear";
    }
    case "quit":
      ctx.quit();
      return "clear";
    default: {
      const unhandled: never = command;
      throw new Error(`unhandled command ${JSON.stringify(unhandled)}`);
    }
  }
}
