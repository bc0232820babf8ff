// The relay as MLS Delivery Service (PROTOCOL.md §8.2) through raw sessions, with KeyPackages,
// GroupInfos and commits made by the real wrapper (src/protocol/mls): KeyPackages claimed once
// (then the last-resort one), GroupInfo for external joins, the first commit for an epoch wins
// and the loser catches up and wins the next, refusals that leave the relay serving, restarts.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { MAX_CLAIM_USERS, MAX_KEY_PACKAGE_BYTES, MAX_ONE_TIME_KEY_PACKAGES } from "../../src/server/mls-ds.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { ask, lookupOf, makeKeyPackage, mlsPerson, must, sendCommit, type MlsPerson } from "../helpers/mls-ds.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let dave: PrivateIdentity;
let relay: TestRelay;

beforeAll(async () => {
  [alice, bob, carol, dave] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave")]);
});

afterEach(async () => {
  await relay?.cleanup();
});

async function publish(s: RawSession, oneTime: Buffer[], lastResort: Buffer = Buffer.alloc(0)) {
  return must(s, { $case: "publishKeyPackages", value: { requestId: 0, oneTime, lastResort } }, "keyPackageStatus");
}

function claim(s: RawSession, usernames: string[]) {
  return must(s, { $case: "claimKeyPackages", value: { requestId: 0, usernames, deviceIds: [] } }, "keyPackageList");
}

/** alice creates #ops on the relay and adds bob and carol (KeyPackages claimed from the relay). */
async function opsGroup(a: RawSession, b: RawSession, c: RawSession, people: { alice: MlsPerson; bob: MlsPerson; carol: MlsPerson }) {
  await publish(b, [await makeKeyPackage(people.bob)]);
  await publish(c, [await makeKeyPackage(people.carol)]);
  const ga = await MlsGroup.create(people.alice.client, "#ops");
  const created = await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ga.groupInfo()) } }, "groupInfoResult");
  expect(created).toMatchObject({ groupInfoEpoch: 0, currentEpoch: 0 });
  const kps = await claim(a, ["bob", "carol"]);
  expect(kps.missing).toEqual([]);
  const pending = await ga.addMembers(kps.entries.map((e) => e.keyPackage), { expectUsernames: kps.entries.map((e) => e.username) });
  const r = await sendCommit(a, pending.commit, undefined, { added: ["bob", "carol"], welcome: pending.welcome, ratchetTree: pending.ratchetTree });
  expect(r).toMatchObject({ accepted: true, epoch: 0, currentEpoch: 1 });
  ga.confirmCommit();
  // The committer publishes the new epoch's GroupInfo (for external joins).
  await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ga.groupInfo()) } }, "groupInfoResult");
  const gb = (await MlsGroup.joinFromWelcome(people.bob.client, pending.welcome!, pending.ratchetTree!, lookupOf(people.bob))).group;
  const gc = (await MlsGroup.joinFromWelcome(people.carol.client, pending.welcome!, pending.ratchetTree!, lookupOf(people.carol))).group;
  return { ga, gb, gc, groupId: Buffer.from(ga.groupId) };
}

