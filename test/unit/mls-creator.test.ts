// A room's creator bound in the group (src/protocol/mls/creator.ts, proto/PROTOCOL.md §7.4
// ): read back by every member however it joined; not leaf 0; fixed for the
// group's life; a GroupInfo, Welcome or state without it (or contradicting it) refused. The
// hostile members below use ts-mls directly, as a modified client would.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  createCommit, createGroup, createProposal, createGroupInfoWithExternalPubAndRatchetTree, decodeGroupState, defaultCapabilities, defaultLifetime,
  encodeGroupState, encodeMlsMessage, encodeRequiredCapabilities, generateKeyPackageWithKey, joinGroupExternal,
  type ClientState, type Extension,
} from "ts-mls";
import { encodeRatchetTree } from "ts-mls/ratchetTree.js";
import { encodeFields } from "../../src/protocol/encoding.js";
import {
  createMlsClient, isMlsProtocolError, makeCredential, MlsGroup, MLS_SUITE, ROOM_CREATOR_EXTENSION,
  type ChangePolicy, type MlsClient, type MlsErrorCode,
} from "../../src/protocol/mls/index.js";
import { CredentialChecker } from "../../src/protocol/mls/credential.js";
import { decodeRoomCreator, encodeRoomCreator, ROOM_CREATOR_LABEL } from "../../src/protocol/mls/creator.js";
import { decodeFields } from "../../src/protocol/mls/fields.js";
import { clientConfig, suiteImpl } from "../../src/protocol/mls/suite.js";
import { deliver, groupOf, keyPackageOf, lookup, person, text, type Person } from "./mls-helpers.js";

const STATE_LABEL = "securechat/v1/mls-group-state";

async function code(p: Promise<unknown> | (() => unknown)): Promise<MlsErrorCode | "none" | "other"> {
  try {
    await (typeof p === "function" ? p() : p);
    return "none";
  } catch (e) {
    return isMlsProtocolError(e) ? e.code : "other";
  }
}

/** The ts-mls state inside an MlsGroup (what a modified client of that member holds). */
function rawState(g: MlsGroup): ClientState {
  const [, encoded] = decodeFields(g.serialize(), STATE_LABEL, 2, "state") as [Buffer, Buffer];
  const decoded = decodeGroupState(new Uint8Array(encoded), 0);
  if (decoded === undefined) throw new Error("state does not decode");
  return { ...decoded[0], clientConfig: clientConfig(new CredentialChecker(undefined)) };
}

/** A commit made by ts-mls directly from a member's state, with the given proposals. */
async function hostileCommit(g: MlsGroup, extraProposals: Parameters<typeof createCommit>[1] extends infer O ? O extends { extraProposals?: infer P } ? P : never : never): Promise<Uint8Array> {
  const impl = await suiteImpl();
  const res = await createCommit({ state: rawState(g), cipherSuite: impl }, { extraProposals: extraProposals ?? [], ratchetTreeExtension: false });
  return encodeMlsMessage(res.commit);
}

/** The extensions of a room made by secure-chat (required_capabilities, room_creator). */
function roomExtensions(creator: { username: string; identityFpr: Buffer }, override?: Partial<{ caps: Uint8Array; creator: Uint8Array }>): Extension[] {
  return [
    { extensionType: "required_capabilities", extensionData: override?.caps ?? encodeRequiredCapabilities({ extensionTypes: [ROOM_CREATOR_EXTENSION], proposalTypes: [], credentialTypes: ["basic"] }) },
    { extensionType: ROOM_CREATOR_EXTENSION, extensionData: override?.creator ?? encodeRoomCreator({ username: creator.username, identityFingerprint: creator.identityFpr }) },
  ];
}

const CAPS = { ...defaultCapabilities(), ciphersuites: [MLS_SUITE], extensions: [ROOM_CREATOR_EXTENSION] };

