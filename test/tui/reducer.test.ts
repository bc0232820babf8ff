import { describe, expect, test } from "vitest";
import type { ChatMessage, PeerView, SessionEvent } from "../../src/client/types.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import { listToArray } from "../../src/tui/state/chunked-list.js";
import { currentConversation, type Entry, type TuiState } from "../../src/tui/state/state.js";

const T0 = 1_700_000_000_000;
const peer = (username: string, extra: Partial<PeerView> = {}): PeerView => ({ username, online: true, trust: "unverified", you: false, ...extra });
const ME: PeerView = { username: "alice", online: true, trust: "verified", you: true };

function start(extra: Partial<Parameters<typeof createInitialState>[0]> = {}): TuiState {
  return createInitialState({
    me: "alice",
    serverLabel: "127.0.0.1:50051",
    snapshot: { connection: { state: "connected", sinceMs: T0 }, peers: [ME, peer("bob"), peer("carol", { online: false })], rooms: [] },
    atMs: T0,
    ...extra,
  });
}

let nextId = 1;
function msg(extra: Partial<ChatMessage> & Pick<ChatMessage, "conversationId" | "from" | "text">): ChatMessage {
  return { id: (nextId++).toString(16).padStart(32, "0"), kind: "text", sentAtMs: T0, receivedAtMs: T0, own: extra.from === "alice", ...extra };
}

const ev = (event: SessionEvent, atMs = T0): Action => ({ type: "session", event, atMs });
const run = (state: TuiState, ...actions: Action[]): TuiState => actions.reduce(reducer, state);
const entries = (s: TuiState, id: string): readonly Entry[] => {
  const list = s.conversations[id]?.entries;
  return list === undefined ? [] : listToArray(list);
};
const messages = (s: TuiState, id: string): ChatMessage[] => entries(s, id).flatMap((e) => (e.kind === "message" ? [e.message] : []));

describe("start", () => {
  test("opens the lobby with the snapshot, the backlog of earlier runs, then startup notices", () => {
    const pending = msg({ conversationId: "dm:alice:bob", from: "alice", text: "sent before a restart", state: "pending" });
    const earlier = msg({ conversationId: "lobby", from: "bob", own: false, text: "said yesterday" });
    const bobsDm = msg({ conversationId: "dm:alice:bob", from: "bob", own: false, text: "read last time" });
    const s = start({
      snapshot: { connection: { state: "connecting", attempt: 1 }, peers: [ME, peer("bob")], rooms: [{ room: "#ops", members: ["alice", "bob"] }] },
      notices: [{ level: "info", text: "created your keys" }],
      backlog: [earlier, bobsDm, pending],
    });
    expect(s.current).toBe("lobby");
    expect(s.order).toEqual(["lobby", "#ops", "dm:alice:bob"]);
    expect(s.connection).toEqual({ state: "connecting", attempt: 1 });
    // The notice is news of this start: below the history.
    expect(entries(s, "lobby")).toEqual([
      { kind: "message", seq: 1, message: earlier },
      { kind: "notice", seq: 4, atMs: T0, level: "info", text: "created your keys" },
    ]);
    expect(messages(s, "dm:alice:bob")).toEqual([bobsDm, pending]);
    // History is not news: nothing counts as unread or for me.
    expect(s.conversations["dm:alice:bob"]?.unread).toBe(0);
    expect(s.conversations["dm:alice:bob"]?.highlights).toBe(0);
    // The user left each conversation when they quit: the unread ruler sits after its history
    // (and after the startup notices, which are not news).
    expect(s.conversations["lobby"]?.readMarker).toBe(4);
    expect(s.conversations["dm:alice:bob"]?.readMarker).toBe(3);
    expect(s.conversations["#ops"]?.readMarker).toBeUndefined();
  });
});

