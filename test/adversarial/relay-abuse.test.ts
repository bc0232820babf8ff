// The relay against hostile (or merely unlucky) authenticated users: resends of accepted ids
// (PROTOCOL.md §7.4), mailbox floods, disk budgets, lobby and wrap checks, timestamps (§9).
// Each test runs a real relay with small limits and speaks raw frames (test/helpers/raw-session).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus, type SendResult } from "../../src/gen/securechat/v1/chat.js";
import { envelopeToWire } from "../../src/protocol/codec.js";
import type { SealedEnvelope } from "../../src/protocol/envelope.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { resign } from "../helpers/forge.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { openDelivery, seal, type RawSession } from "../helpers/raw-session.js";
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

/** Writes a SendEnvelope without waiting for (or ever reading) its answer. */
function sendBlind(s: RawSession, e: SealedEnvelope): void {
  s.write({ $case: "send", value: { envelope: envelopeToWire(e) } });
}

/** Texts of everything delivered to `s` until `n` arrived; then checks nothing more comes. */
async function deliveredTexts(s: RawSession, me: PrivateIdentity, from: PrivateIdentity[], n: number): Promise<string[]> {
  const got = await s.deliveries(n);
  await s.barrier();
  expect(s.has("deliver")).toBe(false);
  return got.map((d) => openDelivery(d, me, from).body.text);
}

describe("a resend of an accepted id is answered ACCEPTED before any limit (§7.4)", () => {
  it("after the session's rate bucket is empty", async () => {
    const now = Date.now();
    // A frozen clock: the bucket never refills during the test.
    const relay = await relayWith({ limits: { messagesPerSecond: 1, burst: 2 }, clock: () => now });
    const b = await relay.connect(bob);
    const a = await relay.connect(alice);
    const first = seal(alice, "dm:alice:bob", [bob], "one", { sentAtMs: now });
    expectAccepted(await a.send(first));
    expectAccepted(await a.send(seal(alice, "dm:alice:bob", [bob], "two", { sentAtMs: now })));
    expectRefused(await a.send(seal(alice, "dm:alice:bob", [bob], "three", { sentAtMs: now })), ErrorCode.ERROR_CODE_RATE_LIMITED, /sending too fast/);
    // The answer to "one" was lost, say: the client sends it again. It is not "too fast".
    expectAccepted(await a.send(first));
    expect(await deliveredTexts(b, bob, [alice], 2)).toEqual(["one", "two"]);
  });

  it("when the answer was lost with the connection: on the next session, and after a restart, at a full queue", async () => {
    const now = Date.now();
    const relay = await relayWith({ limits: { messagesPerSecond: 1, burst: 1, maxQueuePerUser: 2 }, clock: () => now });
    await relay.disconnect(await relay.connect(bob), "bob");
    const a1 = await relay.connect(alice);
    const lost = seal(alice, "dm:alice:bob", [bob], "answer lost", { sentAtMs: now });
    a1.pauseReading(true); // the SendResult never reaches the client
    sendBlind(a1, lost);
    await relay.waitForLog("send.accepted", (l) => l.user === "alice");
    await relay.disconnect(a1, "alice");

    const a2 = await relay.connect(alice);
    expectAccepted(await a2.send(seal(alice, "dm:alice:bob", [bob], "new", { sentAtMs: now })));
    // The bucket is empty (burst 1) and bob's queue is full (2): still the resend is ACCEPTED.
    expectRefused(await a2.send(seal(alice, "dm:alice:bob", [bob], "over", { sentAtMs: now })), ErrorCode.ERROR_CODE_RATE_LIMITED, /too fast/);
    expectAccepted(await a2.send(lost));

    await relay.restart();
    const a3 = await relay.connect(alice);
    expectRefused(await a3.send(seal(alice, "dm:alice:bob", [bob], "full", { sentAtMs: now })), ErrorCode.ERROR_CODE_QUEUE_FULL, /queue for 'bob' is full/);
    expectAccepted(await a3.send(lost));
    expectRefused(await a3.send(seal(alice, "dm:alice:bob", [bob], "later", { sentAtMs: now })), ErrorCode.ERROR_CODE_RATE_LIMITED, /too fast/);
    expectAccepted(await a3.send(lost));

    // Stored once: bob gets each message once.
    const b = await relay.connect(bob);
    expect(await deliveredTexts(b, bob, [alice], 2)).toEqual(["answer lost", "new"]);
  });

  it("while the first copy is still being admitted: both get the first copy's answer, one is stored", async () => {
    const now = Date.now();
    const relay = await relayWith({ limits: { messagesPerSecond: 1, burst: 1 }, clock: () => now });
    const b = await relay.connect(bob);
    const a = await relay.connect(alice);
    const e = seal(alice, "dm:alice:bob", [bob], "twice in a row", { sentAtMs: now });
    sendBlind(a, e);
    sendBlind(a, e);
    const id = Buffer.from(e.header.messageId);
    const answers = [
      await a.next("sendResult", (r) => Buffer.from(r.messageId).equals(id)),
      await a.next("sendResult", (r) => Buffer.from(r.messageId).equals(id)),
    ];
    for (const r of answers) expectAccepted(r);
    expect(await deliveredTexts(b, bob, [alice], 1)).toEqual(["twice in a row"]);
  });
});