/** A group made by ts-mls directly (a hostile creator), with the given GroupContext extensions; its GroupInfo. */
async function hostileRoom(creator: MlsClient, conversationId: string, extensions: Extension[]): Promise<{ state: ClientState; groupInfo: Uint8Array }> {
  const impl = await suiteImpl();
  const kp = await generateKeyPackageWithKey(creator.credential, CAPS, defaultLifetime, [], { signKey: creator.signaturePrivateKey, publicKey: creator.signaturePublicKey }, impl);
  const groupId = new Uint8Array([...Buffer.from(conversationId), 0, ...new Uint8Array(16).fill(3)]);
  const state = await createGroup(groupId, kp.publicPackage, kp.privatePackage, extensions, impl, clientConfig(new CredentialChecker(undefined)));
  const gi = await createGroupInfoWithExternalPubAndRatchetTree(state, [], impl);
  return { state, groupInfo: encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo: gi }) };
}

function expectCreator(g: MlsGroup, p: Person): void {
  const c = g.creator();
  expect(c?.username).toBe(p.username);
  expect(c?.identityFingerprint.equals(p.client.identity.identityFpr)).toBe(true);
}

/** The rule of §7 as the engine gives it to process(): only the creator (name AND key) removes others; anyone leaves. */
function creatorRule(g: MlsGroup): ChangePolicy {
  return (c) => g.removalsAllowed(c);
}

describe("the creator is read back by every member", () => {
  it("after create, after a Welcome join, after an external join, after restore; DMs and the lobby have none", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb] = await groupOf("#ops", alice, [bob]);
    expectCreator(ga!, alice);
    expectCreator(gb!, alice); // Welcome
    expect(gb!.isCreator(alice.client.identity)).toBe(true);
    expect(gb!.isCreator(bob.client.identity)).toBe(false);
    // The name alone is not enough: the creator is the name AND the identity key.
    expect(gb!.isCreator({ username: "alice", identityFpr: bob.client.identity.identityFpr })).toBe(false);
    expect(gb!.creatorMember()?.username).toBe("alice");
    const { group: gc, commit } = await MlsGroup.joinExternal(carol.client, await gb!.groupInfo(), { expectConversation: "#ops" });
    expectCreator(gc, alice); // external commit
    await deliver(commit, [ga!, gb!]);
    expectCreator(MlsGroup.restore(carol.client, gc.serialize()), alice); // restore
    // The creator stays the same through later epochs.
    const upd = await gb!.selfUpdate();
    gb!.confirmCommit();
    await deliver(upd.commit, [ga!, gc]);
    expectCreator(gc, alice);

    const [da, db] = await groupOf("dm:alice:bob", alice, [bob]);
    expect(da!.creator()).toBeUndefined();
    expect(db!.creator()).toBeUndefined();
    expect(db!.isCreator(alice.client.identity)).toBe(false);
    expect(MlsGroup.restore(bob.client, db!.serialize()).creator()).toBeUndefined();
    const [la] = await groupOf("lobby", alice, []);
    expect(la!.creator()).toBeUndefined();
    const { group: lb } = await MlsGroup.joinExternal(bob.client, await la!.groupInfo());
    expect(lb.creator()).toBeUndefined();
  });

  it("the extension decodes strictly (label, two fields, a valid name, a 32-byte fingerprint)", async () => {
    const fpr = Buffer.alloc(32, 7);
    expect(decodeRoomCreator(encodeRoomCreator({ username: "alice", identityFingerprint: fpr }))).toEqual({ username: "alice", identityFingerprint: fpr });
    const bad = [
      encodeFields(ROOM_CREATOR_LABEL, ["alice", Buffer.alloc(31)]),
      encodeFields(ROOM_CREATOR_LABEL, ["Alice", fpr]),
      encodeFields(ROOM_CREATOR_LABEL, ["alice", fpr, "extra"]),
      encodeFields("securechat/v1/mls-credential", ["alice", fpr]),
      Buffer.concat([encodeFields(ROOM_CREATOR_LABEL, ["alice", fpr]), Buffer.from([0])]),
      new Uint8Array(0),
    ];
    for (const b of bad) expect(await code(() => decodeRoomCreator(new Uint8Array(b)))).toBe("bad-group-context");
  });
});

