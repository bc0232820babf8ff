// The local history and the outbox text, encrypted at rest (PROTOCOL.md §10.4): what is kept comes
// back after a restart, and nothing of it is readable from the file without the key file.
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AtRestCipher, atRestKey } from "../../src/client/at-rest.js";
import { describeClientError, type ClientError } from "../../src/client/errors.js";
import { MessageHistory } from "../../src/client/history.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import type { ChatMessage } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { nullLogger, type Logger } from "../../src/protocol/log.js";
import { messageWithUiText } from "../../src/tui/commands/error-text.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { sqliteFileBytes } from "../helpers/sqlite-bytes.js";

let alice: PrivateIdentity;
let mallory: PrivateIdentity;
let dir: string;
beforeAll(async () => {
  [alice, mallory] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("mallory", "alice")]);
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sc-history-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function message(extra: Partial<ChatMessage> & Pick<ChatMessage, "conversationId" | "text">): ChatMessage {
  n++;
  return { id: n.toString(16).padStart(32, "0"), from: "bob", kind: "text", sentAtMs: 1000 + n, receivedAtMs: 2000 + n, own: false, ...extra };
}


function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { ...nullLogger, warnings, warn: (event: string) => void warnings.push(event) };
}

describe("at-rest cipher", () => {
  const id = Buffer.alloc(16, 7);

  it("opens what it sealed, only in the same place, conversation and message, under the same key", () => {
    const c = new AtRestCipher(alice);
    const sealed = c.seal("history", "dm:alice:bob", id, "meet at 9 ☕");
    expect(sealed.includes(Buffer.from("meet at 9"))).toBe(false);
    expect(c.open("history", "dm:alice:bob", id, sealed)).toBe("meet at 9 ☕");
    expect(c.open("outbox", "dm:alice:bob", id, sealed)).toBeUndefined();
    expect(c.open("history", "lobby", id, sealed)).toBeUndefined();
    expect(c.open("history", "dm:alice:bob", Buffer.alloc(16, 8), sealed)).toBeUndefined();
    expect(new AtRestCipher(mallory).open("history", "dm:alice:bob", id, sealed)).toBeUndefined();
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 1]! ^= 1;
    expect(c.open("history", "dm:alice:bob", id, flipped)).toBeUndefined();
    expect(c.open("history", "dm:alice:bob", id, sealed.subarray(0, 27))).toBeUndefined();
  });

  it("seals the same text differently each time (fresh IV)", () => {
    const c = new AtRestCipher(alice);
    expect(c.seal("history", "lobby", id, "x").equals(c.seal("history", "lobby", id, "x"))).toBe(false);
  });

  it("derives the key as PROTOCOL.md §10.4 says (known answer, computed with an independent HKDF)", () => {
    // HKDF-SHA256(ikm = alice's Ed25519 PKCS#8 DER, salt = empty, info = "securechat/v1/at-rest-key"),
    // computed with Python's hmac/hashlib from RFC 5869: a change here would make every kept history unreadable.
    expect(alice.sigPrivate.export({ format: "der", type: "pkcs8" }).toString("hex"))
      .toBe("302e020100300506032b6570042204204e1301c9281abe9840ac10e935cfb0202f65fceb908f46848d1903ca0f38094c");
    expect(atRestKey(alice).toString("hex")).toBe("8f6c5592ab7db55a66a491cebcdf424d9d3219483a70c58ca46c31232a29684a");
  });

  it("derives one key per identity, from the signing key", () => {
    expect(atRestKey(alice).equals(atRestKey(alice))).toBe(true);
    expect(atRestKey(alice).equals(atRestKey(mallory))).toBe(false);
    expect(atRestKey(alice)).toHaveLength(32);
  });

  it("checks its arguments first", () => {
    const c = new AtRestCipher(alice);
    expect(() => c.seal("history", "lobby", id, 42 as unknown as string)).toThrow(TypeError);
    expect(() => c.seal("history", "lobby", Buffer.alloc(15), "x")).toThrow(/16 bytes/);
    expect(() => c.seal("history", "", id, "x")).toThrow(/conversationId/);
    expect(() => c.open("elsewhere" as "history", "lobby", id, Buffer.alloc(40))).toThrow(/place/);
  });
});

