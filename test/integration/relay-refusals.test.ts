// Hostile and broken input against a real relay (PROTOCOL.md §9, §10): every refusal names its
// reason, a refused envelope stores nothing, the offending session goes on (or, for a broken
// frame, only that stream ends) and everyone else keeps working.
import { randomBytes } from "node:crypto";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus, SessionRequest, type SendResult } from "../../src/gen/securechat/v1/chat.js";
import { envelopeToWire } from "../../src/protocol/codec.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { flip, forgeEnvelope, resign } from "../helpers/forge.js";
import { openDelivery, seal, type RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let malloryAsAlice: PrivateIdentity;
let malloryAsBob: PrivateIdentity;
let zed: PrivateIdentity; // never connects: unknown to the relay
let relay: TestRelay;

beforeAll(async () => {
  [alice, bob, carol, malloryAsAlice, malloryAsBob, zed] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"),
    fixtureIdentity("mallory", "alice"), fixtureIdentity("mallory", "bob"), fixtureIdentity("dave", "zed"),
  ]);
});

afterEach(async () => {
  await relay?.cleanup();
});

const RANDOM_SAMPLE = "e5d2dca99e9f7154eed08148bd081645503a60941fd56b81a72263632bddd1811530797cc031110d8acd1e90bcf32343";

function expectRefused(r: SendResult, code: ErrorCode, detail: RegExp): void {
  expect({ status: r.status, code: r.code, detail: r.detail })
    .toEqual({ status: SendStatus.SEND_STATUS_REFUSED, code, detail: expect.stringMatching(detail) });
  expect(r.queuedFor).toEqual([]);
}

/** The session still works: a DM from `from` to `to` is accepted and arrives. */
async function stillWorks(from: RawSession, fromId: PrivateIdentity, to: RawSession, toId: PrivateIdentity, text: string): Promise<void> {
  const conv = fromId.username < toId.username ? `dm:${fromId.username}:${toId.username}` : `dm:${toId.username}:${fromId.username}`;
  await from.sendAccepted(seal(fromId, conv, [toId], text));
  const [d] = await to.deliveries(1);
  expect(openDelivery(d!, toId, [fromId]).body.text).toBe(text);
  to.ack([d!.seq]);
}

