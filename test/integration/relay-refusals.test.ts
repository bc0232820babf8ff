// Hostile and broken input against a real relay (PROTOCOL.md §13, §13.3; PROTOCOL.md §8.2): every
// refusal names its reason, a refused message stores nothing, the offending session goes on
// (or, for a broken frame, only that stream ends) and everyone else keeps working. Traffic is
// protocol v2: real MLS groups (test/helpers/mls-talk.ts) through raw sessions.
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus, SessionRequest, type SendResult } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { maxSendMlsBytes } from "../../src/server/mls-send.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { flip } from "../helpers/forge.js";
import { ask, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { expectNoDelivery, queuedRows, sendMls, takeMls } from "../helpers/mls-queues.js";
import { MlsTalk } from "../helpers/mls-talk.js";
import type { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let malloryAsAlice: PrivateIdentity;
let relay: TestRelay;

beforeAll(async () => {
  [alice, bob, carol, malloryAsAlice] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("mallory", "alice"),
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

/** The session still works: a message of `from` in `talk` is accepted, arrives at `to` and opens. */
async function stillWorks(talk: MlsTalk, from: RawSession, fromName: string, to: RawSession, toName: string, text: string): Promise<void> {
  await talk.sendAccepted(from, fromName, text);
  expect(await talk.receive(to, toName, 1)).toEqual([text]);
}

describe("relay refusals", () => {
  it("refuses forged senders: a non-member replaying a member's message (NOT_A_MEMBER), another key under a bound name; a tampered message is refused by its reader", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b]);

    // A genuine message of alice's, replayed by carol's session: the relay authenticates the
    // sender by the session (PROTOCOL.md §8.3), and carol is no member of the DM's group.
    const genuine = await dm.encrypt("alice", "I am alice");
    expectRefused(await sendMls(c, genuine), ErrorCode.ERROR_CODE_NOT_A_MEMBER, /^you are not a member of the group of dm:alice:bob by the relay's record$/);
    // alice's name, mallory's keys: no session at all (the name is bound to alice's key).
    const thief = relay.open();
    await thief.handshake(malloryAsAlice).catch(() => undefined);
    expect((await thief.status()).errorCode).toBe("ERROR_CODE_USERNAME_TAKEN");
    await b.barrier();
    expect(b.has("deliver")).toBe(false);
    expect(queuedRows(relay, "bob")).toBe(0);
    expect(relay.events("send.refused").map((l) => l.code)).toEqual(["ERROR_CODE_NOT_A_MEMBER"]);

    // What the relay cannot see (the MLS content is encrypted and signed inside): a flipped bit
    // is carried, and bob's group refuses it; nothing of it is shown, and bob reads on.
    const tampered = flip(await dm.encrypt("alice", "tampered"), 60);
    expect((await sendMls(a, tampered)).status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    const [t] = await takeMls(b, 1);
    await expect(dm.open("bob", [t!])).rejects.toThrow();
    await stillWorks(dm, a, "alice", b, "bob", "still me");
    // The genuine copy carol replayed still goes through from alice (the refusal stored nothing under its id).
    expect((await sendMls(a, genuine)).status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    expect(await dm.receive(b, "bob", 1)).toEqual(["I am alice"]);
  });

  it("refuses unknown users, unknown groups, others' DMs, a commit as a message and a missing or broken message", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b]);

    // A user the relay does not know has no KeyPackage to claim: nobody can be added by mistake.
    const claim = await must(a, { $case: "claimKeyPackages", value: { requestId: 0, usernames: ["zed"], deviceIds: [] } }, "keyPackageList");
    expect({ entries: claim.entries, missing: claim.missing }).toEqual({ entries: [], missing: ["zed"] });
    // A group the relay does not keep (never registered).
    const elsewhere = await MlsGroup.create((await mlsPerson(alice)).client, "#elsewhere");
    expectRefused(await sendMls(a, await elsewhere.encrypt(Buffer.from("hello?"))), ErrorCode.ERROR_CODE_UNKNOWN_GROUP, /^this relay keeps no group with that id$/);
    // A missing message, and bytes that are no MLS message.
    expectRefused(await sendMls(a, Buffer.alloc(0)), ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, /empty/);
    expectRefused(await sendMls(a, Buffer.from("not mls at all")), ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, /^the MLS message does not decode as an MLS message$/);
    // A commit must come by SendCommit (the first commit for an epoch wins there).
    const upd = await dm.group("alice").selfUpdate();
    expectRefused(await sendMls(a, upd.commit), ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, /^the message is a commit: send commits with SendCommit, not SendMls$/);
    dm.group("alice").discardCommit();
    // A DM between two other users (a GroupInfo made with bob's MLS client): alice's session may not make its group.
    const others = await MlsGroup.create((await mlsPerson(bob)).client, "dm:bob:carol");
    const r = await ask(a, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await others.groupInfo()) } }, "groupInfoResult");
    expect(r.ok ? undefined : { code: r.value.code, detail: r.value.detail })
      .toEqual({ code: ErrorCode.ERROR_CODE_BAD_CONVERSATION, detail: "you are not a party of dm:bob:carol; you cannot create its group" });

    await expectNoDelivery(b);
    await stillWorks(dm, a, "alice", b, "bob", "after all that");
  });

  it("refuses too much text and a commit naming too many users with the relay's own limits", async () => {
    relay = await TestRelay.start({ limits: { maxRecipients: 2, maxTextBytes: 300 } });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b]);

    const welcomeLimits = a.welcome.limits!;
    expect(welcomeLimits.maxRecipients).toBe(2);
    expect(welcomeLimits.maxTextBytes).toBe(300);

    // SendMls carries the text limit plus the MLS overhead (PROTOCOL.md §8.3), no more.
    const max = maxSendMlsBytes({ maxTextBytes: 300 });
    const big = await dm.encrypt("alice", "x".repeat(max));
    expect(big.length).toBeGreaterThan(max);
    expectRefused(await sendMls(a, big), ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, new RegExp(`^the MLS message has ${big.length} bytes; this relay takes at most ${max}$`));
    // A commit's membership hint is bounded (MAX_HINT_NAMES): refused before anything is stored.
    const upd = await dm.group("alice").selfUpdate();
    const names = Array.from({ length: 1001 }, (_, i) => `user${i}`);
    expect(await sendCommit(a, upd.commit, undefined, { removed: names })).toMatchObject({
      accepted: false, code: ErrorCode.ERROR_CODE_MLS_LIMIT, detail: "a commit may name at most 1000 added and removed users",
    });
    dm.group("alice").discardCommit();
    await expectNoDelivery(b);
    await stillWorks(dm, a, "alice", b, "bob", "x".repeat(300));
  });

  it("ends only the offending stream on a malformed frame (INVALID_ARGUMENT); the others keep talking", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b]);
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

    await stillWorks(dm, a, "alice", b, "bob", "we are fine");
    await stillWorks(dm, b, "bob", a, "alice", "so are we");
  });

  it("ends a stream whose frame exceeds max frame bytes with RESOURCE_EXHAUSTED", async () => {
    relay = await TestRelay.start({ limits: { maxFrameBytes: 64 * 1024 } });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const big = await relay.connect(carol);
    const dm = await MlsTalk.start(relay, a, [alice, bob, carol], "#big", [b, big]);
    // A well-formed SendMls of a real member, just too big: the relay never buffers or parses it.
    const mls = await dm.encrypt("carol", "y".repeat(64 * 1024 - 10));
    const bytes = SessionRequest.encode({ frame: { $case: "sendMls", value: { mls } } }).finish();
    expect(bytes.length).toBeGreaterThan(64 * 1024);
    big.writeRaw(bytes);
    const end = await big.status();
    expect(GrpcStatus[end.code]).toBe("RESOURCE_EXHAUSTED");
    expect(end.details).toMatch(/larger than max \(\d+ vs 65536\)/);
    await stillWorks(dm, a, "alice", b, "bob", "small is fine");
    await expectNoDelivery(a);
  });

  it("rate-limits a session with RATE_LIMITED; the session keeps working once tokens refill", async () => {
    let now = Date.now();
    relay = await TestRelay.start({ limits: { messagesPerSecond: 1, burst: 2 }, clock: () => now });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    // bob makes the group (its registration takes two of his tokens, none of alice's).
    const dm = await MlsTalk.start(relay, b, [bob, alice], "dm:alice:bob", [a]);

    await dm.sendAccepted(a, "alice", "1");
    await dm.sendAccepted(a, "alice", "2");
    expectRefused(await dm.send(a, "alice", "3"), ErrorCode.ERROR_CODE_RATE_LIMITED, /^sending too fast: this relay accepts 1 messages per second \(bursts of 2\); wait a moment and send again$/);
    now += 1000;
    await dm.sendAccepted(a, "alice", "4");
    expectRefused(await dm.send(a, "alice", "5"), ErrorCode.ERROR_CODE_RATE_LIMITED, /sending too fast/);
    expect(await dm.open("bob", await b.deliveries(3))).toEqual(["1", "2", "4"]);
    // Another session has its own bucket.
    await dm.sendAccepted(b, "bob", "not limited");
  });

  it("refuses with QUEUE_FULL, naming the recipient, when an offline user's queue is at its cap", async () => {
    relay = await TestRelay.start({ limits: { maxQueuePerUser: 2 } });
    const b0 = await relay.connect(bob);
    const a = await relay.connect(alice);
    const c = await relay.connect(carol);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b0]);
    const toCarol = await MlsTalk.start(relay, a, [alice, carol], "dm:alice:carol", [c]);
    await relay.disconnect(b0, "bob");
    await dm.sendAccepted(a, "alice", "1");
    await dm.sendAccepted(a, "alice", "2");
    expectRefused(await dm.send(a, "alice", "3"), ErrorCode.ERROR_CODE_QUEUE_FULL,
      /^the queue for 'bob' is full \(2 messages wait for delivery, the most this relay keeps\); try again once 'bob' has caught up$/);
    expect(queuedRows(relay, "bob")).toBe(2);
    await stillWorks(toCarol, a, "alice", c, "carol", "carol's queue has room");

    // Once bob reads and acks, there is room again.
    const b = await relay.connect(bob);
    expect(await dm.receive(b, "bob", 2)).toEqual(["1", "2"]);
    await b.barrier();
    await dm.sendAccepted(a, "alice", "3 again");
    expect(await dm.receive(b, "bob", 1)).toEqual(["3 again"]);
  });

  it("never logs message contents or key material", async () => {
    relay = await TestRelay.start();
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b]);
    const secret = "the launch code is 0000";
    const mls = await dm.encrypt("alice", secret);
    expect((await sendMls(a, mls)).status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    expect(await dm.receive(b, "bob", 1)).toEqual([secret]);
    // A refused copy (carol is no member) logs no more of it.
    expect((await sendMls(c, mls)).status).toBe(SendStatus.SEND_STATUS_REFUSED);
    const text = JSON.stringify(relay.logs);
    expect(relay.events("send.accepted")).toHaveLength(1);
    expect(relay.events("send.accepted")[0]).toMatchObject({ user: "alice", mls: "application", stored: 1 });
    const reg = dm.room.registration;
    const tail = (x: Uint8Array): Buffer => Buffer.from(x).subarray(-48);
    for (const needle of [secret, tail(mls).toString("hex"), tail(mls).toString("base64").slice(0, 40),
      tail(reg.welcome).toString("hex"), tail(reg.welcome).toString("base64").slice(0, 40), tail(reg.commit).toString("base64").slice(0, 40),
      tail(reg.ratchetTree).toString("base64").slice(0, 40), tail(reg.groupInfo1).toString("base64").slice(0, 40),
      alice.sigSpki.toString("base64").slice(0, 40), alice.encSpki.toString("hex").slice(0, 40)]) {
      expect(text.includes(needle)).toBe(false);
    }
  });

  it("at the default log level (info) logs no line per message (who sent when), but every refusal", async () => {
    relay = await TestRelay.start({ logLevel: "info" });
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const c = await relay.connect(carol);
    const dm = await MlsTalk.start(relay, a, [alice, bob], "dm:alice:bob", [b]);
    const mls = await dm.encrypt("alice", "hello");
    expect((await sendMls(a, mls)).status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    expect((await sendMls(a, mls)).status).toBe(SendStatus.SEND_STATUS_ACCEPTED); // a resend
    expect(await dm.receive(b, "bob", 1)).toEqual(["hello"]);
    expect((await sendMls(c, mls)).status).toBe(SendStatus.SEND_STATUS_REFUSED);
    expect(relay.events("send.accepted")).toEqual([]);
    expect(relay.events("send.duplicate")).toEqual([]);
    expect(relay.events("send.refused")).toEqual([expect.objectContaining({ user: "carol", code: "ERROR_CODE_NOT_A_MEMBER" })]);
    expect(relay.logs.every((l) => l.level !== "debug")).toBe(true);
  });
});
