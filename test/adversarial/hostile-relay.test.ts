// The relay is the attacker (PROTOCOL.md §1): a real ChatClient against a relay that substitutes
// keys, replays, reflects, re-addresses, drops, tampers and sends garbage. Each attack is refused
// with the right reason, nothing forged is shown, and honest messages keep arriving.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Envelope as WireEnvelope } from "../../src/gen/securechat/v1/chat.js";
import { envelopeToWire } from "../../src/protocol/codec.js";
import { sealEnvelope, ZERO_HASH, type SealedEnvelope } from "../../src/protocol/envelope.js";
import type { PrivateIdentity, PublicIdentity } from "../../src/protocol/keys.js";
import { safetyNumber } from "../../src/protocol/safety-number.js";
import { TestClient } from "../helpers/client-harness.js";
import { forgeEnvelope } from "../helpers/forge.js";
import { directoryEntry, HostileRelay, type HostileSession } from "../helpers/hostile-relay.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { describeClientError } from "../../src/client/errors.js";
import { logs as logsV2, cleanupWorlds, isKind, keepTalking, loadIdentities, processed, refused as refusedV2, say, shown as shownV2, T, world } from "../helpers/v2-hostile-world.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let mallory: PrivateIdentity;
let malloryAsBob: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [alice, bob, carol, mallory, malloryAsBob] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("mallory"), fixtureIdentity("mallory", "bob"),
  ]);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A hostile relay with the given directory, and alice's real client connected to it. */