describe("the creator is not leaf 0", () => {
  it("the creator leaves, a newcomer takes leaf 0 and is not the creator; nobody may remove others; the creator comes back as creator", async () => {
    const [alice, bob, carol, dave] = await Promise.all([person("alice"), person("bob"), person("carol"), person("dave")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    expect(ga!.myLeafIndex).toBe(0);
    // Alice leaves (a proposal Bob commits).
    await deliver(await ga!.proposeLeave(), [gb!, gc!]);
    const leave = await gb!.commitPendingProposals();
    gb!.confirmCommit();
    await deliver(leave.commit, [ga!, gc!]);
    expect(gb!.creatorMember()).toBeUndefined();
    // Dave joins by external commit: MLS gives him the leftmost blank leaf, alice's.
    const { group: gd, commit } = await MlsGroup.joinExternal(dave.client, await gb!.groupInfo());
    expect(gd.myLeafIndex).toBe(0);
    await deliver(commit, [gb!, gc!]);
    for (const g of [gb!, gc!, gd]) {
      expect(g.members().find((m) => m.leafIndex === 0)?.username).toBe("dave");
      expectCreator(g, alice);
      expect(g.isCreator(g.member("dave")!)).toBe(false);
      expect(g.creatorMember()).toBeUndefined();
    }
    // Dave (leaf 0) removes Carol: every honest member applying the rule refuses it, state unchanged.
    const kick = await gd.removeMembers(["carol"]);
    gd.confirmCommit();
    const epoch = gb!.epoch;
    expect(await code(gb!.process(kick.commit, creatorRule(gb!)))).toBe("refused-change");
    expect(await code(gc!.process(kick.commit, creatorRule(gc!)))).toBe("refused-change");
    expect(gb!.epoch).toBe(epoch);
    expect((await gc!.process(await gb!.encrypt(text("still here")))).kind).toBe("application");
    // Anyone may still leave: Carol's leave, committed by Bob, passes the rule.
    await deliver(await gc!.proposeLeave(), [gb!]);
    const carolOut = await gb!.commitPendingProposals();
    gb!.confirmCommit();
    const atCarol = await gc!.process(carolOut.commit, creatorRule(gc!));
    expect(atCarol.kind === "commit" && atCarol.removedMe).toBe(true);
    // Alice comes back with the same identity key: she is the creator again, and may remove.
    const { group: ga2, commit: back } = await MlsGroup.joinExternal(alice.client, await gb!.groupInfo());
    await gb!.process(back, creatorRule(gb!));
    expect(gb!.creatorMember()?.username).toBe("alice");
    const { group: gd2, commit: dBack } = await MlsGroup.joinExternal(dave.client, await gb!.groupInfo());
    await deliver(dBack, [gb!, ga2]);
    const creatorKick = await ga2.removeMembers(["dave"]);
    ga2.confirmCommit();
    const r = await gb!.process(creatorKick.commit, creatorRule(gb!));
    // Dave holds two leaves now (his stale one and the re-join): removing a user removes every leaf of theirs (PROTOCOL.md §4.5).
    expect(r.kind === "commit" && r.change.removed.map((m) => m.username)).toEqual(["dave", "dave"]);
    void gd2;
  });

  it("someone else under the creator's name (another identity key) cannot join: refused by every member and by the joiner's own client", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    // Alice leaves; "alice" with another identity key (a relay-made account, or a lost key file) joins.
    await deliver(await ga!.proposeLeave(), [gb!, gc!]);
    const leave = await gb!.commitPendingProposals();
    gb!.confirmCommit();
    await deliver(leave.commit, [ga!, gc!]);
    const other = await createMlsClient({ username: "alice", sigPrivate: generateKeyPairSync("ed25519").privateKey });
    const info = await gb!.groupInfo();
    expect(await code(MlsGroup.joinExternal(other, info))).toBe("bad-group-context");
    // A modified client joins anyway (ts-mls directly): both members refuse the commit.
    const impl = await suiteImpl();
    const decoded = (await import("ts-mls")).decodeMlsMessage(info, 0)![0];
    if (decoded.wireformat !== "mls_group_info") throw new Error("expected a GroupInfo");
    const kp = await generateKeyPackageWithKey(other.credential, CAPS, defaultLifetime, [], { signKey: other.signaturePrivateKey, publicKey: other.signaturePublicKey }, impl);
    const ext = await joinGroupExternal(decoded.groupInfo, kp.publicPackage, kp.privatePackage, false, impl);
    const commit = encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage: ext.publicMessage });
    const epoch = gb!.epoch;
    expect(await code(gb!.process(commit))).toBe("refused-change");
    expect(await code(gc!.process(commit))).toBe("refused-change");
    expect(gb!.epoch).toBe(epoch);
    // An honest bob cannot add such a KeyPackage either: his commit would be refused by carol.
    const addKp = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: (await generateKeyPackageWithKey(other.credential, CAPS,
      { notBefore: BigInt(Math.floor(Date.now() / 1000) - 60), notAfter: BigInt(Math.floor(Date.now() / 1000) + 3600) }, [], { signKey: other.signaturePrivateKey, publicKey: other.signaturePublicKey }, impl)).publicPackage });
    const add = await gb!.addMembers([addKp]);
    gb!.discardCommit();
    expect(await code(gc!.process(add.commit))).toBe("refused-change");
  });
});

