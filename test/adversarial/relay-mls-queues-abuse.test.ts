// Hostile clients against protocol v2 through the queues (PROTOCOL.md §8.3, §14): SendMls
// by a non-member (replaying a member's bytes), for an old epoch, garbage, a commit sent as
// SendMls, oversized, a flood, a queue filled; SendCommit with a Welcome nobody is added by, or
// an add without its Welcome; a v1 session sending SendMls and a v2 session sending an Envelope;
// a v1 Hello at a v2-only relay. Each gets one sentence; the session and the relay go on.
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, MlsKind, SendStatus } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { maxSendMlsBytes } from "../../src/server/mls-send.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { lookupOf, makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { connectV2, expectNoDelivery, queuedRows, sendMls, sendMlsAccepted, takeMls } from "../helpers/mls-queues.js";
import { seal, type RawSession } from "../helpers/raw-session.js";
import { TestRelay, type TestRelayOptions } from "../helpers/relay-harness.js";

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

const text = (s: string): Buffer => Buffer.from(s, "utf8");

/** A relay with alice and bob in #ops (v2 sessions, bob joined from the Welcome he was queued), and mallory online. */
async function opsRoom(options: TestRelayOptions = {}) {
  relay = await TestRelay.start(options);
  const [pa, pb] = [await mlsPerson(alice), await mlsPerson(bob)];
  const [a, b, m] = [await connectV2(relay, alice), await connectV2(relay, bob), await connectV2(relay, mallory)];
  await must(b, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pb)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
  const ga = await MlsGroup.create(pa.client, "#ops");
  await must(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await ga.groupInfo()) } }, "groupInfoResult");
  const kps = await must(a, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["bob"], deviceIds: [] } }, "keyPackageList");
  const add = await ga.addMembers([kps.entries[0]!.keyPackage], { expectUsernames: ["bob"] });
  expect(await sendCommit(a, add.commit, undefined, { added: ["bob"], welcome: add.welcome, ratchetTree: add.ratchetTree })).toMatchObject({ accepted: true });
  ga.confirmCommit();
  const [w] = await takeMls(b, 1);
  const gb = (await MlsGroup.joinFromWelcome(pb.client, w!.mls.mls, w!.mls.ratchetTree, lookupOf(pb))).group;
  return { a, b, m, ga, gb, pa, pb };
}

/** The session and the relay still serve: a ping is answered. */
async function stillServed(...sessions: RawSession[]): Promise<void> {
  for (const s of sessions) {
    await s.barrier();
    expect(s.isEnded).toBe(false);
  }
}

function refusedWith(r: { status: SendStatus; code: ErrorCode; detail: string }, code: ErrorCode, detail: RegExp): void {
  expect(r.status).toBe(SendStatus.SEND_STATUS_REFUSED);
  expect(r.code).toBe(code);
  expect(r.detail).toMatch(detail);
  // One sentence: no line break, no stack.
  expect(r.detail).not.toMatch(/\n|at .*\.ts:/);
}

