// The store facade (src/server/store.ts) where it spans its parts (src/server/store/): releasing
// a name drops the name's binding, its queue rows (and envelopes nobody else waits for), its
// room memberships and its cached queue usage, in one transaction; a new key then starts clean.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type RelayStore, type UserRecord } from "../../src/server/store.js";

function user(name: string, keyByte: number): Omit<UserRecord, "createdAtMs"> {
  const b = (n: number) => Buffer.alloc(32, keyByte + n);
  return { username: name, sigSpki: b(0), encSpki: b(1), encKeySig: b(2), sigFpr: b(3), encFpr: b(4) };
}

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

describe("RelayStore.releaseUser", () => {
  it("drops the name's binding, queue, rooms and cached usage; others keep theirs", () => {
    for (const [name, k] of [["alice", 1], ["bob", 10], ["carol", 20]] as const) expect(store.bindUser(user(name, k)).kind).toBe("bound");
    store.joinRoom("#ops", "bob");
    store.joinRoom("#ops", "carol");
    store.joinRoom("#solo", "bob");
    const shared = { sender: "alice", conversationId: "#ops", envelope: Buffer.alloc(100, 1), recipients: ["bob", "carol"] };
    expect(store.enqueue({ ...shared, messageId: Buffer.alloc(16, 1) })).toBe(true);
    expect(store.enqueue({ sender: "alice", messageId: Buffer.alloc(16, 2), conversationId: "dm:alice:bob", envelope: Buffer.alloc(50, 2), recipients: ["bob"] })).toBe(true);
    // The cached usage is loaded before the release: it must not survive it.
    expect(store.queueUsage("bob", "alice")).toEqual({ count: 2, bytes: 150, senderCount: 2, senderBytes: 150 });

    expect(store.releaseUser("bob")).toBe(true);
    expect(store.getUser("bob")).toBeUndefined();
    expect(store.queueDepth("bob")).toBe(0);
    expect(store.fetchQueue("bob", 0, 100, 1_000_000)).toEqual([]);
    expect(store.roomsOf("bob")).toEqual([]);
    expect(store.roomMembers("#ops")).toEqual(["carol"]);
    expect(store.allRooms()).toEqual([{ room: "#ops", memberCount: 1 }]); // #solo went with its last member
    // Carol still gets the room envelope she shared with bob.
    expect(store.fetchQueue("carol", 0, 100, 1_000_000).map((i) => i.envelope.length)).toEqual([100]);
    expect(store.queueUsage("carol", "alice")).toEqual({ count: 1, bytes: 100, senderCount: 1, senderBytes: 100 });

    // A new key binds the name and starts with nothing.
    expect(store.bindUser(user("bob", 30)).kind).toBe("bound");
    expect(store.queueUsage("bob", "alice")).toEqual({ count: 0, bytes: 0, senderCount: 0, senderBytes: 0 });
    expect(store.roomsOf("bob")).toEqual([]);
  });

  it("reports a name that was not bound, and changes nothing", () => {
    expect(store.bindUser(user("alice", 1)).kind).toBe("bound");
    store.joinRoom("#ops", "alice");
    expect(store.releaseUser("bob")).toBe(false);
    expect(store.listUsers().map((u) => u.username)).toEqual(["alice"]);
    expect(store.roomMembers("#ops")).toEqual(["alice"]);
  });

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