describe("the removal rule (PROTOCOL.md §7)", () => {
  it("a member's resync removes only its own old leaf; nobody removes the other in a DM; a non-creator's removal is refused", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    // Carol resyncs (external commit replacing her old leaf): allowed although she is not the creator.
    const { group: gc2, commit: resync } = await MlsGroup.joinExternal(carol.client, await ga!.groupInfo(), { resync: true });
    for (const g of [ga!, gb!]) {
      const r = await g.process(resync, creatorRule(g));
      expect(r.kind === "commit" && r.change.removed.map((m) => m.username)).toEqual(["carol"]);
    }
    void gc;
    // A hostile external joiner "resyncing" someone else's leaf (ts-mls directly, told that
    // Carol's leaf is its own), or "carol" under another identity key replacing Carol: refused.
    const impl = await suiteImpl();
    const { decodeMlsMessage, defaultKeyPackageEqualityConfig } = await import("ts-mls");
    const carolSig = Buffer.from(gc2.members().find((m) => m.username === "carol")!.signatureKey);
    const dave = await person("dave");
    const otherCarol = await createMlsClient({ username: "carol", sigPrivate: generateKeyPairSync("ed25519").privateKey });
    for (const joiner of [dave.client, otherCarol]) {
      const info = decodeMlsMessage(await ga!.groupInfo(), 0)![0];
      if (info.wireformat !== "mls_group_info") throw new Error("expected a GroupInfo");
      const kp = await generateKeyPackageWithKey(joiner.credential, CAPS, defaultLifetime, [], { signKey: joiner.signaturePrivateKey, publicKey: joiner.signaturePublicKey }, impl);
      const config = { ...clientConfig(new CredentialChecker(undefined)), keyPackageEqualityConfig: { ...defaultKeyPackageEqualityConfig, compareKeyPackageToLeafNode: (_k: unknown, leaf: { signaturePublicKey: Uint8Array }) => carolSig.equals(Buffer.from(leaf.signaturePublicKey)) } };
      const ext = await joinGroupExternal(info.groupInfo, kp.publicPackage, kp.privatePackage, true, impl, undefined, config);
      const hostile = encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage: ext.publicMessage });
      for (const g of [ga!, gb!]) expect(await code(g.process(hostile, creatorRule(g)))).toBe("refused-change");
    }
    // Bob removes Carol: refused by the rule (he is not the creator); Alice may.
    const bobKick = await gb!.removeMembers(["carol"]);
    gb!.discardCommit();
    expect(await code(ga!.process(bobKick.commit, creatorRule(ga!)))).toBe("refused-change");
    expect(await code(gc2.process(bobKick.commit, creatorRule(gc2)))).toBe("refused-change");
    const aliceKick = await ga!.removeMembers(["carol"]);
    ga!.confirmCommit();
    const r = await gb!.process(aliceKick.commit, creatorRule(gb!));
    expect(r.kind === "commit" && r.change.left).toEqual([]);
    // In a DM nobody removes the other.
    const [da, db] = await groupOf("dm:alice:bob", alice, [bob]);
    const dmKick = await da!.removeMembers(["bob"]);
    expect(await code(db!.process(dmKick.commit, creatorRule(db!)))).toBe("refused-change");
  });
});

