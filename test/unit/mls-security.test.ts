// Security properties of the MLS core (proto/PROTOCOL.md §10.2): removed
// members, forward secrecy, post-compromise security, stale commits, Welcomes for the wrong
// person, forged credentials, KeyPackage reuse, mutated messages. Each test can fail: the
// comments say which line of src/protocol/mls it checks.
import { generateKeyPairSync, createPublicKey, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  createGroup, createCommit, decodeGroupState, defaultCapabilities, emptyPskIndex, encodeMlsMessage,
  generateKeyPackageWithKey, processMessage, acceptAll, decodeMlsMessage,
  type ClientState, type Credential,
} from "ts-mls";
import { defaultClientConfig } from "ts-mls/clientConfig.js";
import { encodeRatchetTree } from "ts-mls/ratchetTree.js";
import { encodeFields } from "../../src/protocol/encoding.js";
import { fingerprint } from "../../src/protocol/keys.js";
import {
  isMlsProtocolError, KEY_RETENTION, leafKeyBindingBytes, MlsGroup, MLS_SUITE, verifyCredential, makeCredential,
  type MlsErrorCode,
} from "../../src/protocol/mls/index.js";
import { CREDENTIAL_LABEL } from "../../src/protocol/mls/credential.js";
import { decodeFields } from "../../src/protocol/mls/fields.js";
import { suiteImpl } from "../../src/protocol/mls/suite.js";
import { deliver, groupOf, keyPackageOf, lookup, person, text } from "./mls-helpers.js";

async function code(p: Promise<unknown> | (() => unknown)): Promise<MlsErrorCode | "none" | "other"> {
  try {
    await (typeof p === "function" ? p() : p);
    return "none";
  } catch (e) {
    return isMlsProtocolError(e) ? e.code : "other";
  }
}

/** The ts-mls state inside a serialised group (to check, beneath our wrapper, that keys are gone). */
function rawState(serialized: Uint8Array): ClientState {
  const [, encoded] = decodeFields(serialized, "securechat/v1/mls-group-state", 2, "state") as [Buffer, Buffer];
  const decoded = decodeGroupState(new Uint8Array(encoded), 0);
  if (decoded === undefined) throw new Error("state does not decode");
  return { ...decoded[0], clientConfig: { ...defaultClientConfig, keyRetentionConfig: { ...KEY_RETENTION } } };
}

/** Tries ts-mls directly (no wrapper checks): true when the message opens with this state. */
async function libraryOpens(state: ClientState, msg: Uint8Array): Promise<boolean> {
  const impl = await suiteImpl();
  const decoded = decodeMlsMessage(msg, 0)![0];
  if (decoded.wireformat !== "mls_private_message" && decoded.wireformat !== "mls_public_message") throw new Error("not a group message");
  try {
    await processMessage(decoded, state, emptyPskIndex, acceptAll, impl);
    return true;
  } catch (e) {
    // A programming error in the test must not pass for "the keys are gone".
    if (e instanceof TypeError || e instanceof ReferenceError) throw e;
    return false;
  }
}

describe("a removed member cannot read later messages", () => {
  it("even with a copy of its state from before the removal", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    const carolBefore = gc!.serialize();
    const removal = await ga!.removeMembers(["carol"]);
    ga!.confirmCommit();
    await deliver(removal.commit, [gb!, gc!]);
    const later = await ga!.encrypt(text("carol must not read this"));
    expect((await gb!.process(later)).kind).toBe("application");
    // Carol's own group object refuses, and so does her old state (wrapper and library).
    expect(await code(gc!.process(later))).toBe("not-a-member");
    const copy = MlsGroup.restore(carol.client, carolBefore);
    expect(await code(copy.process(later))).toBe("wrong-epoch");
    expect(await libraryOpens(rawState(carolBefore), later)).toBe(false);
    // Replaying the removal into the copy only tells it that it was removed.
    const r = await copy.process(removal.commit);
    expect(r.kind === "commit" && r.removedMe).toBe(true);
    expect(await code(copy.process(later))).toBe("not-a-member");
  });
});