describe("KeyPackages", () => {
  it("hands out each one-time KeyPackage once across concurrent claimers, then the last-resort one", async () => {
    relay = await TestRelay.start();
    const [a, b, c, d] = [await relay.connect(alice), await relay.connect(bob), await relay.connect(carol), await relay.connect(dave)];
    const pa = await mlsPerson(alice);
    const oneTime = [await makeKeyPackage(pa), await makeKeyPackage(pa), await makeKeyPackage(pa)];
    const lastResort = await makeKeyPackage(pa, true);
    expect(await publish(a, oneTime, lastResort)).toMatchObject({ oneTimeLeft: 3, lastResortPresent: true });
    // The same KeyPackage again is kept once.
    expect(await publish(a, [oneTime[0]!])).toMatchObject({ oneTimeLeft: 3, lastResortPresent: true });

    // Three sessions claim twice each, all written before any answer is read.
    const claims = await Promise.all([b, c, d, b, c, d].map((s) => claim(s, ["alice"])));
    const got = claims.map((l) => l.entries[0]!);
    const firsts = got.filter((e) => !e.lastResort).map((e) => Buffer.from(e.keyPackage).toString("hex"));
    expect(new Set(firsts).size).toBe(3);
    expect(firsts.sort()).toEqual(oneTime.map((k) => k.toString("hex")).sort());
    const lasts = got.filter((e) => e.lastResort);
    expect(lasts).toHaveLength(3);
    for (const e of lasts) expect(Buffer.from(e.keyPackage).equals(lastResort)).toBe(true);
    expect(got.every((e) => e.username === "alice")).toBe(true);

    // The last-resort one stays; alice sees her one-time stock is empty when she tops up.
    expect(await publish(a, [await makeKeyPackage(pa)])).toMatchObject({ oneTimeLeft: 1, lastResortPresent: true });
    // A user with none is listed as missing.
    const none = await claim(b, ["carol", "alice"]);
    expect(none.missing).toEqual(["carol"]);
    expect(none.entries.map((e) => [e.username, e.lastResort])).toEqual([["alice", false]]);

    // A claimed KeyPackage is real: bob adds alice with it and she joins from the Welcome.
    const pb = await mlsPerson(bob);
    const gb = await MlsGroup.create(pb.client, "dm:alice:bob");
    const pending = await gb.addMembers([lastResort], { expectUsernames: ["alice"] });
    const joined = await MlsGroup.joinFromWelcome(pa.client, pending.welcome!, pending.ratchetTree!, lookupOf(pa));
    expect(joined.lastResort).toBe(true);
  });

  it("refuses malformed, oversized, mis-marked and too many KeyPackages with a sentence, and keeps serving", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const pa = await mlsPerson(alice);
    const refused = async (oneTime: Buffer[], lastResort: Buffer = Buffer.alloc(0)) => {
      const r = await ask(a, { $case: "publishKeyPackages", value: { requestId: 0, oneTime, lastResort } }, "keyPackageStatus");
      if (r.ok) throw new Error("publish was accepted");
      return r.value;
    };
    const good = await makeKeyPackage(pa);
    expect(await refused([Buffer.alloc(MAX_KEY_PACKAGE_BYTES + 1, 1)])).toMatchObject({
      code: ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, detail: `one-time KeyPackage #1 has ${MAX_KEY_PACKAGE_BYTES + 1} bytes; the most is ${MAX_KEY_PACKAGE_BYTES}`,
    });
    expect(await refused([good, Buffer.from("not mls at all")])).toMatchObject({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: "KeyPackage does not decode as an MLS message" });
    expect(await refused([good, good.subarray(0, good.length - 1)])).toMatchObject({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
    expect(await refused([Buffer.concat([good, Buffer.from([0])])])).toMatchObject({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: "KeyPackage has 1 trailing bytes" });
    // A GroupInfo where a KeyPackage belongs.
    const g = await MlsGroup.create(pa.client, "#x");
    expect(await refused([Buffer.from(await g.groupInfo())])).toMatchObject({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: "expected a KeyPackage, got mls_group_info" });
    expect(await refused([], good)).toMatchObject({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: "the last-resort KeyPackage lacks the last_resort marker" });
    expect(await refused([await makeKeyPackage(pa, true)])).toMatchObject({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: "one-time KeyPackage #1 carries the last_resort marker" });
    expect(await refused([])).toMatchObject({ code: ErrorCode.ERROR_CODE_BAD_FRAME });
    // Nothing of a refused request was stored (the good one before the bad one included).
    expect((await claim(b, ["alice"])).missing).toEqual(["alice"]);

    // The per-user cap, counted with what is already kept.
    const many = await Promise.all(Array.from({ length: MAX_ONE_TIME_KEY_PACKAGES }, () => makeKeyPackage(pa)));
    expect(await refused([...many, good])).toMatchObject({ code: ErrorCode.ERROR_CODE_MLS_LIMIT });
    expect(await publish(a, many.slice(0, MAX_ONE_TIME_KEY_PACKAGES - 1))).toMatchObject({ oneTimeLeft: MAX_ONE_TIME_KEY_PACKAGES - 1 });
    expect(await refused(many.slice(MAX_ONE_TIME_KEY_PACKAGES - 1).concat([good]))).toMatchObject({
      code: ErrorCode.ERROR_CODE_MLS_LIMIT, detail: `you keep ${MAX_ONE_TIME_KEY_PACKAGES - 1} one-time KeyPackages here; 2 more would pass the limit of ${MAX_ONE_TIME_KEY_PACKAGES}`,
    });

    const tooMany = await ask(b, { $case: "claimKeyPackages", value: { requestId: 0, usernames: Array.from({ length: MAX_CLAIM_USERS + 1 }, (_, i) => `u${i}`), deviceIds: [] } }, "keyPackageList");
    expect(tooMany).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_MLS_LIMIT } });
    const own = await ask(a, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["alice"], deviceIds: [] } }, "keyPackageList");
    expect(own).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_FRAME, detail: "you cannot claim your own KeyPackage" } });

    // Both sessions are still served.
    expect((await claim(b, ["alice"])).entries).toHaveLength(1);
    a.write({ $case: "ping", value: { nonce: 7 } });
    expect((await a.next("pong")).nonce).toBe(7);
    expect(a.isEnded || b.isEnded).toBe(false);
  });
});