describe("a member cannot rename itself in an update path", () => {
  it("a commit whose path gives the committer's leaf another name (the creator's, or anyone's) is refused by every member", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    // Bob's modified client: his own identity key vouches for his leaf key under another name.
    const renamed = async (name: string): Promise<Uint8Array> => {
      const state = rawState(gb!);
      const at = gb!.myLeafIndex * 2;
      const node = state.ratchetTree[at];
      if (node?.nodeType !== "leaf") throw new Error("no leaf");
      const { credential } = makeCredential(name, bob.sigPrivate, bob.client.signaturePublicKey);
      const tree = [...state.ratchetTree];
      tree[at] = { nodeType: "leaf", leaf: { ...node.leaf, credential } };
      const impl = await suiteImpl();
      const res = await createCommit({ state: { ...state, ratchetTree: tree }, cipherSuite: impl }, { extraProposals: [], ratchetTreeExtension: false });
      return encodeMlsMessage(res.commit);
    };
    const epoch = ga!.epoch;
    for (const name of ["alice", "dave", "carol"]) {
      const commit = await renamed(name);
      expect(await code(ga!.process(commit))).toBe("refused-change");
      expect(await code(gc!.process(commit))).toBe("refused-change");
    }
    expect(ga!.epoch).toBe(epoch);
    expect(ga!.member("bob")).toBeDefined();
    // An honest update (same name, same key) passes.
    const upd = await gb!.selfUpdate();
    gb!.confirmCommit();
    expect((await ga!.process(upd.commit)).kind).toBe("commit");
  });
});

describe("the creator is fixed for the group's life", () => {
  it("a commit with a group_context_extensions proposal naming another creator is refused by every honest member, state unchanged", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    // Bob (a modified client) makes himself the creator.
    const bobAsCreator = await hostileCommit(gb!, [{ proposalType: "group_context_extensions", groupContextExtensions: { extensions: roomExtensions(bob.client.identity) } }]);
    const epoch = ga!.epoch;
    for (const g of [ga!, gc!]) {
      expect(await code(g.process(bobAsCreator))).toBe("context-changed");
      expect(g.epoch).toBe(epoch);
      expectCreator(g, alice);
    }
    // Removing the creator extension (keeping only required_capabilities) is refused too.
    const noCreator = await hostileCommit(gb!, [{ proposalType: "group_context_extensions", groupContextExtensions: { extensions: roomExtensions(alice.client.identity).slice(0, 1) } }]);
    for (const g of [ga!, gc!]) expect(await code(g.process(noCreator))).toBe("context-changed");
    // A standalone GCE proposal (to be committed by reference later) is refused on arrival.
    const impl = await suiteImpl();
    const prop = await createProposal(rawState(gb!), false, { proposalType: "group_context_extensions", groupContextExtensions: { extensions: roomExtensions(bob.client.identity) } }, impl);
    expect(await code(ga!.process(encodeMlsMessage(prop.message)))).toBe("refused-change");
    // The honest members keep talking at the old epoch.
    expect((await gc!.process(await ga!.encrypt(text("nothing changed")))).kind).toBe("application");
    // Our own API never proposes one: an honest commit leaves the extensions as they were.
    const upd = await gc!.selfUpdate();
    gc!.confirmCommit();
    await ga!.process(upd.commit);
    expectCreator(ga!, alice);
  });
});

