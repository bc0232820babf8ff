import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ClientStateStore } from "../../src/client/state-store.js";
import { MAX_AGE_MS, ZERO_HASH } from "../../src/protocol/envelope.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sc-state-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("client state (PROTOCOL.md §10.4)", () => {
  it("keeps seen ids, chains and the outbox across restarts, in a 0600 file", () => {
    const path = join(dir, "alice_state.db");
    const id = Buffer.alloc(16, 1);
    const h = Buffer.alloc(32, 2);
    let s = ClientStateStore.open(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    s.close();
    // A file others could read (copied in, a loose umask) is tightened when it is opened.
    chmodSync(path, 0o644);
    s = ClientStateStore.open(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(s.hasSeen(id, "bob")).toBe(false);
    s.recordOpened(id, 1000, "dm:alice:bob", "bob", h);
    expect(s.ownHead("dm:alice:bob").equals(ZERO_HASH)).toBe(true);
    s.addOutgoing({ id: Buffer.alloc(16, 9), conversationId: "lobby", envelope: Buffer.from("env"), kind: "text", text: "hi", createdAtMs: 5, sentAtMs: 5 }, Buffer.alloc(32, 7), "alice");
    s.hold("carol", "#ops", Buffer.from("held"), 10);
    s.close();

    s = ClientStateStore.open(path);
    expect(s.hasSeen(id, "bob")).toBe(true);
    expect(s.hasSeen(Buffer.alloc(16, 9), "alice")).toBe(true); // my own ids count as seen (reflection)
    expect(s.lastHash("dm:alice:bob", "bob")?.equals(h)).toBe(true);
    expect(s.ownHead("lobby").equals(Buffer.alloc(32, 7))).toBe(true);
    expect(s.outbox().map((e) => e.text)).toEqual(["hi"]);
    expect(s.heldCount("carol")).toBe(1);
    const [held] = s.heldFor("carol");
    s.releaseHeld(held!.rowId);
    expect(s.heldCount("carol")).toBe(0);
    s.outboxRemove(Buffer.alloc(16, 9));
    expect(s.outbox()).toEqual([]);
    s.close();
  });

  it("prunes seen ids only once they are too old to be accepted anyway", () => {
    const s = ClientStateStore.open(":memory:");
    s.markSeen(Buffer.alloc(16, 1), "bob", 1_000);
    s.markSeen(Buffer.alloc(16, 2), "bob", 2 * MAX_AGE_MS);
    s.prune(2 * MAX_AGE_MS);
    expect(s.hasSeen(Buffer.alloc(16, 1), "bob")).toBe(false);
    expect(s.hasSeen(Buffer.alloc(16, 2), "bob")).toBe(true);
    s.close();
  });

  it("waits for another process's write lock instead of failing (two chat-tui of one user)", async () => {
    const path = join(dir, "alice_state.db");
    ClientStateStore.open(path).close();
    // Another process takes the write lock and holds it for 600 ms (the store waits up to 2 s).
    const holder = spawn(process.execPath, ["-e", `
      const { DatabaseSync } = require("node:sqlite");
      const db = new DatabaseSync(${JSON.stringify(path)});
      db.exec("BEGIN IMMEDIATE");
      process.stdout.write("locked\\n");
      setTimeout(() => { db.exec("COMMIT"); db.close(); }, 600);
    `], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve) => holder.stdout.on("data", (d: Buffer) => { if (d.toString().includes("locked")) resolve(); }));
    // Without a busy timeout this write throws "database is locked" at once.
    const s = ClientStateStore.open(path);
    s.recordOpened(Buffer.alloc(16, 3), 1000, "lobby", "bob", Buffer.alloc(32, 4));
    expect(s.hasSeen(Buffer.alloc(16, 3), "bob")).toBe(true);
    s.close();
    await new Promise((resolve) => holder.on("exit", resolve));
  });

  it("keys seen ids and history rows by (sender, id), and upgrades files of the id-only shape", () => {
    const path = join(dir, "alice_state.db");
    // A file of the older shape, with one seen id and one history row.
    const old = new DatabaseSync(path);
    old.exec(`CREATE TABLE seen (message_id BLOB PRIMARY KEY, sent_at_ms INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE history (row_id INTEGER PRIMARY KEY AUTOINCREMENT, message_id BLOB NOT NULL UNIQUE,
        conversation_id TEXT NOT NULL, sender TEXT NOT NULL, own INTEGER NOT NULL, kind TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL, state TEXT, failure TEXT, queued_for TEXT,
        gap INTEGER NOT NULL, sealed BLOB NOT NULL);`);
    old.prepare("INSERT INTO seen VALUES (?, ?)").run(Buffer.alloc(16, 1), 1000);
    old.prepare(`INSERT INTO history (message_id, conversation_id, sender, own, kind, sent_at_ms, received_at_ms, gap, sealed)
      VALUES (?, 'lobby', 'bob', 0, 'text', 1, 1, 0, ?)`).run(Buffer.alloc(16, 2), Buffer.from("x"));
    old.close();
    chmodSync(path, 0o600);

    const s = ClientStateStore.open(path);
    // An id of the older table counts for every sender until it is pruned.
    expect(s.hasSeen(Buffer.alloc(16, 1), "carol")).toBe(true);
    const id = Buffer.alloc(16, 5);
    s.recordOpened(id, 1000, "lobby", "mallory", Buffer.alloc(32, 1));
    expect(s.hasSeen(id, "mallory")).toBe(true);
    expect(s.hasSeen(id, "bob")).toBe(false); // mallory's use of the id does not spend bob's
    const row = (sender: string) => ({ messageId: Buffer.alloc(16, 2), conversationId: "lobby", sender, own: false, kind: "text" as const, sentAtMs: 2, receivedAtMs: 2, gap: false, sealed: Buffer.from(sender) });
    s.historyAdd(row("mallory"));
    s.historyAdd(row("bob")); // the same (sender, id) as the migrated row: kept once
    expect(s.historyRecent(10).map((r) => r.sender)).toEqual(["bob", "mallory"]);
    s.close();
  });
});