describe("message history", () => {
  it("comes back after a restart, with states, and the file holds no text in the clear", () => {
    const path = join(dir, "alice_state.db");
    let store = ClientStateStore.open(path);
    let history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    const said = message({ conversationId: "lobby", text: "the deploy is at noon" });
    const mine = message({ conversationId: "dm:alice:bob", from: "alice", own: true, text: "private: my pin is 4711", state: "pending" });
    const action = message({ conversationId: "#ops", kind: "action", text: "restarts the database", gap: true });
    for (const m of [said, mine, action]) history.record(m);
    history.record({ ...said, text: "a replay of the same id is ignored" });
    history.setState(mine.id, "accepted", undefined, ["bob"]);
    store.close();

    const bytes = sqliteFileBytes(path);
    for (const secret of ["the deploy is at noon", "my pin is 4711", "restarts the database"]) expect(bytes.includes(Buffer.from(secret))).toBe(false);

    store = ClientStateStore.open(path);
    history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    const back = history.recent();
    expect(back).toHaveLength(3);
    expect(back.find((m) => m.id === said.id)).toEqual(said);
    expect(back.find((m) => m.id === mine.id)).toEqual({ ...mine, state: "accepted", queuedFor: ["bob"] });
    expect(back.find((m) => m.id === action.id)).toEqual(action);
    store.close();
  });

  it("keeps why a message failed as data: after a restart the UI words a key change with its /verify hint", () => {
    const path = join(dir, "alice_state.db");
    let store = ClientStateStore.open(path);
    let history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    const mine = message({ conversationId: "dm:alice:bob", from: "alice", own: true, text: "hi", state: "pending" });
    history.record(mine);
    const error: ClientError = { kind: "key-changed", username: "bob" };
    history.onEvent({ type: "message-state", conversationId: mine.conversationId, id: mine.id, state: "failed", failure: describeClientError(error), error });
    // A row whose stored error is not a ClientError (an unknown kind, a nested value) comes back without it.
    const odd = message({ conversationId: "dm:alice:bob", from: "alice", own: true, text: "ho", state: "failed", failure: "x", error: { kind: "no-such-kind" } as unknown as ClientError });
    history.record(odd);
    store.close();

    store = ClientStateStore.open(path);
    history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    const back = history.recent().find((m) => m.id === mine.id)!;
    expect(back).toMatchObject({ state: "failed", failure: describeClientError(error), error });
    expect(messageWithUiText(back).failure).toBe("bob's key changed: compare safety numbers with /verify bob (it shows the /trust command), or /accept bob to continue unverified");
    expect(history.recent().find((m) => m.id === odd.id)).not.toHaveProperty("error");
    store.close();
  });

  it("opens a history file written before failures were kept as data (no failure_error column)", () => {
    const path = join(dir, "alice_state.db");
    let store = ClientStateStore.open(path);
    let history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    const mine = message({ conversationId: "dm:alice:bob", from: "alice", own: true, text: "hi", state: "failed", failure: "not sent" });
    history.record(mine);
    store.close();
    const db = new DatabaseSync(path);
    db.exec("ALTER TABLE history DROP COLUMN failure_error");
    db.close();
    store = ClientStateStore.open(path);
    history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    expect(history.recent()).toEqual([mine]);
    history.setState(mine.id, "failed", "again", undefined, { kind: "not-connected" });
    expect(history.recent()[0]).toMatchObject({ failure: "again", error: { kind: "not-connected" } });
    store.close();
  });

  it("shows the newest messages in the order they came, and trimming keeps the newest of each conversation", () => {
    const store = ClientStateStore.open(":memory:");
    const history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    const lobby = Array.from({ length: 5 }, (_, i) => message({ conversationId: "lobby", text: `lobby ${i}` }));
    const dm = message({ conversationId: "dm:alice:bob", text: "only one" });
    for (const m of [...lobby.slice(0, 2), dm, ...lobby.slice(2)]) history.record(m);
    // In the order they came, across conversations; at most `total`, the newest.
    expect(history.recent().map((m) => m.text)).toEqual(["lobby 0", "lobby 1", "only one", "lobby 2", "lobby 3", "lobby 4"]);
    expect(history.recent(2).map((m) => m.text)).toEqual(["lobby 3", "lobby 4"]);
    history.trim(3);
    // The trimmed rows are gone from the file; the other conversation keeps its one.
    expect(history.recent().map((m) => m.text)).toEqual(["only one", "lobby 2", "lobby 3", "lobby 4"]);
    store.close();
  });

  it("trims by itself during a long session: a flood does not grow the file without end", () => {
    const store = ClientStateStore.open(":memory:");
    const history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    for (let i = 0; i < 1_600; i++) history.record(message({ conversationId: "lobby", text: `flood ${i}` }));
    // Trimmed to the newest 500 at the 1,000th message; 600 more since.
    const kept = history.recent(10_000);
    expect(kept).toHaveLength(1_100);
    expect(kept[0]?.text).toBe("flood 500");
    store.close();
  });

  it("forgets a conversation (/clear), and the others stay", () => {
    const store = ClientStateStore.open(":memory:");
    const history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    history.record(message({ conversationId: "lobby", text: "public" }));
    history.record(message({ conversationId: "dm:alice:bob", text: "private" }));
    history.forget("dm:alice:bob");
    expect(history.recent().map((m) => m.text)).toEqual(["public"]);
    store.close();
  });

  it("skips rows swapped between messages, or sealed under another key, and says so in the log", () => {
    const path = join(dir, "alice_state.db");
    const store = ClientStateStore.open(path);
    const history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    const a = message({ conversationId: "lobby", text: "first" });
    const b = message({ conversationId: "lobby", text: "second" });
    const c = message({ conversationId: "lobby", text: "third" });
    for (const m of [a, b, c]) history.record(m);
    store.close();

    // Someone with the file but not the key moves the text of "first" onto "second".
    const raw = new DatabaseSync(path);
    raw.prepare("UPDATE history SET sealed = (SELECT sealed FROM history WHERE message_id = ?) WHERE message_id = ?")
      .run(Buffer.from(a.id, "hex"), Buffer.from(b.id, "hex"));
    raw.close();

    const reopened = ClientStateStore.open(path);
    const log = recordingLogger();
    const afterSwap = new MessageHistory(reopened, new AtRestCipher(alice), log);
    expect(afterSwap.recent().map((m) => m.text)).toEqual(["first", "third"]);
    expect(log.warnings).toEqual(["history.unreadable"]);
    expect(afterSwap.unreadable).toBe(1); // the client says so at start
    // Attributing "first" to someone else, or calling it my own, is found out too.
    const relabel = new DatabaseSync(path);
    relabel.prepare("UPDATE history SET sender = 'mallory' WHERE message_id = ?").run(Buffer.from(a.id, "hex"));
    relabel.close();
    expect(new MessageHistory(reopened, new AtRestCipher(alice), nullLogger).recent().map((m) => m.text)).toEqual(["third"]);
    const back = new DatabaseSync(path);
    back.prepare("UPDATE history SET sender = 'bob' WHERE message_id = ?").run(Buffer.from(a.id, "hex"));
    back.prepare("UPDATE history SET own = 1 WHERE message_id = ?").run(Buffer.from(c.id, "hex"));
    back.close();
    expect(new MessageHistory(reopened, new AtRestCipher(alice), nullLogger).recent().map((m) => m.text)).toEqual(["first"]);
    const restore = new DatabaseSync(path);
    restore.prepare("UPDATE history SET own = 0 WHERE message_id = ?").run(Buffer.from(c.id, "hex"));
    restore.close();
    // The unsealed state fields are shown only as the app writes them: no escape sequences.
    const inject = new DatabaseSync(path);
    inject.prepare("UPDATE history SET state = 'failed', failure = ?, queued_for = ? WHERE message_id = ?")
      .run("\u001b]0;owned\u0007refused\u001b[2J", "bob,../etc,\u001b[31m", Buffer.from(a.id, "hex"));
    inject.close();
    const shown = new MessageHistory(reopened, new AtRestCipher(alice), nullLogger).recent().find((m) => m.id === a.id);
    expect(shown?.failure).not.toMatch(/\u001b|\u0007/);
    expect(shown?.queuedFor).toEqual(["bob"]);
    // A damaged row (an id of the wrong length) is skipped too, not the whole history.
    const damage = new DatabaseSync(path);
    damage.prepare("UPDATE history SET message_id = ? WHERE message_id = ?").run(Buffer.alloc(3), Buffer.from(c.id, "hex"));
    damage.close();
    expect(new MessageHistory(reopened, new AtRestCipher(alice), nullLogger).recent().map((m) => m.text)).toEqual(["first"]);
    // Another key file (e.g. after re-keying) reads none of it.
    expect(new MessageHistory(reopened, new AtRestCipher(mallory), nullLogger).recent()).toEqual([]);
    reopened.close();
  });
});

