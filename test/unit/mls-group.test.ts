// The MLS core (src/protocol/mls, proto/PROTOCOL.md): members talking, membership changes,
// commit ordering, serialisation, external joins. Security properties are in mls-security.test.ts.
import { describe, expect, it } from "vitest";
import {
  createMlsClient, isMlsProtocolError, MlsGroup, restoreMlsClient, type MembershipChange, serializeMlsClient, conversationOfGroupId, makeGroupId,
  type Incoming, type MlsErrorCode,
} from "../../src/protocol/mls/index.js";
import { deliver, groupOf, keyPackageOf, lookup, person, text } from "./mls-helpers.js";
import { createProposal, decodeMlsMessage, defaultCapabilities, defaultLifetime, encodeMlsMessage, generateKeyPackageWithKey, joinGroupExternal, type ClientState } from "ts-mls";
import { MLS_SUITE } from "../../src/protocol/mls/index.js";
import { suiteImpl } from "../../src/protocol/mls/suite.js";

async function code(p: Promise<unknown> | (() => unknown)): Promise<MlsErrorCode | "none" | "other"> {
  try {
    await (typeof p === "function" ? p() : p);
    return "none";
  } catch (e) {
    return isMlsProtocolError(e) ? e.code : "other";
  }
}

function app(i: Incoming): { from: string; text: string } {
  if (i.kind !== "application") throw new Error(`expected an application message, got ${i.kind}`);
  return { from: i.sender.username, text: i.plaintext.toString("utf8") };
}

describe("two and three members talking", () => {
  it("a DM: both directions, several messages, sender authenticated", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga, gb] = await groupOf("dm:alice:bob", alice, [bob]);
    expect(gb!.conversation.id).toBe("dm:alice:bob");
    expect(ga!.members().map((m) => m.username)).toEqual(["alice", "bob"]);
    for (let i = 0; i < 3; i++) {
      expect(app(await gb!.process(await ga!.encrypt(text(`a${i}`))))).toEqual({ from: "alice", text: `a${i}` });
      expect(app(await ga!.process(await gb!.encrypt(text(`b${i}`))))).toEqual({ from: "bob", text: `b${i}` });
    }
    // Same epoch, same authenticator: no fork.
    expect(Buffer.from(ga!.epochAuthenticator).equals(Buffer.from(gb!.epochAuthenticator))).toBe(true);
  });

  it("a room of three: each message reaches the two others, empty and large texts included", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const groups = await groupOf("#ops", alice, [bob, carol]);
    const names = ["alice", "bob", "carol"];
    for (const [i, g] of groups.entries()) {
      for (const body of ["", `hello from ${names[i]}`, "x".repeat(5000)]) {
        const msg = await g.encrypt(text(body));
        const others = groups.filter((o) => o !== g);
        for (const r of await deliver(msg, others)) expect(app(r)).toEqual({ from: names[i], text: body });
      }
    }
  });

  it("application data is padded to a multiple of 256 bytes: sizes leak only the size class", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga] = await groupOf("dm:alice:bob", alice, [bob]);
    const a = await ga!.encrypt(text("hi"));
    const b = await ga!.encrypt(text("a longer message, still under one block"));
    expect(a.length).toBe(b.length);
    const c = await ga!.encrypt(text("y".repeat(300)));
    expect(c.length - a.length).toBe(256);
  });

  it("a DM group refuses a third user (creation by an outsider, add of an outsider, external join)", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    expect(await code(MlsGroup.create(carol.client, "dm:alice:bob"))).toBe("bad-argument");
    const [ga, gb] = await groupOf("dm:alice:bob", alice, [bob]);
    const kp = await keyPackageOf(carol);
    expect(await code(ga!.addMembers([kp.keyPackage]))).toBe("bad-key-package");
    // Carol got the DM's GroupInfo (a relay handing it out) and commits an external join:
    // her own client refuses to be in it, and the two members refuse her commit.
    const info = await ga!.groupInfo();
    expect(await code(MlsGroup.joinExternal(carol.client, info))).toBe("refused-change");
    // A modified client of Carol's (the library directly) commits anyway: both members refuse it.
    const impl = await suiteImpl();
    const gi = decodeMlsMessage(info, 0)![0];
    if (gi.wireformat !== "mls_group_info") throw new Error("expected a GroupInfo");
    const ckp = await generateKeyPackageWithKey(carol.client.credential, { ...defaultCapabilities(), ciphersuites: [MLS_SUITE] }, defaultLifetime, [],
      { signKey: carol.client.signaturePrivateKey, publicKey: carol.client.signaturePublicKey }, impl);
    const ext = await joinGroupExternal(gi.groupInfo, ckp.publicPackage, ckp.privatePackage, false, impl);
    const commit = encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage: ext.publicMessage });
    const epoch = ga!.epoch;
    expect(await code(ga!.process(commit))).toBe("refused-change");
    expect(await code(gb!.process(commit))).toBe("refused-change");
    expect(ga!.epoch).toBe(epoch);
    expect(app(await gb!.process(await ga!.encrypt(text("just us"))))).toEqual({ from: "alice", text: "just us" });
  });
});