describe("mailbox flood: each sender gets a bounded share of a recipient's queue (§9)", () => {
  it("a flooder is refused for its own share, naming the recipient; honest senders still get through", async () => {
    const relay = await relayWith({ limits: { messagesPerSecond: 10_000, burst: 10_000, maxQueuePerUser: 10, maxQueuePerSender: 3 } });
    await relay.disconnect(await relay.connect(bob), "bob");
    const m = await relay.connect(mallory);
    const refusals: SendResult[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await m.send(seal(mallory, "dm:bob:mallory", [bob], `spam ${i}`));
      if (r.status !== SendStatus.SEND_STATUS_ACCEPTED) refusals.push(r);
    }
    expect(refusals).toHaveLength(9);
    expectRefused(refusals[0]!, ErrorCode.ERROR_CODE_QUEUE_FULL,
      /^you already have 3 messages \(\d+ KiB\) waiting for 'bob', the most one sender may have in a queue on this relay \(3 messages, 32 MiB\); try again once 'bob' has caught up$/);
    // alice and carol are not locked out of bob's mailbox.
    const a = await relay.connect(alice);
    const c = await relay.connect(carol);
    for (let i = 0; i < 3; i++) expectAccepted(await a.send(seal(alice, "dm:alice:bob", [bob], `alice ${i}`)));
    expectAccepted(await c.send(seal(carol, "dm:bob:carol", [bob], "carol")));
    const b = await relay.connect(bob);
    expect(b.welcome.queued).toBe(7);
  });

  it("counts bytes too: one sender's share, and the recipient's whole queue", async () => {
    const relay = await relayWith({
      limits: { messagesPerSecond: 10_000, burst: 10_000, maxQueueBytesPerSender: 12 * 1024, maxQueueBytesPerUser: 24 * 1024 },
    });
    await relay.disconnect(await relay.connect(bob), "bob");
    const m = await relay.connect(mallory);
    const big = (who: PrivateIdentity, conv: string, i: number) => seal(who, conv, [bob], `${i} ${"x".repeat(4000)}`);
    // Each envelope is about 5 KiB: two fit in a 12 KiB share, the third does not.
    expectAccepted(await m.send(big(mallory, "dm:bob:mallory", 1)));
    expectAccepted(await m.send(big(mallory, "dm:bob:mallory", 2)));
    expectRefused(await m.send(big(mallory, "dm:bob:mallory", 3)), ErrorCode.ERROR_CODE_QUEUE_FULL, /^you already have 2 messages \(\d+ KiB\) waiting for 'bob', the most one sender may have in a queue on this relay \(1000 messages, 12 KiB\)/);
    // alice gets her own share; carol, with nothing queued, is refused once bob's 24 KiB are used.
    const a = await relay.connect(alice);
    expectAccepted(await a.send(big(alice, "dm:alice:bob", 1)));
    expectAccepted(await a.send(big(alice, "dm:alice:bob", 2)));
    const c = await relay.connect(carol);
    expectRefused(await c.send(big(carol, "dm:bob:carol", 1)), ErrorCode.ERROR_CODE_QUEUE_FULL,
      /^the queue for 'bob' is full \(2\d KiB wait for delivery, and this relay keeps at most 24 KiB per user\); try again once 'bob' has caught up$/);
    // Once bob reads, there is room again, for both.
    const b = await relay.connect(bob);
    const got = await b.deliveries(4);
    b.ack(got.map((d) => d.seq));
    await b.barrier();
    await relay.disconnect(b, "bob");
    expectAccepted(await a.send(big(alice, "dm:alice:bob", 4)));
    expectAccepted(await m.send(big(mallory, "dm:bob:mallory", 4)));
  });
});

