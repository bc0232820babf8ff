// The embedded store's schema migrations, on files made by earlier relays: version 1's queues
// (one `queue` row per recipient, with or without the payload column) become version 2's
// (envelopes naming their recipients, cursors, acked rows: store/queue-schema.ts) at open, with
// every queued envelope intact, each queue in its order, and seqs above every seq version 1 gave
// (a client may still ack one of those). A file of a newer version is refused, not changed. What
// every store does is in test/store-contract/{core,mls}.contract.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type RelayStore } from "../../src/server/store.js";
import { listBoundUsers, releaseUsername } from "../../src/server/users-command.js";

let dir: string;
let path: string;
let store: RelayStore | undefined;
const now = 1_000_000;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-migration-test-"));
  path = join(dir, "relay.db");
});

afterEach(() => {
  store?.close();
  store = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** The queue tables as schema version 1 made them (src/server/store/schema.ts before version 2). */
const V1 = `
CREATE TABLE envelopes (
  id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, sender TEXT NOT NULL, message_id BLOB NOT NULL,
  envelope BLOB NOT NULL, refs INTEGER NOT NULL, created_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX envelopes_by_time ON envelopes (created_at_ms);
CREATE TABLE queue (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, envelope_id INTEGER NOT NULL, created_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX queue_by_recipient ON queue (recipient, seq);
CREATE INDEX queue_by_time ON queue (created_at_ms);
CREATE TABLE accepted (
  sender TEXT NOT NULL, message_id BLOB NOT NULL, accepted_at_ms INTEGER NOT NULL, PRIMARY KEY (sender, message_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX accepted_by_time ON accepted (accepted_at_ms);
PRAGMA user_version = 1;
`;

/**
 * A version-1 file: envelope 1 (for bob, carol) was stored after envelope 2 (for bob, whose id was
 * reused: SQLite gives a freed id again), so bob's queue is 2 then 1 in seq order; carol already
 * acked hers of envelope 3; the AUTOINCREMENT counter is far above every row left (acked rows).
 */
function makeV1(withPayload: boolean): void {
  const db = new DatabaseSync(path);
  db.exec(V1);
  if (withPayload) db.exec("ALTER TABLE envelopes ADD COLUMN payload_kind INTEGER NOT NULL DEFAULT 0");
  const env = db.prepare("INSERT INTO envelopes (id, conversation_id, sender, message_id, envelope, refs, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)");
  env.run(2, "#ops", "alice", Buffer.alloc(16, 2), Buffer.from("first"), 1, 500);
  env.run(1, "#ops", "dave", Buffer.alloc(16, 1), Buffer.from("second"), 2, 600);
  env.run(3, "@carol", "erin", Buffer.alloc(16, 3), Buffer.from("third"), 1, 700);
  if (withPayload) db.exec("UPDATE envelopes SET payload_kind = 1 WHERE id = 3");
  const row = db.prepare("INSERT INTO queue (seq, recipient, envelope_id, created_at_ms) VALUES (?, ?, ?, ?)");
  row.run(40, "bob", 2, 500);
  row.run(41, "bob", 1, 600);
  row.run(42, "carol", 1, 600);
  row.run(44, "dave/phone", 3, 700);
  db.exec("UPDATE sqlite_sequence SET seq = 90 WHERE name = 'queue'");
  const acc = db.prepare("INSERT INTO accepted (sender, message_id, accepted_at_ms) VALUES (?, ?, ?)");
  for (const [s, i] of [["alice", 2], ["dave", 1], ["erin", 3]] as const) acc.run(s, Buffer.alloc(16, i), 500);
  db.close();
}

const shown = (s: RelayStore, r: string) => s.fetchQueue(r, 0, 100, 1 << 20).map((i) => [i.envelope.toString(), i.conversationId, i.payload ?? "envelope", i.relayTimeMs]);

describe("schema version 1 → 2", () => {
  for (const withPayload of [false, true]) {
    it(`keeps every queued envelope, each queue's order and the accepted ids (${withPayload ? "with" : "without"} the payload column)`, () => {
      makeV1(withPayload);
      store = openStore(path, { clock: () => now });
      expect(shown(store, "bob")).toEqual([["first", "#ops", "envelope", 500], ["second", "#ops", "envelope", 600]]);
      expect(shown(store, "carol")).toEqual([["second", "#ops", "envelope", 600]]);
      expect(shown(store, "dave/phone")).toEqual([["third", "@carol", withPayload ? "mls" : "envelope", 700]]);
      expect(store.queueUsage("bob", "dave")).toEqual({ count: 2, bytes: 11, senderCount: 1, senderBytes: 6 });
      expect(store.wasAccepted("dave", Buffer.alloc(16, 1))).toBe(true);
      // Every seq is above the highest version 1 gave (90): an old seq acked now names nothing.
      const seqs = store.fetchQueue("bob", 0, 100, 1 << 20).map((i) => i.seq);
      expect(Math.min(...seqs)).toBeGreaterThan(90);
      expect(store.ack("bob", [40, 41, 90])).toBe(0);
      expect(store.lastSeq()).toBeGreaterThanOrEqual(Math.max(...seqs));
      store.enqueue({ sender: "zed", messageId: Buffer.alloc(16, 9), conversationId: "#ops", envelope: Buffer.from("new"), recipients: ["bob"] });
      expect(store.fetchQueue("bob", 0, 100, 1 << 20).at(-1)!.seq).toBeGreaterThan(Math.max(...seqs));
      expect(store.ack("bob", seqs)).toBe(2);
      store.close();
      store = undefined;

      const db = new DatabaseSync(path, { readOnly: true });
      expect((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(4);
      expect((db.prepare("SELECT type FROM sqlite_master WHERE name = 'queue'").get() as { type: string }).type).toBe("view");
      // What is left, read through the view: carol's and the phone's rows, and bob's new one.
      expect((db.prepare("SELECT recipient FROM queue ORDER BY seq, recipient").all() as { recipient: string }[]).map((r) => r.recipient))
        .toEqual(["carol", "dave/phone", "bob"]);
      db.close();
      // A second open finds version 4 and changes nothing.
      store = openStore(path, { clock: () => now });
      expect(shown(store, "carol")).toEqual([["second", "#ops", "envelope", 600]]);
      expect(shown(store, "bob").map(([e]) => e)).toEqual(["new"]);
    });
  }

  it("an empty version-1 file still gives seqs above its counter", () => {
    const db = new DatabaseSync(path);
    db.exec(V1);
    db.exec("INSERT INTO queue (seq, recipient, envelope_id, created_at_ms) VALUES (77, 'bob', 1, 1); DELETE FROM queue;");
    db.close();
    store = openStore(path, { clock: () => now });
    store.enqueue({ sender: "zed", messageId: Buffer.alloc(16, 9), conversationId: "#ops", envelope: Buffer.from("new"), recipients: ["bob"] });
    expect(store.fetchQueue("bob", 0, 10, 1 << 20)[0]!.seq).toBe(78);
  });

  it("a file of a newer version is refused and left as it is", () => {
    store = openStore(path, { clock: () => now });
    store.close();
    store = undefined;
    const db = new DatabaseSync(path);
    db.exec("PRAGMA user_version = 5");
    db.close();
    expect(() => openStore(path, { clock: () => now })).toThrow("database schema version 5 is not supported (expected 4)");
    const after = new DatabaseSync(path, { readOnly: true });
    expect((after.prepare("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(5);
    after.close();
  });
});

describe("schema version 3 → 4", () => {
  it("each group gains who made its current epoch, from its newest kept commit (PROTOCOL.md §8.2)", () => {
    const gid = (n: number) => Buffer.alloc(20, n);
    const group = (n: number, room: string) => ({ groupId: gid(n), conversationId: room, creator: "alice", epoch: 0, groupInfo: Buffer.from("gi"), groupInfoEpoch: 0 });
    store = openStore(path, { clock: () => now });
    const m = store.mls;
    m.createGroup(group(1, "#ops"));
    m.createGroup(group(2, "#dev"));
    m.createGroup(group(3, "#new"));
    expect(m.acceptCommit(gid(1), 0, "alice", Buffer.from("a0"), undefined, { external: false, added: ["bob"], removed: [] }).kind).toBe("accepted");
    expect(m.acceptCommit(gid(1), 1, "bob", Buffer.from("b1")).kind).toBe("accepted");
    expect(m.acceptCommit(gid(2), 0, "carol", Buffer.from("c0"), undefined, { external: true, added: [], removed: [] }).kind).toBe("accepted");
    store.close();
    store = undefined;
    // The file as a version-3 relay left it: no column; #dev's newest commit already trimmed.
    const db = new DatabaseSync(path);
    db.exec("ALTER TABLE mls_groups DROP COLUMN last_committer; DELETE FROM mls_commits WHERE sender = 'carol'; PRAGMA user_version = 3");
    db.close();
    expect(() => listBoundUsers(dir)).toThrow("schema version 3");
    store = openStore(path, { clock: () => now });
    expect(store.mls.epochCommitter(gid(1))).toBe("bob");
    // Nothing kept says who made #dev's epoch 1: its creator's, as a version-3 relay decided.
    expect(store.mls.epochCommitter(gid(2))).toBeUndefined();
    expect(store.mls.epochCommitter(gid(3))).toBeUndefined();
    expect(store.mls.acceptCommit(gid(1), 2, "alice", Buffer.from("a2")).kind).toBe("accepted");
    expect(store.mls.epochCommitter(gid(1))).toBe("alice");
    const after = new DatabaseSync(path, { readOnly: true });
    expect((after.prepare("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(4);
    after.close();
  });
});

describe("who converts a version-1 file", () => {
  it("the operator commands refuse it with a sentence and leave it as it is (a relay of that version may still run on it)", () => {
    makeV1(true);
    expect(() => listBoundUsers(dir)).toThrow(
      "the database was made by an earlier chat-relay (schema version 1); start this chat-relay on it once to convert it, then run the command again");
    expect(() => releaseUsername(dir, "bob")).toThrow("schema version 1");
    const db = new DatabaseSync(path, { readOnly: true });
    expect((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(1);
    expect((db.prepare("SELECT type FROM sqlite_master WHERE name = 'queue'").get() as { type: string }).type).toBe("table");
    db.close();
    // Once a relay converted it, they work.
    openStore(path, { clock: () => now }).close();
    expect(listBoundUsers(dir)).toEqual([]);
  });
});
