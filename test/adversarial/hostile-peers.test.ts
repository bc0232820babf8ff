// Hostile peers (PROTOCOL.md §1): mallory attacks through a real relay while alice and bob, two
// real ChatClients, keep talking. Each attack is refused with its specific error, and the honest
// conversation around it loses nothing and shows nothing twice.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus, SessionRequest } from "../../src/gen/securechat/v1/chat.js";
import { padBody } from "../../src/protocol/envelope.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { forgeEnvelope } from "../helpers/forge.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { seal } from "../helpers/raw-session.js";
import { TestRelay, type TestRelayOptions } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let mallory: PrivateIdentity;
let malloryAsAlice: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, bob, mallory, malloryAsAlice] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("mallory"), fixtureIdentity("mallory", "alice"),
  ]);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Scene { relay: TestRelay; a: TestClient; b: TestClient }

/** A relay with alice and bob connected and able to reach each other. */
async function scene(options: TestRelayOptions = {}): Promise<Scene> {
  const relay = await TestRelay.start(options);
  cleanups.push(() => relay.cleanup());
  const dir = mkdtempSync(join(tmpdir(), "sc-peers-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const a = await TestClient.start(alice, relay.running.port, { dir });
  const b = await TestClient.start(bob, relay.running.port, { dir });
  cleanups.push(() => a.close(), () => b.close());
  await waitUntil(() => a.client.verifyInfo("bob").ok && b.client.verifyInfo("alice").ok, "alice and bob know each other's keys");
  return { relay, a, b };
}

/** alice sends n DMs to bob; resolves when bob shows each exactly once (nothing lost for honest users). */
async function honestExchange({ a, b }: Scene, tag: string, n = 5): Promise<void> {
  for (let i = 0; i < n; i++) expect(a.client.send("dm:alice:bob", `${tag} ${i}`).ok).toBe(true);
  const got = await waitUntil(() => {
    const m = b.messages().filter((x) => x.text.startsWith(`${tag} `));
    return m.length >= n ? m : undefined;
  }, `bob receives "${tag}"`, 15_000);
  expect(got.map((m) => m.text)).toEqual(Array.from({ length: n }, (_, i) => `${tag} ${i}`));
}

describe("impersonation", () => {
  it("claiming a bound name with another key is refused (ALREADY_EXISTS)", async () => {
    const s = await scene();
    const m = s.relay.open();
    await m.handshake(malloryAsAlice).catch(() => undefined);
    const end = await m.status();
    expect(end.code).toBe(GrpcStatus.ALREADY_EXISTS);
    expect(end.details).toMatch(/username 'alice' is taken by another key/);
    await honestExchange(s, "after the claim");
  });

  it("forging the sender (another's name, or one's own name with another's key) is refused (FORGED_SENDER)", async () => {
    const s = await scene();
    const m = await s.relay.connect(mallory);
    const asAlice = forgeEnvelope({ sender: malloryAsAlice, conversationId: "dm:alice:bob", recipients: [alice, bob], sentAtMs: Date.now() });
    const r1 = await m.send(asAlice);
    expect([r1.status, r1.code]).toEqual([SendStatus.SEND_STATUS_REFUSED, ErrorCode.ERROR_CODE_FORGED_SENDER]);
    const own = seal(mallory, "dm:bob:mallory", [bob], "hi");
    const r2 = await m.send({ ...own, header: { ...own.header, senderSigFpr: alice.sigFpr } });
    expect([r2.status, r2.code]).toEqual([SendStatus.SEND_STATUS_REFUSED, ErrorCode.ERROR_CODE_FORGED_SENDER]);
    await honestExchange(s, "after the forgery");
    expect(s.b.messages().filter((x) => x.from !== "alice")).toEqual([]);
  });
});

describe("broken frames", () => {
  it("a truncated frame ends that stream with INVALID_ARGUMENT; everyone else carries on", async () => {
    const s = await scene();
    const m = await s.relay.connect(mallory);
    const frame = SessionRequest.encode({ frame: { $case: "send", value: { envelope: { header: undefined, ciphertext: Buffer.alloc(300), tag: Buffer.alloc(16), wraps: [], signature: Buffer.alloc(64) } } } }).finish();
    m.writeRaw(frame.subarray(0, frame.length - 40));
    const end = await m.status();
    expect(end.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(end.details).toMatch(/^malformed frame/);
    await honestExchange(s, "after the truncated frame");
  });

  it("an oversized frame is refused with RESOURCE_EXHAUSTED; everyone else carries on", async () => {
    const s = await scene({ limits: { maxFrameBytes: 64 * 1024 } });
    const m = await s.relay.connect(mallory);
    m.writeRaw(SessionRequest.encode({ frame: { $case: "ping", value: { nonce: 1 } } }).finish());
    m.writeRaw(Buffer.alloc(200 * 1024, 0x0a));
    expect((await m.status()).code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    await honestExchange(s, "after the oversized frame");
  });
});

describe("hostile content", () => {
  it("invalid UTF-8 (validly signed by mallory) is refused by bob's client; the conversation goes on", async () => {
    const s = await scene();
    const m = await s.relay.connect(mallory);
    const mb = s.b.client.verifyInfo("mallory"); // bob learns mallory's keys when her envelope arrives
    expect(mb.ok).toBe(false);
    const raw = Buffer.from(padBody({ kind: "text", text: "xxxx" }));
    raw[5] = 0xc3; raw[6] = 0x28; // an invalid two-byte sequence
    const r = await m.send(forgeEnvelope({ sender: mallory, conversationId: "dm:bob:mallory", recipients: [bob, mallory], plaintext: raw, sentAtMs: Date.now() }));
    expect(r.status).toBe(SendStatus.SEND_STATUS_ACCEPTED); // the relay cannot see content
    await s.b.waitFor((e) => e.type === "refused" && e.from === "mallory", "bob refuses it");
    expect(s.b.messages().filter((x) => x.from === "mallory")).toEqual([]);
    await honestExchange(s, "after invalid UTF-8");
  });

  it("escape and bidi sequences in text are neutralised; in names they are refused at the door", async () => {
    const s = await scene();
    const m = await s.relay.connect(mallory);
    await m.sendAccepted(seal(mallory, "dm:bob:mallory", [bob], "\x1b[2J\x1b]0;you are hacked\x07\u202eexe.txt"));
    const shown = await waitUntil(() => s.b.messages().find((x) => x.from === "mallory"), "bob shows mallory's text");
    expect(shown.text).not.toMatch(/[\x1b\x07\u202e]/);
    const evil = s.relay.open();
    evil.hello({ ...mallory, username: "bob\u202e" });
    const end = await evil.status();
    expect(end.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(end.details).toMatch(/username/);
    await honestExchange(s, "after the escapes");
  });
});

describe("abuse of capacity", () => {
  it("a flood from one session is rate-limited; honest users are not slowed", async () => {
    const s = await scene({ limits: { messagesPerSecond: 20, burst: 40 } });
    const m = await s.relay.connect(mallory);
    const floods = Array.from({ length: 150 }, (_, i) => seal(mallory, "dm:bob:mallory", [bob], `spam ${i}`));
    const started = Date.now();
    const results = await Promise.all(floods.map((e) => m.send(e)));
    const seconds = (Date.now() - started) / 1000;
    const limited = results.filter((r) => r.code === ErrorCode.ERROR_CODE_RATE_LIMITED);
    // The bucket admits the burst plus 20 per second of the flood's duration, and not one more
    // (on a fast machine that is ~40 of 150; a loaded one takes longer and refills a little).
    expect(results.length - limited.length).toBeLessThanOrEqual(40 + Math.ceil(seconds * 20) + 1);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.detail).toMatch(/sending too fast/);
    await honestExchange(s, "during the flood", 10);
  });

  it("a reader that never reads is cut off without growing the relay; honest users carry on", async () => {
    const s = await scene({ limits: { maxOutgoing: 60, maxFrameBytes: 128 * 1024, messagesPerSecond: 10_000, burst: 10_000 } });
    const m = await s.relay.connect(mallory);
    m.pauseReading(true);
    // alice's room with mallory fills mallory's outgoing queue; mallory never reads.
    expect((await s.a.client.joinRoom("#big")).ok).toBe(true);
    m.write({ $case: "joinRoom", value: { requestId: 5, room: "#big" } });
    await waitUntil(() => (s.a.client.snapshot().rooms.find((r) => r.room === "#big")?.members.length ?? 0) === 2, "mallory in #big");
    // ~6 MB: more than the kernel socket buffers and HTTP/2 windows absorb, so the relay sees it.
    for (let i = 0; i < 300; i++) s.a.client.send("#big", `${i} ${"z".repeat(20_000)}`);
    // The relay lets mallory go (and held at most about a frame for her meanwhile)...
    const closed = await s.relay.waitForLog("session.close", (l) => l.user === "mallory", 20_000);
    expect(closed).toMatchObject({ reason: "ERROR_CODE_SLOW_CONSUMER" });
    expect(s.relay.running.stats().outgoingBytes).toBeLessThanOrEqual(128 * 1024 + 16 * 1024);
    // ...and her client, once it reads again, learns why.
    m.pauseReading(false);
    const end = await m.status(20_000);
    expect(end.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(end.errorCode).toBe("ERROR_CODE_SLOW_CONSUMER");
    await honestExchange(s, "after the stuck reader");
  }, 40_000);
});
