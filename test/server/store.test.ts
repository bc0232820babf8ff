// The SQLite store facade (src/server/store.ts) where it is about the file: a name released by
// another process on the same file starts with no cached usage here, and the relay id survives
// reopening the file. What every store does (releaseUser dropping a name's binding, queue, rooms
// and cached usage) is in the store contract (test/store-contract/core.contract.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type RelayStore } from "../../src/server/store.js";
import { user } from "../helpers/store-records.js";

let dir: string;
let store: RelayStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-test-"));
  store = openStore(join(dir, "relay.db"), { clock: () => 1_000 });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("RelayStore on a SQLite file", () => {
  it("a name released by another process (`chat-relay users release`) and bound again starts with no cached usage", () => {
    expect(store.bindUser(user("bob", 10)).kind).toBe("bound");
    expect(store.enqueue({ sender: "alice", messageId: Buffer.alloc(16, 1), conversationId: "lobby", envelope: Buffer.alloc(80), recipients: ["bob"] })).toBe(true);
    expect(store.queueUsage("bob", "alice").count).toBe(1); // cached in this process
    const operator = openStore(join(dir, "relay.db"));
    try {
      expect(operator.releaseUser("bob")).toBe(true);
    } finally {
      operator.close();
    }
    expect(store.bindUser(user("bob", 30)).kind).toBe("bound");
    expect(store.queueUsage("bob", "alice")).toEqual({ count: 0, bytes: 0, senderCount: 0, senderBytes: 0 });
  });

  it("keeps the relay id across reopenings of the same file", () => {
    const id = Buffer.from(store.relayId);
    expect(id).toHaveLength(16);
    store.close();
    store = openStore(join(dir, "relay.db"));
    expect(store.relayId.equals(id)).toBe(true);
  });
});