describe("add, remove, leave", () => {
  it("add a member later: the change names who made it, and the new member reads what follows", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb] = await groupOf("#ops", alice, [bob]);
    const kp = await keyPackageOf(carol);
    const pending = await gb!.addMembers([kp.keyPackage], { expectUsernames: ["carol"] });
    gb!.confirmCommit();
    const seen = await ga!.process(pending.commit);
    expect(seen.kind).toBe("commit");
    if (seen.kind !== "commit") return;
    expect(seen.change.committer.username).toBe("bob");
    expect(seen.change.added.map((m) => m.username)).toEqual(["carol"]);
    expect(seen.change.added[0]!.leafIndex).toBeGreaterThanOrEqual(0);
    const { group: gc, usedKeyPackage, lastResort, addedBy } = await MlsGroup.joinFromWelcome(carol.client, pending.welcome!, pending.ratchetTree!, lookup(carol));
    expect(Buffer.from(usedKeyPackage).equals(Buffer.from(kp.ref))).toBe(true);
    expect(lastResort).toBe(false);
    // Who added carol is the GroupInfo's signer (bob, not the creator at leaf 0): §12.
    expect(addedBy.username).toBe("bob");
    expect(addedBy.leafIndex).toBe(gb!.members().find((m) => m.username === "bob")!.leafIndex);
    expect(gc.members().map((m) => m.username).sort()).toEqual(["alice", "bob", "carol"]);
    expect(app(await gc.process(await ga!.encrypt(text("welcome carol"))))).toEqual({ from: "alice", text: "welcome carol" });
  });

  it("the expected username is enforced: a KeyPackage of someone else is refused", async () => {
    const [alice, bob, mallory] = await Promise.all([person("alice"), person("bob"), person("mallory")]);
    const [ga] = await groupOf("#ops", alice, []);
    const kp = await keyPackageOf(mallory);
    expect(await code(ga!.addMembers([kp.keyPackage], { expectUsernames: ["bob"] }))).toBe("bad-key-package");
    expect(ga!.hasPendingCommit).toBe(false);
    void bob;
  });

  it("remove: the others see who removed whom, the removed member learns it and can no longer send", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    const pending = await ga!.removeMembers(["carol"]);
    ga!.confirmCommit();
    const [atBob, atCarol] = await deliver(pending.commit, [gb!, gc!]);
    if (atBob!.kind !== "commit" || atCarol!.kind !== "commit") throw new Error("expected commits");
    expect(atBob!.change.committer.username).toBe("alice");
    expect(atBob!.change.removed.map((m) => m.username)).toEqual(["carol"]);
    expect(atBob!.removedMe).toBe(false);
    expect(atCarol!.removedMe).toBe(true);
    expect(gc!.active).toBe(false);
    expect(await code(gc!.encrypt(text("still here?")))).toBe("not-a-member");
    // Its secrets were overwritten: nothing is left to serialise.
    expect(await code(() => gc!.serialize())).toBe("not-a-member");
    expect(gb!.members().map((m) => m.username)).toEqual(["alice", "bob"]);
  });

  it("leave: a proposal, committed by another member; the leaver is out, the rest go on", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    const proposal = await gc!.proposeLeave();
    const [pa, pb] = await deliver(proposal, [ga!, gb!]);
    expect(pa!.kind).toBe("proposal");
    if (pb!.kind === "proposal") expect(pb!.sender.username).toBe("carol");
    const pending = await gb!.commitPendingProposals();
    gb!.confirmCommit();
    const [atAlice, atCarol] = await deliver(pending.commit, [ga!, gc!]);
    if (atAlice!.kind !== "commit" || atCarol!.kind !== "commit") throw new Error("expected commits");
    expect(atAlice!.change.removed.map((m) => m.username)).toEqual(["carol"]);
    expect(atAlice!.change.committer.username).toBe("bob");
    expect(atCarol!.removedMe).toBe(true);
    expect(app(await gb!.process(await ga!.encrypt(text("two of us now"))))).toEqual({ from: "alice", text: "two of us now" });
  });

  it("a device may propose only its own removal, once: not a sibling's, not bob's, not twice (review round 5)", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    // alice's second device: her identity key, its own MLS key.
    const alice2 = { username: "alice", sigPrivate: alice.sigPrivate, client: await createMlsClient({ username: "alice", sigPrivate: alice.sigPrivate }), store: new Map() };
    const [ga, gb, gc, ga2] = await groupOf("#ops", alice, [bob, carol, alice2]);
    const inner = ga2 as unknown as { state: ClientState };
    const propose = async (removed: number) => {
      const res = await createProposal(inner.state, false, { proposalType: "remove", remove: { removed } }, await suiteImpl());
      inner.state = res.newState;
      return encodeMlsMessage(res.message);
    };
    // A sibling's leaf (a stolen device the relay still shows as listed must not queue my real
    // device's removal into the next commit of anyone), and another user's: refused.
    expect(await code(gc!.process(await propose(ga!.myLeafIndex)))).toBe("refused-change");
    expect(await code(gc!.process(await propose(gb!.myLeafIndex)))).toBe("refused-change");
    expect(gc!.pendingRemovals()).toEqual([]);
    // Its own: kept for the next commit; the same leaf's second Remove (another proposal of it)
    // is refused, or every later commit of the epoch would be invalid.
    const own = await ga2!.proposeLeave();
    expect((await gc!.process(own)).kind).toBe("proposal");
    expect(gc!.pendingRemovals()).toEqual([ga2!.myLeafIndex]);
    expect(await code(gc!.process(await propose(ga2!.myLeafIndex)))).toBe("refused-change");
    await deliver(own, [gb!, ga!]);
    const pending = await gc!.commitPendingProposals();
    gc!.confirmCommit();
    const atBob = await gb!.process(pending.commit, (c: MembershipChange) => gb!.removalsAllowed(c));
    if (atBob.kind !== "commit") throw new Error("expected a commit");
    expect(atBob.change.left.map((m) => m.leafIndex)).toEqual([ga2!.myLeafIndex]);
    expect(gb!.members().map((m) => m.username).sort()).toEqual(["alice", "bob", "carol"]);
  });

  it("removing myself or a non-member is refused with a sentence", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga] = await groupOf("#ops", alice, [bob]);
    expect(await code(ga!.removeMembers(["alice"]))).toBe("bad-argument");
    expect(await code(ga!.removeMembers(["zed"]))).toBe("bad-argument");
    expect(await code(ga!.removeMembers([]))).toBe("bad-argument");
  });

  it("a room's rule (only the creator removes others) refuses a removal by someone else, state unchanged", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    const creatorOnly = (c: { committer: { username: string }; removed: readonly { username: string }[] }): boolean =>
      c.removed.every((r) => r.username === c.committer.username) || c.committer.username === "alice";
    const pending = await gb!.removeMembers(["carol"]);
    gb!.confirmCommit();
    const epoch = ga!.epoch;
    expect(await code(ga!.process(pending.commit, creatorOnly))).toBe("refused-change");
    expect(ga!.epoch).toBe(epoch);
    // The honest members are still at the old epoch and keep talking.
    expect(app(await ga!.process(await gc!.encrypt(text("still fine"))))).toEqual({ from: "carol", text: "still fine" });
  });
});