describe("groups and commits", () => {
  it("keeps GroupInfo for external joins, and the first commit for an epoch wins: the loser catches up and wins the next", async () => {
    relay = await TestRelay.start();
    const [a, b, c, d] = [await relay.connect(alice), await relay.connect(bob), await relay.connect(carol), await relay.connect(dave)];
    const people = { alice: await mlsPerson(alice), bob: await mlsPerson(bob), carol: await mlsPerson(carol) };
    const { ga, gb, gc, groupId } = await opsGroup(a, b, c, people);

    // bob and carol both commit an update for epoch 1, written before either answer is read.
    const [ub, uc] = [await gb.selfUpdate(), await gc.selfUpdate()];
    const [rb, rc] = await Promise.all([sendCommit(b, ub.commit), sendCommit(c, uc.commit)]);
    const results = [{ who: "bob", g: gb, s: b, r: rb }, { who: "carol", g: gc, s: c, r: rc }];
    const won = results.filter((x) => x.r.accepted);
    expect(won).toHaveLength(1);
    const winner = won[0]!;
    const loser = results.find((x) => !x.r.accepted)!;
    expect(loser.r).toMatchObject({ code: ErrorCode.ERROR_CODE_EPOCH_TAKEN, epoch: 1, currentEpoch: 2, winner: winner.who });
    expect(Buffer.from(loser.r.groupId).equals(groupId)).toBe(true);
    expect(loser.r.detail).toBe(`another commit (by ${winner.who}) was accepted first for epoch 1; fetch it, process it and commit again at epoch 2`);
    winner.g.confirmCommit();

    // The loser fetches the winner's commit from its position, processes it, and commits again.
    const list = await must(loser.s, { $case: "fetchCommits", value: { requestId: 0, groupId, fromEpoch: loser.r.epoch } }, "commitList");
    expect(list).toMatchObject({ currentEpoch: 2, more: false });
    expect(list.commits.map((x) => [x.epoch, x.sender])).toEqual([[1, winner.who]]);
    loser.g.discardCommit();
    const processed = await loser.g.process(list.commits[0]!.commit);
    expect(processed.kind).toBe("commit");
    expect(loser.g.epoch).toBe(2n);
    const retry = await loser.g.selfUpdate();
    const r2 = await sendCommit(loser.s, retry.commit);
    expect(r2).toMatchObject({ accepted: true, epoch: 2, currentEpoch: 3 });
    loser.g.confirmCommit();
    await must(loser.s, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await loser.g.groupInfo()) } }, "groupInfoResult");

    // alice fetches both commits in order and ends in the same epoch as the others.
    const all = await must(a, { $case: "fetchCommits", value: { requestId: 0, groupId, fromEpoch: 1 } }, "commitList");
    expect(all.commits.map((x) => x.epoch)).toEqual([1, 2]);
    for (const x of all.commits) await ga.process(x.commit);
    await winner.g.process(all.commits[1]!.commit);
    expect([ga.epoch, gb.epoch, gc.epoch]).toEqual([3n, 3n, 3n]);
    expect(Buffer.from(ga.epochAuthenticator).equals(Buffer.from(gb.epochAuthenticator))).toBe(true);

    // dave joins #ops by external commit from the GroupInfo the relay keeps for the conversation.
    const gi = await must(d, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "#ops" } }, "groupInfoResult");
    expect(gi).toMatchObject({ groupInfoEpoch: 3, currentEpoch: 3 });
    const pd = await mlsPerson(dave);
    const joined = await MlsGroup.joinExternal(pd.client, gi.groupInfo, { expectConversation: "#ops" });
    expect(await sendCommit(d, joined.commit)).toMatchObject({ accepted: true, epoch: 3, currentEpoch: 4 });
    const change = await ga.process(joined.commit);
    expect(change.kind === "commit" && [change.change.external, change.change.committer.username]).toEqual([true, "dave"]);
    // A replay of an accepted commit is refused: its epoch is taken.
    expect(await sendCommit(b, joined.commit)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_EPOCH_TAKEN, epoch: 3, winner: "dave" });
  });

  it("refuses commits and GroupInfos that are not what they claim, with a sentence", async () => {
    relay = await TestRelay.start();
    const [a, b, c] = [await relay.connect(alice), await relay.connect(bob), await relay.connect(carol)];
    const people = { alice: await mlsPerson(alice), bob: await mlsPerson(bob), carol: await mlsPerson(carol) };
    const { ga, gb, groupId } = await opsGroup(a, b, c, people);

    expect(await sendCommit(b, Buffer.from("garbage"))).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: "the commit does not decode as an MLS message" });
    const app = await gb.encrypt(Buffer.from("hello"));
    expect(await sendCommit(b, app)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: "the commit is a application message, not a commit" });
    // A commit of a group the relay does not know.
    const other = await MlsGroup.create(people.bob.client, "#other");
    const solo = await other.selfUpdate();
    expect(await sendCommit(b, solo.commit)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_UNKNOWN_GROUP });
    // A GroupInfo with a commit must be the epoch it makes.
    const upd = await gb.selfUpdate();
    expect(await sendCommit(b, upd.commit, await ga.groupInfo())).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
    // Only the committer of the current epoch replaces its GroupInfo.
    const notMine = await ask(b, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await gb.groupInfo()) } }, "groupInfoResult");
    expect(notMine).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_FORGED_SENDER, detail: "only alice, whose commit made epoch 1, may publish its GroupInfo" } });
    // A second group for a conversation that has one.
    const dup = await MlsGroup.create(people.bob.client, "#ops");
    const taken = await ask(b, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await dup.groupInfo()) } }, "groupInfoResult");
    expect(taken).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_CONVERSATION } });
    const unknown = await ask(c, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "#nowhere" } }, "groupInfoResult");
    expect(unknown).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_UNKNOWN_GROUP, detail: "this relay keeps no group for #nowhere" } });
    const both = await ask(c, { $case: "fetchGroupInfo", value: { requestId: 0, groupId, conversationId: "#ops" } }, "groupInfoResult");
    expect(both).toMatchObject({ ok: false, value: { code: ErrorCode.ERROR_CODE_BAD_FRAME } });

    // None of that moved the group: bob's update (still pending) wins epoch 1.
    expect(await sendCommit(b, upd.commit)).toMatchObject({ accepted: true, epoch: 1, currentEpoch: 2 });
    expect(a.isEnded || b.isEnded || c.isEnded).toBe(false);
  });

  it("keeps KeyPackages, groups, GroupInfos and the epoch order across a relay restart", async () => {
    relay = await TestRelay.start();
    let [a, b, c] = [await relay.connect(alice), await relay.connect(bob), await relay.connect(carol)];
    const people = { alice: await mlsPerson(alice), bob: await mlsPerson(bob), carol: await mlsPerson(carol) };
    const { gb, gc, groupId } = await opsGroup(a, b, c, people);
    const two = [await makeKeyPackage(people.carol), await makeKeyPackage(people.carol)];
    await publish(c, two, await makeKeyPackage(people.carol, true));
    const upd = await gb.selfUpdate();
    expect(await sendCommit(b, upd.commit)).toMatchObject({ accepted: true, epoch: 1 });
    gb.confirmCommit();

    await relay.restart();
    [a, b, c] = [await relay.connect(alice), await relay.connect(bob), await relay.connect(carol)];
    const got = [await claim(a, ["carol"]), await claim(a, ["carol"]), await claim(a, ["carol"])].map((l) => l.entries[0]!);
    expect(got.map((e) => e.lastResort)).toEqual([false, false, true]);
    expect(got.slice(0, 2).map((e) => Buffer.from(e.keyPackage).toString("hex")).sort()).toEqual(two.map((k) => k.toString("hex")).sort());
    const gi = await must(c, { $case: "fetchGroupInfo", value: { requestId: 0, groupId, conversationId: "" } }, "groupInfoResult");
    expect(gi).toMatchObject({ groupInfoEpoch: 1, currentEpoch: 2 });
    // carol's commit for epoch 1 still loses to bob's, stored before the restart.
    const late = await gc.selfUpdate();
    expect(await sendCommit(c, late.commit)).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_EPOCH_TAKEN, epoch: 1, currentEpoch: 2, winner: "bob" });
  });
});
