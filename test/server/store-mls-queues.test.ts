// The store side of protocol v2 through the queues (PROTOCOL.md §8.3): envelopes rows carry
// what they hold (a v1 Envelope or an MlsDelivery), a database made before that column gains it
// at open with its queued envelopes intact, and an accepted commit's deliveries are stored in the
// commit's own transaction (all or nothing) from the members as they were before it.
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type EnqueueRequest, type RelayStore } from "../../src/server/store.js";

let dir: string;
let store: RelayStore;
const now = 1_000_000;
const gid = (n: number) => Buffer.alloc(20, n);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-mls-queues-test-"));
  store = openStore(join(dir, "relay.db"), { clock: () => now });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const group = (n: number, creator = "alice") => ({
  groupId: gid(n), conversationId: `#g${n}`, creator, epoch: 0, groupInfo: Buffer.from("gi"), groupInfoEpoch: 0,
});

describe("payload kinds", () => {
  it("delivers what was stored as an Envelope or as an MlsDelivery, each marked", () => {
    store.enqueue({ sender: "alice", messageId: Buffer.alloc(16, 1), conversationId: "#ops", envelope: Buffer.from("v1"), recipients: ["bob"] });
    store.enqueue({ sender: "alice", messageId: Buffer.alloc(16, 2), conversationId: "#ops", envelope: Buffer.from("v2"), payload: "mls", recipients: ["bob"] });
    const items = store.fetchQueue("bob", 0, 10, 1 << 20);
    expect(items.map((i) => [i.envelope.toString(), i.payload])).toEqual([["v1", undefined], ["v2", "mls"]]);
  });

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

describe("a commit's deliveries", () => {
  const delivery = (recipients: readonly string[], id: number): EnqueueRequest =>
    ({ sender: "alice", messageId: Buffer.alloc(16, id), conversationId: "#g1", envelope: Buffer.from(`c${id}`), payload: "mls", recipients });

  it("are made from the members before the commit and stored with it; a refused commit stores none", () => {
    const s = store.mls;
    expect(s.createGroup(group(1))).toBe("created");
    s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, { external: false, added: ["bob", "carol"], removed: [] });
    let seen: readonly string[] = [];
    const out = s.acceptCommit(gid(1), 1, "alice", Buffer.from("c1"), undefined, { external: false, added: [], removed: ["carol"] }, (before) => {
      seen = before;
      return [delivery(before.filter((u) => u !== "alice"), 1)];
    });
    expect(seen).toEqual(["alice", "bob", "carol"]);
    expect(out).toMatchObject({ kind: "accepted", epoch: 1 });
    expect(out.kind === "accepted" && out.queued?.map((q) => q.recipients)).toEqual([["bob", "carol"]]);
    expect(store.queueDepth("carol")).toBe(1);
    // Refused (the epoch is taken): the deliveries function is not even asked.
    const refused = s.acceptCommit(gid(1), 1, "bob", Buffer.from("b1"), undefined, undefined, () => {
      throw new Error("asked for the deliveries of a refused commit");
    });
    expect(refused).toEqual({ kind: "epoch-taken", current: 2, winner: "alice" });
    // The identical resend by its sender: a duplicate, nothing stored again.
    expect(s.acceptCommit(gid(1), 1, "alice", Buffer.from("c1"), undefined, undefined, () => [delivery(["bob", "carol"], 1)])).toEqual({ kind: "duplicate", epoch: 1 });
    expect([store.queueDepth("bob"), store.queueDepth("carol")]).toEqual([1, 1]);
  });

  it("roll back with the commit when storing them fails: the epoch stays free", () => {
    const s = store.mls;
    expect(s.createGroup(group(1))).toBe("created");
    expect(() => s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, undefined, () => {
      // A delivery the queues cannot store (a NOT NULL column gets null): the transaction fails.
      return [{ ...delivery(["bob"], 1), conversationId: null as unknown as string }];
    })).toThrow();
    expect(s.group(gid(1))?.epoch).toBe(0);
    expect(store.queueDepth("bob")).toBe(0);
    expect(s.acceptCommit(gid(1), 0, "alice", Buffer.from("c0"), undefined, undefined, () => [delivery(["bob"], 2)])).toMatchObject({ kind: "accepted" });
    expect(store.queueDepth("bob")).toBe(1);
  });
});
