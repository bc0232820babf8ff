// The relay against hostile (or merely unlucky) authenticated users, protocol v2: resends of
// accepted ids (PROTOCOL.md §8.4; PROTOCOL.md §8.3: an MLS message's id is its hash), mailbox
// floods, lobby storage, and strict decoding of what is stored (§9). Each test runs a real relay
// with small limits and speaks raw v2 frames (test/helpers/raw-session, mls-queues) carrying
// application messages of real MLS groups (mls-raw-groups.ts).
//
// Retired with the v1 wire: "a wrap must be exactly the recipient's RSA modulus length" (v2 has
// no RSA wraps; its counterpart, bytes added to or cut from an MLS message, is the last test
// here) and "sent_at is checked against the relay's clock" (v2's sent_at travels encrypted in
// the application data; the relay's bound on stale messages is the epoch window, tested in
// relay-mls-queues-abuse.test.ts "a message for an old epoch is refused").
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus, type SendResult } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { liveGroup, type LiveGroup } from "../helpers/mls-raw-groups.js";
import { mlsId, sendMls, takeMls, waitForEmptyQueue } from "../helpers/mls-queues.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay, type TestRelayOptions } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let mallory: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, bob, carol, mallory] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("mallory"),
  ]);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relayWith(options: TestRelayOptions): Promise<TestRelay> {
  const relay = await TestRelay.start(options);
  cleanups.push(() => relay.cleanup());
  return relay;
}

function expectAccepted(r: SendResult): void {
  expect({ status: r.status, detail: r.detail }).toEqual({ status: SendStatus.SEND_STATUS_ACCEPTED, detail: "" });
}

function expectRefused(r: SendResult, code: ErrorCode, detail: RegExp): void {
  expect(r.status).toBe(SendStatus.SEND_STATUS_REFUSED);
  expect(r.code).toBe(code);
  expect(r.detail).toMatch(detail);
}

/** Writes a SendMls without waiting for (or ever reading) its answer. */
function sendBlind(s: RawSession, mls: Uint8Array): void {
  s.write({ $case: "sendMls", value: { mls: Buffer.from(mls) } });
}

/** Texts of everything delivered to `s` (as `me`, a member of `g`) until `n` arrived; then checks nothing more comes. */
async function deliveredTexts(s: RawSession, me: string, g: LiveGroup, n: number): Promise<string[]> {
  const got = await takeMls(s, n);
  await s.barrier();
  expect(s.has("deliver")).toBe(false);
  const out: string[] = [];
  for (const d of got) out.push((await g.read(me, d.mls.mls)).text);
  return out;
}

/** Alice and bob online, their DM's group registered (bob took its Welcome). */
async function dm(relay: TestRelay, beforeRequest?: () => void): Promise<{ a: RawSession; b: RawSession; g: LiveGroup }> {
  const b = await relay.connect(bob);
  const a = await relay.connect(alice);
  const g = await liveGroup(relay, a, [alice, bob], "dm:alice:bob", { bob: b }, beforeRequest);
  return { a, b, g };
}