describe("sending", () => {
  test("my message appears pending, then accepted", () => {
    const m = msg({ conversationId: "lobby", from: "alice", text: "hi", state: "pending" });
    let s = run(start(), ev({ type: "message", message: m }));
    expect(messages(s, "lobby")).toEqual([m]);
    s = run(s, ev({ type: "message-state", conversationId: "lobby", id: m.id, state: "accepted" }));
    expect(messages(s, "lobby")[0]?.state).toBe("accepted");
    expect(s.conversations["lobby"]?.unread).toBe(0);
  });

  test("accepted with recipients queued, or failed with a reason", () => {
    const a = msg({ conversationId: "dm:alice:carol", from: "alice", text: "later", state: "pending" });
    const b = msg({ conversationId: "lobby", from: "alice", text: "nope", state: "pending" });
    const s = run(start(),
      ev({ type: "message", message: a }),
      ev({ type: "message", message: b }),
      ev({ type: "message-state", conversationId: a.conversationId, id: a.id, state: "accepted", queuedFor: ["carol"] }),
      ev({ type: "message-state", conversationId: "lobby", id: b.id, state: "failed", failure: "rate limited" }));
    expect(messages(s, "dm:alice:carol")[0]).toMatchObject({ state: "accepted", queuedFor: ["carol"] });
    expect(messages(s, "lobby")[0]).toMatchObject({ state: "failed", failure: "rate limited" });
  });

  test("a retried failure is marked once", () => {
    const m = msg({ conversationId: "lobby", from: "alice", text: "x", state: "failed", failure: "no" });
    const s = run(start(), ev({ type: "message", message: m }), { type: "message-retried", conversationId: "lobby", id: m.id });
    expect(entries(s, "lobby")[0]).toMatchObject({ kind: "message", retried: true });
    expect(run(s, { type: "message-retried", conversationId: "lobby", id: m.id })).toBe(s);
  });

  test("a state change for an unknown message or conversation changes nothing", () => {
    const s = start();
    expect(run(s, ev({ type: "message-state", conversationId: "lobby", id: "ff", state: "accepted" }))).toBe(s);
    expect(run(s, ev({ type: "message-state", conversationId: "#nope", id: "ff", state: "accepted" }))).toBe(s);
  });
});

describe("receiving", () => {
  test("lobby messages land in the lobby", () => {
    const m = msg({ conversationId: "lobby", from: "bob", text: "hello" });
    const s = run(start(), ev({ type: "message", message: m }));
    expect(messages(s, "lobby")).toEqual([m]);
    expect(s.conversations["lobby"]?.unread).toBe(0); // I am looking at it
  });

  test("the first DM from someone opens the conversation without switching to it, with an unread highlight", () => {
    const m = msg({ conversationId: "dm:alice:bob", from: "bob", text: "psst" });
    const s = run(start(), ev({ type: "message", message: m }));
    expect(s.current).toBe("lobby");
    expect(s.order).toEqual(["lobby", "dm:alice:bob"]);
    expect(s.conversations["dm:alice:bob"]).toMatchObject({ kind: "dm", title: "@bob", peer: "bob", unread: 1, highlights: 1 });
    expect(messages(s, "dm:alice:bob")).toEqual([m]);
  });

  test("room messages land in their room; a mention of me is a highlight, other messages only unread", () => {
    const s = run(start(),
      ev({ type: "message", message: msg({ conversationId: "#ops", from: "bob", text: "deploying" }) }),
      ev({ type: "message", message: msg({ conversationId: "#ops", from: "bob", text: "alice: done?" }) }),
      ev({ type: "message", message: msg({ conversationId: "#ops", from: "bob", text: "malice is not a mention" }) }));
    expect(s.conversations["#ops"]).toMatchObject({ kind: "room", title: "#ops", unread: 3, highlights: 1 });
  });

  test("an event with an invalid conversation id lands in the current conversation", () => {
    const s = run(start(), ev({ type: "message", message: msg({ conversationId: "dm:zed:alice", from: "zed", text: "?" }) }));
    expect(s.order).toEqual(["lobby"]);
    expect(messages(s, "lobby").map((m) => m.text)).toEqual(["?"]);
  });

  test("a gap flag is kept on the message (the view draws the warning line)", () => {
    const m = msg({ conversationId: "dm:alice:bob", from: "bob", text: "after a gap", gap: true });
    expect(messages(run(start(), ev({ type: "message", message: m })), "dm:alice:bob")[0]?.gap).toBe(true);
  });

  test("a refused envelope is one entry in its conversation", () => {
    const s = run(start(), ev({ type: "refused", conversationId: "dm:alice:bob", from: "bob" }, T0 + 5));
    expect(entries(s, "dm:alice:bob")).toEqual([{ kind: "refused", seq: 1, atMs: T0 + 5, from: "bob" }]);
  });
});