describe("forward secrecy: used keys are deleted", () => {
  it("a member's state taken after an update does not open what was recorded before", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga, gb] = await groupOf("#ops", alice, [bob]);
    const recorded: Uint8Array[] = [];
    for (const t of ["one", "two", "three"]) {
      const m = await ga!.encrypt(text(t));
      recorded.push(m);
      expect((await gb!.process(m)).kind).toBe("application");
    }
    // Read messages never open again, even in the same epoch (their keys were deleted).
    expect(await code(gb!.process(recorded[0]!))).toBe("decrypt-failed");
    // One message Bob has not received yet when the update comes.
    const unread = await ga!.encrypt(text("in flight during the update"));

    const upd = await ga!.selfUpdate();
    ga!.confirmCommit();
    await gb!.process(upd.commit);
    const afterOne = gb!.serialize();
    for (const m of recorded) {
      expect(await code(MlsGroup.restore(bob.client, afterOne).process(m))).toBe("decrypt-failed");
      expect(await libraryOpens(rawState(afterOne), m)).toBe(false);
    }
    // The one past epoch kept (suite.ts KEY_RETENTION) still opens the unread message: a message
    // sent concurrently with a commit is not lost. Then the past epoch is deleted.
    expect(await libraryOpens(rawState(afterOne), unread)).toBe(true);
    gb!.forgetPastEpochs();
    const afterForget = gb!.serialize();
    expect(await code(MlsGroup.restore(bob.client, afterForget).process(unread))).toBe("epoch-expired");
    expect(await libraryOpens(rawState(afterForget), unread)).toBe(false);

    // Without forgetPastEpochs, the next commit deletes it too (retention is one epoch).
    const [gc1, gc2] = await groupOf("#ops", alice, [bob]);
    const unread2 = await gc1!.encrypt(text("x"));
    for (let i = 0; i < 2; i++) {
      const u = await gc1!.selfUpdate();
      gc1!.confirmCommit();
      await gc2!.process(u.commit);
    }
    const afterTwo = gc2!.serialize();
    expect(await libraryOpens(rawState(afterTwo), unread2)).toBe(false);
    expect(await code(MlsGroup.restore(bob.client, afterTwo).process(unread2))).toBe("epoch-expired");
  });

  it("a one-time KeyPackage's private keys are overwritten after the join (a second Welcome to it does not open)", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga] = await groupOf("#ops", alice, []);
    const kp = await keyPackageOf(bob);
    const p = await ga!.addMembers([kp.keyPackage]);
    ga!.confirmCommit();
    const stored = bob.store.get(Buffer.from(kp.ref).toString("hex"))!;
    await MlsGroup.joinFromWelcome(bob.client, p.welcome!, p.ratchetTree!, lookup(bob));
    expect(stored.privateKeys.initPrivateKey.every((b) => b === 0)).toBe(true);
    expect(stored.privateKeys.hpkePrivateKey.every((b) => b === 0)).toBe(true);
    // A relay serving the used KeyPackage again: the Welcome made with it does not open.
    const [gx] = await groupOf("#other", alice, []);
    const p2 = await gx!.addMembers([kp.keyPackage]);
    expect(await code(MlsGroup.joinFromWelcome(bob.client, p2.welcome!, p2.ratchetTree!, lookup(bob)))).toBe("decrypt-failed");
    // The client deletes it from its store: then the Welcome is not even for it.
    bob.store.delete(Buffer.from(kp.ref).toString("hex"));
    expect(await code(MlsGroup.joinFromWelcome(bob.client, p2.welcome!, p2.ratchetTree!, lookup(bob)))).toBe("not-for-me");
  });

  it("a last-resort KeyPackage is kept after use (and says so)", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga] = await groupOf("#ops", alice, []);
    const kp = await keyPackageOf(bob, { lastResort: true });
    expect(kp.lastResort).toBe(true);
    const p = await ga!.addMembers([kp.keyPackage]);
    ga!.confirmCommit();
    const res = await MlsGroup.joinFromWelcome(bob.client, p.welcome!, p.ratchetTree!, lookup(bob));
    expect(res.lastResort).toBe(true);
    const stored = bob.store.get(Buffer.from(kp.ref).toString("hex"))!;
    expect(stored.privateKeys.hpkePrivateKey.some((b) => b !== 0)).toBe(true);
  });
});

