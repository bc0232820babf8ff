// The core RelayStore contract (everything but its `mls` and `devices` parts), run against both
// stores (core.test.ts): bindings, the queues (order, duplicates, acks, fetch budgets, usage,
// purge), rooms, and what the facade does across them (releaseUser). Cases come from
// test/server/store.test.ts and the store tests of relay-group-commit.test.ts; what is about the
// SQLite file itself (a full disk, reopening the file) stays there, and PostgreSQL-only
// concurrency is in test/server/pg-store*.test.ts.
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RelayStore } from "../../src/server/store.js";
import { hex, req, user } from "../helpers/store-records.js";

export type OpenStore = () => Promise<{ store: RelayStore; close(): Promise<void> }>;

export function describeCoreStoreContract(name: string, open: OpenStore): void {
  describe(`core store contract: ${name}`, () => {
    let store: RelayStore;
    let close: () => Promise<void>;

    beforeEach(async () => {
      ({ store, close } = await open());
    });

    afterEach(async () => {
      await close();
    });

    describe("bindings", () => {
      it("first key wins; the same keys are 'same', others 'taken'; names of a key oldest first", () => {
        expect(store.bindUser(user("bob", 10)).kind).toBe("bound");
        expect(store.bindUser(user("alice", 1)).kind).toBe("bound");
        expect(store.bindUser(user("alice", 1)).kind).toBe("same");
        const taken = store.bindUser(user("alice", 50));
        expect(taken.kind).toBe("taken");
        expect(taken.user.sigSpki.equals(user("alice", 1).sigSpki)).toBe(true);
        expect(store.getUser("alice")?.encFpr.equals(Buffer.alloc(32, 5))).toBe(true);
        expect(store.getUser("nobody")).toBeUndefined();
        expect(store.listUsers().map((u) => u.username)).toEqual(["alice", "bob"]);
        expect(store.bindUser({ ...user("alice2", 1) }).kind).toBe("bound");
        expect(store.namesOfKey(Buffer.alloc(32, 4))).toEqual(["alice", "alice2"]);
        expect(store.namesOfKey(Buffer.alloc(32, 99))).toEqual([]);
      });
    });

    describe("releaseUser", () => {
      it("drops the name's binding, queue, rooms and cached usage; others keep theirs", () => {
        for (const [n, k] of [["alice", 1], ["bob", 10], ["carol", 20]] as const) expect(store.bindUser(user(n, k)).kind).toBe("bound");
        store.joinRoom("#ops", "bob");
        store.joinRoom("#ops", "carol");
        store.joinRoom("#solo", "bob");
        const shared = { sender: "alice", conversationId: "#ops", envelope: Buffer.alloc(100, 1), recipients: ["bob", "carol"] };
        expect(store.enqueue({ ...shared, messageId: Buffer.alloc(16, 1) })).toBe(true);
        expect(store.enqueue({ sender: "alice", messageId: Buffer.alloc(16, 2), conversationId: "dm:alice:bob", envelope: Buffer.alloc(50, 2), recipients: ["bob", "bob/d1"] })).toBe(true);
        // The cached usage is loaded before the release: it must not survive it.
        expect(store.queueUsage("bob", "alice")).toEqual({ count: 2, bytes: 150, senderCount: 2, senderBytes: 150 });
        expect(store.queueDepth("bob/d1")).toBe(1);

        expect(store.releaseUser("bob")).toBe(true);
        expect(store.getUser("bob")).toBeUndefined();
        expect(store.queueDepth("bob")).toBe(0);
        expect(store.queueDepth("bob/d1")).toBe(0); // a linked device's queue goes too
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
    });

    describe("queues", () => {
      it("stores a batch in order; each recipient fetches the bytes as stored, from a copy", () => {
        const reqs = [req("alice", ["bob", "carol"], 5000), req("carol", ["bob"]), req("alice", ["bob"])];
        const want = reqs.map((r) => hex(r.envelope));
        expect(store.enqueueBatch(reqs)).toEqual(["stored", "stored", "stored"]);
        for (const r of reqs) (r.envelope as Buffer).fill(0);
        const bobs = store.fetchQueue("bob", 0, 10, 1 << 20);
        expect(bobs.map((q) => hex(q.envelope))).toEqual(want);
        expect(bobs.map((q) => q.conversationId)).toEqual(["lobby", "lobby", "lobby"]);
        expect(bobs.every((q) => typeof q.relayTimeMs === "number" && q.payload === undefined)).toBe(true);
        expect([...bobs.map((q) => q.seq)].sort((a, b) => a - b)).toEqual(bobs.map((q) => q.seq));
        expect(store.fetchQueue("carol", 0, 10, 1 << 20).map((q) => hex(q.envelope))).toEqual([want[0]]);
        expect(store.lastSeq()).toBeGreaterThanOrEqual(bobs[2]!.seq);
        // After a seq: only what follows it.
        expect(store.fetchQueue("bob", bobs[0]!.seq, 10, 1 << 20).map((q) => q.seq)).toEqual([bobs[1]!.seq, bobs[2]!.seq]);
      });

      it("lastSeq is 0 before anything was queued and grows with every queued row", () => {
        expect(store.lastSeq()).toBe(0);
        store.enqueue(req("alice", ["bob", "carol"]));
        const first = store.lastSeq();
        expect(first).toBeGreaterThan(0);
        store.enqueue(req("alice", ["bob"]));
        expect(store.lastSeq()).toBeGreaterThan(first);
      });

      it("stores a (sender, id) once: a repeat in the same batch or a later one is a duplicate; ids are per sender", () => {
        const id = randomBytes(16);
        expect(store.enqueueBatch([req("alice", ["bob"], 100, id), req("alice", ["bob"], 100, id), req("carol", ["bob"], 100, id)]))
          .toEqual(["stored", "duplicate", "stored"]);
        expect(store.wasAccepted("alice", id)).toBe(true);
        expect(store.wasAccepted("dave", id)).toBe(false);
        expect(store.enqueue(req("alice", ["bob"], 100, id))).toBe(false);
        expect(store.enqueueBatch([req("alice", ["dave"], 100, id)])).toEqual(["duplicate"]);
        expect(store.queueDepth("bob")).toBe(2);
        expect(store.queueDepth("dave")).toBe(0);
      });

      it("records an envelope without recipients as accepted, with no rows", () => {
        const r = req("alice", []);
        expect(store.enqueueBatch([r])).toEqual(["stored"]);
        expect(store.wasAccepted("alice", r.messageId as Buffer)).toBe(true);
        expect(store.enqueue(r)).toBe(false);
      });

      it("marks what was stored as an MlsDelivery", () => {
        store.enqueue({ sender: "alice", messageId: Buffer.alloc(16, 1), conversationId: "#ops", envelope: Buffer.from("v1"), recipients: ["bob"] });
        store.enqueue({ sender: "alice", messageId: Buffer.alloc(16, 2), conversationId: "#ops", envelope: Buffer.from("v2"), payload: "mls", recipients: ["bob"] });
        expect(store.fetchQueue("bob", 0, 10, 1 << 20).map((i) => [i.envelope.toString(), i.payload])).toEqual([["v1", undefined], ["v2", "mls"]]);
      });

      it("fetches up to `limit` rows, stopping before `maxBytes` is passed, but always at least one", () => {
        store.enqueueBatch([req("alice", ["bob"], 300), req("alice", ["bob"], 300), req("alice", ["bob"], 300), req("alice", ["bob"], 300)]);
        const all = store.fetchQueue("bob", 0, 100, 1 << 20).map((q) => q.seq);
        expect(all).toHaveLength(4);
        expect(store.fetchQueue("bob", 0, 2, 1 << 20).map((q) => q.seq)).toEqual(all.slice(0, 2));
        expect(store.fetchQueue("bob", 0, 100, 600).map((q) => q.seq)).toEqual(all.slice(0, 2));
        expect(store.fetchQueue("bob", 0, 100, 899).map((q) => q.seq)).toEqual(all.slice(0, 2));
        expect(store.fetchQueue("bob", 0, 100, 900).map((q) => q.seq)).toEqual(all.slice(0, 3));
        expect(store.fetchQueue("bob", 0, 100, 10).map((q) => q.seq)).toEqual(all.slice(0, 1));
        expect(store.fetchQueue("bob", all[1]!, 100, 10).map((q) => q.seq)).toEqual([all[2]]);
        expect(store.fetchQueue("bob", all[3]!, 100, 1 << 20)).toEqual([]);
        expect(store.fetchQueue("nobody", 0, 100, 1 << 20)).toEqual([]);
        expect(store.fetchQueue("bob", 0, 0, 1 << 20)).toEqual([]);
        expect(store.fetchQueue("bob", 0, 100, Number.POSITIVE_INFINITY).map((q) => q.seq)).toEqual(all);
      });

      it("counts a queue's rows and bytes, in all and per sender, and keeps them right through enqueue and ack", () => {
        expect(store.queueUsage("bob", "alice")).toEqual({ count: 0, bytes: 0, senderCount: 0, senderBytes: 0 });
        store.enqueueBatch([req("alice", ["bob"], 100), req("carol", ["bob"], 30), req("alice", ["bob", "dave"], 50)]);
        expect(store.queueUsage("bob", "alice")).toEqual({ count: 3, bytes: 180, senderCount: 2, senderBytes: 150 });
        expect(store.queueUsage("bob", "carol")).toEqual({ count: 3, bytes: 180, senderCount: 1, senderBytes: 30 });
        store.enqueue(req("carol", ["bob"], 20));
        expect(store.queueUsage("bob", "carol")).toEqual({ count: 4, bytes: 200, senderCount: 2, senderBytes: 50 });
        const seqs = store.fetchQueue("bob", 0, 10, 1 << 20).map((q) => q.seq);
        expect(store.ack("bob", [seqs[0]!, seqs[1]!])).toBe(2);
        expect(store.queueUsage("bob", "alice")).toEqual({ count: 2, bytes: 70, senderCount: 1, senderBytes: 50 });
        expect(store.queueDepth("bob")).toBe(2);
        expect(store.queueDepth("dave")).toBe(1);
      });

      it("acks delete only the acking recipient's own rows, each once, whatever seqs an Ack frame names", () => {
        store.enqueueBatch([req("alice", ["bob", "carol"]), req("alice", ["bob"]), req("dave", ["carol"])]);
        const bobs = store.fetchQueue("bob", 0, 10, 1 << 20).map((q) => q.seq);
        const carols = store.fetchQueue("carol", 0, 10, 1 << 20).map((q) => q.seq);
        expect([bobs.length, carols.length]).toEqual([2, 2]);
        expect(store.ackBatch([{ recipient: "bob", seqs: [...carols, bobs[0]!, bobs[0]!, 999_999, -1] }])).toBe(1);
        expect(store.fetchQueue("bob", 0, 10, 1 << 20).map((q) => q.seq)).toEqual([bobs[1]]);
        expect(store.fetchQueue("carol", 0, 10, 1 << 20).map((q) => q.seq)).toEqual(carols);
        expect([store.queueDepth("bob"), store.queueDepth("carol")]).toEqual([1, 2]);
        // The envelope shared with carol stays until she acks it.
        expect(store.fetchQueue("carol", 0, 1, 1 << 20)[0]!.envelope).toHaveLength(100);
        expect(store.ackBatch([{ recipient: "bob", seqs: [bobs[1]!] }])).toBe(1);
        expect(store.ackBatch([{ recipient: "carol", seqs: carols }])).toBe(2);
        expect(store.ackBatch([{ recipient: "carol", seqs: [] }])).toBe(0);
        expect(store.ack("carol", carols)).toBe(0);
        expect([store.queueDepth("bob"), store.queueDepth("carol")]).toEqual([0, 0]);
      });

      it("enqueueBatch applies the acks it is given in the same transaction", () => {
        store.enqueue(req("alice", ["bob"]));
        const [q] = store.fetchQueue("bob", 0, 10, 1 << 20);
        const next = req("carol", ["bob"], 70);
        expect(store.enqueueBatch([next], [{ recipient: "bob", seqs: [q!.seq] }])).toEqual(["stored"]);
        expect(store.fetchQueue("bob", 0, 10, 1 << 20).map((i) => hex(i.envelope))).toEqual([hex(next.envelope)]);
        expect(store.queueUsage("bob", "carol")).toEqual({ count: 1, bytes: 70, senderCount: 1, senderBytes: 70 });
        // No envelopes: the acks alone.
        const [n] = store.fetchQueue("bob", 0, 10, 1 << 20);
        expect(store.enqueueBatch([], [{ recipient: "bob", seqs: [n!.seq] }])).toEqual([]);
        expect(store.queueDepth("bob")).toBe(0);
      });

      it("never serves a dropped envelope's bytes for a new one", () => {
        const first = req("alice", ["bob"], 300);
        store.enqueueBatch([first]);
        const [q] = store.fetchQueue("bob", 0, 10, 1 << 20);
        expect(store.ack("bob", [q!.seq])).toBe(1);
        const second = req("carol", ["bob"], 300);
        store.enqueueBatch([second]);
        expect(store.fetchQueue("bob", 0, 10, 1 << 20).map((i) => hex(i.envelope))).toEqual([hex(second.envelope)]);
      });

      it("purges queue rows, envelopes and accepted ids older than the cutoff, and nothing newer", () => {
        const kept = req("alice", ["bob", "carol"]);
        store.enqueueBatch([kept, req("alice", [])]);
        expect(store.purgeOlderThan(0)).toEqual({ queueRows: 0, envelopes: 0, acceptedIds: 0 });
        expect(store.queueDepth("bob")).toBe(1);
        expect(store.purgeOlderThan(Date.now() + 60_000)).toEqual({ queueRows: 2, envelopes: 1, acceptedIds: 2 });
        expect(store.queueDepth("bob")).toBe(0);
        expect(store.queueUsage("carol", "alice").count).toBe(0);
        expect(store.fetchQueue("carol", 0, 10, 1 << 20)).toEqual([]);
        expect(store.wasAccepted("alice", kept.messageId as Buffer)).toBe(false);
        // Stored again after the purge (its id is forgotten): a new envelope with new bytes.
        expect(store.enqueue(kept)).toBe(true);
        expect(store.fetchQueue("bob", 0, 10, 1 << 20).map((i) => hex(i.envelope))).toEqual([hex(kept.envelope)]);
      });
    });

    describe("rooms", () => {
      it("joins, leaves and lists members and rooms in name order; an empty room disappears", () => {
        expect(store.joinRoom("#ops", "carol")).toBe(true);
        expect(store.joinRoom("#ops", "alice")).toBe(true);
        expect(store.joinRoom("#ops", "alice")).toBe(false);
        expect(store.joinRoom("#dev", "alice")).toBe(true);
        expect(store.isMember("#ops", "alice")).toBe(true);
        expect(store.isMember("#ops", "bob")).toBe(false);
        expect(store.roomMembers("#ops")).toEqual(["alice", "carol"]);
        expect(store.roomsOf("alice")).toEqual(["#dev", "#ops"]);
        expect(store.allRooms()).toEqual([{ room: "#dev", memberCount: 1 }, { room: "#ops", memberCount: 2 }]);
        expect(store.leaveRoom("#ops", "bob")).toBe(false);
        expect(store.leaveRoom("#dev", "alice")).toBe(true);
        expect(store.leaveRoom("#dev", "alice")).toBe(false);
        expect(store.allRooms()).toEqual([{ room: "#ops", memberCount: 2 }]);
        expect(store.roomMembers("#dev")).toEqual([]);
        expect(store.joinRoom("#dev", "bob")).toBe(true);
        expect(store.allRooms()).toEqual([{ room: "#dev", memberCount: 1 }, { room: "#ops", memberCount: 2 }]);
      });
    });

    it("has a 16-byte relay id", () => {
      expect(store.relayId).toHaveLength(16);
    });
  });
}