describe("commit ordering (first commit for an epoch wins)", () => {
  it("two concurrent commits: the loser processes the winner, drops its own, retries; everyone converges", async () => {
    const [alice, bob, carol, dave] = await Promise.all([person("alice"), person("bob"), person("carol"), person("dave")]);
    const [ga, gb, gc] = await groupOf("#ops", alice, [bob, carol]);
    const aliceUpdate = await ga!.selfUpdate();
    const kp = await keyPackageOf(dave);
    const bobAdd = await gb!.addMembers([kp.keyPackage]);
    expect(await code(gb!.selfUpdate())).toBe("pending-commit");
    // The relay accepted Alice's commit first.
    ga!.confirmCommit();
    const atBob = await gb!.process(aliceUpdate.commit);
    expect(atBob.kind === "commit" && atBob.discardedPendingCommit).toBe(true);
    await gc!.process(aliceUpdate.commit);
    // Bob's stale commit (for the old epoch) is refused by everyone who sees it.
    expect(await code(gc!.process(bobAdd.commit))).toBe("wrong-epoch");
    // Bob retries at the new epoch.
    const retry = await gb!.addMembers([kp.keyPackage]);
    gb!.confirmCommit();
    await deliver(retry.commit, [ga!, gc!]);
    const { group: gd } = await MlsGroup.joinFromWelcome(dave.client, retry.welcome!, retry.ratchetTree!, lookup(dave));
    const auth = Buffer.from(ga!.epochAuthenticator);
    for (const g of [gb!, gc!, gd]) expect(Buffer.from(g.epochAuthenticator).equals(auth)).toBe(true);
    expect(app(await gd.process(await gc!.encrypt(text("hi dave"))))).toEqual({ from: "carol", text: "hi dave" });
  });

  it("confirm or discard without a pending commit is refused", async () => {
    const [alice] = await Promise.all([person("alice")]);
    const [ga] = await groupOf("#ops", alice, []);
    expect(await code(() => ga!.confirmCommit())).toBe("no-pending-commit");
    expect(await code(() => ga!.discardCommit())).toBe("no-pending-commit");
  });

  it("a discarded commit leaves the old epoch usable", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga, gb] = await groupOf("#ops", alice, [bob]);
    await ga!.selfUpdate();
    ga!.discardCommit();
    expect(app(await gb!.process(await ga!.encrypt(text("same epoch"))))).toEqual({ from: "alice", text: "same epoch" });
  });
});

