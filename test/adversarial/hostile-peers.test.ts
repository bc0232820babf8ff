// Hostile peers (PROTOCOL.md §1): mallory attacks through a real relay while alice and bob, two
// real ChatClients, keep talking. Each attack is refused with its specific error, and the honest
// conversation around it loses nothing and shows nothing twice.
// Protocol v2 (issue 12): mallory is a modified client with real MLS groups (a real ChatClient
// whose content layer tampers with what it seals, test/helpers/hostile-content.ts), or a raw v2
// session for what no client would send (floods, a reader that never reads).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, MlsKind, SessionRequest } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { contentLayerOver } from "../../src/client/mls/content.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { describeClientError } from "../../src/client/errors.js";
import { TamperingContent, replaceBytes } from "../helpers/hostile-content.js";
import { MlsHostileProxy } from "../helpers/mls-hostile-proxy.js";
import { connectV2, sendMls } from "../helpers/mls-queues.js";
import { waitMember } from "../helpers/v2-waits.js";
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

interface Scene { relay: TestRelay; a: TestClient; b: TestClient; plaintext: boolean }

/** A relay with alice and bob connected and able to reach each other. */
async function scene(options: TestRelayOptions = {}): Promise<Scene> {
  const relay = await TestRelay.start(options);
  cleanups.push(() => relay.cleanup());
  const dir = mkdtempSync(join(tmpdir(), "sc-peers-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const transport = options.plaintext === true ? { transport: { kind: "plaintext" as const } } : {};
  const a = await TestClient.start(alice, relay.running.port, { dir, ...transport });
  const b = await TestClient.start(bob, relay.running.port, { dir, ...transport });
  cleanups.push(() => a.close(), () => b.close());
  await waitUntil(() => a.client.verifyInfo("bob").ok && b.client.verifyInfo("alice").ok, "alice and bob know each other's keys");
  return { relay, a, b, plaintext: options.plaintext === true };
}

/**
 * mallory's v2 client on the scene's relay (or `o.server`): a real ChatClient whose content layer
 * is the real one behind TamperingContent (set into `out.content`), so she can seal what she likes.
 */
async function v2Mallory(s: Scene, o: { server?: string } = {}, out: { content?: TamperingContent } = {}): Promise<TestClient> {
  const dir = mkdtempSync(join(tmpdir(), "sc-mallory-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const state = ClientStateStore.open(":memory:");
  const content = new TamperingContent(contentLayerOver(state, "mallory"));
  out.content = content;
  const store = MlsKeyStore.open(join(dir, "mallory_mls.db"), { username: "mallory", sigPrivate: mallory.sigPrivate });
  const m = await TestClient.start(mallory, s.relay.running.port, {
    dir, state, v2: { store, content }, ...(o.server !== undefined ? { server: o.server } : {}), ...(s.plaintext ? { transport: { kind: "plaintext" as const } } : {}),
  });
  cleanups.push(() => m.close());
  return m;
}

const refusedFrom = (c: TestClient, from: string): number => c.events.filter((e) => e.type === "refused" && e.from === from).length;

/** alice sends n DMs to bob; resolves when bob shows each exactly once (nothing lost for honest users). */
async function honestExchange({ a, b }: Scene, tag: string, n = 5): Promise<void> {
  for (let i = 0; i < n; i++) expect(a.client.send("dm:alice:bob", `${tag} ${i}`).ok).toBe(true);
  const got = await waitUntil(() => {
    const m = b.messages().filter((x) => x.text.startsWith(`${tag} `));
    return m.length >= n ? m : undefined;
  }, `bob receives "${tag}"`, 30_000); // v2: the first DM makes its group (KeyPackage, Add, Welcome)
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

  it("forging the sender: mallory sends alice's room message as her own; the relay takes it (the MLS sender is encrypted); no member shows it", async () => {
    const s = await scene({ plaintext: true });
    const proxy = await MlsHostileProxy.start(s.relay.address);
    cleanups.push(() => proxy.close());
    const m = await v2Mallory(s, { server: proxy.address });
    for (const c of [s.a, s.b, m]) expect((await c.client.joinRoom("#ops")).ok).toBe(true);
    for (const c of [s.a, s.b, m]) for (const u of ["alice", "bob", "mallory"]) await waitMember(c, "#ops", u);
    const sent = s.a.client.send("#ops", "from alice");
    if (!sent.ok) throw new Error(describeClientError(sent.error));
    await s.b.waitForMessage("from alice", 30_000);
    const bytes = (await waitUntil(() => proxy.deliveredTo("mallory", (d) => d.conversationId === "#ops" && d.mls?.kind === MlsKind.MLS_KIND_APPLICATION && d.mls.sender === "alice")[0], "alice's message at mallory")).mls!.mls;
    // mallory's session sends alice's MLS message as hers: for the relay it is mallory's.
    const before = [refusedFrom(s.a, "mallory"), refusedFrom(s.b, "mallory")];
    proxy.sessionsOf("mallory")[0]!.toRelay({ $case: "sendMls", value: { mls: Buffer.from(bytes) } });
    await waitUntil(() => s.relay.logs.some((l) => l.event === "send.accepted" && l.user === "mallory"), "the relay accepts it as mallory's");
    // alice: a message of hers that the relay says is mallory's is refused (PROTOCOL.md §10).
    await waitUntil(() => refusedFrom(s.a, "mallory") > before[0]!, "alice refuses it", 30_000);
    await honestExchange(s, "after the forgery");
    // bob (whose queue had the forgery before the honest DMs): the same MLS bytes he already read,
    // known by their id, dropped without a word; never shown again, never as mallory's.
    expect(refusedFrom(s.b, "mallory")).toBe(before[1]);
    expect(s.b.messages("#ops").filter((x) => x.text === "from alice").map((x) => x.from)).toEqual(["alice"]);
    expect([...s.a.messages(), ...s.b.messages()].filter((x) => x.from === "mallory")).toEqual([]);
    expect(s.b.messages().filter((x) => x.from !== "alice")).toEqual([]);
  }, 120_000);
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
    const tampering: { content?: TamperingContent } = {};
    const m = await v2Mallory(s, {}, tampering);
    // mallory's client seals "xxxx", then writes an invalid two-byte sequence over it: the
    // application data is encrypted and signed in her real MLS group with bob.
    tampering.content!.tamper = (app) => replaceBytes(app, Buffer.from("xxxx"), Buffer.from([0x78, 0xc3, 0x28, 0x78]));
    const r = m.client.send("dm:bob:mallory", "xxxx");
    if (!r.ok) throw new Error(describeClientError(r.error));
    await m.waitForState(r.value.id, "accepted", 30_000); // the relay cannot see content
    await s.b.waitFor((e) => e.type === "refused" && e.from === "mallory", "bob refuses it", 30_000);
    expect(s.b.messages().filter((x) => x.from === "mallory")).toEqual([]);
    await honestExchange(s, "after invalid UTF-8");
  }, 60_000);

  it("escape and bidi sequences in text are neutralised; in names they are refused at the door", async () => {
    const s = await scene();
    const m = await v2Mallory(s);
    const r = m.client.send("dm:bob:mallory", "\x1b[2J\x1b]0;you are hacked\x07\u202eexe.txt");
    if (!r.ok) throw new Error(describeClientError(r.error));
    const shown = await waitUntil(() => s.b.messages().find((x) => x.from === "mallory"), "bob shows mallory's text", 30_000);
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
    // A modified client does not pace itself: a raw v2 session, 150 SendMls at once. The relay
    // takes the token before any check (PROTOCOL.md §8.3), so each one counts.
    const m = await connectV2(s.relay, mallory);
    const floods = Array.from({ length: 150 }, (_, i) => Buffer.from(`spam ${i} ${"s".repeat(200)}`));
    const started = Date.now();
    const results = await Promise.all(floods.map((e) => sendMls(m, e)));
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
    // mallory's client joins alice's room (an external commit into its MLS group), then her
    // session is one that never reads: a raw v2 session in its place.
    const mc = await v2Mallory(s);
    expect((await s.a.client.joinRoom("#big")).ok).toBe(true);
    expect((await mc.client.joinRoom("#big")).ok).toBe(true);
    await waitMember(s.a, "#big", "mallory");
    await mc.close();
    const m = await connectV2(s.relay, mallory);
    m.pauseReading(true);
    // ~6 MB: more than the kernel socket buffers and HTTP/2 windows absorb, so the relay sees it.
    for (let i = 0; i < 300; i++) s.a.client.send("#big", `${i} ${"z".repeat(20_000)}`);
    // The relay lets mallory go (and held at most about a frame for her meanwhile)...
    // (Her client's session before this one closed cleanly: "client-closed".)
    const closed = await s.relay.waitForLog("session.close", (l) => l.user === "mallory" && l.reason !== "client-closed", 20_000);
    expect(closed).toMatchObject({ reason: "ERROR_CODE_SLOW_CONSUMER" });
    expect(s.relay.running.stats().outgoingBytes).toBeLessThanOrEqual(128 * 1024 + 16 * 1024);
    // ...and her client, once it reads again, learns why.
    m.pauseReading(false);
    const end = await m.status(20_000);
    expect(end.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(end.errorCode).toBe("ERROR_CODE_SLOW_CONSUMER");
    await honestExchange(s, "after the stuck reader");
  }, 120_000);
});
