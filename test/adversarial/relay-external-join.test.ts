// External commits at the relay (PROTOCOL.md §8.2 "External commits", §7.2, §7.5): regression
// tests for the red team's rt-dm-external-join findings. An outsider with an account could
// (1) read a DM's GroupInfo, (2) enter a DM's or the lobby's membership hint with a real external
// commit lifted from a scratch group and re-aimed (group id and epoch rewritten), cutting the
// members out with `removed`, (3) wedge the group for good (the relay's epoch ahead of its
// GroupInfo, only the forger allowed to publish the next), and (4) learn each epoch's committer
// from EPOCH_TAKEN's `winner`. Each is refused now; the DM's own users' external joins, and the
// lobby's, still work.
import { decodeMlsMessage, encodeMlsMessage, joinGroupExternal } from "ts-mls";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, MlsKind, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { CredentialChecker } from "../../src/protocol/mls/credential.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { clientConfig, suiteImpl } from "../../src/protocol/mls/suite.js";
import { deviceListOf, makeLinkedDevice, publishDeviceListOk } from "../helpers/device-session.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask, lookupOf, makeKeyPackage, mlsPerson, must, sendCommit, type MlsPerson } from "../helpers/mls-ds.js";
import { TestRelay } from "../helpers/relay-harness.js";
import type { RawSession } from "../helpers/raw-session.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let mallory: PrivateIdentity;
let relay: TestRelay;

beforeAll(async () => {
  [alice, bob, mallory] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("mallory")]);
});
afterEach(async () => {
  await relay?.cleanup();
});

/**
 * A real external commit of mallory's (into a scratch group of her own), its clear framing
 * re-aimed at another group and epoch: what the relay used to take as an external join.
 */
async function forgedExternalCommit(groupId: Uint8Array, epoch: bigint): Promise<Uint8Array> {
  const pm = await mlsPerson(mallory);
  const own = await MlsGroup.create(pm.client, "#mallory-scratch");
  const second = await mlsPerson(mallory);
  const { commit } = await MlsGroup.joinExternal(second.client, await own.groupInfo());
  const [msg] = decodeMlsMessage(commit, 0)!;
  if (msg.wireformat !== "mls_public_message") throw new Error("expected a PublicMessage");
  expect(msg.publicMessage.content.sender.senderType).toBe("new_member_commit");
  const content = { ...msg.publicMessage.content, groupId, epoch };
  return encodeMlsMessage({ ...msg, publicMessage: { ...msg.publicMessage, content } } as typeof msg);
}

/**
 * A genuine external commit of `p`'s into the group of this GroupInfo, made with ts-mls itself
 * (the wrapper refuses to make one into a DM of others: a modified client's).
 */
async function rawExternalJoin(p: MlsPerson, groupInfo: Uint8Array): Promise<Uint8Array> {
  await makeKeyPackage(p);
  const stored = [...p.keyPackages.values()].at(-1)!;
  const [msg] = decodeMlsMessage(groupInfo, 0)!;
  if (msg.wireformat !== "mls_group_info") throw new Error("expected a GroupInfo");
  const res = await joinGroupExternal(msg.groupInfo, stored.keyPackage, stored.privateKeys, false, await suiteImpl(), undefined, clientConfig(new CredentialChecker(undefined)));
  return encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage: res.publicMessage });
}

async function sendMls(s: RawSession, bytes: Uint8Array) {
  s.write({ $case: "sendMls", value: { mls: Buffer.from(bytes) } });
  return s.next("sendResult", () => true);
}

async function applicationDeliveries(s: RawSession): Promise<number> {
  await s.barrier();
  return s.inbox.flatMap((f) => (f.$case === "deliver" ? f.value.items : [])).filter((i) => i.mls?.kind === MlsKind.MLS_KIND_APPLICATION).length;
}

/** alice's and bob's DM as their clients make it: alice creates it and adds bob by Welcome. */
async function aliceAndBobDm(a: RawSession, b: RawSession, pa: MlsPerson, pb: MlsPerson): Promise<{ ga: MlsGroup; gb: MlsGroup }> {
  await must(b, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pb)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
  const ga = await MlsGroup.create(pa.client, "dm:alice:bob");
  await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ga.groupInfo()) } }, "groupInfoResult");
  const kp = await must(a, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["bob"], deviceIds: [] } }, "keyPackageList");
  const add = await ga.addMembers([kp.entries[0]!.keyPackage], { expectUsernames: ["bob"] });
  expect(await sendCommit(a, add.commit, add.groupInfo, { added: ["bob"], welcome: add.welcome, ratchetTree: add.ratchetTree })).toMatchObject({ accepted: true });
  ga.confirmCommit();
  const gb = (await MlsGroup.joinFromWelcome(pb.client, add.welcome!, add.ratchetTree!, lookupOf(pb))).group;
  return { ga, gb };
}

