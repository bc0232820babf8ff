// The embedded store's look at another connection's commits (src/server/store/file-version.ts):
// outside transactions once per turn of the event loop, inside each transaction once at its
// first read, and at once when asked to be fresh. Counted through a spy on the PRAGMA's reads.
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileVersion } from "../../src/server/store/file-version.js";
import { openDatabase, transactionOn, UndoLog } from "../../src/server/store/schema.js";

let dir: string;
let db: DatabaseSync;
let other: DatabaseSync;
let reads = 0;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "file-version-test-"));
  db = openDatabase(join(dir, "relay.db"), {});
  other = new DatabaseSync(join(dir, "relay.db"));
  reads = 0;
});

afterEach(() => {
  other.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** db, with every read of `PRAGMA data_version` counted. */
function counted(): DatabaseSync {
  return new Proxy(db, {
    get(target, key) {
      if (key === "prepare") {
        return (sql: string): StatementSync => {
          const st = target.prepare(sql);
          if (sql !== "PRAGMA data_version") return st;
          return new Proxy(st, {
            get(s, k) {
              if (k === "get") return (...args: []) => (reads++, s.get(...args));
              const value = Reflect.get(s, k) as unknown;
              return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(s) : value;
            },
          });
        };
      }
      const value = Reflect.get(target, key) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** A commit by another connection (the operator's `chat-relay users release` beside the relay). */
const otherCommits = () => other.prepare("INSERT INTO meta (key, value) VALUES (?, ?)").run(`k${Math.random()}`, Buffer.alloc(1));

describe("FileVersion", () => {
  it("outside transactions: one read per turn; the next turn sees another connection's commit; fresh reads at once", async () => {
    const v = new FileVersion(counted(), new UndoLog());
    const first = v.current();
    otherCommits();
    expect(v.current()).toBe(first); // the same turn: as of its first look
    expect(reads).toBe(1);
    await nextTurn();
    const seen = v.current();
    expect(seen).not.toBe(first);
    expect(v.current()).toBe(seen);
    expect(reads).toBe(2);
    otherCommits();
    expect(v.current(true)).not.toBe(seen);
    expect(reads).toBe(3);
  });

  it("inside a transaction: read at its first call, even in a turn that looked already, and once per transaction", () => {
    const undo = new UndoLog();
    const wrapped = counted();
    const transaction = transactionOn(db, undefined, undo);
    const v = new FileVersion(wrapped, undo);
    const before = v.current();
    otherCommits(); // committed before ours begins: its snapshot is newer than the turn's look
    const inside = transaction(() => [v.current(), v.current()]);
    expect(inside[0]).not.toBe(before);
    expect(inside[1]).toBe(inside[0]);
    expect(reads).toBe(2);
    transaction(() => v.current());
    expect(reads).toBe(3);
  });
});
