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
    const text = readFileSync(join(dir, "ok.json"), "utf8").replace(/"encKeySig": ?"[^"]+"/, '"encKeySig":"AAAA"');
    writeFileSync(path, text);
    await expect(TrustStore.open(path)).rejects.toThrow(/unusable keys for 'bob'/);
  });

  it("a pin write appends one line instead of rewriting every pin (O(1) amortised; figures in npm run bench -- --only pins)", async () => {
    const path = join(dir, "alice_known_peers.json");
    const [bob, carol, dave] = await Promise.all([fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave")]);
    const store = await TrustStore.open(path);
    store.observe(bob);
    await store.flush();
    const before = statSync(path);
    store.observe(carol);
    await store.flush();
    const after = statSync(path);
    // The same file, grown by carol's line: nothing else was read back or written again.
    expect(after.ino).toBe(before.ino);
    const added = readFileSync(path, "utf8").slice(before.size);
    expect(added.trim().split("\n").map((l) => (JSON.parse(l) as { user: string }).user)).toEqual(["carol"]);
    // Changes made while a write is on its way go out together in the next one.
    store.observe(dave);
    store.trust("dave");
    await store.flush();
    expect((await TrustStore.open(path)).get("dave")?.verified).toBe(true);
  });

  it("reads the older one-document format and rewrites it as a journal", async () => {
    const path = join(dir, "alice_known_peers.json");
    const bob = await fixtureIdentity("bob");
    const keys = { sigSpki: bob.sigSpki.toString("base64"), encSpki: bob.encSpki.toString("base64"), encKeySig: bob.encKeySig.toString("base64") };
    writeFileSync(path, JSON.stringify({ version: 1, peers: { bob: { ...keys, verified: true, pinnedAtMs: 5 } } }, null, 2), { mode: 0o600 });
    const store = await TrustStore.open(path);
    expect(store.get("bob")?.verified).toBe(true);
    store.observe(await fixtureIdentity("carol"));
    await store.flush();
    const lines = readFileSync(path, "utf8").trim().split("\n");
    expect(JSON.parse(lines[0]!)).toMatchObject({ version: 2 });
    const again = await TrustStore.open(path);
    expect([...again.all().keys()].sort()).toEqual(["bob", "carol"]);
    expect(again.get("bob")?.verified).toBe(true);
  });

  it("opens a file whose last line a crash cut short, with the pins before it", async () => {
    const path = join(dir, "alice_known_peers.json");
    const store = await TrustStore.open(path);
    store.observe(await fixtureIdentity("bob"));
    await store.flush();
    writeFileSync(path, `${readFileSync(path, "utf8")}{"user":"carol","sigSp`);
    const again = await TrustStore.open(path);
    expect([...again.all().keys()]).toEqual(["bob"]);
  });

  it("a pending key replaced by yet another is reported as such; accept and trust take only the keys named", async () => {
    const store = await TrustStore.open(join(dir, "p.json"));
    const [bob, fakeBob, otherBob] = await Promise.all([fixtureIdentity("bob"), fixtureIdentity("mallory", "bob"), fixtureIdentity("dave", "bob")]);
    store.observe(bob);
    expect(store.observe(fakeBob)).toBe("key-changed");
    expect(store.observe(fakeBob)).toBe("key-changed");
    expect(store.observe(otherBob)).toBe("key-replaced");
    // The user compared fakeBob's number, but otherBob is pending now: nothing changes.
    expect(store.trust("bob", fakeBob)).toBeUndefined();
    expect(store.accept("bob", fakeBob)).toBeUndefined();
    expect(store.get("bob")?.pending?.sigFpr.equals(otherBob.sigFpr)).toBe(true);
    const accepted = store.accept("bob", otherBob);
    expect(accepted?.verified).toBe(false);
    expect(store.get("bob")?.identity.sigFpr.equals(otherBob.sigFpr)).toBe(true);
    expect(store.get("bob")?.pending).toBeUndefined();
    expect(store.trust("bob", otherBob)?.verified).toBe(true);
  });
});