/** A relay with alice, bob and mallory connected, and alice and bob's DM group made. */
async function dmOfAliceAndBob() {
  relay = await TestRelay.start();
  const a = await relay.connect(alice);
  const b = await relay.connect(bob);
  const m = await relay.connect(mallory);
  const [pa, pb] = [await mlsPerson(alice), await mlsPerson(bob)];
  const { ga, gb } = await aliceAndBobDm(a, b, pa, pb);
  return { a, b, m, pa, pb, ga, gb };
}

describe("external commits at the relay (PROTOCOL.md §8.2)", () => {
  it("an outsider cannot read a DM's GroupInfo, nor join it, nor cut one of its users off", { timeout: 60_000 }, async () => {
    const { a, b, m, ga, gb } = await dmOfAliceAndBob();

    // (1) The DM's GroupInfo: refused to mallory by conversation id and by group id, and in the
    // same words as for a DM that has no group (whether it exists is not told either).
    const byConv = await ask(m, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "dm:alice:bob" } }, "groupInfoResult");
    expect(byConv).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_CONVERSATION } });
    const byId = await ask(m, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.from(ga.groupId), conversationId: "" } }, "groupInfoResult");
    expect(byId).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_CONVERSATION } });
    const none = await ask(m, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "dm:alice:carol" } }, "groupInfoResult");
    expect(none).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_CONVERSATION } });
    // Its two users still read it.
    expect(await ask(b, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "dm:alice:bob" } }, "groupInfoResult")).toMatchObject({ ok: true });

    // (2) A forged external join into the DM (its group id and epoch known somehow), naming alice as removed,
    // and without naming anyone: both refused, nothing changes.
    const forged = await forgedExternalCommit(ga.groupId, ga.epoch);
    const r = await sendCommit(m, forged, undefined, { removed: ["alice"] });
    expect(r).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_CONVERSATION });
    expect(await sendCommit(m, forged)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_CONVERSATION });
    // Even a genuine external commit of mallory's own, made from the DM's GroupInfo (leaked): a DM holds only its two users.
    const own = await rawExternalJoin(await mlsPerson(mallory), await ga.groupInfo());
    expect(await sendCommit(m, own, undefined, { added: ["mallory"] })).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_CONVERSATION });
    expect(await sendCommit(m, own)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_CONVERSATION });

    // mallory is no member: FetchCommits refused.
    const fc = await ask(m, { $case: "fetchCommits", value: { requestId: 0, groupId: Buffer.from(ga.groupId), fromEpoch: 0 } }, "commitList");
    expect(fc).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_NOT_A_MEMBER } });

    // (3) bob writes to alice: alice gets it, mallory does not; alice still writes and commits.
    expect(await sendMls(b, await gb.encrypt(new TextEncoder().encode("hi alice")))).toMatchObject({ status: SendStatus.SEND_STATUS_ACCEPTED });
    const got = await a.deliveries(1);
    expect(got.some((d) => d.mls?.kind === MlsKind.MLS_KIND_APPLICATION && d.mls.sender === "bob")).toBe(true);
    expect(await applicationDeliveries(m)).toBe(0);
    expect(await sendMls(a, await ga.encrypt(new TextEncoder().encode("hello")))).toMatchObject({ status: SendStatus.SEND_STATUS_ACCEPTED });
    const upd = await ga.selfUpdate();
    expect(await sendCommit(a, upd.commit, upd.groupInfo)).toMatchObject({ accepted: true });
  });

  it("an outsider's external commit into the lobby cannot remove its members, and a forged one is refused", { timeout: 60_000 }, async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const m = await relay.connect(mallory);
    const [pa, pb] = [await mlsPerson(alice), await mlsPerson(bob)];
    const ga = await MlsGroup.create(pa.client, "lobby");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ga.groupInfo()) } }, "groupInfoResult");
    const joined = await MlsGroup.joinExternal(pb.client, await ga.groupInfo());
    expect(await sendCommit(b, joined.commit, await joined.group.groupInfo(), { added: ["bob"] })).toMatchObject({ accepted: true });
    await ga.process(joined.commit);

    // The lobby's GroupInfo is anyone's (joining needs it).
    const gi = await must(m, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "lobby" } }, "groupInfoResult");
    // A forged external join naming both as removed: the hint of an external join names only its joiner.
    const forged = await forgedExternalCommit(gi.groupId, BigInt(gi.currentEpoch));
    expect(await sendCommit(m, forged, undefined, { removed: ["alice", "bob"] })).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_FRAME });
    // Without names: its signature does not verify for the lobby's context.
    expect(await sendCommit(m, forged)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
    // Her genuine external join (she may enter the lobby), naming others as removed: refused too.
    const pm = await mlsPerson(mallory);
    const own = await MlsGroup.joinExternal(pm.client, gi.groupInfo);
    expect(await sendCommit(m, own.commit, await own.group.groupInfo(), { added: ["mallory"], removed: ["alice"] })).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_FRAME });
    // bob's genuine external commit sent by mallory's session: its leaf is bob's, not hers.
    const pb2 = await mlsPerson(bob);
    const bobs = await MlsGroup.joinExternal(pb2.client, gi.groupInfo);
    expect(await sendCommit(m, bobs.commit)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_FORGED_SENDER });

    // alice and bob still speak in the lobby.
    expect(await sendMls(a, await ga.encrypt(new TextEncoder().encode("anyone?")))).toMatchObject({ status: SendStatus.SEND_STATUS_ACCEPTED });
    expect(await sendMls(b, await joined.group.encrypt(new TextEncoder().encode("here")))).toMatchObject({ status: SendStatus.SEND_STATUS_ACCEPTED });
    // mallory's own genuine join, naming only herself, is taken like anyone's.
    expect(await sendCommit(m, own.commit, await own.group.groupInfo(), { added: ["mallory"] })).toMatchObject({ accepted: true });
  });

  it("a forged external commit cannot wedge the lobby or a DM: joins, commits and the DM's add go on", { timeout: 60_000 }, async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const m = await relay.connect(mallory);
    const carol = await fixtureIdentity("carol");
    const c = await relay.connect(carol);
    const [pa, pb, pc] = [await mlsPerson(alice), await mlsPerson(bob), await mlsPerson(carol)];

    const lobby = await MlsGroup.create(pa.client, "lobby");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await lobby.groupInfo()) } }, "groupInfoResult");
    const lg = await must(m, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "lobby" } }, "groupInfoResult");
    expect(await sendCommit(m, await forgedExternalCommit(lg.groupId, BigInt(lg.currentEpoch)))).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
    const after = await must(c, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "lobby" } }, "groupInfoResult");
    expect({ groupInfoEpoch: after.groupInfoEpoch, currentEpoch: after.currentEpoch }).toEqual({ groupInfoEpoch: 0, currentEpoch: 0 });
    // carol enters; alice processes it and commits.
    const cj = await MlsGroup.joinExternal(pc.client, after.groupInfo);
    expect(await sendCommit(c, cj.commit, await cj.group.groupInfo(), { added: ["carol"] })).toMatchObject({ accepted: true });
    await lobby.process(cj.commit);
    const upd = await lobby.selfUpdate();
    expect(await sendCommit(a, upd.commit, upd.groupInfo)).toMatchObject({ accepted: true });

    // The DM, before alice and bob wrote a word: mallory's forged join refused; alice adds bob.
    const dm = await MlsGroup.create(pa.client, "dm:alice:bob");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await dm.groupInfo()) } }, "groupInfoResult");
    expect(await sendCommit(m, await forgedExternalCommit(dm.groupId, dm.epoch))).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_CONVERSATION });
    await must(b, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pb)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    const kp = await must(a, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["bob"], deviceIds: [] } }, "keyPackageList");
    const add = await dm.addMembers([kp.entries[0]!.keyPackage], { expectUsernames: ["bob"] });
    expect(await sendCommit(a, add.commit, add.groupInfo, { added: ["bob"], welcome: add.welcome, ratchetTree: add.ratchetTree })).toMatchObject({ accepted: true });
  });

  it("EPOCH_TAKEN names the winner only to a member: an outsider learns no committer", { timeout: 60_000 }, async () => {
    const { a, b, m, pa, pb, ga, gb } = await dmOfAliceAndBob();
    const ub = await gb.selfUpdate();
    expect(await sendCommit(b, ub.commit, ub.groupInfo)).toMatchObject({ accepted: true });
    gb.confirmCommit();
    await ga.process(ub.commit);
    const ua = await ga.selfUpdate();
    expect(await sendCommit(a, ua.commit, ua.groupInfo)).toMatchObject({ accepted: true });
    ga.confirmCommit();

    // mallory: a forged external commit for each past epoch of the DM: refused, naming no committer.
    for (let e = 0; e < 3; e++) {
      const r = await sendCommit(m, await forgedExternalCommit(ga.groupId, BigInt(e)));
      expect(r).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_CONVERSATION, winner: "" });
    }
    // The lobby (anyone may aim at it): each past epoch is EPOCH_TAKEN, naming no committer.
    const lobby = await MlsGroup.create(pa.client, "lobby");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await lobby.groupInfo()) } }, "groupInfoResult");
    const bj = await MlsGroup.joinExternal(pb.client, await lobby.groupInfo());
    expect(await sendCommit(b, bj.commit, await bj.group.groupInfo(), { added: ["bob"] })).toMatchObject({ accepted: true });
    await lobby.process(bj.commit);
    const lu = await lobby.selfUpdate();
    expect(await sendCommit(a, lu.commit, lu.groupInfo)).toMatchObject({ accepted: true });
    for (let e = 0; e < 2; e++) {
      const r = await sendCommit(m, await forgedExternalCommit(lobby.groupId, BigInt(e)));
      expect(r).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_EPOCH_TAKEN, winner: "" });
      expect(r.detail).not.toMatch(/alice|bob/);
    }

    // A member still learns who won (as FetchCommits tells it): bob's stale commit for epoch 2.
    const stale = await gb.selfUpdate();
    const rb = await sendCommit(b, stale.commit, stale.groupInfo);
    expect(rb).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_EPOCH_TAKEN, winner: "alice" });
  });

  it("with a device list, an external join is the session device's own: another device's key, or an unlisted one, is refused", { timeout: 60_000 }, async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const [pa, pb] = [await mlsPerson(alice), await mlsPerson(bob)];
    const desktop = await makeLinkedDevice(alice);
    await publishDeviceListOk(a, deviceListOf(alice, pa, [desktop], 2));
    const lobby = await MlsGroup.create(pb.client, "lobby");
    await must(b, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await lobby.groupInfo()) } }, "groupInfoResult");
    const gi = await lobby.groupInfo();
    // alice's primary session sending her desktop's join, or one made with a key in no list of hers.
    const other = await MlsGroup.joinExternal(desktop.mls, gi);
    const r = await sendCommit(a, other.commit, await other.group.groupInfo(), { added: ["alice"] });
    expect(r).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
    expect(r.detail).toMatch(/another MLS key than this device's/);
    const unlisted = await MlsGroup.joinExternal((await mlsPerson(alice)).client, gi);
    expect(await sendCommit(a, unlisted.commit, await unlisted.group.groupInfo(), { added: ["alice"] })).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
    // Her primary's own join is taken.
    const own = await MlsGroup.joinExternal(pa.client, gi);
    expect(await sendCommit(a, own.commit, await own.group.groupInfo(), { added: ["alice"] })).toMatchObject({ accepted: true });
  });

  it("a DM's own user still joins it by external commit: first entry, and a re-join with resync", { timeout: 60_000 }, async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const [pa, pb] = [await mlsPerson(alice), await mlsPerson(bob)];

    // bob never got a Welcome: he joins alice's DM group by external commit (§7.2, after the wait).
    const ga = await MlsGroup.create(pa.client, "dm:alice:bob");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ga.groupInfo()) } }, "groupInfoResult");
    const gi = await must(b, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "dm:alice:bob" } }, "groupInfoResult");
    const j1 = await MlsGroup.joinExternal(pb.client, gi.groupInfo, { expectConversation: "dm:alice:bob" });
    expect(await sendCommit(b, j1.commit, await j1.group.groupInfo(), { added: ["bob"] })).toMatchObject({ accepted: true });
    await ga.process(j1.commit);
    expect(await sendMls(b, await j1.group.encrypt(new TextEncoder().encode("hi")))).toMatchObject({ status: SendStatus.SEND_STATUS_ACCEPTED });
    expect((await a.deliveries(2)).some((d) => d.mls?.kind === MlsKind.MLS_KIND_APPLICATION && d.mls.sender === "bob")).toBe(true);

    // bob lost his state: he re-joins with resync (his old leaf replaced in the same commit).
    const gi2 = await must(b, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.from(ga.groupId), conversationId: "" } }, "groupInfoResult");
    expect(gi2.groupInfoEpoch).toBe(gi2.currentEpoch);
    const j2 = await MlsGroup.joinExternal(pb.client, gi2.groupInfo, { resync: true, expectConversation: "dm:alice:bob" });
    // Naming himself as removed too is taken (and he stays a member by the hint).
    expect(await sendCommit(b, j2.commit, await j2.group.groupInfo(), { removed: ["bob"] })).toMatchObject({ accepted: true });
    await ga.process(j2.commit);
    expect(ga.members().filter((x) => x.username === "bob")).toHaveLength(1);
    expect(await sendMls(b, await j2.group.encrypt(new TextEncoder().encode("back")))).toMatchObject({ status: SendStatus.SEND_STATUS_ACCEPTED });
    // And alice's commit after it goes through.
    const upd = await ga.selfUpdate();
    expect(await sendCommit(a, upd.commit, upd.groupInfo)).toMatchObject({ accepted: true });
  });
});
