// Carries out a parsed command against the session and reports back through actions. This is
// the one place commands meet the ChatSession; it never throws: every failure (an Outcome with
// ok false, a rejected promise) becomes an error line in the conversation the command came from.
import { dmIdFor, type ChatMessage, type ChatSession, type Outcome } from "../../client/types.js";
import type { Logger } from "../../protocol/log.js";
import { listFindLastIndex, listGet, listToArray } from "../state/chunked-list.js";
import type { Command } from "../state/commands.js";
import { helpLines } from "../state/commands.js";
import { searchEverywhere } from "../state/search.js";
import { MAX_HIGHLIGHTS, notifyLevel, presenceFilter, type NotifyLevel, type PresenceFilter } from "../state/settings.js";
import { LOBBY_ID, describeConversation } from "../state/conversations.js";
import type { Action } from "../state/reducer.js";
import type { TuiState } from "../state/state.js";
import { sortPeers } from "../view/sidebar-rows.js";
import { errorText, trustText } from "./error-text.js";
import { formatStamp } from "../view/time.js";

/** How long /quit <text> waits for the relay to take the goodbye before leaving anyway. */
export const QUIT_WAIT_MS = 3_000;

const NOTIFY_WORDS: Readonly<Record<NotifyLevel, string>> = {
  all: "every message counts as unread",
  mentions: "only DMs, mentions of you and highlight words count (and ring)",
  none: "muted: nothing counts as unread or rings (/mute again or /notify all to undo)",
};

const FILTER_WORDS: Readonly<Record<PresenceFilter, string>> = {
  all: "all shown",
  smart: "shown only for people who spoke here in the last 5 minutes",
  none: "hidden",
};

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
      (outcome) => (outcome.ok ? done(outcome.value) : say("error", errorText(outcome.error))),
      (e: unknown) => {
        ctx.logger.warn("tui.command-failed", { command: what, reason: e instanceof Error ? e.message : String(e) });
        say("error", `${what} failed: ${e instanceof Error ? e.message : String(e)}`);
      },
    );
  };
  const send = (conversationId: string, text: string, kind: "text" | "action" | "topic"): InputFate => {
    const outcome = session.send(conversationId, text, kind);
    if (!outcome.ok) {
      say("error", errorText(outcome.error));
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
        say("error", `${errorText(outcome.error)}${sent > 0 ? ` (${sent} of ${failed.length} sent again)` : ""}`);
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
        say("error", errorText(outcome.error));
        return "clear";
      }
      say(command.kind === "trust" ? "info" : "warn", trustText(outcome.value));
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
      else say("error", errorText(outcome.error));
      return "clear";
    }
    case "search": {
      // Every open conversation and the whole kept history (closed conversations included).
      let kept: readonly ChatMessage[] = [];
      try {
        kept = session.searchHistory?.(command.text) ?? [];
      } catch (e) {
        ctx.logger.warn("tui.search-history-failed", { reason: e instanceof Error ? e.message : String(e) });
      }
      const open = state.order.flatMap((id) => (state.conversations[id] ? [state.conversations[id].entries] : []));
      const titleOf = (id: string): string => state.conversations[id]?.title ?? describeConversation(id, state.me)?.title ?? id;
      const found = searchEverywhere(open, kept, command.text, formatStamp, titleOf);
      const what = `"${command.text}"`;
      if (found.total === 0) say("info", `no message in any conversation contains ${what}`);
      else {
        const head = found.total > found.lines.length
          ? `${found.total} messages contain ${what}; the newest ${found.lines.length}:`
          : `${found.total} message${found.total === 1 ? "" : "s"} contain${found.total === 1 ? "s" : ""} ${what}:`;
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
    case "quit": {
      if (command.text === undefined) {
        ctx.quit();
        return "clear";
      }
      // The goodbye goes to the lobby, sealed like any message; leave once the relay took it
      // (or after QUIT_WAIT_MS: then it stays in the outbox and is sent at the next start).
      const sent = session.send(LOBBY_ID, `quit: ${command.text}`, "action");
      if (!sent.ok) {
        ctx.quit();
        return "clear";
      }
      let done = false;
      const leave = (): void => {
        if (done) return;
        done = true;
        unsubscribe();
        clearTimeout(timer);
        ctx.quit();
      };
      const unsubscribe = session.subscribe((e) => {
        if (e.type === "message-state" && e.id === sent.value.id && e.state !== "pending") leave();
      });
      const timer = setTimeout(leave, QUIT_WAIT_MS);
      return "clear";
    }
    case "reconnect": {
      const outcome = session.reconnectNow?.();
      if (outcome === undefined) say("error", "this session cannot reconnect on request");
      else say(outcome.ok ? "info" : "error", outcome.ok ? outcome.value : errorText(outcome.error));
      return "clear";
    }
    case "away":
      session.setAway?.(command.text);
      dispatch(command.text === undefined ? { type: "set-away" } : { type: "set-away", text: command.text });
      say("info", command.text === undefined
        ? "you are back: DMs no longer get an automatic reply"
        : `you are away: the first DM from each person gets one automatic reply "${command.text}", encrypted like any message (the relay sees only that a message was sent); /away alone: back`);
      return "clear";
    case "topic": {
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
    }
    case "filter": {
      const title = state.conversations[here]?.title ?? here;
      if (command.filter === undefined) {
        say("info", `presence lines in ${title}: ${FILTER_WORDS[presenceFilter(state.settings, here)]} (/filter all|smart|none)`);
        return "clear";
      }
      dispatch({ type: "set-filter", conversationId: here, filter: command.filter });
      say("info", `presence lines in ${title}: ${FILTER_WORDS[command.filter]}`);
      return "clear";
    }
    case "notify":
    case "mute": {
      const title = state.conversations[here]?.title ?? here;
      const current = notifyLevel(state.settings, here);
      const level = command.kind === "mute" ? (current === "none" ? "all" : "none") : command.level;
      if (level === undefined) {
        say("info", `notify level of ${title}: ${NOTIFY_WORDS[current]} (/notify all|mentions|none)`);
        return "clear";
      }
      dispatch({ type: "set-notify", conversationId: here, level });
      say("info", `${title}: ${NOTIFY_WORDS[level]}`);
      return "clear";
    }
    case "highlight": {
      const words = state.settings.highlights;
      if (command.op === "list") {
        say("info", words.length === 0
          ? "no highlight words: your name is always one; /highlight add <word> adds another"
          : `highlight words (besides your name): ${words.join(", ")}`);
        return "clear";
      }
      if (command.op === "add") {
        if (words.includes(command.word)) say("info", `'${command.word}' is already a highlight word`);
        else if (words.length >= MAX_HIGHLIGHTS) say("error", `at most ${MAX_HIGHLIGHTS} highlight words: /highlight remove one first`);
        else {
          dispatch({ type: "highlight", op: "add", word: command.word });
          say("info", `'${command.word}' now counts as a mention of you`);
        }
        return "clear";
      }
      if (!words.includes(command.word)) say("error", `'${command.word}' is not a highlight word (/highlight lists them)`);
      else {
        dispatch({ type: "highlight", op: "remove", word: command.word });
        say("info", `'${command.word}' is no longer a highlight word`);
      }
      return "clear";
    }
    default: {
      const unhandled: never = command;
      throw new Error(`unhandled command ${JSON.stringify(unhandled)}`);
    }
  }
}
