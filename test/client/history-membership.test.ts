// Protocol v2 membership lines kept in the history (src/client/history.ts): "bob joined #ops",
// "alice removed carol from #ops" come back after a restart in place among the messages, sealed
// at rest like a message's text; the backlog the TUI starts from shows them where they were.
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AtRestCipher } from "../../src/client/at-rest.js";
import { MessageHistory } from "../../src/client/history.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import type { BacklogItem, ChatMessage, MembershipEvent, MembershipLine } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { nullLogger } from "../../src/protocol/log.js";
import { membershipText } from "../../src/tui/commands/membership-text.js";
import { listToArray } from "../../src/tui/state/chunked-list.js";
import { createInitialState } from "../../src/tui/state/reducer.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { sqliteFileBytes } from "../helpers/sqlite-bytes.js";

let alice: PrivateIdentity;
let mallory: PrivateIdentity;
let dir: string;
beforeAll(async () => {
  [alice, mallory] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("mallory", "alice")]);
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sc-history-membership-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const T0 = 1_700_000_000_000;
let n = 0;
function message(conversationId: string, text: string, from = "bob"): ChatMessage {
  n++;
  return { id: n.toString(16).padStart(32, "0"), conversationId, from, kind: "text", text, sentAtMs: T0 + n, receivedAtMs: T0 + n, own: from === "alice" };
}
function membership(conversationId: string, kind: MembershipLine["kind"], by: string, users: string[] = [], creator?: string): MembershipEvent {
  n++;
  return { type: "membership", conversationId, line: { kind, by, users, atMs: T0 + n, ...(creator === undefined ? {} : { creator }) } };
}
/** A line as the screen words it, or a message's text. */
const shown = (items: readonly BacklogItem[], me = "alice"): string[] =>
  items.map((i) => ("type" in i ? `-- ${membershipText(i.line, i.conversationId, me)}` : `${i.from}: ${i.text}`));

function open(path = join(dir, "state.db"), who: PrivateIdentity = alice): { history: MessageHistory; store: ClientStateStore } {
  const store = ClientStateStore.open(path);
  return { history: new MessageHistory(store, new AtRestCipher(who), nullLogger), store };
}