describe("a resend of an accepted id is answered ACCEPTED before any limit (§7.4)", () => {
  it("after the session's rate bucket is empty", async () => {
    let now = Date.now();
    // A clock frozen once the group is made: the bucket never refills during the test.
    const relay = await relayWith({ limits: { messagesPerSecond: 1, burst: 2 }, clock: () => now });
    const { a, b, g } = await dm(relay);
    now += 60_000; // registering the group took tokens: a full bucket again, then frozen
    const first = await g.say("alice", "one");
    expectAccepted(await sendMls(a, first));
    expectAccepted(await sendMls(a, await g.say("alice", "two")));
    expectRefused(await sendMls(a, await g.say("alice", "three")), ErrorCode.ERROR_CODE_RATE_LIMITED, /sending too fast/);
    // The answer to "one" was lost, say: the client sends it again. It is not "too fast".
    expectAccepted(await sendMls(a, first));
    expect(await deliveredTexts(b, "bob", g, 2)).toEqual(["one", "two"]);
  });

  it("when the answer was lost with the connection: on the next session, and after a restart, at a full queue", async () => {
    let now = Date.now();
    const relay = await relayWith({ limits: { messagesPerSecond: 1, burst: 1, maxQueuePerUser: 2 }, clock: () => now });
    const { a: a0, b: b0, g } = await dm(relay, () => (now += 1_000));
    await relay.disconnect(b0, "bob");
    await relay.disconnect(a0, "alice");
    now += 60_000; // then frozen
    const a1 = await relay.connect(alice);
    const lost = await g.say("alice", "answer lost");
    a1.pauseReading(true); // the SendResult never reaches the client
    sendBlind(a1, lost);
    await relay.waitForLog("send.accepted", (l) => l.user === "alice");
    await relay.disconnect(a1, "alice");

    // The device's bucket (burst 1) continues across its sessions (§13.2): a second refills it.
    now += 1_000;
    const a2 = await relay.connect(alice);
    expectAccepted(await sendMls(a2, await g.say("alice", "new")));
    // The bucket is empty (burst 1) and bob's queue is full (2): still the resend is ACCEPTED.
    expectRefused(await sendMls(a2, await g.say("alice", "over")), ErrorCode.ERROR_CODE_RATE_LIMITED, /too fast/);
    expectAccepted(await sendMls(a2, lost));

    await relay.restart();
    const a3 = await relay.connect(alice);
    expectRefused(await sendMls(a3, await g.say("alice", "full")), ErrorCode.ERROR_CODE_QUEUE_FULL, /queue for 'bob' is full/);
    expectAccepted(await sendMls(a3, lost));
    expectRefused(await sendMls(a3, await g.say("alice", "later")), ErrorCode.ERROR_CODE_RATE_LIMITED, /too fast/);
    expectAccepted(await sendMls(a3, lost));

    // Stored once: bob gets each message once.
    const b = await relay.connect(bob);
    expect(await deliveredTexts(b, "bob", g, 2)).toEqual(["answer lost", "new"]);
  });

  it("while the first copy is still being admitted: both get the first copy's answer, one is stored", async () => {
    let now = Date.now();
    const relay = await relayWith({ limits: { messagesPerSecond: 1, burst: 1 }, clock: () => now });
    const { a, b, g } = await dm(relay, () => (now += 1_000));
    now += 60_000; // then frozen
    const e = await g.say("alice", "twice in a row");
    sendBlind(a, e);
    sendBlind(a, e);
    const id = mlsId(e);
    const answers = [
      await a.next("sendResult", (r) => Buffer.from(r.messageId).equals(id)),
      await a.next("sendResult", (r) => Buffer.from(r.messageId).equals(id)),
    ];
    for (const r of answers) expectAccepted(r);
    expect(await deliveredTexts(b, "bob", g, 1)).toEqual(["twice in a row"]);
  });
});

describe("mailbox flood: each sender gets a bounded share of a recipient's queue (§9)", () => {
  /** bob's DMs with mallory, alice and carol, registered while he was online (he took the Welcomes), then bob offline. */
  async function bobsDms(relay: TestRelay) {
    const b = await relay.connect(bob);
    const [m, a, c] = [await relay.connect(mallory), await relay.connect(alice), await relay.connect(carol)];
    const gm = await liveGroup(relay, m, [mallory, bob], "dm:bob:mallory", { bob: b });
    const ga = await liveGroup(relay, a, [alice, bob], "dm:alice:bob", { bob: b });
    const gc = await liveGroup(relay, c, [carol, bob], "dm:bob:carol", { bob: b });
    await relay.disconnect(b, "bob");
    return { m, a, c, gm, ga, gc };
  }

  it("a flooder is refused for its own share, naming the recipient; honest senders still get through", async () => {
    const relay = await relayWith({ limits: { messagesPerSecond: 10_000, burst: 10_000, maxQueuePerUser: 10, maxQueuePerSender: 3 } });
    const { m, a, c, gm, ga, gc } = await bobsDms(relay);
    const refusals: SendResult[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await sendMls(m, await gm.say("mallory", `spam ${i}`));
      if (r.status !== SendStatus.SEND_STATUS_ACCEPTED) refusals.push(r);
    }
    expect(refusals).toHaveLength(9);
    expectRefused(refusals[0]!, ErrorCode.ERROR_CODE_QUEUE_FULL,
      /^you already have 3 messages \(\d+ KiB\) waiting for 'bob', the most one sender may have in a queue on this relay \(3 messages, 32 MiB\); try again once 'bob' has caught up$/);
    // alice and carol are not locked out of bob's mailbox.
    for (let i = 0; i < 3; i++) expectAccepted(await sendMls(a, await ga.say("alice", `alice ${i}`)));
    expectAccepted(await sendMls(c, await gc.say("carol", "carol")));
    const b = await relay.connect(bob);
    expect(b.welcome.queued).toBe(7);
  });

  it("counts bytes too: one sender's share, and the recipient's whole queue", async () => {
    const relay = await relayWith({
      limits: { messagesPerSecond: 10_000, burst: 10_000, maxQueueBytesPerSender: 12 * 1024, maxQueueBytesPerUser: 24 * 1024 },
    });
    const { m, a, c, gm, ga, gc } = await bobsDms(relay);
    const big = (g: LiveGroup, who: string, i: number) => g.say(who, `${i} ${"x".repeat(5000)}`);
    // Each message is about 5 KiB: two fit in a 12 KiB share, the third does not.
    expectAccepted(await sendMls(m, await big(gm, "mallory", 1)));
    expectAccepted(await sendMls(m, await big(gm, "mallory", 2)));
    expectRefused(await sendMls(m, await big(gm, "mallory", 3)), ErrorCode.ERROR_CODE_QUEUE_FULL, /^you already have 2 messages \(\d+ KiB\) waiting for 'bob', the most one sender may have in a queue on this relay \(1000 messages, 12 KiB\)/);
    // alice gets her own share; carol, with nothing queued, is refused once bob's 24 KiB are used.
    expectAccepted(await sendMls(a, await big(ga, "alice", 1)));
    expectAccepted(await sendMls(a, await big(ga, "alice", 2)));
    expectRefused(await sendMls(c, await big(gc, "carol", 1)), ErrorCode.ERROR_CODE_QUEUE_FULL,
      /^the queue for 'bob' is full \(2\d KiB wait for delivery, and this relay keeps at most 24 KiB per user\); try again once 'bob' has caught up$/);
    // Once bob reads, there is room again, for both.
    const b = await relay.connect(bob);
    await takeMls(b, 4);
    await waitForEmptyQueue(relay, "bob");
    await relay.disconnect(b, "bob");
    expectAccepted(await sendMls(a, await big(ga, "alice", 4)));
    expectAccepted(await sendMls(m, await big(gm, "mallory", 4)));
  });
});

