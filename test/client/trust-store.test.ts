import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TrustStore } from "../../src/client/trust-store.js";
import { fixtureIdentity } from "../helpers/identities.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sc-trust-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("known_peers (PROTOCOL.md §6)", () => {
  it("pins on first use, keeps a different key pending, and accepts it only on trust", async () => {
    const path = join(dir, "alice_known_peers.json");
    const bob = await fixtureIdentity("bob");
    const fakeBob = await fixtureIdentity("mallory", "bob");
    const store = await TrustStore.open(path, () => 1000);
    expect(store.observe(bob)).toBe("pinned-new");
    expect(store.observe(bob)).toBe("unchanged");
    expect(store.get("bob")?.verified).toBe(false);
    expect(store.observe(fakeBob)).toBe("key-changed");
    expect(store.get("bob")?.identity.sigFpr.equals(bob.sigFpr)).toBe(true); // still the old pin
    expect(store.get("bob")?.pending?.sigFpr.equals(fakeBob.sigFpr)).toBe(true);
    await store.flush();
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const reopened = await TrustStore.open(path);
    expect(reopened.get("bob")?.pending?.sigFpr.equals(fakeBob.sigFpr)).toBe(true);
    reopened.trust("bob");
    expect(reopened.get("bob")?.identity.sigFpr.equals(fakeBob.sigFpr)).toBe(true);
    expect(reopened.get("bob")?.verified).toBe(true);
    expect(reopened.get("bob")?.pending).toBeUndefined();
  });

  it("never drops a pin another chat-tui of the same user wrote (two terminals, one file)", async () => {
    const path = join(dir, "alice_known_peers.json");
    const [bob, carol, dave] = await Promise.all([fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave")]);
    const first = await TrustStore.open(path);
    const second = await TrustStore.open(path); // opened before the first wrote anything
    first.observe(bob);
    await first.flush();
    second.observe(carol);
    second.trust("carol");
    await second.flush();
    first.observe(dave);
    await first.flush();
    const after = await TrustStore.open(path);
    expect([...after.all().keys()].sort()).toEqual(["bob", "carol", "dave"]);
    expect(after.get("carol")?.verified).toBe(true);
    // Each process also sees the other's pins from its next write on: no silent re-pinning.
    expect(first.get("carol")?.identity.sigFpr.equals(carol.sigFpr)).toBe(true);
  });

  it("withdraws a pending change when the pinned key shows again", async () => {
    const store = await TrustStore.open(join(dir, "p.json"));
    const bob = await fixtureIdentity("bob");
    store.observe(bob);
    store.observe(await fixtureIdentity("mallory", "bob"));
    expect(store.observe(bob)).toBe("change-withdrawn");
    expect(store.get("bob")?.pending).toBeUndefined();
  });

  it("refuses a pin file others can read and a damaged one", async () => {
    const path = join(dir, "x.json");
    writeFileSync(path, JSON.stringify({ version: 1, peers: {} }), { mode: 0o644 });
    chmodSync(path, 0o644);
    await expect(TrustStore.open(path)).rejects.toThrow(/too open/);
    chmodSync(path, 0o600);
    writeFileSync(path, "{not json");
    await expect(TrustStore.open(path)).rejects.toThrow(/damaged/);
    const bob = await fixtureIdentity("bob");
    const s = await TrustStore.open(join(dir, "ok.json"));
    s.observe(bob);
    await s.flush();
    const text = readFileSync(join(dir, "ok.json"), "utf8").replace(/"encKeySig": "[^"]+"/, '"encKeySig": "AAAA"');
    writeFileSync(path, text);
    await expect(TrustStore.open(path)).rejects.toThrow(/unusable keys for 'bob'/);
  });
});
