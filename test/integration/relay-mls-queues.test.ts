// Protocol v2 through the relay's durable per-user queues (PROTOCOL.md §8.3), with real MLS
// groups (src/protocol/mls) over a real relay: Welcomes with their tree for users added while
// offline, application messages both ways in order and exactly once across reconnects, commits
// to every member before them (a removed member gets its removal, then nothing), the lobby only
// to members online, duplicates, two commits racing for one epoch, and a relay restart.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { Envelope, ErrorCode, MlsKind, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import { envelopeToWire } from "../../src/protocol/codec.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { openStore } from "../../src/server/store.js";
import { createAndAddCommit, openAll, publishGroupInfo, publishKeyPackage, settleEpochRace } from "../helpers/cluster-mls.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { lookupOf, mlsPerson, must, sendCommit, type MlsPerson } from "../helpers/mls-ds.js";
import { connectV2, expectNoDelivery, mlsId, queuedRows, sendMls, sendMlsAccepted, storedMlsRefs, takeMls, waitForEmptyQueue } from "../helpers/mls-queues.js";
import { seal, type RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let relay: TestRelay;

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
});

afterEach(async () => {
  await relay?.cleanup();
});

const text = (s: string): Buffer => Buffer.from(s, "utf8");

describe("MLS through the queues", () => {
  it("a DM: bob, added while offline, gets the Welcome and tree, joins, and both talk in order, exactly once across a reconnect", async () => {
    relay = await TestRelay.start();
    const [pa, pb] = [await mlsPerson(alice), await mlsPerson(bob)];
    let b = await connectV2(relay, bob);
    await publishKeyPackage(b, pb);
    await relay.disconnect(b, "bob");

    const a = await connectV2(relay, alice);
    const { g: ga, add, groupId } = await createAndAddCommit(a, pa, "dm:alice:bob", ["bob"]);
    const sent: Buffer[] = [];
    for (const t of ["one", "two", "three"]) {
      const m = Buffer.from(await ga.encrypt(text(t)));
      sent.push(m);
      const r = await sendMlsAccepted(a, m);
      expect(r.queuedFor).toEqual(["bob"]);
      expect(Buffer.from(r.messageId).equals(mlsId(m))).toBe(true);
    }

    // bob comes online: the Welcome with the tree beside it, then the three messages, in order.
    b = await connectV2(relay, bob);
    const got = await takeMls(b, 4, { ack: false });
    expect(got.map((x) => [x.conversationId, x.mls.kind, x.mls.sender])).toEqual([
      ["dm:alice:bob", MlsKind.MLS_KIND_WELCOME, "alice"],
      ["dm:alice:bob", MlsKind.MLS_KIND_APPLICATION, "alice"],
      ["dm:alice:bob", MlsKind.MLS_KIND_APPLICATION, "alice"],
      ["dm:alice:bob", MlsKind.MLS_KIND_APPLICATION, "alice"],
    ]);
    expect(got.every((x) => Buffer.from(x.mls.groupId).equals(groupId))).toBe(true);
    expect(Buffer.from(got[0]!.mls.mls).equals(Buffer.from(add.welcome!))).toBe(true);
    expect(Buffer.from(got[0]!.mls.ratchetTree).equals(Buffer.from(add.ratchetTree!))).toBe(true);
    expect(got.slice(1).map((x) => Buffer.from(x.mls.mls).equals(sent[got.indexOf(x) - 1]!))).toEqual([true, true, true]);
    const gb = (await MlsGroup.joinFromWelcome(pb.client, got[0]!.mls.mls, got[0]!.mls.ratchetTree, lookupOf(pb))).group;
    expect(await openAll(gb, got.slice(1, 3))).toEqual(["one", "two"]);
    // bob acks what he processed (the Welcome and two messages) and loses his connection.
    b.ack(got.slice(0, 3).map((x) => x.seq));
    await b.barrier();
    await relay.disconnect(b, "bob");

    // Back: only the unacked third message, with the same seq; then nothing.
    b = await connectV2(relay, bob);
    const again = await takeMls(b, 1);
    expect(again.map((x) => x.seq)).toEqual([got[3]!.seq]);
    expect(await openAll(gb, again)).toEqual(["three"]);
    await expectNoDelivery(b);
    await waitForEmptyQueue(relay, "bob");

    // bob answers; alice, online, gets both in order (queued_for is empty: she is online).
    for (const t of ["hi alice", "how are you"]) expect((await sendMlsAccepted(b, await gb.encrypt(text(t)))).queuedFor).toEqual([]);
    const back = await takeMls(a, 2);
    expect(back.map((x) => [x.mls.kind, x.mls.sender])).toEqual([[MlsKind.MLS_KIND_APPLICATION, "bob"], [MlsKind.MLS_KIND_APPLICATION, "bob"]]);
    expect(await openAll(ga, back)).toEqual(["hi alice", "how are you"]);
  });

  it("a room of 3: a removed member gets its removal commit and nothing after; a resent commit is accepted once", async () => {
    relay = await TestRelay.start();
    const [pa, pb, pc] = [await mlsPerson(alice), await mlsPerson(bob), await mlsPerson(carol)];
    const [a, b, c] = [await connectV2(relay, alice), await connectV2(relay, bob), await connectV2(relay, carol)];
    await publishKeyPackage(b, pb);
    await publishKeyPackage(c, pc);
    const { g: ga } = await createAndAddCommit(a, pa, "#ops", ["bob", "carol"]);
    // The Welcome and its tree are stored once, with a queue row for each of the two (the commit
    // itself had no one to go to: alice was the only member before it).
    expect(storedMlsRefs(relay)).toEqual([2]);
    // Each added user gets the one stored Welcome (not the commit: they were not members before it).
    const [wb] = await takeMls(b, 1);
    const [wc] = await takeMls(c, 1);
    expect([wb!.mls.kind, wc!.mls.kind]).toEqual([MlsKind.MLS_KIND_WELCOME, MlsKind.MLS_KIND_WELCOME]);
    const gb = (await MlsGroup.joinFromWelcome(pb.client, wb!.mls.mls, wb!.mls.ratchetTree, lookupOf(pb))).group;
    const gc = (await MlsGroup.joinFromWelcome(pc.client, wc!.mls.mls, wc!.mls.ratchetTree, lookupOf(pc))).group;

    // alice removes carol: the commit goes to bob and to carol herself, with the epoch it was for.
    const rm = await ga.removeMembers(["carol"]);
    expect(await sendCommit(a, rm.commit, undefined, { removed: ["carol"] })).toMatchObject({ accepted: true, epoch: 1, currentEpoch: 2 });
    ga.confirmCommit();
    // alice's client lost the answer and resends the same commit: accepted again, queued once.
    expect(await sendCommit(a, rm.commit, undefined, { removed: ["carol"] })).toMatchObject({ accepted: true, epoch: 1, currentEpoch: 2 });
    const [cb] = await takeMls(b, 1);
    const [cc] = await takeMls(c, 1);
    for (const x of [cb!, cc!]) expect([x.mls.kind, x.mls.sender, x.mls.epoch]).toEqual([MlsKind.MLS_KIND_COMMIT, "alice", 1]);
    expect(Buffer.from(cc!.mls.mls).equals(Buffer.from(rm.commit))).toBe(true);
    const removal = await gc.process(cc!.mls.mls);
    expect(removal.kind === "commit" && removal.removedMe).toBe(true);
    await gb.process(cb!.mls.mls);

    // After it: alice's message reaches bob only; carol's queue stays empty.
    const m = await ga.encrypt(text("carol is gone"));
    expect((await sendMlsAccepted(a, m)).queuedFor).toEqual([]);
    expect(await openAll(gb, await takeMls(b, 1))).toEqual(["carol is gone"]);
    await expectNoDelivery(c);
    await waitForEmptyQueue(relay, "carol");
    await expectNoDelivery(b);
    // carol is no member any more by the relay's record.
    const late = await sendMls(c, await gb.encrypt(text("x")));
    expect(late).toMatchObject({ status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_NOT_A_MEMBER });
  });

  it("the lobby: messages and commits reach only members online at the time", async () => {
    relay = await TestRelay.start({ limits: { lobbyGraceMs: 0 } });
    const [pa, pb, pc] = [await mlsPerson(alice), await mlsPerson(bob), await mlsPerson(carol)];
    const a = await connectV2(relay, alice);
    const ga = await MlsGroup.create(pa.client, "lobby");
    await publishGroupInfo(a, ga);
    // bob and carol join by external commit from the relay's lobby GroupInfo.
    const join = async (s: RawSession, p: MlsPerson): Promise<MlsGroup> => {
      const gi = await must(s, { $case: "fetchGroupInfo", value: { requestId: 0, groupId: Buffer.alloc(0), conversationId: "lobby" } }, "groupInfoResult");
      const j = await MlsGroup.joinExternal(p.client, gi.groupInfo, { expectConversation: "lobby" });
      expect(await sendCommit(s, j.commit, await j.group.groupInfo())).toMatchObject({ accepted: true });
      return j.group;
    };
    const b = await connectV2(relay, bob);
    const gb = await join(b, pb);
    const [jb] = await takeMls(a, 1);
    expect([jb!.mls.kind, jb!.mls.sender]).toEqual([MlsKind.MLS_KIND_COMMIT, "bob"]);
    await ga.process(jb!.mls.mls);
    const c = await connectV2(relay, carol);
    const gc = await join(c, pc);
    for (const [s, g] of [[a, ga], [b, gb]] as const) await g.process((await takeMls(s, 1))[0]!.mls.mls);

    // All three online: a lobby message goes to the two others.
    const hello = await ga.encrypt(text("hello lobby"));
    expect((await sendMlsAccepted(a, hello)).queuedFor).toEqual([]);
    expect(await openAll(gb, await takeMls(b, 1))).toEqual(["hello lobby"]);
    expect(await openAll(gc, await takeMls(c, 1))).toEqual(["hello lobby"]);

    // carol goes offline: the next message and bob's commit are stored for alice/bob only.
    await relay.disconnect(c, "carol");
    const m2 = await ga.encrypt(text("carol left"));
    expect((await sendMlsAccepted(a, m2)).queuedFor).toEqual([]);
    expect(await openAll(gb, await takeMls(b, 1))).toEqual(["carol left"]);
    const upd = await gb.selfUpdate();
    expect(await sendCommit(b, upd.commit)).toMatchObject({ accepted: true });
    gb.confirmCommit();
    expect((await takeMls(a, 1))[0]!.mls.kind).toBe(MlsKind.MLS_KIND_COMMIT);
    await waitForEmptyQueue(relay, "carol");
  });

  it("a duplicate SendMls, resent at once or after it was stored, is accepted and queued once", async () => {
    relay = await TestRelay.start();
    const [pa, pb] = [await mlsPerson(alice), await mlsPerson(bob)];
    let b = await connectV2(relay, bob);
    await publishKeyPackage(b, pb);
    const a = await connectV2(relay, alice);
    const { g: ga } = await createAndAddCommit(a, pa, "dm:alice:bob", ["bob"]);
    await relay.disconnect(b, "bob");
    const m = Buffer.from(await ga.encrypt(text("once")));
    // Written twice before any answer, then once more after the answer.
    a.write({ $case: "sendMls", value: { mls: m } });
    a.write({ $case: "sendMls", value: { mls: m } });
    const first = await a.next("sendResult");
    const second = await a.next("sendResult");
    const third = await sendMls(a, m);
    for (const r of [first, second, third]) expect(r).toMatchObject({ status: SendStatus.SEND_STATUS_ACCEPTED });
    expect(first.queuedFor).toEqual(["bob"]);
    expect(queuedRows(relay, "bob")).toBe(2); // the Welcome and the message, once
    b = await connectV2(relay, bob);
    const got = await takeMls(b, 2);
    expect(got.map((x) => x.mls.kind)).toEqual([MlsKind.MLS_KIND_WELCOME, MlsKind.MLS_KIND_APPLICATION]);
    await expectNoDelivery(b);
  });

  it("two commits racing for one epoch: EPOCH_TAKEN, the loser gets the winner from its queue, processes it and commits again", async () => {
    relay = await TestRelay.start();
    const [pa, pb, pc] = [await mlsPerson(alice), await mlsPerson(bob), await mlsPerson(carol)];
    const [a, b, c] = [await connectV2(relay, alice), await connectV2(relay, bob), await connectV2(relay, carol)];
    await publishKeyPackage(b, pb);
    await publishKeyPackage(c, pc);
    const { g: ga } = await createAndAddCommit(a, pa, "#ops", ["bob", "carol"]);
    const gb = (await MlsGroup.joinFromWelcome(pb.client, ...(await takeMls(b, 1)).map((x) => [x.mls.mls, x.mls.ratchetTree] as const)[0]!, lookupOf(pb))).group;
    const gc = (await MlsGroup.joinFromWelcome(pc.client, ...(await takeMls(c, 1)).map((x) => [x.mls.mls, x.mls.ratchetTree] as const)[0]!, lookupOf(pc))).group;

    const [ub, uc] = [await gb.selfUpdate(), await gc.selfUpdate()];
    const [rb, rc] = await Promise.all([sendCommit(b, ub.commit), sendCommit(c, uc.commit)]);
    // The loser finds the winner's commit in its queue (no fetch), processes it, and commits
    // again; alice gets both in epoch order, the winner the loser's; they talk in epoch 3.
    await settleEpochRace({ s: a, g: ga }, { who: "bob", g: gb, s: b, r: rb }, { who: "carol", g: gc, s: c, r: rc });
  });

  it("envelopes queued for a user before the relay moved to v2 are still delivered (as Envelopes: the client drops them) and acked", async () => {
    relay = await TestRelay.start();
    // alice and bob are bound; then the relay is stopped and its database holds what a relay of
    // before the cut-over stored for a v1 SendEnvelope: the wire Envelope's bytes, one row for alice.
    await relay.disconnect(await connectV2(relay, alice), "alice");
    await relay.disconnect(await connectV2(relay, bob), "bob");
    await relay.stop();
    const sealed = seal(bob, "dm:alice:bob", [alice], "sent under v1");
    const store = openStore(join(relay.dataDir, "relay.db"));
    try {
      store.enqueueBatch([{
        sender: "bob", messageId: sealed.header.messageId, conversationId: "dm:alice:bob",
        envelope: Envelope.encode(envelopeToWire(sealed)).finish(), recipients: ["alice"],
      }]);
    } finally {
      store.close();
    }
    await relay.restart();

    // A v1 client is told to upgrade; alice, on v2, gets the old envelope as it was stored, and acks it.
    const old = relay.open();
    old.hello(bob, { protocolVersion: 1 });
    expect((await old.status()).details).toBe("this relay speaks secure-chat protocol v2: upgrade your client (npm install -g secure-chat@2)");
    const a2 = await connectV2(relay, alice);
    expect(a2.welcome.queued).toBe(1);
    const [d] = await a2.deliveries(1);
    expect(d!.envelope?.header?.sender).toBe("bob");
    expect(Buffer.from(d!.envelope!.header!.messageId).equals(sealed.header.messageId)).toBe(true);
    expect(d!.mls).toBeUndefined();
    a2.ack([d!.seq]);
    await waitForEmptyQueue(relay, "alice");
    await a2.barrier();
    expect(a2.has("deliver")).toBe(false);
  });

  it("a relay restart in the middle loses nothing: Welcome, commit and messages reach the offline member after it", async () => {
    relay = await TestRelay.start();
    const [pa, pb, pc] = [await mlsPerson(alice), await mlsPerson(bob), await mlsPerson(carol)];
    let [a, b, c] = [await connectV2(relay, alice), await connectV2(relay, bob), await connectV2(relay, carol)];
    await publishKeyPackage(b, pb);
    await publishKeyPackage(c, pc);
    await relay.disconnect(b, "bob");
    const { g: ga } = await createAndAddCommit(a, pa, "#ops", ["bob", "carol"]);
    const gc = (await MlsGroup.joinFromWelcome(pc.client, ...(await takeMls(c, 1)).map((x) => [x.mls.mls, x.mls.ratchetTree] as const)[0]!, lookupOf(pc))).group;
    await sendMlsAccepted(a, await ga.encrypt(text("before the restart")));
    expect(await openAll(gc, await takeMls(c, 1))).toEqual(["before the restart"]);

    await relay.restart();
    [a, c] = [await connectV2(relay, alice), await connectV2(relay, carol)];
    const upd = await gc.selfUpdate();
    expect(await sendCommit(c, upd.commit)).toMatchObject({ accepted: true, epoch: 1 });
    gc.confirmCommit();
    await ga.process((await takeMls(a, 1))[0]!.mls.mls);
    await sendMlsAccepted(a, await ga.encrypt(text("after the restart")));
    await relay.restart();

    b = await connectV2(relay, bob);
    const got = await takeMls(b, 4);
    expect(got.map((x) => [x.mls.kind, x.mls.sender])).toEqual([
      [MlsKind.MLS_KIND_WELCOME, "alice"], [MlsKind.MLS_KIND_APPLICATION, "alice"], [MlsKind.MLS_KIND_COMMIT, "carol"], [MlsKind.MLS_KIND_APPLICATION, "alice"],
    ]);
    const gb = (await MlsGroup.joinFromWelcome(pb.client, got[0]!.mls.mls, got[0]!.mls.ratchetTree, lookupOf(pb))).group;
    expect(await openAll(gb, [got[1]!])).toEqual(["before the restart"]);
    await gb.process(got[2]!.mls.mls);
    expect(await openAll(gb, [got[3]!])).toEqual(["after the restart"]);
    await waitForEmptyQueue(relay, "bob");
  });
});
