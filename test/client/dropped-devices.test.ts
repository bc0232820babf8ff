// Devices a user's primary took out under a list newer than the one I hold (PROTOCOL.md §4.5,
// src/client/mls/dropped-devices.ts): what is remembered, what is not (a /leave, a linked
// device's removal, a device leaving by itself), and when a newer list ends the memory.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { DeviceDirectory } from "../../src/client/devices-api.js";
import { DROPPED_CONVERSATIONS, DROPPED_KEYS_PER_USER, DROPPED_USERS_PER_CONVERSATION, DroppedDevices } from "../../src/client/mls/dropped-devices.js";
import { encodeListClaim } from "../../src/client/mls/list-claims.js";
import type { DeviceEntry, VerifiedDeviceList } from "../../src/protocol/devices.js";
import type { MembershipChange, MlsMember } from "../../src/protocol/mls/index.js";
import { nullLogger } from "../../src/protocol/log.js";

const aliceFpr = Buffer.alloc(32, 0xa1);
const key = (n: number) => Buffer.alloc(32, n);
const entry = (n: number, primary = false): DeviceEntry => ({ deviceId: n.toString(16).padStart(16, "0"), name: `d${n}`, authSpki: Buffer.alloc(44, n), mlsSignatureKey: key(n), addedAtMs: 0, primary });
const leaf = (n: number, leafIndex: number, username = "alice", fpr = aliceFpr): MlsMember => ({ username, identitySpki: Buffer.alloc(44), identityFpr: fpr, signatureKey: key(n), leafIndex });
const change = (committer: MlsMember, removed: MlsMember[], left: MlsMember[] = []): MembershipChange => ({ committer, added: [], removed, left, external: false });

/** alice's list as I hold it: version `version`, her primary (key 1) and linked devices 2 and 3. */
function world(version: number) {
  let v = version;
  const devices = {
    known: (u: string) => (u === "alice" ? ({ username: "alice", version: v, issuedAtMs: 0, devices: [entry(1, true), entry(2), entry(3)] } as unknown as VerifiedDeviceList) : undefined),
  } as unknown as DeviceDirectory;
  return { d: new DroppedDevices(devices, nullLogger), setVersion: (n: number) => { v = n; } };
}
const keysOf = (d: DroppedDevices) => d.listOf("alice")?.devices.map((e) => e.mlsSignatureKey[0]);

describe("devices dropped by their user's primary under a newer list", () => {
  it("the primary's removal claiming a newer list: the device counts as unlisted until a list that new is held", () => {
    const { d, setVersion } = world(1);
    d.noteCommit("#ops", change(leaf(1, 0), [leaf(2, 1)]), encodeListClaim(3, true));
    expect(d.isDropped("alice", key(2))).toBe(true);
    expect(keysOf(d)).toEqual([1, 3]);
    expect(d.lists("alice")?.devices).toHaveLength(2);
    setVersion(2);
    expect(d.isDropped("alice", key(2))).toBe(true); // still older than the claim
    setVersion(3);
    expect(d.isDropped("alice", key(2))).toBe(false); // that list decides now
    expect(keysOf(d)).toEqual([1, 2, 3]);
  });

  it("nothing is remembered for a removal without the self-heal's mark (a /leave), in the lobby, of a leaf whose key stays, under the list I hold, without a claim, or with an older one", () => {
    const { d: fresh } = world(1);
    fresh.noteCommit("#ops", change(leaf(1, 0), [leaf(2, 1)]), encodeListClaim(5)); // a /leave: the plain claim
    fresh.noteCommit("lobby", change(leaf(1, 0), [leaf(2, 1)]), encodeListClaim(5, true));
    fresh.noteCommit("#ops", change(leaf(1, 0), [leaf(3, 2)]), encodeListClaim(5, true), [leaf(1, 0), leaf(3, 5)]); // a stale leaf of device 3
    expect(keysOf(fresh)).toEqual([1, 2, 3]);
    const { d } = world(2);
    d.noteCommit("#ops", change(leaf(1, 0), [leaf(2, 1), leaf(3, 2)]), encodeListClaim(2, true));
    d.noteCommit("#ops", change(leaf(1, 0), [leaf(2, 1)]), new Uint8Array(0));
    d.noteCommit("#ops", change(leaf(1, 0), [leaf(2, 1)]), encodeListClaim(1, true));
    expect(keysOf(d)).toEqual([1, 2, 3]);
  });

  it("nor a linked device's removal, a device leaving by its own proposal, another user's leaf, or the primary's own", () => {
    const { d } = world(1);
    d.noteCommit("#ops", change(leaf(2, 1), [leaf(3, 2)]), encodeListClaim(5, true)); // a linked device is not the list's authority
    d.noteCommit("#ops", change(leaf(1, 0), [leaf(3, 2)], [leaf(3, 2)]), encodeListClaim(5, true)); // device 3 left by itself
    d.noteCommit("#ops", change(leaf(1, 0), [leaf(9, 3, "bob", Buffer.alloc(32, 0xb0))]), encodeListClaim(5, true));
    d.noteCommit("#ops", change(leaf(1, 0), [leaf(2, 1, "alice", Buffer.alloc(32, 0xcc))]), encodeListClaim(5, true)); // another identity named alice
    d.noteCommit("#ops", change(leaf(1, 0), [leaf(1, 4)]), encodeListClaim(5, true)); // the primary's key itself
    expect(keysOf(d)).toEqual([1, 2, 3]);
    expect(d.listOf("bob")).toBeUndefined();
  });

  it("a device its list does not name is not remembered (already unlisted); the memory per user is bounded", () => {
    const { d } = world(1);
    d.noteCommit("#ops", change(leaf(1, 0), [leaf(7, 1)]), encodeListClaim(2, true));
    expect(d.isDropped("alice", key(7))).toBe(false);
    for (let i = 0; i < DROPPED_KEYS_PER_USER; i++) d.noteCommit("#ops", change(leaf(1, 0), [leaf(2, 1)]), encodeListClaim(2 + i, true));
    expect(d.isDropped("alice", key(2))).toBe(true); // the same key again takes one place
  });
});