async function aliceAgainst(directory: PublicIdentity[]): Promise<{ relay: HostileRelay; s: HostileSession; a: TestClient }> {
  const relay = await HostileRelay.start();
  cleanups.push(() => relay.stop());
  relay.directory = [directoryEntry(alice), ...directory.map((d) => directoryEntry(d))];
  const dir = mkdtempSync(join(tmpdir(), "sc-hostile-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const a = await TestClient.start(alice, relay.port, { dir, reconnect: { initialMs: 20, maxMs: 100 } });
  cleanups.push(() => a.close());
  return { relay, s: await relay.session(), a };
}

// The client is a v2 client: it shows a v1 envelope only when sent before its first v2 Welcome
// (PROTOCOL.md §14), so these are dated an hour back, as envelopes queued before the upgrade are.
let clock = Date.now() - 3_600_000;
function sealed(from: PrivateIdentity, conv: string, to: PublicIdentity[], text: string, prev: Buffer = ZERO_HASH): { envelope: SealedEnvelope; hash: Buffer } {
  return sealEnvelope({ sender: from, conversationId: conv, recipients: to, body: { kind: "text", text }, prev, sentAtMs: clock++ });
}

const shown = (a: TestClient) => a.messages().filter((m) => !m.own).map((m) => m.text);
const refusedCount = (a: TestClient) => a.events.filter((e) => e.type === "refused").length;

/** After an attack, an honest message from bob still arrives: nothing lost for honest users. */
async function honestStillWorks(s: HostileSession, a: TestClient, text = `honest ${clock}`): Promise<void> {
  const seq = s.deliver("dm:alice:bob", sealed(bob, "dm:alice:bob", [alice], text, lastBobHash(a)).envelope);
  await s.waitForAck(seq[0]!);
  await a.waitForMessage(text);
}

// Bob's chain in dm:alice:bob, as far as these tests sealed it (so honest messages show no gap).
const chains = new WeakMap<TestClient, Buffer>();
function lastBobHash(a: TestClient): Buffer {
  return chains.get(a) ?? ZERO_HASH;
}

describe("key substitution by the relay", () => {
  it("at first contact: the relay's fake bob is pinned, but the safety number exposes it", async () => {
    const { a } = await aliceAgainst([malloryAsBob]);
    const v = await waitUntil(() => {
      const r = a.client.verifyInfo("bob");
      return r.ok ? r : undefined;
    }, "bob's keys fetched and pinned");
    expect(v.ok).toBe(true);
    // What alice would read to the real bob differs from what the real bob computes.
    if (v.ok) expect(v.value.safetyNumber).not.toBe(safetyNumber(alice, bob));
    expect(v.ok && v.value.safetyNumber).toBe(safetyNumber(alice, malloryAsBob));
  });

  it("after pinning: a new key is a loud key change, its messages are held and sending is blocked", async () => {
    const { relay, s, a } = await aliceAgainst([bob]);
    await a.waitFor((e) => e.type === "peer" && e.peer.username === "bob" && e.peer.trust === "unverified", "bob pinned");
    await waitUntil(() => a.client.verifyInfo("bob").ok, "bob's keys fetched");
    relay.directory = [directoryEntry(alice), directoryEntry(malloryAsBob)];
    relay.announce("bob");
    await a.waitFor((e) => e.type === "key-change" && e.username === "bob", "key change shown");
    expect(a.client.send("dm:alice:bob", "secret")).toEqual({ ok: false, error: { kind: "key-changed", username: "bob" } });
    const seq = s.deliver("dm:alice:bob", sealed(malloryAsBob, "dm:alice:bob", [alice], "trust me, I'm bob").envelope);
    await s.waitForAck(seq[0]!);
    expect(shown(a)).toEqual([]);
    expect(s.sent()).toEqual([]); // nothing was sealed to the new key
  });
});

describe("impersonation and forgery", () => {
  it("refuses an envelope that claims bob but is signed by mallory", async () => {
    const { s, a } = await aliceAgainst([bob, mallory]);
    const forged = forgeEnvelope({ sender: malloryAsBob, conversationId: "dm:alice:bob", recipients: [alice, bob], sentAtMs: clock++ });
    const withBobsFpr = { ...forged, header: { ...forged.header, senderSigFpr: bob.sigFpr } };
    s.deliver("dm:alice:bob", forged, withBobsFpr);
    await waitUntil(() => refusedCount(a) === 2, "both refused");
    expect(shown(a)).toEqual([]);
    await honestStillWorks(s, a);
  });
});

describe("replay, reflection and re-addressing", () => {
  it("shows a replayed envelope once, whenever it comes back", async () => {
    const { s, a } = await aliceAgainst([bob]);
    const e = sealed(bob, "dm:alice:bob", [alice], "pay carol 10");
    chains.set(a, e.hash);
    s.deliver("dm:alice:bob", e.envelope);
    await a.waitForMessage("pay carol 10");
    const again = s.deliver("dm:alice:bob", e.envelope, e.envelope);
    await s.waitForAck(again[1]!);
    expect(shown(a)).toEqual(["pay carol 10"]);
    await honestStillWorks(s, a);
  });

  it("refuses a DM or room message re-addressed to another conversation or recipient", async () => {
    const { s, a } = await aliceAgainst([bob, carol]);
    // bob -> carol DM, handed to alice.
    s.deliver("dm:bob:carol", sealed(bob, "dm:bob:carol", [carol], "for carol only").envelope);
    // bob's #ops message (alice is a member) delivered as if it belonged to #dev.
    s.deliver("#dev", sealed(bob, "#ops", [alice, carol], "ops talk").envelope);
    // bob's DM to alice delivered into the lobby.
    s.deliver("lobby", sealed(bob, "dm:alice:bob", [alice], "private").envelope);
    await waitUntil(() => refusedCount(a) === 3, "three refusals");
    expect(shown(a)).toEqual([]);
    await honestStillWorks(s, a);
  });
});

describe("dropped messages", () => {
  it("shows a gap when the relay drops one envelope of a DM", async () => {
    const { s, a } = await aliceAgainst([bob]);
    const m1 = sealed(bob, "dm:alice:bob", [alice], "one");
    const m2 = sealed(bob, "dm:alice:bob", [alice], "two", m1.hash);
    const m3 = sealed(bob, "dm:alice:bob", [alice], "three", m2.hash);
    s.deliver("dm:alice:bob", m1.envelope, m3.envelope); // "two" never arrives
    const three = await a.waitForMessage("three");
    expect(three.gap).toBe(true);
    expect(a.messages().find((m) => m.text === "one")?.gap).toBeUndefined();
  });
});

describe("tampering", () => {
  it("refuses every single-byte change anywhere in an envelope's fields", async () => {
    const { s, a } = await aliceAgainst([bob]);
    const e = sealed(bob, "dm:alice:bob", [alice], "untouchable").envelope;
    const wire = Buffer.from(WireEnvelope.encode(envelopeToWire(e)).finish());
    const variants: WireEnvelope[] = [];
    let undecodable = 0;
    for (let pos = 0; pos < wire.length; pos++) {
      const bad = Buffer.from(wire);
      bad[pos]! ^= 0x01;
      try {
        variants.push(WireEnvelope.decode(bad));
      } catch {
        undecodable++; // the client's transport refuses these before the protocol sees them
      }
    }
    for (let i = 0; i < variants.length; i += 200) s.deliverWire("dm:alice:bob", ...variants.slice(i, i + 200));
    await waitUntil(() => s.acked().length >= variants.length, "every variant processed", 30_000);
    // At most one variant can show: a re-framing that parses to the very same envelope.
    expect(shown(a).length).toBeLessThanOrEqual(1);
    expect(shown(a).every((t) => t === "untouchable")).toBe(true);
    expect(variants.length + undecodable).toBe(wire.length);
    await honestStillWorks(s, a);
  }, 60_000);

  it("refuses invalid UTF-8 and neutralises escape and bidi sequences in text", async () => {
    const { s, a } = await aliceAgainst([bob]);
    const raw = Buffer.alloc(256);
    raw.writeUInt32BE(4, 0);
    raw[4] = 0x01;
    raw[5] = 0xff; raw[6] = 0xfe; raw[7] = 0x41; // not UTF-8
    s.deliver("dm:alice:bob", forgeEnvelope({ sender: bob, conversationId: "dm:alice:bob", recipients: [alice, bob], plaintext: raw, sentAtMs: clock++ }));
    await waitUntil(() => refusedCount(a) === 1, "invalid UTF-8 refused");
    const nasty = sealed(bob, "dm:alice:bob", [alice], "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u202egnp.exe");
    s.deliver("dm:alice:bob", nasty.envelope);
    const m = await waitUntil(() => a.messages().find((x) => !x.own), "the message");
    expect(m.text).not.toMatch(/[\x1b\x07\u202e]/);
  });

  it("ignores directory entries whose names carry escapes or break the policy", async () => {
    const { a } = await aliceAgainst([{ ...bob, username: "bob\x1b[31m" } as PublicIdentity, { ...carol, username: "Carol" } as PublicIdentity]);
    expect(a.client.snapshot().peers.map((p) => p.username)).toEqual(["alice"]);
  });
});

describe("garbage from the relay", () => {
  it("survives truncated and invalid frames: reconnects and carries on", async () => {
    const { relay, s, a } = await aliceAgainst([bob]);
    const frame = Buffer.from(WireEnvelope.encode(envelopeToWire(sealed(bob, "dm:alice:bob", [alice], "cut").envelope)).finish());
    s.sendRaw(frame.subarray(0, 17)); // not a SessionResponse
    await a.waitFor((e) => e.type === "connection" && e.status.state === "reconnecting", "the client drops the broken stream");
    const s2 = await relay.session(1);
    await honestStillWorks(s2, a);
  });

  it("survives an oversized frame (over the client's 16 MiB limit)", async () => {
    const { relay, s, a } = await aliceAgainst([bob]);
    s.sendRaw(Buffer.alloc(17 * 1024 * 1024, 0x0a));
    await a.waitFor((e) => e.type === "connection" && e.status.state === "reconnecting", "the client refuses the frame");
    const s2 = await relay.session(1);
    await honestStillWorks(s2, a);
  });
});

// Protocol v2 (PROTOCOL.md §12): the same attacks by the real relay's operator (the man in the
// middle of test/helpers/mls-hostile-proxy.ts) on real v2 clients, where v1's envelope and RSA
// key no longer exist: the key the relay can swap is a KeyPackage's HPKE init key (what the
// Welcome is encrypted to), and the message it can reflect is an MLS message.
describe("protocol v2: key substitution and reflection by the relay", () => {
  beforeAll(loadIdentities);
  afterEach(cleanupWorlds);

  it("swapping only the encryption key (bob's KeyPackage's init key) is refused outright: bob's signature does not cover it; nothing is encrypted to it", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob", "mallory");
    // mallory's own init key, from her upload: a valid X-Wing key the relay's operator holds.
    const upload = await waitUntil(() => (w.proxy.requests.get("mallory") ?? []).find((f) => f.$case === "publishKeyPackages"), "mallory's KeyPackages");
    const theirs = upload.$case === "publishKeyPackages" ? upload.value.lastResort : Buffer.alloc(0);
    const swapped: Buffer[] = [];
    w.proxy.onResponse = (user, f) => {
      if (user !== "alice" || f.$case !== "keyPackageList") return undefined;
      const entries = f.value.entries.map((e) => {
        if (e.username !== "bob") return e;
        const kp = Buffer.from(e.keyPackage);
        initKey(theirs).copy(kp, INIT_KEY_AT); // same length: only the init key differs
        swapped.push(kp);
        return { ...e, keyPackage: kp };
      });
      return [{ ...f, value: { ...f.value, entries } }];
    };
    const sent = w.c.alice!.client.send("dm:alice:bob", "hi");
    if (!sent.ok) throw new Error(describeClientError(sent.error));
    const failed = await w.c.alice!.waitForState(sent.value.id, "failed", T);
    expect(failed).toMatchObject({ failure: expect.stringMatching(/Invalid keypackage signature/) });
    expect(swapped.length).toBeGreaterThan(0);
    // Nothing was added, no Welcome went anywhere, no message was sealed for bob.
    const aliceSent = w.proxy.requests.get("alice") ?? [];
    expect(aliceSent.filter((f) => f.$case === "sendCommit")).toEqual([]);
    expect(aliceSent.filter((f) => f.$case === "sendMls")).toEqual([]);
    expect(shownV2(w.c.bob!, "dm:alice:bob")).toEqual([]);
    // Served honestly, the same DM works.
    w.proxy.onResponse = undefined;
    await keepTalking(w, "dm:alice:bob", ["alice", "bob"], "served honestly");
  });

  it("refuses alice's own message reflected back to her: refused as a reflection, its copy dropped, nothing shown; the DM goes on", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob");
    const dm = "dm:alice:bob";
    await keepTalking(w, dm, ["alice", "bob"], "before");
    await say(w.c.alice!, dm, "my own words");
    await w.c.bob!.waitForMessage("my own words", T);
    const mine = w.proxy.deliveredTo("bob", isKind(MlsKind.MLS_KIND_APPLICATION, dm)).at(-1)!;
    expect(mine.mls?.sender).toBe("alice");
    // The relay hands alice her own message, as hers (the relay-authenticated sender) and as bob's.
    const before = refusedV2(w.c.alice!, dm);
    const copies = w.proxy.inject("alice", mine, { ...mine, mls: { ...mine.mls!, sender: "bob" } });
    for (const d of copies) await processed(w, "alice", d.seq);
    // The first is refused by MLS as a reflection (PROTOCOL.md §10); the second is the same
    // bytes again (the same relay message id), dropped as a redelivery without opening.
    expect(refusedV2(w.c.alice!, dm)).toBe(before + 1);
    expect((logsV2.get("alice") ?? []).filter((l) => l.event === "mls.message.refused" && /reflection/.test(String(l.error)))).toHaveLength(1);
    expect((logsV2.get("alice") ?? []).filter((l) => l.event === "mls.deliver.redelivered" && l.seq === copies[1]!.seq)).toHaveLength(1);
    expect(w.c.alice!.messages(dm).filter((m) => m.text === "my own words").map((m) => m.own)).toEqual([true]);
    expect(shownV2(w.c.alice!, dm)).not.toContain("my own words");
    await keepTalking(w, dm, ["alice", "bob"], "after the reflection");
  });
});

/** Where a KeyPackage's init key starts in an MLSMessage: version, wire format, version, suite, then a 2-byte varint length (X-Wing: 1216 bytes). */
const INIT_KEY_AT = 10;
function initKey(mlsKeyPackage: Uint8Array): Buffer {
  const b = Buffer.from(mlsKeyPackage);
  const len = ((b[8]! & 0x3f) << 8) | b[9]!;
  if ((b[8]! & 0xc0) !== 0x40 || len !== 1216) throw new Error("not an X-Wing KeyPackage as expected");
  return b.subarray(INIT_KEY_AT, INIT_KEY_AT + len);
}