describe("external join (the lobby)", () => {
  it("join by external commit from a GroupInfo; members see the joiner as committer; resync replaces an old leaf", async () => {
    const [alice, bob, carol] = await Promise.all([person("alice"), person("bob"), person("carol")]);
    const [ga, gb] = await groupOf("lobby", alice, [bob]);
    const info = await ga!.groupInfo();
    expect(await code(MlsGroup.joinExternal(carol.client, info, { expectConversation: "#ops" }))).toBe("wrong-group");
    const { group: gc, commit } = await MlsGroup.joinExternal(carol.client, info, { expectConversation: "lobby" });
    const [atA, atB] = await deliver(commit, [ga!, gb!]);
    if (atA!.kind !== "commit" || atB!.kind !== "commit") throw new Error("expected commits");
    expect(atA!.change.external).toBe(true);
    expect(atA!.change.committer.username).toBe("carol");
    expect(app(await gb!.process(await gc.encrypt(text("hello lobby"))))).toEqual({ from: "carol", text: "hello lobby" });

    // Bob goes offline and misses commits; he comes back by external commit with resync.
    const upd = await ga!.selfUpdate();
    ga!.confirmCommit();
    await gc.process(upd.commit);
    const info2 = await ga!.groupInfo();
    const { group: gb2, commit: resync } = await MlsGroup.joinExternal(bob.client, info2, { resync: true });
    const [ra] = await deliver(resync, [ga!, gc]);
    if (ra!.kind !== "commit") throw new Error("expected a commit");
    expect(ra!.change.removed.map((m) => m.username)).toEqual(["bob"]);
    expect(gb2.members().map((m) => m.username).sort()).toEqual(["alice", "bob", "carol"]);
    expect(app(await gb2.process(await ga!.encrypt(text("welcome back"))))).toEqual({ from: "alice", text: "welcome back" });
  });

  it("resync asked by someone who never had a leaf is a plain join (ts-mls alone never returns: it removes 'leaf -1')", async () => {
    const [alice, bob, dave] = await Promise.all([person("alice"), person("bob"), person("dave")]);
    const [ga, gb] = await groupOf("lobby", alice, [bob]);
    const { group: gd, commit } = await MlsGroup.joinExternal(dave.client, await ga!.groupInfo(), { resync: true });
    const [atA] = await deliver(commit, [ga!, gb!]);
    if (atA!.kind !== "commit") throw new Error("expected a commit");
    expect(atA!.change.removed).toEqual([]);
    expect(atA!.change.committer.username).toBe("dave");
    expect(gd.members().map((m) => m.username).sort()).toEqual(["alice", "bob", "dave"]);
  }, 20_000);
});