describe("switching conversations", () => {
  const withDm = (): TuiState => run(start(),
    ev({ type: "message", message: msg({ conversationId: "dm:alice:bob", from: "bob", text: "one" }) }),
    ev({ type: "message", message: msg({ conversationId: "dm:alice:bob", from: "bob", text: "two" }) }),
    ev({ type: "message", message: msg({ conversationId: "#ops", from: "carol", text: "three" }) }));

  test("focusing a conversation clears its unread count", () => {
    const s = run(withDm(), { type: "open-conversation", id: "dm:alice:bob", focus: true });
    expect(s.current).toBe("dm:alice:bob");
    expect(s.conversations["dm:alice:bob"]).toMatchObject({ unread: 0, highlights: 0 });
    expect(s.conversations["#ops"]?.unread).toBe(1);
    expect(currentConversation(s).title).toBe("@bob");
  });

  test("messages for the conversation I look at are not unread", () => {
    const s = run(withDm(), { type: "open-conversation", id: "dm:alice:bob", focus: true },
      ev({ type: "message", message: msg({ conversationId: "dm:alice:bob", from: "bob", text: "three" }) }));
    expect(s.conversations["dm:alice:bob"]?.unread).toBe(0);
  });

  test("opening without focus only adds it to the bar; opening twice changes nothing", () => {
    const s = run(start(), { type: "open-conversation", id: "dm:alice:carol", focus: false });
    expect(s.order).toEqual(["lobby", "dm:alice:carol"]);
    expect(s.current).toBe("lobby");
    expect(run(s, { type: "open-conversation", id: "dm:alice:carol", focus: false })).toBe(s);
  });

  test("an invalid id is not opened", () => {
    const s = start();
    expect(run(s, { type: "open-conversation", id: "bogus", focus: true })).toBe(s);
  });

  test("Ctrl-N / Ctrl-P cycle through the bar and wrap around", () => {
    let s = withDm();
    expect(s.order).toEqual(["lobby", "dm:alice:bob", "#ops"]);
    s = run(s, { type: "cycle-conversation", delta: 1 });
    expect(s.current).toBe("dm:alice:bob");
    s = run(s, { type: "cycle-conversation", delta: 1 }, { type: "cycle-conversation", delta: 1 });
    expect(s.current).toBe("lobby");
    s = run(s, { type: "cycle-conversation", delta: -1 });
    expect(s.current).toBe("#ops");
    expect(s.conversations["#ops"]?.unread).toBe(0);
  });

  test("closing the current conversation goes to its left neighbour; the lobby never closes", () => {
    let s = run(withDm(), { type: "open-conversation", id: "#ops", focus: true }, { type: "close-conversation", id: "#ops" });
    expect(s.order).toEqual(["lobby", "dm:alice:bob"]);
    expect(s.current).toBe("dm:alice:bob");
    expect(s.conversations["#ops"]).toBeUndefined();
    s = run(s, { type: "close-conversation", id: "lobby" });
    expect(s.order).toEqual(["lobby", "dm:alice:bob"]);
  });
});