describe("post-compromise security: an update heals", () => {
  it("a copy of a member's state taken before its update cannot read what follows", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    const stolen = gb!.serialize();
    // With the stolen state the attacker reads the current epoch...
    const now = await ga!.encrypt(text("before the update"));
    expect(await libraryOpens(rawState(stolen), now)).toBe(true);
    // ...until Bob commits an update (fresh path secrets, encrypted to the others only).
    const upd = await gb!.selfUpdate();
    gb!.confirmCommit();
    await deliver(upd.commit, [ga!, gc!]);
    const after = await ga!.encrypt(text("after the update"));
    expect((await gc!.process(after)).kind).toBe("application");
    const copy = MlsGroup.restore(bob.client, stolen);
    expect(await code(copy.process(upd.commit))).toBe("decrypt-failed"); // my own commit: not processable
    expect(await code(copy.process(after))).toBe("wrong-epoch");
    expect(await libraryOpens(rawState(stolen), upd.commit)).toBe(false);
    expect(await libraryOpens(rawState(stolen), after)).toBe(false);
  });
});

describe("stale and replayed handshake messages", () => {
  it("a commit for an old epoch is refused; a replayed application message does not open twice", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga, gb] = await groupOf("#ops", alice, [bob]);
    const u1 = await ga!.selfUpdate();
    ga!.confirmCommit();
    await gb!.process(u1.commit);
    const epoch = gb!.epoch;
    expect(await code(gb!.process(u1.commit))).toBe("wrong-epoch");
    expect(gb!.epoch).toBe(epoch);
    const m = await ga!.encrypt(text("once"));
    await gb!.process(m);
    expect(await code(gb!.process(m))).toBe("decrypt-failed");
  });

  it("a message of another group is refused before any key is used", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga] = await groupOf("#ops", alice, [bob]);
    const [, hb] = await groupOf("#dev", alice, [bob]);
    expect(await code(hb!.process(await ga!.encrypt(text("for #ops"))))).toBe("wrong-group");
  });
});

describe("Welcomes", () => {
  it("a Welcome for someone nobody added is refused", async () => {
    const [alice, bob, dave] = await Promise.all([person("alice"), person("bob"), person("dave")]);
    const [ga] = await groupOf("#ops", alice, []);
    const kp = await keyPackageOf(bob);
    await keyPackageOf(dave); // dave has KeyPackages, none of them in this Welcome
    const p = await ga!.addMembers([kp.keyPackage]);
    expect(await code(MlsGroup.joinFromWelcome(dave.client, p.welcome!, p.ratchetTree!, lookup(dave)))).toBe("not-for-me");
    // Dave claiming Bob's KeyPackage ref with his own keys does not open it either.
    const daveKp = [...dave.store.values()][0]!;
    expect(await code(MlsGroup.joinFromWelcome(dave.client, p.welcome!, p.ratchetTree!, () => daveKp))).toBe("decrypt-failed");
  });
});

describe("the ratchet tree beside a Welcome", () => {
  it("a tree other than the one the committer signed (another epoch, or a damaged one) is refused", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga] = await groupOf("#ops", alice, [bob]);
    const kp = await keyPackageOf(carol);
    const p = await ga!.addMembers([kp.keyPackage]);
    // The tree of the previous add (a relay serving a stale tree): refused by the tree hash.
    const [gx] = await groupOf("#ops", alice, []);
    const kp2 = await keyPackageOf(bob);
    const other = await gx!.addMembers([kp2.keyPackage]);
    expect(await code(MlsGroup.joinFromWelcome(carol.client, p.welcome!, other.ratchetTree!, lookup(carol)))).not.toBe("none");
    const damaged = new Uint8Array(p.ratchetTree!);
    damaged[damaged.length - 5]! ^= 1;
    expect(await code(MlsGroup.joinFromWelcome(carol.client, p.welcome!, damaged, lookup(carol)))).not.toBe("none");
    expect(await code(MlsGroup.joinFromWelcome(carol.client, p.welcome!, new Uint8Array(0), lookup(carol)))).toBe("malformed");
    // The genuine tree works after all that (nothing was consumed by the refusals).
    const { group } = await MlsGroup.joinFromWelcome(carol.client, p.welcome!, p.ratchetTree!, lookup(carol));
    expect(group.members().map((m) => m.username)).toEqual(["alice", "bob", "carol"]);
  });
});

