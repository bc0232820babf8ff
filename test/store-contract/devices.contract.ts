// The device-list part of the relay store (RelayStore.devices and replaceDeviceList, PROTOCOL.md
// §4.5), as a contract both stores must keep: a kept list only grows (a stale or equal version is
// refused and changes nothing), a new list forgets the devices it dropped (their queues,
// KeyPackages and last seen) in the same transaction, a released name loses its list, and last
// seen is noted in memory, written in batches and never goes backwards. The cases are those the
// relay relies on (src/server/devices.ts, handshake.ts, session.ts, directory.ts).
import { describe, expect, it } from "vitest";
import { storePerCase, user, type OpenContractStore } from "./mls.contract.js";

const kp = (n: number) => ({ ref: Buffer.alloc(32, n), keyPackage: Buffer.alloc(60, n), notAfterMs: 10_000_000 });
const change = (version: number, dropped: ReadonlyArray<{ address: string; deviceId: string }> = [], keyPackagesOf: readonly string[] = []) =>
  ({ username: "alice", version, list: Buffer.from(`list v${version}`), dropped, keyPackagesOf });

export function describeDeviceStoreContract(name: string, open: OpenContractStore): void {
  describe(`device store contract: ${name}`, () => {
    const t = storePerCase(open);

    it("keeps a list only when its version is higher than the kept one", () => {
      expect(t.store.devices.list("alice")).toBeUndefined();
      expect(t.store.devices.versions()).toEqual(new Map());
      expect(t.store.replaceDeviceList(change(2))).toBe(true);
      expect(t.store.devices.list("alice")).toEqual({ username: "alice", version: 2, list: Buffer.from("list v2") });
      // The same version again, or an older one (a rollback): refused, the kept list unchanged.
      expect(t.store.replaceDeviceList({ ...change(2), list: Buffer.from("other v2") })).toBe(false);
      expect(t.store.replaceDeviceList(change(1))).toBe(false);
      expect(t.store.devices.list("alice")?.list).toEqual(Buffer.from("list v2"));
      expect(t.store.replaceDeviceList(change(7))).toBe(true);
      expect(t.store.replaceDeviceList({ ...change(3), username: "bob" })).toBe(true);
      expect(t.store.devices.versions()).toEqual(new Map([["alice", 7], ["bob", 3]]));
      expect(t.store.devices.list("alice")).toEqual({ username: "alice", version: 7, list: Buffer.from("list v7") });
    });

    it("a new list forgets the devices it dropped: their queues, KeyPackages and last seen, with the listed other addresses' KeyPackages", () => {
      const s = t.store;
      s.replaceDeviceList(change(1));
      s.mls.publishKeyPackages("alice", [kp(1)], kp(2));
      s.mls.publishKeyPackages("alice", [kp(3)], kp(4), "alice/d1");
      s.mls.publishKeyPackages("alice", [kp(5)], undefined, "alice/d2");
      s.enqueue({ sender: "bob", messageId: Buffer.alloc(16, 1), conversationId: "#ops", envelope: Buffer.from("e1"), recipients: ["alice", "alice/d1", "alice/d2"] });
      s.devices.noteSeen("alice", "d1", 500);
      s.devices.noteSeen("alice", "d2", 600);
      s.devices.flushSeen();
      s.devices.noteSeen("alice", "d1", 700);

      // A stale list drops nothing.
      expect(s.replaceDeviceList(change(1, [{ address: "alice/d1", deviceId: "d1" }], ["alice/d2"]))).toBe(false);
      expect(s.queueDepth("alice/d1")).toBe(1);
      expect(s.mls.keyPackageCounts("alice/d1")).toEqual({ oneTime: 1, lastResort: true });
      expect(s.mls.keyPackageCounts("alice/d2")).toEqual({ oneTime: 1, lastResort: false });
      expect(s.devices.lastSeen("alice")).toEqual(new Map([["d1", 700], ["d2", 600]]));

      expect(s.replaceDeviceList(change(2, [{ address: "alice/d1", deviceId: "d1" }], ["alice/d2"]))).toBe(true);
      expect(s.queueDepth("alice/d1")).toBe(0);
      expect(s.fetchQueue("alice/d1", 0, 10, 1 << 20)).toEqual([]);
      expect(s.mls.keyPackageCounts("alice/d1")).toEqual({ oneTime: 0, lastResort: false });
      expect(s.mls.claimKeyPackage("alice/d1")).toBeUndefined();
      // d2 stays listed; only its KeyPackages went (made for another MLS key).
      expect(s.mls.keyPackageCounts("alice/d2")).toEqual({ oneTime: 0, lastResort: false });
      expect(s.queueDepth("alice/d2")).toBe(1);
      expect(s.devices.lastSeen("alice")).toEqual(new Map([["d2", 600]]));
      // The primary and its queue are untouched.
      expect(s.queueDepth("alice")).toBe(1);
      expect(s.mls.keyPackageCounts("alice")).toEqual({ oneTime: 1, lastResort: true });
      // The dropped device's note in memory went too: a flush does not bring it back.
      s.devices.flushSeen();
      expect(s.devices.lastSeen("alice")).toEqual(new Map([["d2", 600]]));
    });

    it("notes last seen in memory, writes it in a batch, never goes backwards, and ignores the unnamed device", () => {
      const d = t.store.devices;
      d.noteSeen("alice", "d1", 500);
      d.noteSeen("alice", "", 900);
      d.noteSeen("bob", "d1", 100);
      expect(d.lastSeen("alice")).toEqual(new Map([["d1", 500]]));
      d.flushSeen();
      expect(d.lastSeen("alice")).toEqual(new Map([["d1", 500]]));
      // An older note (a session closing late) does not lower what is written.
      d.noteSeen("alice", "d1", 300);
      expect(d.lastSeen("alice")).toEqual(new Map([["d1", 500]]));
      d.flushSeen();
      expect(d.lastSeen("alice")).toEqual(new Map([["d1", 500]]));
      d.noteSeen("alice", "d2", 800);
      d.noteSeen("alice", "d1", 1_000);
      d.flushSeen();
      d.flushSeen();
      expect(d.lastSeen("alice")).toEqual(new Map([["d1", 1_000], ["d2", 800]]));
      expect(d.lastSeen("bob")).toEqual(new Map([["d1", 100]]));
      expect(d.lastSeen("carol")).toEqual(new Map());
    });

    it("a released name loses its list and its last seen, written or not", () => {
      t.store.bindUser(user("alice"));
      t.store.replaceDeviceList(change(4));
      t.store.replaceDeviceList({ ...change(1), username: "bob" });
      t.store.devices.noteSeen("alice", "d1", 500);
      t.store.devices.flushSeen();
      t.store.devices.noteSeen("alice", "d2", 600);
      t.store.devices.noteSeen("bob", "d1", 700);
      expect(t.store.releaseUser("alice")).toBe(true);
      expect(t.store.devices.list("alice")).toBeUndefined();
      expect(t.store.devices.versions()).toEqual(new Map([["bob", 1]]));
      expect(t.store.devices.lastSeen("alice")).toEqual(new Map());
      t.store.devices.flushSeen();
      expect(t.store.devices.lastSeen("alice")).toEqual(new Map());
      expect(t.store.devices.lastSeen("bob")).toEqual(new Map([["d1", 700]]));
      // A new owner of the name starts from any version.
      expect(t.store.replaceDeviceList(change(1))).toBe(true);
    });
  });
}
