// Hostile users against the relay's MLS Delivery Service (PROTOCOL.md §8.2): a session may
// publish KeyPackages for its own user and identity key only, create only groups of
// conversations it can be in, replace only the GroupInfo of an epoch its own commit made, and
// commit to (or fetch the commits of) a group only as a member by the relay's hint.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask, lookupOf, makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { TestRelay } from "../helpers/relay-harness.js";

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

describe("MLS Delivery Service abuse", () => {
  it("refuses KeyPackages published for another user, or for the user under another identity key", async () => {
    relay = await TestRelay.start();
    const m = await relay.connect(mallory);
    const b = await relay.connect(bob);
    // mallory's own key, alice's name in the credential: a self-consistent KeyPackage for "alice".
    const fakeAlice = await mlsPerson(mallory, "alice");
    const forged = await ask(m, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(fakeAlice)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    expect(forged).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_FORGED_SENDER, detail: "one-time KeyPackage #1 is for 'alice'; you may publish only your own" } });
    // Also as a last-resort one, hidden behind a genuine one-time KeyPackage of mallory's.
    const own = await mlsPerson(mallory);
    const hidden = await ask(m, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(own)], lastResort: await makeKeyPackage(fakeAlice, true) } }, "keyPackageStatus");
    expect(hidden).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_FORGED_SENDER } });
    // mallory's name with another identity key than the one the relay bound to her (bob's key).
    const otherKey = await mlsPerson(bob, "mallory");
    const wrongKey = await ask(m, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(otherKey)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    expect(wrongKey).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_FORGED_SENDER, detail: "one-time KeyPackage #1 is signed for another identity key than yours; you may publish only your own" } });

    // Nothing was stored for alice (nor the one-time package sent with the forged last-resort one).
    const claimed = await must(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice", "mallory"], deviceIds: [] } }, "keyPackageList");
    expect(claimed.missing).toEqual(["alice", "mallory"]);
    // mallory's honest KeyPackage is accepted afterwards: the session was not ended.
    expect(await must(m, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(own)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus"))
      .toMatchObject({ oneTimeLeft: 1 });
  });

  it("refuses a group for someone else's DM, and a GroupInfo or commit that takes over another's group", async () => {
    relay = await TestRelay.start();
    const m = await relay.connect(mallory);
    const a = await relay.connect(alice);
    const pm = await mlsPerson(mallory);
    // The wrapper will not make mallory a DM group of others; any GroupInfo naming dm:alice:bob
    // (here one of alice's) sent by mallory's session would squat the conversation's group.
    const dm = await MlsGroup.create((await mlsPerson(alice)).client, "dm:alice:bob");
    const r = await ask(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await dm.groupInfo()) } }, "groupInfoResult");
    expect(r).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_CONVERSATION, detail: "you are not a party of dm:alice:bob; you cannot create its group" } });

    // alice's room; mallory tries to replace its GroupInfo with one of her own group at the same epoch.
    const pa = await mlsPerson(alice);
    const ga = await MlsGroup.create(pa.client, "#ops");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ga.groupInfo()) } }, "groupInfoResult");
    const replaced = await ask(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ga.groupInfo()) } }, "groupInfoResult");
    expect(replaced).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_FORGED_SENDER, detail: "only alice, whose commit made epoch 0, may publish its GroupInfo" } });
    // mallory's own group for #ops (another id) cannot take the conversation either.
    const mine = await MlsGroup.create(pm.client, "#ops");
    const taken = await ask(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await mine.groupInfo()) } }, "groupInfoResult");
    expect(taken).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_CONVERSATION } });
    // An outsider cannot take an epoch of alice's group (here with a genuine commit of alice's
    // she got hold of: the relay cannot tell who made it, it knows who sends it), nor read its commits.
    const upd = await ga.selfUpdate();
    expect(await sendCommit(m, upd.commit)).toMatchObject({
      accepted: false, code: ErrorCode.ERROR_CODE_NOT_A_MEMBER,
      detail: "you are not a member of this group by the relay's record; join it by external commit or ask a member to add you",
    });
    const peek = await ask(m, { $case: "fetchCommits", value: { requestId: 0, groupId: Buffer.from(ga.groupId), fromEpoch: 0 } }, "commitList");
    expect(peek).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_NOT_A_MEMBER } });
    // A commit sent with a GroupInfo of another group (to plant it as #ops's) is refused whole.
    expect(await sendCommit(a, upd.commit, await mine.groupInfo())).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
    const gi = await must(a, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "#ops" } }, "groupInfoResult");
    expect(Buffer.from(gi.groupId).equals(Buffer.from(ga.groupId))).toBe(true);
    expect(gi.currentEpoch).toBe(0);
    // alice's own commit still takes epoch 0.
    expect(await sendCommit(a, upd.commit)).toMatchObject({ accepted: true, epoch: 0 });
  });

  it("a removed creator may not replace the GroupInfo once the per-user bound dropped the commit that made the epoch (§8.2)", async () => {
    // alice keeps one commit: her next commit anywhere drops the one that removed mallory.
    relay = await TestRelay.start({ limits: { maxKeptCommitsPerUser: 1 } });
    const m = await relay.connect(mallory);
    const a = await relay.connect(alice);
    const [pm, pa] = [await mlsPerson(mallory), await mlsPerson(alice)];
    await must(a, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pa)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    // mallory creates #ops and adds alice; alice removes mallory (epoch 2 is alice's).
    const gm = await MlsGroup.create(pm.client, "#ops");
    await must(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await gm.groupInfo()) } }, "groupInfoResult");
    const kp = await must(m, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    const add = await gm.addMembers([kp.entries[0]!.keyPackage], { expectUsernames: ["alice"] });
    expect(await sendCommit(m, add.commit, undefined, { added: ["alice"], welcome: add.welcome, ratchetTree: add.ratchetTree })).toMatchObject({ accepted: true, epoch: 0 });
    gm.confirmCommit();
    const ga = (await MlsGroup.joinFromWelcome(pa.client, add.welcome!, add.ratchetTree!, lookupOf(pa))).group;
    const kick = await ga.removeMembers(["mallory"]);
    expect(await sendCommit(a, kick.commit, undefined, { removed: ["mallory"] })).toMatchObject({ accepted: true, epoch: 1 });
    ga.confirmCommit();
    const present = Buffer.from(await ga.groupInfo());
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: present } }, "groupInfoResult");
    // alice's commit in her own #dev is her one kept commit now: the one of #ops epoch 1 went.
    const dev = await MlsGroup.create(pa.client, "#dev");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await dev.groupInfo()) } }, "groupInfoResult");
    expect(await sendCommit(a, (await dev.selfUpdate()).commit)).toMatchObject({ accepted: true, epoch: 0 });
    const kept = await must(a, { $case: "fetchCommits", value: { requestId: 0, groupId: Buffer.from(ga.groupId), fromEpoch: 0 } }, "commitList");
    expect(kept.commits.map((c) => c.epoch)).toEqual([0]);
    // Any GroupInfo of epoch 2 (here alice's own) from mallory, the group's creator: not hers to publish.
    const replaced = await ask(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: present } }, "groupInfoResult");
    expect(replaced).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_FORGED_SENDER, detail: "only alice, whose commit made epoch 2, may publish its GroupInfo" } });
    // alice still may.
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: present } }, "groupInfoResult");
  });

  it("a DM group's membership hint names only its two users; a removed member may no longer commit", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const m = await relay.connect(mallory);
    const [pa, pb] = [await mlsPerson(alice), await mlsPerson(bob)];
    await must(b, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pb)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    const ga = await MlsGroup.create(pa.client, "dm:alice:bob");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ga.groupInfo()) } }, "groupInfoResult");
    const kp = await must(a, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["bob"], deviceIds: [] } }, "keyPackageList");
    const add = await ga.addMembers([kp.entries[0]!.keyPackage], { expectUsernames: ["bob"] });
    // alice's client would never say so, but a hint naming mallory in a DM is refused.
    expect(await sendCommit(a, add.commit, undefined, { added: ["bob", "mallory"] })).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_CONVERSATION });
    expect(await sendCommit(a, add.commit, undefined, { added: ["bob"], welcome: add.welcome, ratchetTree: add.ratchetTree })).toMatchObject({ accepted: true, epoch: 0 });
    ga.confirmCommit();
    // mallory is no member; bob is, until a commit removes him from the hint.
    const gb = (await MlsGroup.joinFromWelcome(pb.client, add.welcome!, add.ratchetTree!, lookupOf(pb))).group;
    const ub = await gb.selfUpdate();
    expect(await sendCommit(m, ub.commit)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_NOT_A_MEMBER });
    const ua = await ga.selfUpdate();
    expect(await sendCommit(a, ua.commit, undefined, { removed: ["bob"] })).toMatchObject({ accepted: true, epoch: 1 });
    expect(await sendCommit(b, ub.commit)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_NOT_A_MEMBER });
  });
});