describe("older pages and search (issue 10 §4)", () => {
  // An id is unique per sender only (PROTOCOL.md §11.1): mallory reusing carol's id later must
  // not move where the page before carol's message starts.
  it("a page before a message is found by its sender and id, not its id alone", () => {
    const store = ClientStateStore.open(join(dir, "alice_state.db"));
    const h = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    const early = message({ conversationId: "lobby", text: "early", from: "bob" });
    const carol = message({ conversationId: "lobby", text: "meet at 5", from: "carol" });
    const between = message({ conversationId: "lobby", text: "between", from: "bob" });
    const mallory = { ...message({ conversationId: "lobby", text: "meet at 9", from: "mallory" }), id: carol.id };
    for (const m of [early, carol, between, mallory]) h.record(m);
    expect(h.page("lobby", carol, 10).map((m) => m.text)).toEqual(["early"]);
    expect(h.page("lobby", mallory, 10).map((m) => m.text)).toEqual(["early", "meet at 5", "between"]);
    store.close();
  });

  it("reads a conversation page by page before a message, skips rows of another key, and searches every conversation", () => {
    const store = ClientStateStore.open(join(dir, "alice_state.db"));
    const h = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
    const lobby = Array.from({ length: 5 }, (_, i) => message({ conversationId: "lobby", text: `lobby ${i}` }));
    for (const m of lobby) h.record(m);
    h.record(message({ conversationId: "#ops", text: "Lobby is elsewhere", kind: "topic" }));
    // A row sealed under another key (a re-keyed user) is skipped, not shown as garbage.
    new MessageHistory(store, new AtRestCipher(mallory), nullLogger).record(message({ conversationId: "lobby", text: "lobby sealed by another key" }));

    // The newest row does not open: the page reads on, and is full.
    expect(h.page("lobby", undefined, 2).map((m) => m.text)).toEqual(["lobby 3", "lobby 4"]);
    expect(h.page("lobby", lobby[4]!, 2).map((m) => m.text)).toEqual(["lobby 2", "lobby 3"]);
    expect(h.page("lobby", lobby[0]!, 2)).toEqual([]);
    // An id that is not kept reads from the newest.
    expect(h.page("lobby", { id: "ff".repeat(16), from: "bob" }, 10).map((m) => m.text)).toEqual(lobby.map((m) => m.text));
    expect(h.search("LOBBY").map((m) => [m.conversationId, m.kind, m.text])).toEqual([
      ...lobby.map((m) => ["lobby", "text", m.text]), ["#ops", "topic", "Lobby is elsewhere"],
    ]);
    expect(() => h.search(" ")).toThrow(TypeError);
    expect(() => h.page("lobby", undefined, -1)).toThrow(RangeError);
    store.close();
  });

  it("keeps the UI settings beside the history", () => {
    const path = join(dir, "alice_state.db");
    const store = ClientStateStore.open(path);
    expect(store.settingGet("tui")).toBeUndefined();
    store.settingSet("tui", '{"highlights":["deploy"]}');
    store.settingSet("tui", '{"highlights":["release"]}');
    store.close();
    const again = ClientStateStore.open(path);
    expect(again.settingGet("tui")).toBe('{"highlights":["release"]}');
    again.close();
  });
});
