// The MLS Delivery Service's store part (src/server/store/mls.ts) where it is about the SQLite
// file: the first commit of an epoch winning by the database's own key, and an existing database
// (made before these tables) gaining them without losing anything. What every store does
// (KeyPackages, groups, commits, retention) is in test/store-contract/mls.contract.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type RelayStore } from "../../src/server/store.js";

let dir: string;
let store: RelayStore;
let now = 1_000_000;

const kp = (n: number, notAfterMs = 10_000_000) => ({ ref: Buffer.alloc(32, n), keyPackage: Buffer.alloc(100, n), notAfterMs });
const gid = (n: number) => Buffer.alloc(20, n);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-mls-test-"));
  now = 1_000_000;
  store = openStore(join(dir, "relay.db"), { clock: () => now });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("commits in the file", () => {
  const group = (n: number, conversationId: string, epoch = 0) => ({
    groupId: gid(n), conversationId, creator: "alice", epoch, groupInfo: Buffer.from(`gi${n}@${epoch}`), groupInfoEpoch: epoch,
  });

  it("the database itself refuses a second commit for one epoch", () => {
    store.mls.createGroup(group(1, "#ops"));
    expect(store.mls.acceptCommit(gid(1), 0, "alice", Buffer.from("a0")).kind).toBe("accepted");
    const db = new DatabaseSync(join(dir, "relay.db"));
    try {
      expect(() => db.prepare("INSERT INTO mls_commits (group_id, epoch, sender, commit_msg, accepted_at_ms) VALUES (?, 0, 'x', x'00', 0)").run(gid(1)))
        .toThrow(/UNIQUE|PRIMARY KEY/);
    } finally {
      db.close();
    }
  });
});

describe("an existing database", () => {
  it("made before the MLS tables opens with them added and its data intact", () => {
    store.close();
    const path = join(dir, "old.db");
    // The v1 layout as it was: open once, then drop the MLS tables to stand for an old file.
    const old = openStore(path, { clock: () => now });
    old.bindUser({ username: "alice", sigSpki: Buffer.alloc(44, 1), encSpki: Buffer.alloc(44, 2), encKeySig: Buffer.alloc(64), sigFpr: Buffer.alloc(32, 3), encFpr: Buffer.alloc(32, 4) });
    old.joinRoom("#ops", "alice");
    old.close();
    const raw = new DatabaseSync(path);
    raw.exec("DROP TABLE mls_key_packages; DROP TABLE mls_groups; DROP TABLE mls_group_members; DROP TABLE mls_commits; DROP TABLE mls_commit_usage;");
    expect(raw.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name LIKE 'mls_%'").get()).toEqual({ n: 0 });
    raw.close();

    store = openStore(path, { clock: () => now });
    expect(store.getUser("alice")?.username).toBe("alice");
    expect(store.roomMembers("#ops")).toEqual(["alice"]);
    expect(store.mls.publishKeyPackages("alice", [kp(1)], undefined)).toEqual({ oneTime: 1, lastResort: false });
  });
});