describe("the memory's bound", () => {
  const fpr = (u: string) => Buffer.alloc(32, u.length);
  const anyone = { known: (u: string) => ({ username: u, version: 1, issuedAtMs: 0, devices: [entry(1, true), entry(2)] } as unknown as VerifiedDeviceList) } as unknown as DeviceDirectory;
  const dropIn = (d: DroppedDevices, conv: string, u: string) => d.noteCommit(conv, change(leaf(1, 0, u, fpr(u)), [leaf(2, 1, u, fpr(u))]), encodeListClaim(2, true));

  it("is per conversation: strangers' drops in a room (any number) never push out what alice's primary did in her DM (review round 9)", () => {
    const d = new DroppedDevices(anyone, nullLogger);
    dropIn(d, "dm:alice:bob", "alice");
    for (let i = 0; i < 1_100; i++) dropIn(d, "#party", `s${i}`);
    for (let i = 0; i < 1_100; i++) dropIn(d, `dm:bob:t${i}`, `t${i}`);
    expect(d.isDropped("alice", key(2))).toBe(true);
  });

  it("within a conversation, the user used longest ago is forgotten first", () => {
    const d = new DroppedDevices(anyone, nullLogger);
    dropIn(d, "#party", "alice");
    for (let i = 0; i < DROPPED_USERS_PER_CONVERSATION - 1; i++) dropIn(d, "#party", `s${i}`);
    expect(d.isDropped("alice", key(2))).toBe(true); // read: used last now
    dropIn(d, "#party", "mallory"); // one past the bound: s0, used longest ago, goes
    expect([d.isDropped("alice", key(2)), d.isDropped("s0", key(2)), d.isDropped("s1", key(2))]).toEqual([true, false, true]);
  });

  it("a conversation past DROPPED_CONVERSATIONS forgets the one used longest ago, and its users' entries with it", () => {
    const d = new DroppedDevices(anyone, nullLogger);
    for (let i = 0; i < DROPPED_CONVERSATIONS + 1; i++) dropIn(d, `#r${i}`, `u${i}`);
    expect([d.isDropped("u0", key(2)), d.isDropped("u1", key(2)), d.isDropped(`u${DROPPED_CONVERSATIONS}`, key(2))]).toEqual([false, true, true]);
  });
});

describe("the memory across restarts", () => {
  it("is kept sealed in the MLS store and read back by the next run; a damaged value is a log line, not a failure", () => {
    const dir = mkdtempSync(join(tmpdir(), "sc-dropped-"));
    try {
      const id = { username: "bob", sigPrivate: generateKeyPairSync("ed25519").privateKey };
      const path = join(dir, "bob_mls.db");
      const devices = { known: (u: string) => (u === "alice" ? ({ username: "alice", version: 1, issuedAtMs: 0, devices: [entry(1, true), entry(2), entry(3)] } as unknown as VerifiedDeviceList) : undefined) } as unknown as DeviceDirectory;
      let store = MlsKeyStore.open(path, id);
      new DroppedDevices(devices, nullLogger, store).noteCommit("#ops", change(leaf(1, 0), [leaf(2, 1)]), encodeListClaim(2, true));
      store.close();
      store = MlsKeyStore.open(path, id);
      expect(new DroppedDevices(devices, nullLogger, store).isDropped("alice", key(2))).toBe(true);
      store.putValue("dropped-devices", Buffer.from("{not json"));
      const warned: string[] = [];
      const logger = { ...nullLogger, warn: (event: string) => void warned.push(event) };
      expect(new DroppedDevices(devices, logger, store).isDropped("alice", key(2))).toBe(false);
      expect(warned).toEqual(["mls.devices.dropped_unreadable"]);
      store.close();
      // Another key file cannot open it.
      store = MlsKeyStore.open(path, { username: "bob", sigPrivate: generateKeyPairSync("ed25519").privateKey });
      expect(() => store.value("dropped-devices")).toThrow(/does not open with this key file/);
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
