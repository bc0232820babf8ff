// MLS groups over raw sessions (the cluster adversarial tests and
// test/integration/relay-mls-queues.test.ts): KeyPackages, GroupInfo, a group created with its
// members added by one commit, members joining from their Welcome.
import { expect } from "vitest";
import { ErrorCode, MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { lookupOf, makeKeyPackage, must, sendCommit, type MlsPerson } from "./mls-ds.js";
import { sendMlsAccepted, takeMls, type MlsItem } from "./mls-queues.js";
import type { RawSession, ResponseOf } from "./raw-session.js";

export async function publishKeyPackage(s: RawSession, p: MlsPerson): Promise<void> {
  await must(s, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(p)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
}

export async function publishGroupInfo(s: RawSession, g: MlsGroup): Promise<void> {
  await must(s, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await g.groupInfo()) } }, "groupInfoResult");
}

/** `creator` makes the conversation's group and adds `users` (KeyPackages claimed from the relay) with one commit. */
export async function createAndAdd(s: RawSession, creator: MlsPerson, conversationId: string, users: string[]): Promise<MlsGroup> {
  return (await createAndAddCommit(s, creator, conversationId, users)).g;
}

/** createAndAdd, with the add commit (its Welcome and tree) and the group's id. */
export async function createAndAddCommit(s: RawSession, creator: MlsPerson, conversationId: string, users: string[]) {
  const g = await MlsGroup.create(creator.client, conversationId);
  await publishGroupInfo(s, g);
  const kps = await must(s, { $case: "claimKeyPackages", value: { requestId: 0, usernames: users, deviceIds: [] } }, "keyPackageList");
  expect(kps.missing).toEqual([]);
  const add = await g.addMembers(kps.entries.map((e) => e.keyPackage), { expectUsernames: kps.entries.map((e) => e.username) });
  const r = await sendCommit(s, add.commit, undefined, { added: users, welcome: add.welcome, ratchetTree: add.ratchetTree });
  expect(r).toMatchObject({ accepted: true, epoch: 0, currentEpoch: 1 });
  g.confirmCommit();
  await publishGroupInfo(s, g);
  return { g, add, groupId: Buffer.from(g.groupId) };
}

/** `p` joins from the Welcome that is next in its queue (the only delivery waiting). */
export async function joinFromQueue(s: RawSession, p: MlsPerson): Promise<MlsGroup> {
  const [w] = await takeMls(s, 1);
  return joinFrom(w!, p);
}

/** `p` joins from this Welcome delivery. */
export async function joinFrom(w: MlsItem, p: MlsPerson): Promise<MlsGroup> {
  return (await MlsGroup.joinFromWelcome(p.client, w.mls.mls, w.mls.ratchetTree, lookupOf(p))).group;
}

/** Opens application messages in order; returns their texts. */
export async function openAll(g: MlsGroup, items: readonly { mls: { mls: Uint8Array } }[]): Promise<string[]> {
  const out: string[] = [];
  for (const i of items) {
    const m = await g.process(i.mls.mls);
    if (m.kind !== "application") throw new Error(`expected an application message, got ${m.kind}`);
    out.push(m.plaintext.toString("utf8"));
  }
  return out;
}

/** One racer for an epoch: who, its group, its session and the relay's answer to its commit. */
export interface EpochRacer {
  readonly who: string;
  readonly g: MlsGroup;
  readonly s: RawSession;
  readonly r: ResponseOf<"commitResult">;
}

/**
 * Bob and carol each committed epoch 1 of alice's group (one relay or two): the loser heard
 * EPOCH_TAKEN naming the winner, finds the winner's commit in its queue, processes it and commits
 * epoch 2; alice gets both commits in epoch order, the winner the loser's; all end at epoch 3 and
 * read alice's next message.
 */
export async function settleEpochRace(alice: { readonly s: RawSession; readonly g: MlsGroup }, bob: EpochRacer, carol: EpochRacer): Promise<void> {
  const sides = [bob, carol];
  const winner = sides.find((x) => x.r.accepted)!;
  const loser = sides.find((x) => !x.r.accepted)!;
  expect(loser.r).toMatchObject({ code: ErrorCode.ERROR_CODE_EPOCH_TAKEN, epoch: 1, currentEpoch: 2, winner: winner.who });
  winner.g.confirmCommit();
  const [w] = await takeMls(loser.s, 1);
  expect([w!.mls.kind, w!.mls.sender, w!.mls.epoch]).toEqual([MlsKind.MLS_KIND_COMMIT, winner.who, 1]);
  loser.g.discardCommit();
  expect((await loser.g.process(w!.mls.mls)).kind).toBe("commit");
  const retry = await loser.g.selfUpdate();
  expect(await sendCommit(loser.s, retry.commit)).toMatchObject({ accepted: true, epoch: 2, currentEpoch: 3 });
  loser.g.confirmCommit();
  const toAlice = await takeMls(alice.s, 2);
  expect(toAlice.map((x) => [x.mls.sender, x.mls.epoch])).toEqual([[winner.who, 1], [loser.who, 2]]);
  for (const x of toAlice) await alice.g.process(x.mls.mls);
  await winner.g.process((await takeMls(winner.s, 1))[0]!.mls.mls);
  expect([alice.g.epoch, bob.g.epoch, carol.g.epoch]).toEqual([3n, 3n, 3n]);
  await sendMlsAccepted(alice.s, await alice.g.encrypt(Buffer.from("epoch 3", "utf8")));
  expect(await openAll(bob.g, await takeMls(bob.s, 1))).toEqual(["epoch 3"]);
  expect(await openAll(carol.g, await takeMls(carol.s, 1))).toEqual(["epoch 3"]);
}