describe("membership lines in the history", () => {
  it("come back after a restart in place among the messages, and only messages in pages and searches", () => {
    const path = join(dir, "state.db");
    const first = open(path);
    const events = [
      { type: "message" as const, message: message("#ops", "anyone around?", "alice") },
      membership("#ops", "joined", "bob"),
      { type: "message" as const, message: message("#ops", "hi, carol is here too") },
      membership("#ops", "added", "bob", ["carol"]),
      membership("#ops", "removed", "alice", ["carol"], "alice"),
      membership("#ops", "refused", "bob", ["alice"], "alice"),
      membership("dm:alice:bob", "added", "bob", ["alice"]),
      { type: "membership" as const, conversationId: "#ops", line: { kind: "device-added" as const, by: "alice", users: ["alice"], device: "desktop", thisDevice: true, atMs: T0 + 50 } },
      // The lobby's comings and goings are presence (not shown, so not kept); a refused change is shown.
      membership("lobby", "joined", "alice"),
      membership("lobby", "left", "bob"),
      membership("lobby", "refused", "bob", ["carol"]),
      { type: "message" as const, message: message("#ops", "bye", "alice") },
    ];
    for (const e of events) first.history.onEvent(e);
    first.store.close();

    const again = open(path);
    const items = again.history.backlog([], () => true, () => {});
    expect(shown(items)).toEqual([
      "alice: anyone around?",
      "-- bob joined #ops",
      "bob: hi, carol is here too",
      "-- bob added carol",
      "-- you removed carol from #ops",
      "-- bob tried to remove you from #ops; only you can",
      "-- bob started this conversation", // the DM's group made on its first message
      "-- this device (desktop) was added here: it reads what is sent from now on",
      "-- bob tried to remove carol from the lobby; only its creator can",
      "alice: bye",
    ]);
    // Each line exactly as it was reported.
    const kept = items.filter((i): i is MembershipEvent => "type" in i);
    const reported = events.filter((e): e is MembershipEvent => e.type === "membership" && (e.conversationId !== "lobby" || e.line.kind === "refused"));
    expect(kept).toEqual(reported);
    // recent(), pages and searches are of messages only.
    expect(again.history.recent().map((m) => m.text)).toEqual(["anyone around?", "hi, carol is here too", "bye"]);
    expect(again.history.page("#ops", undefined, 10).map((m) => m.text)).toEqual(["anyone around?", "hi, carol is here too", "bye"]);
    expect(again.history.search("carol").map((m) => m.text)).toEqual(["hi, carol is here too"]);
    expect(again.history.unreadable).toBe(0);
    again.store.close();
  });

  it("a new DM's 'started this conversation' comes back above my first lines, which waited for its group; lines already sent stay above it", () => {
    const path = join(dir, "state.db");
    const first = open(path);
    const sent = { ...message("dm:alice:bob", "an older line, sent", "alice"), state: "accepted" as const };
    const waiting = [
      { ...message("dm:alice:bob", "hi bob", "alice"), state: "pending" as const },
      { ...message("dm:alice:bob", "are you there?", "alice"), state: "pending" as const },
    ];
    for (const m of [sent, ...waiting]) first.history.onEvent({ type: "message", message: m });
    first.history.onEvent(membership("dm:alice:bob", "added", "alice", ["bob"]));
    first.history.onEvent({ type: "message", message: message("dm:alice:bob", "hello alice") });
    // Both wrote at once and carol's group won: my waiting line goes below her line too.
    const mine = { ...message("dm:alice:carol", "hi carol", "alice"), state: "pending" as const };
    first.history.onEvent({ type: "message", message: mine });
    first.history.onEvent(membership("dm:alice:carol", "added", "carol", ["alice"]));
    first.store.close();

    const again = open(path);
    const items = again.history.backlog([...waiting, mine], () => true, () => {});
    expect(shown(items)).toEqual([
      "alice: an older line, sent",
      "-- you started this conversation",
      "alice: hi bob",
      "alice: are you there?",
      "bob: hello alice",
      "-- carol started this conversation",
      "alice: hi carol",
    ]);
    again.store.close();
  });

  it("are sealed at rest: who was added or removed is not in the file; another key, or a row altered, does not open", () => {
    const path = join(dir, "state.db");
    const { history, store } = open(path);
    history.onEvent(membership("#ops", "removed", "alice", ["zoe_the_removed"], "alice"));
    history.onEvent(membership("#ops", "added", "alice", ["yves_the_added"]));
    store.close();
    const bytes = sqliteFileBytes(path);
    for (const secret of ["zoe_the_removed", "yves_the_added", "removed", "added"]) {
      expect(bytes.includes(Buffer.from(secret)), `"${secret}" in the state db`).toBe(false);
    }

    const other = open(path, mallory);
    expect(other.history.backlog([], () => true, () => {})).toEqual([]);
    expect(other.history.unreadable).toBe(2);
    other.store.close();

    // Someone with the file swaps the row's kind or who made it: bound to the sealed line, it does not open.
    const db = new DatabaseSync(path);
    db.exec("UPDATE history SET sender = 'mallory' WHERE row_id = (SELECT min(row_id) FROM history)");
    db.exec("UPDATE history SET kind = 'text' WHERE row_id = (SELECT max(row_id) FROM history)");
    db.close();
    const tampered = open(path);
    expect(tampered.history.backlog([], () => true, () => {})).toEqual([]);
    expect(tampered.history.unreadable).toBe(2);
    tampered.store.close();
  });

  it("the same line reported twice is kept once", () => {
    const { history, store } = open();
    const e = membership("#ops", "joined", "bob");
    history.onEvent(e);
    history.onEvent(e);
    expect(history.recentItems()).toEqual([e]);
    store.close();
  });

  it("the TUI's first screen shows them in place, as history: no unread, no highlight, the sidebar from the snapshot", () => {
    const items: BacklogItem[] = [
      message("#ops", "before"),
      membership("#ops", "added", "bob", ["alice"]),
      membership("#ops", "removed", "bob", ["carol"], "bob"),
      message("#ops", "after"),
    ];
    const s = createInitialState({
      me: "alice", serverLabel: "relay", atMs: T0 + 1_000,
      snapshot: { connection: { state: "connecting", attempt: 1 }, peers: [], rooms: [{ room: "#ops", members: ["alice", "bob", "dave"] }] },
      backlog: items,
    });
    const ops = s.conversations["#ops"]!;
    expect(listToArray(ops.entries).map((e) => (e.kind === "message" ? e.message.text : e.kind === "membership" ? membershipText(e.line, "#ops", "alice") : e.kind)))
      .toEqual(["before", "bob added you", "bob removed carol from #ops", "after"]);
    expect([ops.unread, ops.highlights]).toEqual([0, 0]);
    // The members are the session's (dave is in it now), not replayed from kept lines.
    expect(s.rooms).toEqual([{ room: "#ops", members: ["alice", "bob", "dave"] }]);
  });
});