describe("relay refusals", () => {
  it("refuses forged senders with FORGED_SENDER and a wrong signature with BAD_ENVELOPE", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);

    // A genuine envelope of bob's, replayed by alice's session.
    expectRefused(await a.send(seal(bob, "dm:alice:bob", [alice], "I am bob")), ErrorCode.ERROR_CODE_FORGED_SENDER,
      /claims sender 'bob' but this session is 'alice'/);
    // alice's name, mallory's keys.
    expectRefused(await a.send(seal(malloryAsAlice, "dm:alice:bob", [bob], "I am alice")), ErrorCode.ERROR_CODE_FORGED_SENDER,
      /not the one bound to 'alice'/);
    // alice's name and fingerprint, signed by mallory.
    const honest = seal(alice, "dm:alice:bob", [bob], "tampered");
    expectRefused(await a.send(resign(honest, malloryAsAlice.sigPrivate)), ErrorCode.ERROR_CODE_BAD_ENVELOPE, /signature does not verify/);
    // A flipped bit anywhere signed breaks the signature too.
    expectRefused(await a.send({ ...honest, ciphertext: flip(honest.ciphertext, 7) }), ErrorCode.ERROR_CODE_BAD_ENVELOPE, /signature does not verify/);

    await b.barrier();
    expect(b.has("deliver")).toBe(false);
    expect(relay.events("send.refused").map((l) => l.code)).toEqual([
      "ERROR_CODE_FORGED_SENDER", "ERROR_CODE_FORGED_SENDER", "ERROR_CODE_BAD_ENVELOPE", "ERROR_CODE_BAD_ENVELOPE",
    ]);
    await stillWorks(a, alice, b, bob, "still me");
  });

  it("refuses unknown recipients, stale recipient keys, a wrong suite and a missing header", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);

    expectRefused(await a.send(seal(alice, "dm:alice:zed", [zed], "hello?")), ErrorCode.ERROR_CODE_UNKNOWN_RECIPIENT,
      /no user 'zed' is known to this relay/);
    // Sealed to keys the relay does not have for bob (a stale pin, or a substituted key).
    expectRefused(await a.send(seal(alice, "dm:alice:bob", [malloryAsBob], "hi")), ErrorCode.ERROR_CODE_STALE_RECIPIENT_KEY,
      /^the message was encrypted to a key that 'bob' no longer has on this relay; refresh the directory and check their safety number$/);
    expectRefused(await a.send(forgeEnvelope({ sender: alice, conversationId: "dm:alice:bob", recipients: [alice, bob], suite: "securechat/v0/none" })),
      ErrorCode.ERROR_CODE_BAD_ENVELOPE, /unsupported suite 'securechat\/v0\/none'/);
    expectRefused(await a.sendWire(undefined), ErrorCode.ERROR_CODE_BAD_ENVELOPE, /envelope or its header is missing/);
    const wire = envelopeToWire(seal(alice, "dm:alice:bob", [bob], "short iv"));
    expectRefused(await a.sendWire({ ...wire, header: { ...wire.header!, iv: randomBytes(8) } }), ErrorCode.ERROR_CODE_BAD_ENVELOPE,
      /iv must be 12 bytes/);
    // A DM between two other users: the sender is not among its members.
    expectRefused(await a.send(forgeEnvelope({ sender: alice, conversationId: "dm:bob:carol", recipients: [bob, carol] })),
      ErrorCode.ERROR_CODE_BAD_ENVELOPE, /sender must be one of the recipients|exactly its two members/);

    await stillWorks(a, alice, b, bob, "after all that");
  });

  it("refuses too many recipients and too much text with the relay's own limits", async () => {
    relay = await TestRelay.start({ limits: { maxRecipients: 2, maxTextBytes: 300 } });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    await relay.connect(carol);

    const welcomeLimits = a.welcome.limits!;
    expect(welcomeLimits.maxRecipients).toBe(2);
    expect(welcomeLimits.maxTextBytes).toBe(300);

    expectRefused(await a.send(seal(alice, "lobby", [bob, carol], "to all three")), ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS,
      /^this message has 3 recipients, more than this relay's limit of 2$/);
    expectRefused(await a.send(seal(alice, "dm:alice:bob", [bob], "x".repeat(1000))), ErrorCode.ERROR_CODE_TEXT_TOO_LARGE,
      /^message too large: this relay takes at most 300 bytes of text per message \(this one's encrypted body is 1024 bytes\)$/);
    await stillWorks(a, alice, b, bob, "x".repeat(300));
  });

  it("ends only the offending stream on a malformed frame (INVALID_ARGUMENT); the others keep talking", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const frames: Array<[string, Uint8Array, RegExp]> = [
      // Field 1 (hello), length-delimited, claiming far more bytes than follow.
      ["a truncated length", Buffer.from([0x0a, 0xff, 0xff, 0x03, 0x01, 0x02]), /^malformed frame: /],
      ["an over-long varint", Buffer.alloc(12, 0xff), /^malformed frame: /],
      // A fixed sample of random bytes: fresh random bytes now and then parse as a valid frame
      // (protobuf is permissive), which would make this test flaky rather than stronger.
      ["random bytes", Buffer.from(RANDOM_SAMPLE, "hex"), /^malformed frame: /],
      ["an empty frame", Buffer.alloc(0), /^malformed frame: the frame carries no known request$/],
      ["only an unknown field", Buffer.from([0xf8, 0x07, 0x01]), /^malformed frame: the frame carries no known request$/],
    ];
    for (const [what, bytes, details] of frames) {
      const hostile = await relay.connect(carol);
      hostile.writeRaw(bytes);
      const end = await hostile.status();
      expect({ what, code: GrpcStatus[end.code], details: end.details })
        .toEqual({ what, code: "INVALID_ARGUMENT", details: expect.stringMatching(details) });
      expect(end.errorCode).toBe("ERROR_CODE_BAD_FRAME");
    }
    // Before the handshake too.
    const early = relay.open();
    early.writeRaw(Buffer.alloc(3, 0xff));
    expect(GrpcStatus[(await early.status()).code]).toBe("INVALID_ARGUMENT");

    await stillWorks(a, alice, b, bob, "we are fine");
    await stillWorks(b, bob, a, alice, "so are we");
  });

  it("ends a stream whose frame exceeds max frame bytes with RESOURCE_EXHAUSTED", async () => {
    relay = await TestRelay.start({ limits: { maxFrameBytes: 64 * 1024 } });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const big = await relay.connect(carol);
    // A well-formed SendEnvelope, just too big: the relay never buffers or parses it.
    const env = envelopeToWire(seal(carol, "dm:alice:carol", [alice], "y".repeat(64 * 1024 - 10)));
    const bytes = SessionRequest.encode({ frame: { $case: "send", value: { envelope: env } } }).finish();
    expect(bytes.length).toBeGreaterThan(64 * 1024);
    big.writeRaw(bytes);
    const end = await big.status();
    expect(GrpcStatus[end.code]).toBe("RESOURCE_EXHAUSTED");
    expect(end.details).toMatch(/larger than max \(\d+ vs 65536\)/);
    await stillWorks(a, alice, b, bob, "small is fine");
  });

  it("rate-limits a session with RATE_LIMITED; the session keeps working once tokens refill", async () => {
    let now = Date.now();
    relay = await TestRelay.start({ limits: { messagesPerSecond: 1, burst: 2 }, clock: () => now });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    // Sent-at times follow the relay's fake clock so nothing looks stale to bob.
    const dm = (text: string) => seal(alice, "dm:alice:bob", [bob], text, { sentAtMs: Date.now() });

    await a.sendAccepted(dm("1"));
    await a.sendAccepted(dm("2"));
    expectRefused(await a.send(dm("3")), ErrorCode.ERROR_CODE_RATE_LIMITED, /^sending too fast: this relay accepts 1 messages per second \(bursts of 2\); wait a moment and send again$/);
    now += 1000;
    await a.sendAccepted(dm("4"));
    expectRefused(await a.send(dm("5")), ErrorCode.ERROR_CODE_RATE_LIMITED, /sending too fast/);
    const got = await b.deliveries(3);
    expect(got.map((d) => openDelivery(d, bob, [alice]).body.text)).toEqual(["1", "2", "4"]);
    // Another session has its own bucket.
    await b.sendAccepted(seal(bob, "dm:alice:bob", [alice], "not limited"));
  });

  it("refuses with QUEUE_FULL, naming the recipient, when an offline user's queue is at its cap", async () => {
    relay = await TestRelay.start({ limits: { maxQueuePerUser: 2 } });
    await relay.disconnect(await relay.connect(bob), "bob");
    const a = await relay.connect(alice);
    const c = await relay.connect(carol);
    await a.sendAccepted(seal(alice, "dm:alice:bob", [bob], "1"));
    await a.sendAccepted(seal(alice, "dm:alice:bob", [bob], "2"));
    expectRefused(await a.send(seal(alice, "dm:alice:bob", [bob], "3")), ErrorCode.ERROR_CODE_QUEUE_FULL,
      /^the queue for 'bob' is full \(2 messages wait for delivery, the most this relay keeps\); try again once 'bob' has caught up$/);
    await stillWorks(a, alice, c, carol, "carol's queue has room");

    // Once bob reads and acks, there is room again.
    const b = await relay.connect(bob);
    const got = await b.deliveries(2);
    b.ack(got.map((d) => d.seq));
    await b.barrier();
    await a.sendAccepted(seal(alice, "dm:alice:bob", [bob], "3 again"));
  });

  it("never logs envelope contents or key material", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const secret = "the launch code is 0000";
    const env = seal(alice, "dm:alice:bob", [bob], secret);
    await a.sendAccepted(env);
    await b.deliveries(1);
    await a.send(resign(env, malloryAsAlice.sigPrivate));
    const text = JSON.stringify(relay.logs);
    expect(relay.events("send.accepted")).toHaveLength(1);
    expect(relay.events("send.accepted")[0]).toMatchObject({ user: "alice", conversation: "dm", recipients: 2, stored: 1 });
    for (const needle of [secret, env.ciphertext.toString("hex"), env.ciphertext.toString("base64").slice(0, 40),
      env.signature.toString("hex"), alice.sigSpki.toString("base64").slice(0, 40), alice.encSpki.toString("hex").slice(0, 40)]) {
      expect(text.includes(needle)).toBe(false);
    }
  });
});