describe("joiners refuse a room that does not name its creator", () => {
  it("an external joiner refuses a room GroupInfo without the extension, with a malformed one, or with extra extensions", async () => {
    const [alice, dave] = await Promise.all([person("alice"), person("dave")]);
    const cases: Extension[][] = [
      [],
      roomExtensions(alice.client.identity).slice(0, 1),
      roomExtensions(alice.client.identity).slice(1),
      roomExtensions(alice.client.identity, { creator: new Uint8Array(encodeFields(ROOM_CREATOR_LABEL, ["alice", Buffer.alloc(31)])) }),
      roomExtensions(alice.client.identity, { caps: encodeRequiredCapabilities({ extensionTypes: [], proposalTypes: [], credentialTypes: ["basic"] }) }),
      [...roomExtensions(alice.client.identity), { extensionType: "application_id", extensionData: new Uint8Array([1, 2]) }],
    ];
    for (const ext of cases) {
      const { groupInfo } = await hostileRoom(alice.client, "#ops", ext);
      expect(await code(MlsGroup.joinExternal(dave.client, groupInfo))).toMatch(/^(bad-group-context|bad-credential)$/);
    }
    // The first case, checked exactly: ts-mls accepts the join, our check refuses it.
    const { groupInfo } = await hostileRoom(alice.client, "#ops", []);
    expect(await code(MlsGroup.joinExternal(dave.client, groupInfo))).toBe("bad-group-context");
    // A well-formed one is joined (the same hostile-room maker is not what is refused).
    const ok = await hostileRoom(alice.client, "#ops", roomExtensions(alice.client.identity));
    expect((await MlsGroup.joinExternal(dave.client, ok.groupInfo)).group.creator()?.username).toBe("alice");
  });

  it("a GroupInfo naming a creator whose identity key differs from the member of that name is refused", async () => {
    const [alice, dave] = await Promise.all([person("alice"), person("dave")]);
    const { groupInfo } = await hostileRoom(alice.client, "#ops", roomExtensions({ username: "alice", identityFpr: Buffer.alloc(32, 9) }));
    expect(await code(MlsGroup.joinExternal(dave.client, groupInfo))).toBe("bad-group-context");
  });

  it("a DM or the lobby carrying a creator extension is refused", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    for (const conv of ["dm:alice:bob", "lobby"]) {
      const { groupInfo } = await hostileRoom(alice.client, conv, roomExtensions(alice.client.identity));
      expect(await code(MlsGroup.joinExternal(bob.client, groupInfo))).toBe("bad-group-context");
    }
  });

  it("a Welcome to a room without the extension is refused, and its KeyPackage is kept", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const { state } = await hostileRoom(alice.client, "#ops", []);
    const kp = await keyPackageOf(bob);
    const stored = [...bob.store.values()][0]!;
    const impl = await suiteImpl();
    const res = await createCommit({ state, cipherSuite: impl }, { extraProposals: [{ proposalType: "add", add: { keyPackage: stored.keyPackage } }], ratchetTreeExtension: false });
    const welcome = encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: res.welcome! });
    expect(await code(MlsGroup.joinFromWelcome(bob.client, welcome, encodeRatchetTree(res.newState.ratchetTree), lookup(bob)))).toBe("bad-group-context");
    expect(stored.privateKeys.hpkePrivateKey.some((b) => b !== 0)).toBe(true);
    void kp;
  });

  it("a stored room state without the extension does not restore", async () => {
    const [alice] = await Promise.all([person("alice")]);
    const { state } = await hostileRoom(alice.client, "#ops", []);
    const bytes = new Uint8Array(encodeFields(STATE_LABEL, ["1", encodeGroupState(state)]));
    expect(await code(() => MlsGroup.restore(alice.client, bytes))).toBe("bad-state");
    const good = await hostileRoom(alice.client, "#ops", roomExtensions(alice.client.identity));
    expect(MlsGroup.restore(alice.client, new Uint8Array(encodeFields(STATE_LABEL, ["1", encodeGroupState(good.state)]))).creator()?.username).toBe("alice");
  });
});