describe("lobby and wraps (§9)", () => {
  it("a lobby message is stored only for users online now, whatever it names", async () => {
    // No grace: alice and carol left a moment ago (the grace is its own test below).
    const relay = await relayWith({ limits: { messagesPerSecond: 10_000, burst: 10_000, lobbyGraceMs: 0 } });
    await relay.disconnect(await relay.connect(alice), "alice");
    await relay.disconnect(await relay.connect(carol), "carol");
    const b = await relay.connect(bob);
    const m = await relay.connect(mallory);
    for (let i = 0; i < 5; i++) {
      const r = await m.send(seal(mallory, "lobby", [alice, bob, carol], `lobby ${i} ${"x".repeat(2000)}`));
      expectAccepted(r);
      expect(r.queuedFor).toEqual([]);
    }
    expect(await deliveredTexts(b, bob, [mallory], 5)).toHaveLength(5);
    for (const who of [alice, carol]) {
      const s = await relay.connect(who);
      expect(s.welcome.queued).toBe(0);
    }
  });

  it("within the grace, a reader who just dropped off (or a relay that just restarted) still gets lobby messages; long gone ones do not", async () => {
    let now = Date.now();
    const dataDir = mkdtempSync(join(tmpdir(), "sc-lobby-grace-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const options = { dataDir, clock: () => now, limits: { messagesPerSecond: 10_000, burst: 10_000, lobbyGraceMs: 60_000 } };
    const relay = await relayWith(options);
    await relay.disconnect(await relay.connect(alice), "alice");
    await relay.disconnect(await relay.connect(carol), "carol");
    now += 30_000; // alice and carol left 30 s ago: within the grace
    let m = await relay.connect(mallory);
    expect((await m.send(seal(mallory, "lobby", [alice, carol], "a moment ago"))).queuedFor.sort()).toEqual(["alice", "carol"]);
    now += 60_000; // 90 s: beyond it
    expect((await m.send(seal(mallory, "lobby", [alice, carol], "long gone"))).queuedFor).toEqual([]);
    // A relay restarted on the same data dir cannot know who was online before: for one grace
    // period every named recipient counts (a lobby message resent after the restart is kept).
    await relay.restart();
    m = await relay.connect(mallory);
    expect((await m.send(seal(mallory, "lobby", [alice, carol], "after the restart"))).queuedFor.sort()).toEqual(["alice", "carol"]);
    now += 61_000;
    expect((await m.send(seal(mallory, "lobby", [alice, carol], "later"))).queuedFor).toEqual([]);
  });

  it("a wrap must be exactly the recipient's RSA modulus length", async () => {
    const relay = await relayWith({});
    const b = await relay.connect(bob);
    const a = await relay.connect(alice);
    const modulus = (bob.encKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8;
    expect(modulus).toBeGreaterThanOrEqual(256);
    const honest = seal(alice, "dm:alice:bob", [bob], "padded wrap");
    for (const size of [1024, modulus + 1, 256 === modulus ? 257 : 256]) {
      const wraps = honest.wraps.map((w) => (w.username === "bob" ? { ...w, wrappedKey: Buffer.concat([w.wrappedKey, Buffer.alloc(1024)]).subarray(0, size) } : w));
      const e = resign({ ...honest, wraps, header: { ...honest.header, messageId: randomBytes(16) } }, alice.sigPrivate);
      expectRefused(await a.send(e), ErrorCode.ERROR_CODE_BAD_ENVELOPE,
        new RegExp(`^the key wrap for 'bob' is ${size} bytes, but an RSA-OAEP wrap for their ${modulus * 8}-bit key is exactly ${modulus} bytes$`));
    }
    expectAccepted(await a.send(honest));
    expect(await deliveredTexts(b, bob, [alice], 1)).toEqual(["padded wrap"]);
  });
});

describe("sent_at is checked against the relay's clock (§9)", () => {
  it("refuses more than 10 minutes ahead or older than the retention, with BAD_TIMESTAMP and a sentence", async () => {
    const now = Date.now();
    const relay = await relayWith({ clock: () => now, limits: { retentionMs: 7 * 86_400_000 } });
    const b = await relay.connect(bob);
    const a = await relay.connect(alice);
    const at = (ms: number, text: string) => seal(alice, "dm:alice:bob", [bob], text, { sentAtMs: now + ms });
    expectRefused(await a.send(at(11 * 60_000, "future")), ErrorCode.ERROR_CODE_BAD_TIMESTAMP,
      /^the message is dated 11 minutes ahead of the relay's clock \(at most 10 minutes are allowed\); check this computer's clock$/);
    expectRefused(await a.send(at(-8 * 86_400_000, "past")), ErrorCode.ERROR_CODE_BAD_TIMESTAMP,
      /^the message is dated 8 days before the relay's clock, older than the 7 days this relay keeps messages \(this computer's clock is wrong, or the message waited too long to be sent\)$/);
    expectAccepted(await a.send(at(9 * 60_000, "a little ahead")));
    expectAccepted(await a.send(at(-6 * 86_400_000, "from last week's outbox")));
    // (bob's client would refuse the first itself: more than 5 minutes ahead of its clock, §7.3.)
    const got = await b.deliveries(2);
    expect(openDelivery(got[1]!, bob, [alice]).body.text).toBe("from last week's outbox");
  });
});