describe("peers, rooms and the connection", () => {
  test("directory replaces the peers; a peer event adds or updates one", () => {
    let s = run(start(), ev({ type: "directory", peers: [ME, peer("dave")] }));
    expect(s.peers.map((p) => p.username)).toEqual(["alice", "dave"]);
    expect(run(s, ev({ type: "directory", peers: [ME, peer("dave")] })).peers).toEqual(s.peers);
    s = run(s, ev({ type: "peer", peer: peer("dave", { online: false, trust: "verified" }) }), ev({ type: "peer", peer: peer("erin") }));
    expect(s.peers).toEqual([ME, peer("dave", { online: false, trust: "verified" }), peer("erin")]);
  });

  test("my own entry always exists and is online exactly while connected", () => {
    let s = run(start(), ev({ type: "directory", peers: [peer("bob")] }));
    expect(s.peers).toEqual([ME, peer("bob")]);
    s = run(s, ev({ type: "peer", peer: { ...ME, online: false } }));
    expect(s.peers.find((p) => p.you)?.online).toBe(true);
    s = run(s, ev({ type: "connection", status: { state: "reconnecting", attempt: 1, retryAtMs: T0, reason: "lost" } }));
    expect(s.peers.find((p) => p.you)).toEqual({ ...ME, online: false });
    s = run(s, ev({ type: "connection", status: { state: "connected", sinceMs: T0 } }));
    expect(s.peers.find((p) => p.you)).toEqual(ME);
  });

  test("rooms open their conversations; room events update members and show a line", () => {
    let s = run(start(), ev({ type: "rooms", rooms: [{ room: "#ops", members: ["alice", "bob"] }] }));
    expect(s.order).toEqual(["lobby", "#ops"]);
    s = run(s, ev({ type: "room-event", room: "#ops", kind: "joined", username: "carol", members: ["alice", "bob", "carol"], atMs: T0 + 1 }));
    expect(s.rooms).toEqual([{ room: "#ops", members: ["alice", "bob", "carol"] }]);
    expect(entries(s, "#ops").at(-1)).toMatchObject({ kind: "room-event", username: "carol", change: "joined", room: "#ops" });
    s = run(s, ev({ type: "room-event", room: "#ops", kind: "left", username: "alice", members: ["bob", "carol"], atMs: T0 + 2 }));
    expect(s.rooms).toEqual([]);
    // After /leave closed the room, the relay's confirmation does not reopen it.
    s = run(s, { type: "close-conversation", id: "#ops" },
      ev({ type: "room-event", room: "#ops", kind: "left", username: "alice", members: ["bob"], atMs: T0 + 3 }));
    expect(s.order).toEqual(["lobby"]);
  });

  test("connection status follows the session", () => {
    const status = { state: "reconnecting", attempt: 2, retryAtMs: T0 + 4000, reason: "connection refused" } as const;
    expect(run(start(), ev({ type: "connection", status })).connection).toEqual(status);
  });
});

describe("key changes", () => {
  test("warn in the conversation, mark the peer, and point at it from where I am", () => {
    const s = run(start(), ev({ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 2 }, T0 + 9));
    expect(entries(s, "dm:alice:bob")).toEqual([{ kind: "key-change", seq: 1, atMs: T0 + 9, username: "bob", held: 2 }]);
    expect(s.peers.find((p) => p.username === "bob")?.trust).toBe("key-changed");
    expect(s.conversations["dm:alice:bob"]?.highlights).toBe(1);
    const pointer = entries(s, "lobby").at(-1);
    expect(pointer).toMatchObject({ kind: "notice", level: "warn" });
    expect(pointer?.kind === "notice" && pointer.text).toContain("/verify bob shows the safety number and the exact /trust command");
  });

  test("the same change again (a message held since) updates the warning, not a second one", () => {
    const s = run(start(),
      ev({ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 0 }, T0 + 1),
      ev({ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 1 }, T0 + 2));
    expect(entries(s, "dm:alice:bob")).toEqual([{ kind: "key-change", seq: 1, atMs: T0 + 1, username: "bob", held: 1 }]);
    expect(entries(s, "lobby").filter((e) => e.kind === "notice")).toHaveLength(1);
    expect(s.conversations["dm:alice:bob"]?.highlights).toBe(1);
    // After /trust and a later change, it is a new warning.
    const later = run(s, ev({ type: "peer", peer: peer("bob", { trust: "verified" }) }),
      ev({ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 0 }, T0 + 3));
    expect(entries(later, "dm:alice:bob").filter((e) => e.kind === "key-change")).toHaveLength(2);
  });

  test("a pending key replaced by yet another is a fresh warning every time (issue 9 §3)", () => {
    const s = run(start(),
      ev({ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 1 }, T0 + 1),
      ev({ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 0, replaced: true, discarded: 1 }, T0 + 2),
      ev({ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 0, replaced: true, discarded: 0 }, T0 + 3));
    expect(entries(s, "dm:alice:bob")).toEqual([
      { kind: "key-change", seq: 1, atMs: T0 + 1, username: "bob", held: 1 },
      { kind: "key-change", seq: 3, atMs: T0 + 2, username: "bob", held: 0, replaced: true, discarded: 1 },
      { kind: "key-change", seq: 5, atMs: T0 + 3, username: "bob", held: 0, replaced: true, discarded: 0 },
    ]);
    const pointers = entries(s, "lobby").filter((e) => e.kind === "notice");
    expect(pointers).toHaveLength(3);
    expect(pointers[1]?.kind === "notice" && pointers[1].text).toContain("bob's keys changed AGAIN");
  });

  test("in a room, the warning says the room goes on", () => {
    const s = run(start(), ev({ type: "key-change", username: "carol", conversationId: "#ops", held: 1 }, T0 + 1));
    expect(entries(s, "#ops")).toEqual([{ kind: "key-change", seq: 1, atMs: T0 + 1, username: "carol", held: 1, inRoom: true }]);
  });

  test("in the conversation I am looking at, the warning is not repeated", () => {
    const s = run(start(), { type: "open-conversation", id: "dm:alice:bob", focus: true },
      ev({ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 0 }));
    expect(entries(s, "dm:alice:bob").map((e) => e.kind)).toEqual(["key-change"]);
    expect(entries(s, "lobby")).toEqual([]);
  });
});

