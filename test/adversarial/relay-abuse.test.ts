// The relay against hostile (or merely unlucky) authenticated users: resends of accepted ids
// (PROTOCOL.md §7.4), mailbox floods, disk budgets, lobby and wrap checks, timestamps (§9).
// Each test runs a real relay with small limits and speaks raw frames (test/helpers/raw-session).
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus, type SendResult } from "../../src/gen/securechat/v1/chat.js";
import { envelopeToWire } from "../../src/protocol/codec.js";
import type { SealedEnvelope } from "../../src/protocol/envelope.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
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