describe("identity binding: forged credentials are refused", () => {
  /** A credential that names bob and carries bob's identity key, signed by mallory's key. */
  function forgedBobCredential(bobSpki: Buffer, malloryKey: ReturnType<typeof generateKeyPairSync>["privateKey"], leafKey: Uint8Array): Credential {
    const sig = sign(null, leafKeyBindingBytes("bob", bobSpki, leafKey), malloryKey);
    return { credentialType: "basic", identity: new Uint8Array(encodeFields(CREDENTIAL_LABEL, ["bob", bobSpki, sig])) };
  }

  it("verifyCredential: genuine passes, a signature by another key, a swapped leaf key or a bad name fail", async () => {
    const [bob] = await Promise.all([person("bob")]);
    const id = verifyCredential(bob.client.credential, bob.client.signaturePublicKey);
    expect(id.username).toBe("bob");
    const bobSpki = createPublicKey(bob.sigPrivate).export({ format: "der", type: "spki" });
    expect(id.identityFpr.equals(fingerprint(bobSpki))).toBe(true);
    const mallory = generateKeyPairSync("ed25519").privateKey;
    expect(await code(() => verifyCredential(forgedBobCredential(bobSpki, mallory, bob.client.signaturePublicKey), bob.client.signaturePublicKey))).toBe("bad-credential");
    const otherLeaf = new Uint8Array(32).fill(7);
    expect(await code(() => verifyCredential(bob.client.credential, otherLeaf))).toBe("bad-credential");
    const badName = { credentialType: "basic" as const, identity: new Uint8Array(encodeFields(CREDENTIAL_LABEL, ["Bob", bobSpki, Buffer.alloc(64)])) };
    expect(await code(() => verifyCredential(badName, bob.client.signaturePublicKey))).toBe("bad-credential");
    expect(await code(() => verifyCredential({ credentialType: "basic", identity: new Uint8Array(3) }, bob.client.signaturePublicKey))).toBe("bad-credential");
  });

  it("a KeyPackage with a forged credential is refused by addMembers", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga] = await groupOf("#ops", alice, []);
    const impl = await suiteImpl();
    const bobSpki = createPublicKey(bob.sigPrivate).export({ format: "der", type: "spki" });
    const mallory = generateKeyPairSync("ed25519").privateKey;
    const leaf = await impl.signature.keygen();
    const { publicPackage } = await generateKeyPackageWithKey(forgedBobCredential(bobSpki, mallory, leaf.publicKey), { ...defaultCapabilities(), ciphersuites: [MLS_SUITE] },
      { notBefore: BigInt(Math.floor(Date.now() / 1000) - 60), notAfter: BigInt(Math.floor(Date.now() / 1000) + 3600) }, [], { signKey: leaf.signKey, publicKey: leaf.publicKey }, impl);
    const bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: publicPackage });
    expect(await code(ga!.addMembers([bytes]))).toBe("bad-key-package");
  });

  it("a Welcome whose tree holds a forged member is refused by the joiner", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const impl = await suiteImpl();
    const bobSpki = createPublicKey(bob.sigPrivate).export({ format: "der", type: "spki" });
    const mallory = generateKeyPairSync("ed25519").privateKey;
    const leaf = await impl.signature.keygen();
    const lt = { notBefore: 0n, notAfter: BigInt(Math.floor(Date.now() / 1000) + 3600) };
    const caps = { ...defaultCapabilities(), ciphersuites: [MLS_SUITE] };
    const forged = await generateKeyPackageWithKey(forgedBobCredential(bobSpki, mallory, leaf.publicKey), caps, lt, [], { signKey: leaf.signKey, publicKey: leaf.publicKey }, impl);
    // A malicious creator uses the library directly (no checks) to build the group.
    const creator = await generateKeyPackageWithKey(alice.client.credential, caps, lt, [], { signKey: alice.client.signaturePrivateKey, publicKey: alice.client.signaturePublicKey }, impl);
    const groupId = new Uint8Array([...Buffer.from("#ops"), 0, ...new Uint8Array(16).fill(1)]);
    const state = await createGroup(groupId, creator.publicPackage, creator.privatePackage, [], impl);
    const carolKp = await keyPackageOf(carol);
    const carolStored = [...carol.store.values()][0]!;
    const res = await createCommit({ state, cipherSuite: impl }, {
      extraProposals: [{ proposalType: "add", add: { keyPackage: forged.publicPackage } }, { proposalType: "add", add: { keyPackage: carolStored.keyPackage } }],
    });
    const welcome = encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: res.welcome! });
    void carolKp;
    expect(await code(MlsGroup.joinFromWelcome(carol.client, welcome, encodeRatchetTree(res.newState.ratchetTree), lookup(carol)))).toBe("bad-credential");
  });

  it("a self-consistent credential for 'bob' under another identity key is refused by the trust hook (pin)", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const mallory = generateKeyPairSync("ed25519").privateKey;
    const impl = await suiteImpl();
    const leaf = await impl.signature.keygen();
    // mallory's own key vouches for a leaf named bob: valid in itself, but not bob's pinned key.
    const { credential } = makeCredential("bob", mallory, leaf.publicKey);
    const bobFpr = verifyCredential(bob.client.credential, bob.client.signaturePublicKey).identityFpr;
    const pins = new Map([["bob", bobFpr]]);
    const trust = (id: { username: string; identityFpr: Buffer }): boolean => pins.get(id.username)?.equals(id.identityFpr) ?? true;
    const [ga] = await groupOf("#ops", alice, []);
    const fake = await generateKeyPackageWithKey(credential, { ...defaultCapabilities(), ciphersuites: [MLS_SUITE] },
      { notBefore: BigInt(Math.floor(Date.now() / 1000) - 60), notAfter: BigInt(Math.floor(Date.now() / 1000) + 3600) }, [], { signKey: leaf.signKey, publicKey: leaf.publicKey }, impl);
    const bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: fake.publicPackage });
    // Without the pin it verifies (TOFU's first contact); with it, it is refused.
    const restoredA = MlsGroup.restore(alice.client, ga!.serialize(), { trust });
    expect(await code(restoredA.addMembers([bytes]))).toBe("untrusted-identity");
    const genuine = await keyPackageOf(bob);
    await restoredA.addMembers([genuine.keyPackage]);
    restoredA.confirmCommit();
  });
});

