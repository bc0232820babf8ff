// The directory at scale (PROTOCOL.md §9): light entries (name, presence, key tag) in Welcome
// and DirectoryUpdate, coalesced so a connect storm is not N^2 frames; keys only on LookupKeys.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { keyTag, signProof, type PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let dave: PrivateIdentity;
let relay: TestRelay | undefined;

beforeAll(async () => {
  [alice, bob, carol, dave] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave")]);
});
afterEach(async () => {
  await relay?.cleanup();
  relay = undefined;
});

describe("light directory", () => {
  it("Welcome lists who is online and my rooms' members, without keys; not offline strangers", async () => {
    relay = await TestRelay.start();
    // A room is an MLS group (protocol v2): bob creates #ops and adds alice; the relay's record
    // of the group's members is what Welcome.rooms (and so the directory) follows.
    const a0 = await relay.connect(alice);
    const pa = await mlsPerson(alice);
    await must(a0, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pa)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    const b = await relay.connect(bob);
    const ops = await MlsGroup.create((await mlsPerson(bob)).client, "#ops");
    await must(b, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ops.groupInfo()) } }, "groupInfoResult");
    const kps = await must(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    const add = await ops.addMembers(kps.entries.map((e) => e.keyPackage), { expectUsernames: ["alice"] });
    expect(await sendCommit(b, add.commit, undefined, { added: ["alice"], welcome: add.welcome, ratchetTree: add.ratchetTree })).toMatchObject({ accepted: true });
    await relay.disconnect(b, "bob");
    await relay.disconnect(a0, "alice");
    const d = await relay.connect(dave); // bound, then offline: a stranger to alice
    await relay.disconnect(d, "dave");
    await relay.connect(carol); // online
    await relay.connect(alice);

    const again = relay.open();
    const w = await again.handshake(alice); // replaces the session: a fresh Welcome
    const entries = new Map(w.directory.map((e) => [e.username, e]));
    expect([...entries.keys()].sort()).toEqual(["alice", "bob", "carol"]); // bob: a member of my room
    expect(entries.get("bob")!.online).toBe(false);
    expect(entries.get("carol")!.online).toBe(true);
    for (const e of entries.values()) expect(e.sigSpki.length + e.encSpki.length + e.encKeySig.length).toBe(0);
    expect(entries.get("carol")!.keyTag.equals(keyTag(carol.sigFpr, carol.encFpr))).toBe(true);
  });

  it("LookupKeys answers the keys of known names, leaves the others out, and refuses oversized asks", async () => {
    relay = await TestRelay.start({ limits: { maxRecipients: 3 } });
    await relay.connect(bob);
    const a = await relay.connect(alice);
    const found = await a.lookupKeys(["bob", "zed", "bob"]);
    expect(found.map((e) => e.username)).toEqual(["bob"]);
    expect(found[0]!.encSpki.equals(bob.encSpki)).toBe(true);
    expect(found[0]!.online).toBe(true);
    a.write({ $case: "lookupKeys", value: { requestId: 9, usernames: ["a1", "a2", "a3", "a4"] } });
    const err = await a.next("error", (e) => e.requestId === 9);
    expect(err.code).toBe(ErrorCode.ERROR_CODE_BAD_FRAME);
    expect(err.detail).toBe("a key lookup may name at most 3 users, not 4");
  });

  it("rate-limits lookups in a bucket of their own, leaving sends alone", async () => {
    relay = await TestRelay.start({ limits: { messagesPerSecond: 1, burst: 2 } });
    const a = await relay.connect(alice);
    await a.lookupKeys(["bob"], 1);
    await a.lookupKeys(["bob"], 2);
    a.write({ $case: "lookupKeys", value: { requestId: 3, usernames: ["bob"] } });
    expect((await a.next("error", (e) => e.requestId === 3)).code).toBe(ErrorCode.ERROR_CODE_RATE_LIMITED);
  });

  // Load-sensitive: failed in some full runs on a saturated 2-core machine, passes alone (closing
  // note of 2026-12-06). One retry so CI is not decided by machine load; two failures are real.
  it("coalesces what changes within a moment into one update for everyone", { retry: 1 }, async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    // TLS and the challenge first, then the three proofs at once: the joins land together
    // however slowly the machine sets up connections.
    const ready = await Promise.all([bob, carol, dave].map(async (id) => {
      const s = relay!.open();
      s.hello(id);
      return { s, id, ch: await s.next("challenge") };
    }));
    for (const { s, id, ch } of ready) s.write({ $case: "proof", value: { signature: signProof(id, ch.relayId, ch.nonce, s.channelBinding) } });
    // Three joins, far fewer frames: each update carries every change since the last one.
    const seen = new Set<string>();
    let frames = 0;
    while (seen.size < 3) {
      const u = await a.next("directoryUpdate");
      frames++;
      for (const e of u.entries) if (e.online) seen.add(e.username);
    }
    expect(frames).toBeLessThan(3);
  });
});
