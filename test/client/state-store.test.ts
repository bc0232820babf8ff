import { mkdtempSync, rmSync, statSync } from "node:fs";
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

describe("client state (PROTOCOL.md §7.5)", () => {
  it("keeps seen ids, chains and the outbox across restarts, in a 0600 file", () => {
    const path = join(dir, "alice_state.db");
    const id = Buffer.alloc(16, 1);
    const h = Buffer.alloc(32, 2);
    let s = ClientStateStore.open(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(s.hasSeen(id)).toBe(false);
    s.recordOpened(id, 1000, "dm:alice:bob", "bob", h);
    expect(s.ownHead("dm:alice:bob").equals(ZERO_HASH)).toBe(true);
    s.addOutgoing({ id: Buffer.alloc(16, 9), conversationId: "lobby", envelope: Buffer.from("env"), kind: "text", text: "hi", createdAtMs: 5, sentAtMs: 5 }, Buffer.alloc(32, 7));
    s.hold("carol", "#ops", Buffer.from("held"), 10);
    s.close();

    s = ClientStateStore.open(path);
    expect(s.hasSeen(id)).toBe(true);
    expect(s.hasSeen(Buffer.alloc(16, 9))).toBe(true); // my own ids count as seen (reflection)
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
    s.markSeen(Buffer.alloc(16, 1), 1_000);
    s.markSeen(Buffer.alloc(16, 2), 2 * MAX_AGE_MS);
    s.prune(2 * MAX_AGE_MS);
    expect(s.hasSeen(Buffer.alloc(16, 1))).toBe(false);
    expect(s.hasSeen(Buffer.alloc(16, 2))).toBe(true);
    s.close();
  });
});
