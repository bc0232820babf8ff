// The embedded store's schema migrations, on files made by earlier relays: version 1's queues
// (one `queue` row per recipient, with or without the payload column) become version 2's
// (envelopes naming their recipients, cursors, acked rows: store/queue-schema.ts) at open, with
// every queued envelope intact, each queue in its order, and seqs above every seq version 1 gave
// (a client may still ack one of those). A file of a newer version is refused, not changed. What
// every store does is in test/store-contract/{core,mls}.contract.ts.
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
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
      expect((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(5);
      expect((db.prepare("SELECT type FROM sqlite_master WHERE name = 'queue'").get() as { type: string }).type).toBe("view");
      // What is left, read through the view: carol's and the phone's rows, and bob's new one.
      expect((db.prepare("SELECT recipient FROM queue ORDER BY seq, recipient").all() as { recipient: string }[]).map((r) => r.recipient))
        .toEqual(["carol", "dave/phone", "bob"]);
      db.close();
      // A second open finds version 5 and changes nothing.
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
    db.exec("PRAGMA user_version = 6");
    db.close();
    expect(() => openStore(path, { clock: () => now })).toThrow("database schema version 6 is not supported (expected 5)");
    const after = new DatabaseSync(path, { readOnly: true });
    expect((after.prepare("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(6);
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
    expect((after.prepare("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(5);
    after.close();
  });
});

/**
 * The commits' table and its usage as version 4 made them (src/server/store/schema.ts before
 * version 5): WITHOUT ROWID keyed by (group_id, epoch), the blob inside the key's B-tree, the
 * usage kept by triggers that read LENGTH(commit_msg).
 */
const V4_COMMITS = `
CREATE TABLE mls_commits_v4 (
  group_id       BLOB NOT NULL,
  epoch          INTEGER NOT NULL,
  sender         TEXT NOT NULL,
  commit_msg     BLOB NOT NULL,
  accepted_at_ms INTEGER NOT NULL,
  PRIMARY KEY (group_id, epoch)
) STRICT, WITHOUT ROWID;
INSERT INTO mls_commits_v4 (group_id, epoch, sender, commit_msg, accepted_at_ms)
  SELECT group_id, epoch, sender, commit_msg, accepted_at_ms FROM mls_commits;
DROP TABLE mls_commits;
ALTER TABLE mls_commits_v4 RENAME TO mls_commits;
CREATE INDEX mls_commits_by_sender ON mls_commits (sender, accepted_at_ms);
CREATE TRIGGER mls_commits_usage_in AFTER INSERT ON mls_commits BEGIN
  INSERT INTO mls_commit_usage (sender, commits, bytes) VALUES (NEW.sender, 1, LENGTH(NEW.commit_msg))
    ON CONFLICT (sender) DO UPDATE SET commits = commits + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER mls_commits_usage_out AFTER DELETE ON mls_commits BEGIN
  UPDATE mls_commit_usage SET commits = commits - 1, bytes = bytes - LENGTH(OLD.commit_msg) WHERE sender = OLD.sender;
  DELETE FROM mls_commit_usage WHERE sender = OLD.sender AND commits <= 0;
END;
PRAGMA user_version = 4;
`;

describe("schema version 4 → 5", () => {
  const gid = (n: number) => Buffer.alloc(20, n);
  const group = (n: number, room: string) => ({ groupId: gid(n), conversationId: room, creator: "alice", epoch: 0, groupInfo: Buffer.from("gi"), groupInfoEpoch: 0 });
  /** A commit of `bytes` bytes, its content telling who sent it for which epoch of which group. */
  const commit = (g: number, epoch: number, sender: string, bytes: number) => {
    const b = Buffer.alloc(bytes, g * 16 + epoch);
    b.write(`${sender}@${g}:${epoch}`);
    return b;
  };
  const hint = (added: string[]) => ({ external: false, added, removed: [] });
  type Raw = { group_id: Uint8Array; epoch: number; sender: string; commit_msg: Uint8Array; accepted_at_ms: number };
  /** The commits, in key order, and the usage rows, as read from the file. */
  const rows = () => {
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      return {
        commits: (db.prepare("SELECT group_id, epoch, sender, commit_msg, accepted_at_ms FROM mls_commits ORDER BY group_id, epoch").all() as Raw[])
          .map((r) => [Buffer.from(r.group_id).toString("hex"), r.epoch, r.sender, Buffer.from(r.commit_msg).toString("base64"), r.accepted_at_ms]),
        usage: db.prepare("SELECT sender, commits, bytes FROM mls_commit_usage ORDER BY sender").all(),
        counted: db.prepare("SELECT sender, COUNT(*) AS commits, SUM(LENGTH(commit_msg)) AS bytes FROM mls_commits GROUP BY sender ORDER BY sender").all(),
        version: (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
        tables: (db.prepare("SELECT name FROM sqlite_master WHERE name LIKE 'mls_commit%' ORDER BY name").all() as { name: string }[]).map((r) => r.name),
      };
    } finally {
      db.close();
    }
  };
  /** What a store answers about the commits: FetchCommits' pages under a few budgets, who sent each epoch. */
  const answers = (s: RelayStore) => {
    const out: unknown[] = [];
    for (const g of [1, 2, 3]) {
      for (const [count, bytes] of [[64, 1 << 20], [2, 1 << 20], [64, 4000], [64, 1]] as const) {
        for (let from = 0; ;) {
          const p = s.mls.commitPage(gid(g), from, count, bytes);
          out.push([g, from, p.more, p.commits.map((c) => [c.epoch, c.sender, c.commit.toString("base64")])]);
          if (!p.more) break;
          from = p.commits.at(-1)!.epoch + 1;
        }
      }
      for (let e = 0; e < 8; e++) out.push([g, e, s.mls.commitSender(gid(g), e)]);
      out.push(s.mls.epochCommitter(gid(g)));
    }
    return out;
  };

  it("moves every commit into the new table with the same usage, answers the same, and the trims, the purge and the first-commit rule work after", () => {
    let t = now;
    store = openStore(path, { clock: () => t });
    const m = store.mls;
    m.createGroup(group(1, "#ops"));
    m.createGroup(group(2, "#dev"));
    m.createGroup(group(3, "#old"));
    // Three senders over three groups; sizes from a few bytes to a few pages (overflow chains).
    const plan: Array<[number, string, number]> = [
      [1, "alice", 300], [1, "bob", 9_000], [2, "alice", 70_000], [1, "carol", 40], [2, "bob", 5_000], [1, "alice", 120_000],
      [3, "alice", 2_000], [2, "carol", 33_000], [1, "bob", 700], [2, "alice", 12], [3, "alice", 4_500], [1, "carol", 250_000],
    ];
    const epochs = new Map<number, number>();
    for (const [g, sender, bytes] of plan) {
      const e = epochs.get(g) ?? 0;
      t += 10;
      expect(m.acceptCommit(gid(g), e, sender, commit(g, e, sender, bytes), undefined, hint(e === 0 ? ["bob", "carol"] : [])).kind).toBe("accepted");
      epochs.set(g, e + 1);
    }
    // #old: nobody is a member by the hint any more (its commits are the purge's).
    m.acceptCommit(gid(3), 2, "alice", commit(3, 2, "alice", 100), undefined, { external: false, added: [], removed: ["alice", "bob", "carol"] });
    const before = rows();
    const answered = answers(store);
    expect(before.usage).toEqual(before.counted);
    store.close();
    store = undefined;

    const db = new DatabaseSync(path);
    db.exec(V4_COMMITS);
    db.close();
    const v4 = rows();
    expect(v4.version).toBe(4);
    expect(v4.commits).toEqual(before.commits);
    expect(v4.usage).toEqual(before.usage);
    // An operator command leaves a version-4 file as it is (a relay of that version may run on it).
    expect(() => listBoundUsers(dir)).toThrow("the database was made by an earlier chat-relay (schema version 4)");
    expect(rows()).toEqual(v4);

    store = openStore(path, { clock: () => t });
    const after = rows();
    expect(after.version).toBe(5);
    expect(after.tables).toEqual(["mls_commit_usage", "mls_commits", "mls_commits_by_epoch", "mls_commits_by_sender", "mls_commits_usage_in", "mls_commits_usage_out"]);
    expect(after.commits).toEqual(before.commits);
    // The same usage rows: none counted twice by the copy.
    expect(after.usage).toEqual(before.usage);
    expect(after.counted).toEqual(before.counted);
    expect(answers(store)).toEqual(answered);
    const file = new DatabaseSync(path, { readOnly: true });
    expect((file.prepare("SELECT COUNT(*) AS n FROM pragma_table_xinfo('mls_commits') WHERE name IN ('id', 'bytes')").get() as { n: number }).n).toBe(2);
    file.close();

    // The first commit of an epoch still wins; its sender's resend is a duplicate, stored once.
    const m5 = store.mls;
    const e1 = epochs.get(1)!;
    expect(m5.acceptCommit(gid(1), e1 - 1, "carol", commit(1, e1 - 1, "carol", 250_000))).toEqual({ kind: "duplicate", epoch: e1 - 1 });
    expect(m5.acceptCommit(gid(1), e1 - 1, "carol", commit(1, e1 - 1, "carol", 250_001)).kind).toBe("epoch-taken");
    expect(m5.acceptCommit(gid(1), e1 - 1, "bob", commit(1, e1 - 1, "bob", 10))).toEqual({ kind: "epoch-taken", current: e1, winner: "carol" });
    expect(rows().usage).toEqual(before.usage);
    t += 10;
    expect(m5.acceptCommit(gid(1), e1, "bob", commit(1, e1, "bob", 1_000)).kind).toBe("accepted");
    const bob = (before.usage as Array<{ sender: string; commits: number; bytes: number }>).find((u) => u.sender === "bob")!;
    expect(rows().usage).toContainEqual({ sender: "bob", commits: bob.commits + 1, bytes: bob.bytes + 1_000 });
    // The per-user trim: of alice's 7, her two oldest go (by accepted time: #ops epoch 0, then #dev epoch 0).
    expect(m5.trimCommitsOf("alice", 5, 1 << 30)).toBe(2);
    expect(m5.commitSender(gid(1), 0)).toBeUndefined();
    expect(m5.commitSender(gid(2), 0)).toBeUndefined();
    expect(m5.commitSender(gid(1), 1)).toBe("bob");
    // The purge: #old's commits (nobody a member), then those past the retention but each group's newest.
    expect(m5.purgeCommits(0)).toBe(3);
    expect(m5.commitsFrom(gid(3), 0, 10)).toEqual([]);
    const kept = rows().commits.length;
    expect(m5.purgeCommits(t + 1)).toBe(kept - 2);
    expect(rows().commits.map(([g, e]) => [g, e])).toEqual([[gid(1).toString("hex"), e1], [gid(2).toString("hex"), epochs.get(2)! - 1]]);
    const end = rows();
    expect(end.usage).toEqual(end.counted);
    store.close();
    // A second open finds version 5 and changes nothing.
    store = openStore(path, { clock: () => t });
    expect(rows()).toEqual(end);
  });

  it("moves commits of a few megabytes without growing the file by a copy of them", () => {
    store = openStore(path, { clock: () => now });
    const m = store.mls;
    m.createGroup(group(1, "#ops"));
    for (let e = 0; e < 24; e++) expect(m.acceptCommit(gid(1), e, "alice", commit(1, e, "alice", 400_000)).kind).toBe("accepted");
    store.close();
    store = undefined;
    const db = new DatabaseSync(path);
    db.exec(V4_COMMITS);
    db.exec("VACUUM");
    db.close();
    const size = () => statSync(path).size + (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);
    const v4 = size();
    expect(v4).toBeGreaterThan(24 * 400_000);
    store = openStore(path, { clock: () => now });
    // The pages each batch freed held the next: about the commits once, plus a batch (~1 MiB).
    console.log(`version-4 file ${v4} bytes, after the move ${size()} bytes`);
    expect(size()).toBeLessThan(v4 + 2 * 1024 * 1024);
    expect(store.mls.commitsFrom(gid(1), 0, 100).map((c) => c.commit.equals(commit(1, c.epoch, "alice", 400_000)))).toEqual(Array(24).fill(true));
    expect(rows().usage).toEqual([{ sender: "alice", commits: 24, bytes: 24 * 400_000 }]);
    // The per-group trim (COMMITS_KEPT_PER_GROUP): the group moved on by ~1,000 epochs (written
    // here as if by as many commits), its next commit drops the kept ones more than 1,000 behind.
    const raw = new DatabaseSync(path);
    raw.prepare("UPDATE mls_groups SET epoch = 1010 WHERE group_id = ?").run(gid(1));
    raw.close();
    expect(store.mls.acceptCommit(gid(1), 1010, "alice", commit(1, 10, "alice", 1_000)).kind).toBe("accepted");
    expect(store.mls.commitsFrom(gid(1), 0, 100).map((c) => c.epoch)).toEqual([...Array.from({ length: 13 }, (_, i) => 11 + i), 1010]);
    expect(rows().usage).toEqual([{ sender: "alice", commits: 14, bytes: 13 * 400_000 + 1_000 }]);
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
