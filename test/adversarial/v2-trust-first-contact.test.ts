// Trust on first use for protocol v2 identities (PROTOCOL.md §4.4, PROTOCOL.md §6, issue 12):
// a peer first met through MLS (here: the KeyPackage claimed for a DM) is pinned from the relay's
// directory before their credential is checked, so a relay that later serves another identity key
// under their name (a KeyPackage of a fake "bob") is refused and shown as a key change. Real v2
// ChatClients, the real relay, the operator's man in the middle (mls-hostile-proxy.ts).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { contentLayerOver } from "../../src/client/mls/content.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { TrustStore } from "../../src/client/trust-store.js";
import { keyTag, type PrivateIdentity } from "../../src/protocol/keys.js";
import { jsonLineLogger } from "../../src/protocol/log.js";
import { createMlsClient, generateKeyPackage } from "../../src/protocol/mls/client.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { MlsHostileProxy } from "../helpers/mls-hostile-proxy.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

const T = 60_000;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A v2 ChatClient through the proxy, its files (MLS store, state, pins) in dir/<name>; its log lines kept. */
async function connect(proxy: MlsHostileProxy, dir: string, id: PrivateIdentity, trust: TrustStore, log: Array<Record<string, unknown>>): Promise<TestClient> {
  const userDir = join(dir, id.username);
  mkdirSync(userDir, { recursive: true });
  const store = MlsKeyStore.open(join(userDir, "mls.db"), { username: id.username, sigPrivate: id.sigPrivate });
  const state = ClientStateStore.open(join(userDir, "state.db"));
  const t = await TestClient.start(id, 0, {
    server: proxy.address, dir: userDir, state, trust, transport: { kind: "plaintext" },
    logger: jsonLineLogger((l) => log.push(JSON.parse(l) as Record<string, unknown>), "debug"),
    v2: { store, content: contentLayerOver(state, id.username) },
  });
  cleanups.push(() => t.close());
  return t;
}