describe("serialise and restore", () => {
  it("client and group states round-trip; the restored group keeps talking and checks credentials", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga, gb] = await groupOf("#ops", alice, [bob]);
    await gb!.process(await ga!.encrypt(text("before")));
    const clientBytes = serializeMlsClient(bob.client);
    const restoredClient = restoreMlsClient(clientBytes, { username: "bob", sigPrivate: bob.sigPrivate });
    const gb2 = MlsGroup.restore(restoredClient, gb!.serialize());
    expect(gb2.epoch).toBe(gb!.epoch);
    expect(app(await gb2.process(await ga!.encrypt(text("after"))))).toEqual({ from: "alice", text: "after" });
    expect(app(await ga!.process(await gb2.encrypt(text("from the restored one"))))).toEqual({ from: "bob", text: "from the restored one" });
    // Another identity key, another user, or damaged bytes are refused.
    expect(await code(() => restoreMlsClient(clientBytes, { username: "bob", sigPrivate: alice.sigPrivate }))).toBe("bad-state");
    expect(await code(() => restoreMlsClient(clientBytes, { username: "alice", sigPrivate: alice.sigPrivate }))).toBe("bad-state");
    expect(await code(() => MlsGroup.restore(alice.client, gb!.serialize()))).toBe("bad-state");
    const damaged = gb!.serialize();
    expect(await code(() => MlsGroup.restore(bob.client, damaged.subarray(0, damaged.length - 3)))).toBe("bad-state");
  });
});

describe("group ids bind the conversation", () => {
  it("parse back to their conversation; junk is refused", () => {
    expect(conversationOfGroupId(makeGroupId("#ops")).id).toBe("#ops");
    expect(conversationOfGroupId(makeGroupId("dm:alice:bob")).id).toBe("dm:alice:bob");
    expect(() => makeGroupId("#NOPE")).toThrow(/conversation/);
    expect(() => conversationOfGroupId(new Uint8Array(5))).toThrow(/group id/);
    expect(() => conversationOfGroupId(new Uint8Array([...Buffer.from("dm:bob:alice"), 0, ...new Uint8Array(16)]))).toThrow(/conversation/);
  });
});

describe("a pending commit carries the next epoch's GroupInfo (PendingCommit.groupInfo)", () => {
  it("signed for the epoch the commit makes: once the commit is confirmed, a joiner joins from it and the members take the join", async () => {
    const [alice, bob, carol, dave] = await Promise.all([person("alice"), person("bob"), person("carol"), person("dave")]);
    const [ga, gb] = await groupOf("#ops", alice, [bob]);
    const p = await ga!.addMembers([(await keyPackageOf(carol)).keyPackage]);
    expect(p.epoch).toBe(ga!.epoch + 1n);
    ga!.confirmCommit();
    await gb!.process(p.commit);
    const { group: gd, commit } = await MlsGroup.joinExternal(dave.client, p.groupInfo, { expectConversation: "#ops" });
    expect(gd.epoch).toBe(p.epoch + 1n);
    const [atA, atB] = await deliver(commit, [ga!, gb!]);
    expect(atA!.kind === "commit" && atA!.change.committer.username).toBe("dave");
    expect(atB!.kind).toBe("commit");
    expect(gd.members().map((m) => m.username)).toEqual(["alice", "bob", "carol", "dave"]);
  }, 30_000);
});