describe("the lobby (§9)", () => {
  /** The lobby's group of alice, bob, carol and mallory, made while all were online (each took its Welcome). */
  async function lobby(relay: TestRelay) {
    const s = { alice: await relay.connect(alice), bob: await relay.connect(bob), carol: await relay.connect(carol), mallory: await relay.connect(mallory) };
    const g = await liveGroup(relay, s.mallory, [mallory, alice, bob, carol], "lobby", s);
    return { s, g };
  }

  it("a lobby message is stored only for members online now, whoever the group holds", async () => {
    // No grace: alice and carol left a moment ago (the grace is its own test below).
    const relay = await relayWith({ limits: { messagesPerSecond: 10_000, burst: 10_000, lobbyGraceMs: 0 } });
    const { s, g } = await lobby(relay);
    await relay.disconnect(s.alice, "alice");
    await relay.disconnect(s.carol, "carol");
    for (let i = 0; i < 5; i++) {
      const r = await sendMls(s.mallory, await g.say("mallory", `lobby ${i} ${"x".repeat(2000)}`));
      expectAccepted(r);
      expect(r.queuedFor).toEqual([]);
    }
    expect(await deliveredTexts(s.bob, "bob", g, 5)).toHaveLength(5);
    for (const who of [alice, carol]) {
      const again = await relay.connect(who);
      expect(again.welcome.queued).toBe(0);
    }
  });

  it("within the grace, a reader who just dropped off (or a relay that just restarted) still gets lobby messages; long gone ones do not", async () => {
    let now = Date.now();
    const dataDir = mkdtempSync(join(tmpdir(), "sc-lobby-grace-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const options = { dataDir, clock: () => now, limits: { messagesPerSecond: 10_000, burst: 10_000, lobbyGraceMs: 60_000 } };
    const relay = await relayWith(options);
    const { s, g } = await lobby(relay);
    await relay.disconnect(s.alice, "alice");
    await relay.disconnect(s.carol, "carol");
    now += 30_000; // alice and carol left 30 s ago: within the grace
    let m = s.mallory;
    expect((await sendMls(m, await g.say("mallory", "a moment ago"))).queuedFor.sort()).toEqual(["alice", "carol"]);
    now += 60_000; // 90 s: beyond it
    expect((await sendMls(m, await g.say("mallory", "long gone"))).queuedFor).toEqual([]);
    // A relay restarted on the same data dir cannot know who was online before: for one grace
    // period every member counts (a lobby message resent after the restart is kept).
    await relay.restart();
    m = await relay.connect(mallory);
    expect((await sendMls(m, await g.say("mallory", "after the restart"))).queuedFor.sort()).toEqual(["alice", "bob", "carol"]);
    now += 61_000;
    expect((await sendMls(m, await g.say("mallory", "later"))).queuedFor).toEqual([]);
  });
});

describe("what the relay stores decodes strictly (§9)", () => {
  it("an MLS message with bytes added or cut is refused with a sentence; the honest one is stored once", async () => {
    const relay = await relayWith({});
    const { a, b, g } = await dm(relay);
    const honest = await g.say("alice", "exactly these bytes");
    for (const bytes of [Buffer.concat([honest, Buffer.alloc(1024)]), Buffer.concat([honest, Buffer.from([0])]), Buffer.from(honest).subarray(0, honest.length - 1)]) {
      const r = await sendMls(a, bytes);
      expectRefused(r, ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, /^the MLS message (has \d+ trailing bytes|does not decode as an MLS message)$/);
    }
    expectAccepted(await sendMls(a, honest));
    expect(await deliveredTexts(b, "bob", g, 1)).toEqual(["exactly these bytes"]);
  });
});