describe("mutated messages (decoder fuzz)", () => {
  it("every mutation of an application message or a commit is refused with MlsProtocolError, and the state stays usable", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga, gb] = await groupOf("#ops", alice, [bob]);
    const msg = await ga!.encrypt(text("the real one"));
    const upd = await ga!.selfUpdate();
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (const original of [msg, upd.commit]) {
      for (let i = 0; i < 120; i++) {
        const m = new Uint8Array(original);
        let mutated: Uint8Array = m;
        const how = rand(4);
        if (how === 0) m[rand(m.length)]! ^= 1 << rand(8);
        else if (how === 1) mutated = m.subarray(0, rand(m.length));
        else if (how === 2) mutated = new Uint8Array([...m, rand(256)]);
        else { m[rand(m.length)] = rand(256); m[rand(m.length)] = rand(256); }
        if (Buffer.from(mutated).equals(Buffer.from(original))) continue;
        let ok = false;
        try {
          await gb!.process(mutated);
        } catch (e) {
          ok = isMlsProtocolError(e);
          if (!ok) throw e;
        }
        expect(ok).toBe(true);
      }
    }
    expect((await gb!.process(msg)).kind).toBe("application");
    ga!.confirmCommit();
    expect((await gb!.process(upd.commit)).kind).toBe("commit");
  });
});
