// Strangers against the relay (issue 9 §1, and the name squatting of §2): a handshake flood,
// oversized and slow handshakes, one key grabbing many names, a burst of registrations. Each is
// refused with a sentence, what the relay holds for strangers stays within its budgets, and
// honest users keep connecting (PROTOCOL.md §9, §13.3).
//
// Addresses: every test client is on loopback. The flooder comes from 127.0.0.1 (RawSession,
// grpc-js); honest users come from 127.0.0.2, 127.0.0.3, ... (raw-http2.ts binds the source
// address), as attacker and users are on a real network. From ONE address the relay cannot
// tell a flooder from an honest user; the last flood test shows what such a user is told.
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { SendStatus } from "../../src/gen/securechat/v1/chat.js";
import { identityFromPrivateKeys, type PrivateIdentity } from "../../src/protocol/keys.js";
import { PRE_AUTH_MAX_FRAME_BYTES } from "../../src/server/limits.js";
import { fixtureIdentity, fixtureKeys } from "../helpers/identities.js";
import { grpcMessage, grpcPrefix, Http2Connection } from "../helpers/raw-http2.js";
import { liveGroup } from "../helpers/mls-raw-groups.js";
import { sendMls, takeMls } from "../helpers/mls-queues.js";
import type { EndStatus, RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let rsa: KeyObject;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
  rsa = fixtureKeys("carol")[1]!;
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A user with a signing key of its own (the RSA key is shared: only the signing key counts). */
function freshUser(username: string): PrivateIdentity {
  return identityFromPrivateKeys(username, generateKeyPairSync("ed25519").privateKey, rsa);
}

async function relayWith(options: Parameters<typeof TestRelay.start>[0]): Promise<TestRelay> {
  const relay = await TestRelay.start(options);
  cleanups.push(() => relay.cleanup());
  return relay;
}

/** A connection from `source` (a loopback address other than the flooder's). */
async function connectionFrom(relay: TestRelay, source: string): Promise<Http2Connection> {
  const c = await Http2Connection.open(relay.running.port, source, undefined, relay.running.tls);
  cleanups.push(() => c.close());
  return c;
}

function expectEnd(s: EndStatus, code: GrpcStatus, details: RegExp, errorCode?: string): void {
  expect({ code: GrpcStatus[s.code], details: s.details }).toEqual({ code: GrpcStatus[code], details: expect.stringMatching(details) });
  if (errorCode !== undefined) expect(s.errorCode).toBe(errorCode);
}

describe("handshake flood", () => {
  it("a flood from one address takes only that address's share: it holds no session slot, and honest users from other addresses connect", async () => {
    const relay = await relayWith({
      // Long enough that the flood's streams stay pending for the whole test.
      handshakeTimeoutMs: 60_000,
      limits: { maxSessions: 3, maxPendingHandshakes: 64, maxHandshakesPerAddress: 8 },
    });
    // 30 streams, each on a connection of its own: half say nothing, half say Hello and stall.
    const flood: RawSession[] = Array.from({ length: 30 }, (_, i) => {
      const s = relay.open();
      if (i % 2 === 1) s.hello(freshUser(`flood${i}`));
      return s;
    });
    // The relay holds the address's share and refuses the rest at once, with a sentence.
    await waitUntil(() => flood.filter((s) => s.isEnded).length === 22, "22 flood streams refused", 10_000);
    expect(relay.running.stats().handshakes).toBe(8);
    for (const s of flood.filter((x) => x.isEnded)) {
      expectEnd(await s.status(), GrpcStatus.RESOURCE_EXHAUSTED,
        /^too many handshakes from your address: 8 are in progress, the most this relay takes from one address; try again in a moment$/,
        "ERROR_CODE_TOO_MANY_SESSIONS");
    }

    // Three honest users from other addresses: every one connects, though the session cap is 3
    // and eight streams of the flood are still in their handshake (they take no session slot).
    const honest = await Promise.all(["127.0.0.2", "127.0.0.3", "127.0.0.4"].map(async (source, i) => {
      const stream = (await connectionFrom(relay, source)).stream();
      return stream.handshake(freshUser(`honest${i}`));
    }));
    expect(honest.map((w) => w.username)).toEqual(["honest0", "honest1", "honest2"]);
    expect(relay.running.stats().online).toBe(3);
    expect(relay.running.stats().handshakes).toBe(8);
    // The refusals were logged as a count, not a line per stream.
    expect(relay.events("handshake.shed").length).toBeLessThanOrEqual(2);
  });

  it("one HTTP/2 connection holds at most maxStreamsPerConnection streams", async () => {
    const relay = await relayWith({ handshakeTimeoutMs: 60_000, limits: { maxStreamsPerConnection: 4, maxHandshakesPerAddress: 32 } });
    const conn = await Http2Connection.open(relay.running.port, undefined, undefined, relay.running.tls);
    cleanups.push(() => conn.close());
    const streams = Array.from({ length: 12 }, () => conn.stream());
    for (const s of streams) s.writeRaw(Buffer.alloc(0));
    await waitUntil(() => relay.running.stats().sessions === 4, "4 streams open at the relay");
    // Honest traffic meanwhile (a connection of its own) is served, and the count stays at 4 + 1.
    const other = await connectionFrom(relay, "127.0.0.2");
    expect((await other.stream().handshake(alice)).username).toBe("alice");
    expect(relay.running.stats().sessions).toBe(5);
  });

  it("a refused stream that its client never closes is reset, so it holds neither memory nor a slot of its connection", async () => {
    const relay = await relayWith({ handshakeTimeoutMs: 60_000, limits: { maxStreamsPerConnection: 4, maxHandshakesPerAddress: 1 } });
    const conn = await Http2Connection.open(relay.running.port, undefined, undefined, relay.running.tls);
    cleanups.push(() => conn.close());
    const streams = Array.from({ length: 4 }, () => conn.stream());
    for (const s of streams) s.writeRaw(Buffer.alloc(0));
    // One is pending; three are refused, and this client never closes its side of them.
    await waitUntil(() => streams.filter((s) => s.isEnded).length === 3, "three refusals");
    const refused = streams.filter((s) => s.isEnded);
    await waitUntil(() => refused.every((s) => s.closed), "the relay resets the refused streams", 5000);
    // Their slots on the connection are free again: a new stream is served (and refused, the
    // address's one handshake being taken) instead of waiting for a slot.
    const more = conn.stream();
    more.writeRaw(Buffer.alloc(0));
    expectEnd(await more.status(3000), GrpcStatus.RESOURCE_EXHAUSTED, /^too many handshakes from your address/);
  });

  it("from the flooder's own address, a newcomer is told why, in a sentence, and gets in once the flood's share frees", async () => {
    const relay = await relayWith({ handshakeTimeoutMs: 60_000, limits: { maxHandshakesPerAddress: 4 } });
    const flood = Array.from({ length: 4 }, () => relay.open());
    await waitUntil(() => relay.running.stats().handshakes === 4, "the address's share is taken");
    const newcomer = relay.open();
    await expect(newcomer.handshake(bob)).rejects.toThrow(/too many handshakes from your address/);
    for (const s of flood) s.close();
    await waitUntil(() => relay.running.stats().handshakes === 0, "the flood's handshakes given back");
    expect((await relay.connect(bob)).welcome.username).toBe("bob");
  });
});

describe("oversized and slow handshakes", () => {
  it("a Hello that declares more than the pre-authentication limit is refused at its length prefix, before the relay receives it", async () => {
    const relay = await relayWith({ handshakeTimeoutMs: 60_000 });
    const conn = await Http2Connection.open(relay.running.port, undefined, undefined, relay.running.tls);
    cleanups.push(() => conn.close());
    const s = conn.stream();
    // 5 bytes declaring a 1 MiB message, then 1 KiB of it and nothing more: a relay that waited
    // for (and buffered) the whole message would answer only at the handshake timeout.
    s.writeRaw(grpcPrefix(1024 * 1024));
    s.writeRaw(Buffer.alloc(1024, 0x41));
    expectEnd(await s.status(3000), GrpcStatus.RESOURCE_EXHAUSTED,
      new RegExp(`^frame too large: before the handshake completes this relay accepts frames of at most ${PRE_AUTH_MAX_FRAME_BYTES} bytes, and this one has 1048576$`));
    await relay.waitForLog("handshake.refused", (l) => l.reason === "pre-auth-frame-too-large");
    expect(relay.running.stats().handshakes).toBe(0);
  });

  it("a whole Hello or Proof over the limit is refused with a sentence; after the proof, full-size frames are fine", async () => {
    const relay = await relayWith({});
    const big = relay.open();
    big.hello(alice, { clientVersion: "x".repeat(PRE_AUTH_MAX_FRAME_BYTES) });
    expectEnd(await big.status(), GrpcStatus.RESOURCE_EXHAUSTED, /^frame too large: before the handshake completes this relay accepts frames of at most 4096 bytes, and this one has \d+$/);
    expect(big.has("challenge")).toBe(false);

    const bigProof = relay.open();
    bigProof.hello(alice);
    await bigProof.next("challenge");
    bigProof.write({ $case: "proof", value: { signature: Buffer.alloc(PRE_AUTH_MAX_FRAME_BYTES + 10) } });
    expectEnd(await bigProof.status(), GrpcStatus.RESOURCE_EXHAUSTED, /^frame too large: before the handshake completes/);

    // An honest session sends a 60 KB message (an MLS application message of their DM's group) once authenticated.
    const a = await relay.connect(alice);
    const b = await relay.connect(bob);
    const g = await liveGroup(relay, a, [alice, bob], "dm:alice:bob", { bob: b });
    const sixty = await g.say("alice", "y".repeat(60_000));
    expect(sixty.length).toBeGreaterThan(60_000);
    const r = await sendMls(a, sixty);
    expect(r.status).toBe(SendStatus.SEND_STATUS_ACCEPTED);
    const [d] = await takeMls(b, 1);
    expect((await g.read("bob", d!.mls.mls)).text).toBe("y".repeat(60_000));
  });

  it("a handshake that does not complete within 5 seconds (the default) is ended, and gives its place back", async () => {
    const relay = await relayWith({});
    const silent = relay.open();
    const conn = await Http2Connection.open(relay.running.port, undefined, undefined, relay.running.tls);
    cleanups.push(() => conn.close());
    // A slowloris: the Hello's first bytes, then nothing.
    const trickle = conn.stream();
    trickle.writeRaw(grpcMessage({ $case: "hello", value: {
      username: "slow", sigSpki: alice.sigSpki, encSpki: alice.encSpki, encKeySig: alice.encKeySig, clientVersion: "t", protocolVersion: 1, deviceSpki: Buffer.alloc(0),
    } }).subarray(0, 40));
    await waitUntil(() => relay.running.stats().handshakes === 2, "two handshakes pending");
    // The sentence names the relay's own timeout (it was 10 seconds before issue 9).
    expectEnd(await silent.status(8000), GrpcStatus.DEADLINE_EXCEEDED, /^handshake not completed within 5 seconds$/);
    expectEnd(await trickle.status(3000), GrpcStatus.DEADLINE_EXCEEDED, /^handshake not completed within 5 seconds$/);
    await waitUntil(() => relay.running.stats().handshakes === 0, "no handshake pending");
  });
});

describe("name squatting", () => {
  it("a key that owns a name cannot bind another: a clear refusal, and nothing is bound", async () => {
    const relay = await relayWith({});
    await relay.connect(alice);
    const again = relay.open();
    const aliceKeyAsZed = await fixtureIdentity("alice", "zed");
    await expect(again.handshake(aliceKeyAsZed)).rejects.toThrow();
    expectEnd(await again.status(), GrpcStatus.PERMISSION_DENIED,
      /^this key already owns the username 'alice' on this relay, and a key may own only one; connect as 'alice', or make a new key for a new name$/,
      "ERROR_CODE_KEY_NAME_LIMIT");
    const b = await relay.connect(bob);
    expect(await b.lookupKeys(["zed"])).toEqual([]);
    await relay.waitForLog("handshake.refused", (l) => l.user === "zed" && l.reason === "ERROR_CODE_KEY_NAME_LIMIT");
  });

  it("bindings made under a higher limit keep working; only new ones are refused", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "sc-flood-names-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const [m1, m2, m3] = await Promise.all(["m1", "m2", "m3"].map((n) => fixtureIdentity("mallory", n)));
    const before = await TestRelay.start({ dataDir, limits: { maxNamesPerKey: 2 } });
    await before.connect(m1!);
    await before.connect(m2!);
    await before.cleanup();

    const relay = await relayWith({ dataDir }); // the default: one name per key
    expect((await relay.connect(m1!)).welcome.username).toBe("m1");
    expect((await relay.connect(m2!)).welcome.username).toBe("m2");
    const third = relay.open();
    await expect(third.handshake(m3!)).rejects.toThrow();
    expectEnd(await third.status(), GrpcStatus.PERMISSION_DENIED, /^this key already owns the usernames 'm1', 'm2' on this relay, and a key may own only one; connect as one of them/,
      "ERROR_CODE_KEY_NAME_LIMIT");
  });

  it("a burst of registrations from one address is limited; returning users and other addresses are not", async () => {
    let now = Date.now();
    const relay = await relayWith({ clock: () => now, limits: { registrationBurst: 3, registrationsPerHour: 60 } });
    const users = ["r1", "r2", "r3", "r4"].map(freshUser);
    for (const u of users.slice(0, 3)) await relay.connect(u);
    const fourth = relay.open();
    await expect(fourth.handshake(users[3]!)).rejects.toThrow();
    expectEnd(await fourth.status(), GrpcStatus.RESOURCE_EXHAUSTED,
      /^too many new usernames were registered from your address; try again in 60 seconds$/, "ERROR_CODE_RATE_LIMITED");

    // A returning user takes no token; another address has its own bucket.
    expect((await relay.connect(users[0]!)).welcome.username).toBe("r1");
    const elsewhere = await connectionFrom(relay, "127.0.0.2");
    expect((await elsewhere.stream().handshake(freshUser("r5"))).username).toBe("r5");

    // A minute later (one per minute, sustained), r4 gets its name.
    now += 60_000;
    expect((await relay.connect(users[3]!)).welcome.username).toBe("r4");
  });
});
