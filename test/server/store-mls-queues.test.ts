// The store side of protocol v2 through the queues (PROTOCOL.md §8.3), where it is about the
// SQLite file: a database made before the payload column gains it at open with its queued
// envelopes intact. What every store does (payload kinds marked, a commit's deliveries stored in
// the commit's own transaction) is in test/store-contract/{core,mls}.contract.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type RelayStore } from "../../src/server/store.js";

let dir: string;
let store: RelayStore;
const now = 1_000_000;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-mls-queues-test-"));
  store = openStore(join(dir, "relay.db"), { clock: () => now });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("payload kinds", () => {
  it("a database made before the payload column opens with it added and its queued envelopes intact", () => {
    store.close();
    const path = join(dir, "old.db");
    const old = openStore(path, { clock: () => now });
    old.enqueue({ sender: "alice", messageId: Buffer.alloc(16, 1), conversationId: "#ops", envelope: Buffer.from("queued before"), recipients: ["bob"] });
    old.close();
    // The old layout: the envelopes table without the column (as every relay before v2 made it).
    const raw = new DatabaseSync(path);
    raw.exec("ALTER TABLE envelopes DROP COLUMN payload_kind");
    const columns = (raw.prepare("PRAGMA table_info(envelopes)").all() as { name: string }[]).map((c) => c.name);
    expect(columns).toEqual(["id", "conversation_id", "sender", "message_id", "envelope", "refs", "created_at_ms"]);
    raw.close();

    store = openStore(path, { clock: () => now });
    expect(store.fetchQueue("bob", 0, 10, 1 << 20).map((i) => [i.envelope.toString(), i.payload])).toEqual([["queued before", undefined]]);
    store.enqueue({ sender: "alice", messageId: Buffer.alloc(16, 2), conversationId: "#ops", envelope: Buffer.from("mls"), payload: "mls", recipients: ["bob"] });
    expect(store.fetchQueue("bob", 0, 10, 1 << 20).map((i) => i.payload)).toEqual([undefined, "mls"]);
    // And again: a second open finds the column and leaves it.
    store.close();
    store = openStore(path, { clock: () => now });
    expect(store.fetchQueue("bob", 0, 10, 1 << 20)).toHaveLength(2);
  });
});