describe("SendMls abuse", () => {
  it("a non-member replaying a member's message is refused: it would reach the members as sent by the replayer", async () => {
    const { a, b, m, ga } = await opsRoom();
    const msg = await ga.encrypt(text("for members"));
    refusedWith(await sendMls(m, msg), ErrorCode.ERROR_CODE_NOT_A_MEMBER, /^you are not a member of the group of #ops by the relay's record$/);
    await expectNoDelivery(b);
    expect(queuedRows(relay, "bob")).toBe(0);
    // The genuine sender's copy still goes through (the refusal stored nothing under its id).
    await sendMlsAccepted(a, msg);
    expect((await takeMls(b, 1))[0]!.mls.sender).toBe("alice");
    await stillServed(m, a);
  });

  it("a message for an old epoch is refused (the current and the one before are taken)", async () => {
    const { a, b, ga, gb } = await opsRoom();
    const atEpoch1 = await ga.encrypt(text("epoch 1"));
    for (const epochs of [2, 3]) {
      void epochs;
      const u = await gb.selfUpdate();
      expect(await sendCommit(b, u.commit)).toMatchObject({ accepted: true });
      gb.confirmCommit();
      await ga.process((await takeMls(a, 1))[0]!.mls.mls);
    }
    // The group is at epoch 3: a message of epoch 1 is refused, one of epoch 2 would be taken.
    refusedWith(await sendMls(a, atEpoch1), ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE,
      /^the message is for epoch 1, but the group of #ops is at epoch 3; only messages for epoch 3 or 2 are accepted$/);
    await expectNoDelivery(b);
    await sendMlsAccepted(a, await ga.encrypt(text("epoch 3")));
    await stillServed(a, b);
  });

  it("a proposal of the epoch before is refused EPOCH_TAKEN (it could never be committed); a message of that epoch is taken", async () => {
    const { a, b, ga, gb } = await opsRoom();
    const line = await ga.encrypt(text("still epoch 1"));
    const leave = await ga.proposeLeave();
    const u = await gb.selfUpdate();
    expect(await sendCommit(b, u.commit)).toMatchObject({ accepted: true });
    gb.confirmCommit();
    refusedWith(await sendMls(a, leave), ErrorCode.ERROR_CODE_EPOCH_TAKEN,
      /^the group of #ops moved on to epoch 2; a proposal for epoch 1 could no longer be committed$/);
    await sendMlsAccepted(a, line);
    expect((await takeMls(b, 1))[0]!.mls.kind).toBe(MlsKind.MLS_KIND_APPLICATION);
    // Proposed again in the group's epoch, it is taken.
    await ga.process((await takeMls(a, 1))[0]!.mls.mls);
    await sendMlsAccepted(a, await ga.proposeLeave());
    expect((await takeMls(b, 1))[0]!.mls.kind).toBe(MlsKind.MLS_KIND_PROPOSAL);
    await stillServed(a, b);
  });

  it("garbage, a commit, a Welcome or a message of an unknown group sent as SendMls: each refused with a sentence", async () => {
    const { a, b, ga, gb, pb } = await opsRoom();
    refusedWith(await sendMls(a, Buffer.from("garbage")), ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, /^the MLS message does not decode as an MLS message$/);
    refusedWith(await sendMls(a, Buffer.alloc(0)), ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, /empty/);
    // A commit must come by SendCommit (it would bypass the epoch order): private and public framing.
    const upd = await gb.selfUpdate();
    refusedWith(await sendMls(b, upd.commit), ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, /^the message is a commit: send commits with SendCommit, not SendMls$/);
    gb.discardCommit();
    const gi = await ga.groupInfo();
    const external = await MlsGroup.joinExternal((await mlsPerson(mallory)).client, gi, { expectConversation: "#ops" });
    refusedWith(await sendMls(a, external.commit), ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, /^the message is a commit: send commits with SendCommit, not SendMls$/);
    // Other MLS messages are not group messages.
    refusedWith(await sendMls(a, gi), ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, /not a mls_group_info$/);
    refusedWith(await sendMls(b, await makeKeyPackage(pb)), ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, /not a mls_key_package$/);
    // A group the relay does not know.
    const other = await MlsGroup.create((await mlsPerson(bob)).client, "#elsewhere");
    refusedWith(await sendMls(b, await other.encrypt(text("x"))), ErrorCode.ERROR_CODE_UNKNOWN_GROUP, /^this relay keeps no group with that id$/);
    await expectNoDelivery(a);
    await expectNoDelivery(b);
    await stillServed(a, b);
  });

  it("an oversized message is refused before it is decoded", async () => {
    const { a, b } = await opsRoom({ limits: { maxTextBytes: 1024 } });
    const max = maxSendMlsBytes({ maxTextBytes: 1024 });
    refusedWith(await sendMls(a, Buffer.alloc(max + 1, 1)), ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, new RegExp(`^the MLS message has ${max + 1} bytes; this relay takes at most ${max}$`));
    await expectNoDelivery(b);
    await stillServed(a, b);
  });

  it("a flood is rate-limited with the envelopes' bucket", async () => {
    const { a, b, ga } = await opsRoom({ limits: { messagesPerSecond: 1, burst: 5, maxQueuePerSender: 1_000 } });
    await relay.disconnect(b, "bob");
    const msgs = [];
    for (let i = 0; i < 12; i++) msgs.push(Buffer.from(await ga.encrypt(text(`flood ${i}`))));
    for (const m of msgs) a.write({ $case: "sendMls", value: { mls: m } });
    const results = [];
    for (let i = 0; i < msgs.length; i++) results.push(await a.next("sendResult"));
    const limited = results.filter((r) => r.code === ErrorCode.ERROR_CODE_RATE_LIMITED);
    expect(limited.length).toBeGreaterThanOrEqual(6);
    for (const r of limited) refusedWith(r, ErrorCode.ERROR_CODE_RATE_LIMITED, /^sending too fast: this relay accepts 1 messages per second/);
    const accepted = results.filter((r) => r.status === SendStatus.SEND_STATUS_ACCEPTED).length;
    // bob acked his Welcome: his queue holds exactly what was accepted.
    expect(queuedRows(relay, "bob")).toBe(accepted);
    await stillServed(a);
  });

  it("a sender's share of a queue is capped for MLS messages as for envelopes", async () => {
    const { a, b, ga } = await opsRoom({ limits: { maxQueuePerSender: 2 } });
    await relay.disconnect(b, "bob");
    for (const t of ["1", "2"]) await sendMlsAccepted(a, await ga.encrypt(text(t)));
    refusedWith(await sendMls(a, await ga.encrypt(text("3"))), ErrorCode.ERROR_CODE_QUEUE_FULL, /^you already have 2 messages .* waiting for 'bob'/);
    expect(queuedRows(relay, "bob")).toBe(2);
    await stillServed(a);
  });
});

describe("SendCommit abuse (Welcomes)", () => {
  it("a Welcome without added users, an add without its Welcome, a tree without a Welcome, a non-Welcome: refused, the epoch stays free", async () => {
    const { a, b, ga } = await opsRoom();
    // A real Welcome (of an add alice then drops), and the update she sends instead.
    const fakeWelcome = Buffer.from((await ga.addMembers([await makeKeyPackage(await mlsPerson(mallory))])).welcome!);
    ga.discardCommit();
    const u = await ga.selfUpdate();
    const refused = async (hint: Parameters<typeof sendCommit>[3], detail: RegExp) => {
      const r = await sendCommit(a, u.commit, undefined, hint);
      expect(r).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE });
      expect(r.detail).toMatch(detail);
    };
    // A Welcome nobody is added by: the relay would have no one to deliver it to (or, with a
    // forged hint, would hand it to whoever the hint named).
    await refused({ welcome: fakeWelcome, ratchetTree: Buffer.from("tree") }, /^the commit carries a Welcome but names no added user to deliver it to$/);
    await refused({ added: ["mallory"] }, /^the commit adds mallory but carries no Welcome for them$/);
    await refused({ ratchetTree: Buffer.from("tree") }, /^a ratchet tree is sent only beside a Welcome$/);
    await refused({ added: ["mallory"], welcome: fakeWelcome }, /^the Welcome needs the new epoch's ratchet tree beside it$/);
    await refused({ added: ["mallory"], welcome: Buffer.from(await ga.groupInfo()), ratchetTree: Buffer.from("tree") }, /^the Welcome is a mls_group_info$/);
    await refused({ added: ["mallory"], welcome: Buffer.from("junk"), ratchetTree: Buffer.from("tree") }, /^the Welcome does not decode as an MLS message$/);
    expect(queuedRows(relay, "mallory")).toBe(0);
    await expectNoDelivery(b);
    // None of it took the epoch: the plain update wins it.
    expect(await sendCommit(a, u.commit)).toMatchObject({ accepted: true, epoch: 1 });
    const [c] = await takeMls(b, 1);
    expect(c!.mls.kind).toBe(MlsKind.MLS_KIND_COMMIT);
    await stillServed(a, b);
  });

  it("a commit that takes a group past the relay's max_recipients is refused with a sentence; the group goes on", async () => {
    // Each SendMls is stored once per member: the limit bounds what one message costs the relay.
    const { a, b, m, ga, gb } = await opsRoom({ limits: { maxRecipients: 2 } });
    const pm = await mlsPerson(mallory);
    await must(m, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(pm)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");
    const kps = await must(a, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["mallory"], deviceIds: [] } }, "keyPackageList");
    const add = await ga.addMembers([kps.entries[0]!.keyPackage], { expectUsernames: ["mallory"] });
    const full = /^#ops would have 3 members; this relay allows at most 2, the most one message can reach$/;
    const r = await sendCommit(a, add.commit, undefined, { added: ["mallory"], welcome: add.welcome, ratchetTree: add.ratchetTree });
    expect(r).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS, detail: expect.stringMatching(full) });
    ga.discardCommit();
    // mallory joining by herself (external commit) is refused the same way.
    const j = await MlsGroup.joinExternal(pm.client, await ga.groupInfo(), { expectConversation: "#ops" });
    expect(await sendCommit(m, j.commit, undefined, { added: ["mallory"] })).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS, detail: expect.stringMatching(full) });
    expect(queuedRows(relay, "mallory")).toBe(0);
    await expectNoDelivery(b);
    // Nothing took the epoch: the members go on.
    const u = await gb.selfUpdate();
    expect(await sendCommit(b, u.commit)).toMatchObject({ accepted: true, epoch: 1 });
    gb.confirmCommit();
    await ga.process((await takeMls(a, 1))[0]!.mls.mls);
    await sendMlsAccepted(a, await ga.encrypt(text("still two of us")));
    expect(await gb.process((await takeMls(b, 1))[0]!.mls.mls)).toMatchObject({ kind: "application" });
    await stillServed(a, b, m);
  });

  it("an external join carries no Welcome", async () => {
    const { a, m, ga } = await opsRoom();
    const j = await MlsGroup.joinExternal((await mlsPerson(mallory)).client, await ga.groupInfo(), { expectConversation: "#ops" });
    const r = await sendCommit(m, j.commit, undefined, { welcome: Buffer.from("w"), ratchetTree: Buffer.from("t") });
    expect(r).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: "an external join adds only its sender and carries no Welcome" });
    await stillServed(a, m);
  });
});

