// The relay's device cache (PROTOCOL.md §8.2, devices.ts): names a request makes up cannot fill
// it. DeviceRoutes caches only bound users, within a count and a byte bound.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeviceRoutes, MAX_UNBOUND_NAMES } from "../../src/server/devices.js";
import { openStore, type RelayStore } from "../../src/server/store.js";
import { user } from "../helpers/store-records.js";

let dir: string;
let store: RelayStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "relay-limits-caches-"));
  store = openStore(join(dir, "relay.db"));
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("DeviceRoutes", () => {
  it("caches bound users only: invalid names are never looked up, unbound ones never cached", () => {
    expect(store.bindUser(user("alice", 1)).kind).toBe("bound");
    const routes = new DeviceRoutes(store);
    // A megabyte of junk, a name with upper case, a reserved name: not usernames (§4.1).
    // None has a queue address: nothing is ever queued for a name nobody owns (§8.3).
    for (const n of ["x".repeat(1_000_000), "Alice", "nobody", ""]) expect(routes.addresses(n)).toEqual([]);
    expect(routes.cached).toEqual({ users: 0, bytes: 0, unbound: 0 });
    // Valid names nobody owns: remembered as unbound (bounded, small), never as entries.
    for (let i = 0; i < 50; i++) expect(routes.version(`ghost${i}`)).toBe(0);
    expect(routes.cached).toMatchObject({ users: 0, bytes: 0, unbound: 50 });
    expect(routes.addresses("alice")).toEqual(["alice"]);
    expect(routes.cached.users).toBe(1);
    expect(routes.cached.bytes).toBeGreaterThan(0);
  });

  it("remembers at most MAX_UNBOUND_NAMES unbound names, and forgets one at its binding", () => {
    const routes = new DeviceRoutes(store);
    for (let i = 0; i < MAX_UNBOUND_NAMES + 100; i++) routes.of(`g${i}`);
    expect(routes.cached.unbound).toBe(MAX_UNBOUND_NAMES);
    routes.of("bob");
    expect(store.bindUser(user("bob", 2)).kind).toBe("bound");
    routes.forget("bob"); // what a binding does (handshake.ts bindName, cluster events)
    routes.of("bob");
    expect(routes.cached.users).toBe(1);
  });

  it("keeps within its bounds of users and bytes, oldest first out", () => {
    const names = ["ann", "ben", "cat", "dan", "eve"];
    names.forEach((n, i) => expect(store.bindUser(user(n, 10 + i)).kind).toBe("bound"));
    const byCount = new DeviceRoutes(store, { maxUsers: 3, maxBytes: 1 << 30 });
    for (const n of names) byCount.of(n);
    expect(byCount.cached.users).toBe(3);
    const one = new DeviceRoutes(store, { maxUsers: 100, maxBytes: 1 << 30 });
    one.of("ann");
    const perUser = one.cached.bytes;
    const byBytes = new DeviceRoutes(store, { maxUsers: 100, maxBytes: 2 * perUser });
    for (const n of names) byBytes.of(n);
    expect(byBytes.cached.users).toBe(2);
    expect(byBytes.cached.bytes).toBeLessThanOrEqual(2 * perUser);
  });
});