describe("v2 trust on first use", () => {
  it("a peer first met through a DM's KeyPackage is pinned; a relay's KeyPackage of another key under their name is refused and shown as a key change", { timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "sc-v2-trust-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const relay = await TestRelay.start({ plaintext: true });
    cleanups.push(() => relay.cleanup());
    const proxy = await MlsHostileProxy.start(relay.address);
    cleanups.push(() => proxy.close());
    const alice = await fixtureIdentity("alice");
    const bob = await fixtureIdentity("bob");
    const fakeBob = await fixtureIdentity("mallory", "bob"); // another identity key, under bob's name
    const trustOf = async (n: string): Promise<TrustStore> => TrustStore.open(join(dir, `${n}_known_peers.json`));

    // bob registers (his KeyPackages are on the relay) and goes offline: alice has never seen his keys.
    const bobLog: Array<Record<string, unknown>> = [];
    const bob1 = await connect(proxy, dir, bob, await trustOf("bob"), bobLog);
    await waitUntil(() => bobLog.some((l) => l.event === "mls.key_packages.published"), "bob published KeyPackages", T);
    await bob1.close();

    const aliceTrust = await trustOf("alice");
    const a = await connect(proxy, dir, alice, aliceTrust, []);
    expect(aliceTrust.get("bob")).toBeUndefined();

    // First contact: alice's DM to bob (his KeyPackage claimed from the relay) pins bob's real keys.
    const sent = a.client.send("dm:alice:bob", "hi bob");
    expect(sent.ok).toBe(true);
    if (!sent.ok) return;
    await a.waitForState(sent.value.id, "accepted", T);
    expect(aliceTrust.get("bob")?.identity.sigFpr.equals(bob.sigFpr)).toBe(true);

    // The relay now serves alice fake bob: his KeyPackage when claimed, his keys when looked up.
    const fakeClient = await createMlsClient({ username: "bob", sigPrivate: fakeBob.sigPrivate });
    const fakeKp = await generateKeyPackage(fakeClient);
    proxy.onResponse = (user, f) => {
      if (user !== "alice") return undefined;
      if (f.$case === "keyPackageList" && f.value.entries.some((e) => e.username === "bob")) {
        return [{ ...f, value: { ...f.value, entries: f.value.entries.map((e) => (e.username === "bob" ? { ...e, keyPackage: Buffer.from(fakeKp.keyPackage) } : e)) } }];
      }
      if (f.$case === "keyList") {
        const entries = f.value.entries.map((e) => (e.username !== "bob" ? e : {
          ...e, sigSpki: fakeBob.sigSpki, encSpki: fakeBob.encSpki, encKeySig: fakeBob.encKeySig, keyTag: keyTag(fakeBob.sigFpr, fakeBob.encFpr),
        }));
        return [{ ...f, value: { ...f.value, entries } }];
      }
      return undefined;
    };
    expect((await a.client.joinRoom("#ops")).ok).toBe(true);
    const invited = await a.client.invite!("#ops", "bob");
    expect(invited.ok).toBe(false); // the fake bob's KeyPackage does not get in
    const m = await a.client.members("#ops");
    expect(m.ok && [...m.value]).toEqual(["alice"]);
    // Shown through the key-change flow of PROTOCOL.md §6: the pin stays bob's real keys, the fake ones pending.
    await a.waitFor((e) => e.type === "key-change" && e.username === "bob", "a key change for bob at alice", T);
    expect(aliceTrust.get("bob")?.identity.sigFpr.equals(bob.sigFpr)).toBe(true);
    expect(aliceTrust.get("bob")?.pending?.sigFpr.equals(fakeBob.sigFpr)).toBe(true);

    // The DM stays with the real bob: he comes back and reads alice's first message.
    proxy.onResponse = undefined;
    const bob2 = await connect(proxy, dir, bob, await trustOf("bob"), bobLog);
    await bob2.waitForMessage("hi bob", T);
    const dmMembers = await a.client.members("dm:alice:bob");
    expect(dmMembers.ok && [...dmMembers.value].sort()).toEqual(["alice", "bob"]);
  });

  it("a Welcome's adder first met through MLS is pinned from the directory before it is processed; a relay's fake key for them is then refused", { timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "sc-v2-trust-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const relay = await TestRelay.start({ plaintext: true });
    cleanups.push(() => relay.cleanup());
    const proxy = await MlsHostileProxy.start(relay.address);
    cleanups.push(() => proxy.close());
    const alice = await fixtureIdentity("alice");
    const bob = await fixtureIdentity("bob");
    const fakeBob = await fixtureIdentity("mallory", "bob");
    const trustOf = async (n: string): Promise<TrustStore> => TrustStore.open(join(dir, `${n}_known_peers.json`));

    // alice registers and goes offline; bob DMs her and goes offline: alice meets bob only through his Welcome.
    const aliceLog: Array<Record<string, unknown>> = [];
    const a1 = await connect(proxy, dir, alice, await trustOf("alice"), aliceLog);
    await waitUntil(() => aliceLog.some((l) => l.event === "mls.key_packages.published"), "alice published KeyPackages", T);
    await a1.close();
    const b = await connect(proxy, dir, bob, await trustOf("bob"), []);
    const sent = b.client.send("dm:alice:bob", "hi alice");
    expect(sent.ok).toBe(true);
    if (!sent.ok) return;
    await b.waitForState(sent.value.id, "accepted", T);
    await b.close();

    const aliceTrust = await trustOf("alice");
    expect(aliceTrust.get("bob")).toBeUndefined();
    const a = await connect(proxy, dir, alice, aliceTrust, aliceLog);
    await a.waitForMessage("hi alice", T);
    expect(aliceTrust.get("bob")?.identity.sigFpr.equals(bob.sigFpr)).toBe(true);

    // Now the relay serves alice a KeyPackage of fake bob when she invites him: refused.
    const fakeKp = await generateKeyPackage(await createMlsClient({ username: "bob", sigPrivate: fakeBob.sigPrivate }));
    proxy.onResponse = (user, f) => {
      if (user !== "alice" || f.$case !== "keyPackageList") return undefined;
      return [{ ...f, value: { ...f.value, entries: f.value.entries.map((e) => (e.username === "bob" ? { ...e, keyPackage: Buffer.from(fakeKp.keyPackage) } : e)) } }];
    };
    expect((await a.client.joinRoom("#ops")).ok).toBe(true);
    expect((await a.client.invite!("#ops", "bob")).ok).toBe(false);
    await a.waitFor((e) => e.type === "notice" && e.text.includes("identity key for bob that is not the one pinned"), "alice warned of the fake key", T);
    const m = await a.client.members("#ops");
    expect(m.ok && [...m.value]).toEqual(["alice"]);
  });
});
