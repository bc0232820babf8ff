// The cluster event codec and the in-process hub (src/server/cluster.ts): what relays sharing a
// database tell each other. A malformed payload (another program on the channel, a bug) must be
// ignored, never crash a relay.
import { describe, expect, it } from "vitest";
import { decodeClusterEvent, encodeClusterEvents, LocalClusterHub, MAX_EVENT_BYTES, type ClusterEvent } from "../../src/server/cluster.js";
import { waitUntil } from "../helpers/wait.js";

describe("cluster event codec", () => {
  it("round-trips every kind", () => {
    const events: ClusterEvent[] = [
      { kind: "rows", from: "r1", rows: [["alice", 2], ["bob/0a1b", 1]] },
      { kind: "rescan", from: "r1" },
      { kind: "presence", from: "r2", username: "alice", address: "alice", online: true },
      { kind: "user", from: "r2", username: "carol" },
      { kind: "session", from: "r3", address: "bob/0a1b" },
    ];
    for (const e of events) {
      const [payload, ...rest] = encodeClusterEvents(e);
      expect(rest).toEqual([]);
      expect(decodeClusterEvent(payload!)).toEqual(e);
    }
  });

  it("splits a big rows event into payloads under PostgreSQL's NOTIFY limit, and gives up to rescan beyond a few", () => {
    const rows = Array.from({ length: 1500 }, (_, i) => [`user${i}/${"ab".repeat(8)}`, 1] as const);
    const payloads = encodeClusterEvents({ kind: "rows", from: "r1", rows });
    expect(payloads.length).toBeGreaterThan(1);
    for (const p of payloads) expect(Buffer.byteLength(p)).toBeLessThan(MAX_EVENT_BYTES);
    const back = payloads.flatMap((p) => {
      const e = decodeClusterEvent(p);
      return e?.kind === "rows" ? e.rows : [];
    });
    expect(back).toEqual(rows);
    const huge = Array.from({ length: 20_000 }, (_, i) => [`u${i}`, 1] as const);
    expect(encodeClusterEvents({ kind: "rows", from: "r1", rows: huge }).map((p) => decodeClusterEvent(p)?.kind)).toEqual(["rescan"]);
  });

  it("ignores malformed payloads", () => {
    for (const bad of [
      "", "null", "[]", "{", '{"kind":"rows"}', '{"kind":"rows","from":"r","rows":[["a",0]]}', '{"kind":"rows","from":"r","rows":[["a",1.5]]}',
      '{"kind":"rows","from":"r","rows":"a"}', '{"kind":"presence","from":"r","username":"a","address":"a","online":"yes"}',
      '{"kind":"nope","from":"r"}', '{"kind":"session","from":5,"address":"a"}',
    ]) {
      expect(decodeClusterEvent(bad)).toBeUndefined();
    }
  });
});

describe("LocalClusterHub", () => {
  it("delivers to the other members only, tracks their presence, and says a leaving member's users are gone", async () => {
    const hub = new LocalClusterHub();
    const a = hub.join();
    const b = hub.join();
    const seenByA: ClusterEvent[] = [];
    const seenByB: ClusterEvent[] = [];
    await a.start({ onEvent: (e) => seenByA.push(e), onResync: () => undefined });
    await b.start({ onEvent: (e) => seenByB.push(e), onResync: () => undefined });
    a.publish({ kind: "presence", username: "alice", address: "alice", online: true });
    a.publish({ kind: "rows", rows: [["bob", 1]] });
    await waitUntil(() => seenByB.length === 2, "b hears a's two events", 2000);
    expect(seenByA).toEqual([]);
    expect(b.remoteAddresses("alice")).toEqual(new Set(["alice"]));
    expect([...b.remoteOnlineNames()]).toEqual(["alice"]);
    // A member that starts later learns who is online elsewhere.
    const c = hub.join();
    await c.start({ onEvent: () => undefined, onResync: () => undefined });
    expect(c.remoteAddresses("alice")).toEqual(new Set(["alice"]));
    await a.close();
    await waitUntil(() => b.remoteAddresses("alice") === undefined, "alice offline at b once a left", 2000);
    expect(a.healthy).toBe(false);
  });
});