describe("protocol versions", () => {
  it("a v1 session's SendMls and a v2 session's SendEnvelope are refused with one sentence each", async () => {
    // A relay that still takes v1 Hellos (the option tests keep): the v1 session's SendMls.
    const { a, b, ga } = await opsRoom({ protocolVersions: [1, 2] });
    const v1 = relay.open(); // replaces mallory's v2 session
    await v1.handshake(mallory, v1.waitMs, { protocolVersion: 1 });
    const msg = await ga.encrypt(text("hi"));
    refusedWith(await sendMls(v1, msg), ErrorCode.ERROR_CODE_BAD_FRAME,
      /^this session speaks protocol v1: SendMls needs a session that says protocol_version 2 in its Hello$/);
    // alice (v2) sends a v1 envelope to bob: refused, nothing stored.
    const r = await a.sendWire((await import("../../src/protocol/codec.js")).envelopeToWire(seal(alice, "dm:alice:bob", [bob], "v1 text")));
    refusedWith(r, ErrorCode.ERROR_CODE_BAD_FRAME, /^this session speaks protocol v2: send MLS messages with SendMls; SendEnvelope is protocol v1$/);
    await expectNoDelivery(b);
    expect(queuedRows(relay, "bob")).toBe(0);
    await stillServed(a, v1);
  });

  it("a v2-only relay tells a v1 client to upgrade in one sentence, and serves v2", async () => {
    relay = await TestRelay.start({ protocolVersions: [2] });
    const s = relay.open();
    s.hello(alice, { protocolVersion: 1 });
    const end = await s.status();
    expect(end.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(end.details).toBe("this relay speaks secure-chat protocol v2: upgrade your client (npm install -g secure-chat@2)");
    expect(end.errorCode).toBe("ERROR_CODE_BAD_FRAME");
    const v2 = await connectV2(relay, alice);
    await stillServed(v2);
  });
});