describe("notices", () => {
  test("session notices go to their conversation, else the current one", () => {
    let s = run(start(), { type: "open-conversation", id: "#ops", focus: true });
    s = run(s, ev({ type: "notice", level: "warn", text: "relay: slow down" }), ev({ type: "notice", level: "info", text: "for bob", conversationId: "dm:alice:bob" }));
    expect(entries(s, "#ops")).toMatchObject([{ kind: "notice", level: "warn", text: "relay: slow down" }]);
    expect(entries(s, "dm:alice:bob")).toMatchObject([{ kind: "notice", level: "info", text: "for bob" }]);
  });

  test("UI notices and verify blocks; every entry gets a unique sequence number", () => {
    const s = run(start(),
      { type: "notice", level: "error", text: "unknown command /x", atMs: T0 },
      { type: "verify-info", info: { username: "bob", trust: "unverified", safetyNumber: "1 2", confirmGroups: ["11111", "22222", "33333"] }, atMs: T0 },
      { type: "notice", level: "info", text: "in a DM", atMs: T0, conversationId: "dm:alice:bob" });
    expect(entries(s, "lobby").map((e) => [e.kind, e.seq])).toEqual([["notice", 1], ["verify", 2]]);
    expect(entries(s, "dm:alice:bob").map((e) => e.seq)).toEqual([3]);
  });
});

describe("batches and input", () => {
  test("a batch of events equals the events one by one", () => {
    const events = [
      { event: { type: "message", message: msg({ conversationId: "lobby", from: "bob", text: "a" }) }, atMs: T0 },
      { event: { type: "refused", conversationId: "lobby", from: "mallory" }, atMs: T0 + 1 },
      { event: { type: "peer", peer: peer("bob", { online: false }) }, atMs: T0 + 2 },
    ] as const satisfies readonly { event: SessionEvent; atMs: number }[];
    const batched = run(start(), { type: "session-batch", events });
    const single = run(start(), ...events.map((e) => ev(e.event, e.atMs)));
    expect(batched).toEqual(single);
  });

  test("typing, cursor movement, deleting and clearing", () => {
    let s = run(start(), { type: "input-insert", text: "helo" }, { type: "input-move", move: "left" }, { type: "input-insert", text: "l" });
    expect(s.input).toEqual({ text: "hello", cursor: 4 });
    s = run(s, { type: "input-move", move: "home" }, { type: "input-delete" }, { type: "input-insert", text: "J" });
    expect(s.input).toEqual({ text: "Jello", cursor: 1 });
    s = run(s, { type: "input-move", move: "end" }, { type: "input-backspace" }, { type: "input-move", move: "right" });
    expect(s.input).toEqual({ text: "Jell", cursor: 4 });
    expect(run(s, { type: "input-kill", kill: "to-start" }).input).toEqual({ text: "", cursor: 0 });
  });

  test("quitting is remembered", () => {
    expect(run(start(), { type: "quitting" }).quitting).toBe(true);
  });
});
