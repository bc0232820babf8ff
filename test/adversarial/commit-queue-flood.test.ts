// Regression (red team rt-relay, rt-commit-queue-flood): commits were not held to the queue caps,
// and the hint that picks their recipients is the committer's word (`added`: any valid name, no
// consent). mallory named bob once in a room of her own and queued 270 commits of 1 MB for him,
// past her share of his queue and past the whole queue's cap: alice's honest message to bob was
// then refused QUEUE_FULL.
//
// Now (PROTOCOL.md §8.3, §13.2): a commit's deliveries (commit and Welcome rows) are held to the
// sender's share of each recipient device's queue; a commit past it is refused QUEUE_FULL and
// nothing is stored. The whole-queue cap is not checked for commits (a queue filled by others
// must not freeze a group), but one sender can never fill another's queue.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { fakePrivateCommit, fakePrivateMessage } from "../helpers/mls-queues.js";
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

/** An application PrivateMessage (content type 1): what an honest member's SendMls carries, as the relay sees it. */
const fakePrivateApp = (groupId: Uint8Array, epoch: number, tag: number): Buffer => fakePrivateMessage(groupId, epoch, 1, 300, tag);

/** Any genuine Welcome of our suite and its tree (the relay only decodes the Welcome's framing). */
async function someWelcome(): Promise<{ welcome: Uint8Array; tree: Uint8Array }> {
  const x = await mlsPerson(mallory);
  const y = await mlsPerson(mallory);
  const g = await MlsGroup.create(x.client, "#scratch");
  const add = await g.addMembers([await makeKeyPackage(y)]);
  return { welcome: add.welcome!, tree: add.ratchetTree! };
}

async function sendMls(s: RawSession, bytes: Uint8Array) {
  s.write({ $case: "sendMls", value: { mls: Buffer.from(bytes) } });
  return s.next("sendResult", () => true);
}

const MIB = 1024 * 1024;

describe("commits into a victim's queue are held to the sender's share", () => {
  it("mallory's commits to bob stop at her share of his queue (QUEUE_FULL); alice can still write to bob", { timeout: 180_000 }, async () => {
    let now = Date.now();
    // Small caps (the defaults' proportions: a share is an eighth of the queue's bytes) to keep the test short.
    relay = await TestRelay.start({ clock: () => now, logLevel: "warn", limits: { maxQueueBytesPerSender: 4 * MIB, maxQueueBytesPerUser: 8 * MIB } });
    const b0 = await relay.connect(bob); // bob is a bound user, offline from here on
    b0.close();
    const a = await relay.connect(alice);
    const m = await relay.connect(mallory);
    const w = await someWelcome();

    // alice and bob have a DM (by the hint; the crypto does not matter to the relay's caps).
    const pa = await mlsPerson(alice);
    const dm = await MlsGroup.create(pa.client, "dm:alice:bob");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await dm.groupInfo()) } }, "groupInfoResult");
    expect(await sendCommit(a, fakePrivateCommit(dm.groupId, 0, 100), undefined, { added: ["bob"], welcome: w.welcome, ratchetTree: w.tree })).toMatchObject({ accepted: true });

    // mallory: a room of her own; one commit names bob as added (no consent asked), then big commits.
    const pm = await mlsPerson(mallory);
    const trap = await MlsGroup.create(pm.client, "#trap");
    await must(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await trap.groupInfo()) } }, "groupInfoResult");
    expect(await sendCommit(m, fakePrivateCommit(trap.groupId, 0, 100), undefined, { added: ["bob"], welcome: w.welcome, ratchetTree: w.tree })).toMatchObject({ accepted: true });

    let epoch = 1;
    let accepted = 0;
    let refused: { code: number; detail: string } | undefined;
    // Without the share, 12 commits of 900 KB would pass her 4 MiB share and bob's whole 8 MiB queue.
    for (let i = 0; i < 100 && refused === undefined && accepted < 12; i++) {
      const r = await sendCommit(m, fakePrivateCommit(trap.groupId, epoch, 900_000));
      if (r.accepted) {
        epoch++;
        accepted++;
      } else if (r.code === ErrorCode.ERROR_CODE_RATE_LIMITED) now += 1000;
      else refused = { code: r.code, detail: r.detail };
    }
    expect(refused).toMatchObject({ code: ErrorCode.ERROR_CODE_QUEUE_FULL });
    expect(refused!.detail).toMatch(/waiting for 'bob', the most one sender may have/);
    expect(accepted).toBeLessThanOrEqual(4);
    // The refused commit stored nothing: its epoch is still free, and the group did not move.
    const small = await sendCommit(m, fakePrivateCommit(trap.groupId, epoch, 100));
    expect(small).toMatchObject({ accepted: true, epoch });

    // alice, honest, writes to bob: accepted (mallory holds only her share of his queue).
    const r = await sendMls(a, fakePrivateApp(dm.groupId, 1, 1));
    expect(r).toMatchObject({ status: SendStatus.SEND_STATUS_ACCEPTED });
    const b1 = await relay.connect(bob);
    // mallory's Welcome and commits (at most her share) plus alice's Welcome and message.
    expect(b1.welcome.queued).toBeLessThanOrEqual(1 + accepted + 1 + 2);
  });

  // Found by a red-team review of the fix: a member who never reads (or one named by the hint
  // only, never online) filled alice's share of its queue; then even alice's commit removing it
  // was refused QUEUE_FULL, since the removal is queued to the removed member too.
  it("a commit that removes a member who never reads is not held to the sender's share of that member's queue", { timeout: 120_000 }, async () => {
    let now = Date.now();
    relay = await TestRelay.start({ clock: () => now, logLevel: "warn", limits: { maxQueuePerSender: 20, maxQueuePerUser: 200 } });
    (await relay.connect(bob)).close(); // bob: registered, never online again
    const a = await relay.connect(alice);
    const w = await someWelcome();
    const ops = await MlsGroup.create((await mlsPerson(alice)).client, "#ops");
    await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ops.groupInfo()) } }, "groupInfoResult");
    expect(await sendCommit(a, fakePrivateCommit(ops.groupId, 0, 100), undefined, { added: ["bob"], welcome: w.welcome, ratchetTree: w.tree })).toMatchObject({ accepted: true });
    let refused = false;
    for (let i = 0; i < 40 && !refused; i++) {
      now += 1000;
      refused = (await sendMls(a, fakePrivateApp(ops.groupId, 1, i))).status !== SendStatus.SEND_STATUS_ACCEPTED;
    }
    expect(refused).toBe(true); // alice's share of bob's queue is full
    now += 1000;
    // An update still needs room in bob's queue; the commit removing bob does not.
    expect(await sendCommit(a, fakePrivateCommit(ops.groupId, 1, 100))).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_QUEUE_FULL });
    expect(await sendCommit(a, fakePrivateCommit(ops.groupId, 1, 101), undefined, { removed: ["bob"] })).toMatchObject({ accepted: true });
    // bob gone from the room: alice talks on.
    now += 1000;
    expect((await sendMls(a, fakePrivateApp(ops.groupId, 2, 99))).status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
  });
});
