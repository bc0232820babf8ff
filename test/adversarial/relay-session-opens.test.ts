// A device that opens and closes sessions in a loop (PROTOCOL.md §9.1 step 4, §13.3): each open
// costs the relay a signature check and two last-seen writes, so opens are held to a bucket per
// proven key and per device address, continued across sessions (src/server/open-rates.ts). A
// refused open is refused at its Hello, before the signature check, when the bucket is known
// empty; a stranger can never spend someone else's bucket. Relay clock held still, moved by hand.
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { identityFromPrivateKeys, type PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity, fixtureKeys } from "../helpers/identities.js";
import type { EndStatus, RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let rsa: KeyObject;
let relay: TestRelay | undefined;

beforeAll(async () => {
  alice = await fixtureIdentity("alice");
  rsa = fixtureKeys("carol")[1]!;
});
afterEach(async () => {
  await relay?.cleanup();
  relay = undefined;
});

const LIMITS = { sessionOpenBurst: 3, sessionOpensPerMinute: 6 } as const;
const refusal = (wait: string): string => `this device opened too many sessions lately: this relay takes 3 at once, then 6 per minute; try again in ${wait}`;

/** A session opened and closed again (the relay saw it end: its last-seen write done). */
async function openAndClose(r: TestRelay, id: PrivateIdentity): Promise<void> {
  const s = await r.connect(id);
  await r.disconnect(s, id.username);
}

/** A Hello that the relay ends: its end status, and whether it got as far as a Challenge. */
async function refusedHello(r: TestRelay, id: PrivateIdentity): Promise<{ end: EndStatus; challenged: boolean; s: RawSession }> {
  const s = r.open();
  s.hello(id);
  const end = await s.ended;
  return { end, challenged: s.inbox.some((f) => f.$case === "challenge"), s };
}

function expectOpensLimited(end: EndStatus, retryAfterMs = 10_000): void {
  expect({ code: GrpcStatus[end.code], details: end.details, errorCode: end.errorCode, retryAfterMs: end.retryAfterMs }).toEqual({
    code: "RESOURCE_EXHAUSTED", details: refusal(retryAfterMs === 1_000 ? "1 second" : `${retryAfterMs / 1000} seconds`),
    errorCode: "ERROR_CODE_RATE_LIMITED", retryAfterMs,
  });
}

describe("session opens per device", () => {
  it("a burst of opens, then one per refill: the next is refused at its Hello, before the proof and any write", async () => {
    let now = Date.now();
    relay = await TestRelay.start({ clock: () => now, limits: LIMITS });
    for (let i = 0; i < 3; i++) await openAndClose(relay, alice);
    const opened = relay.logs.filter((l) => l.event === "session.open").length;

    const { end, challenged } = await refusedHello(relay, alice);
    expectOpensLimited(end);
    // No Challenge: no nonce, no signature check; no session, so no last-seen write either.
    expect(challenged).toBe(false);
    expect(relay.logs.filter((l) => l.event === "session.open").length).toBe(opened);
    expect(relay.logs).toContainEqual(expect.objectContaining({ event: "handshake.refused", user: "alice", reason: "opens-limited" }));

    // Closing sessions refunds nothing, and waiting less than a token's time does not help.
    now += 9_000;
    expectOpensLimited((await refusedHello(relay, alice)).end, 1_000);
    // One token every 10 s (6 per minute): one open, then refused again.
    now += 1_000;
    await openAndClose(relay, alice);
    expectOpensLimited((await refusedHello(relay, alice)).end);
    // Another device's bucket is its own.
    await openAndClose(relay, await fixtureIdentity("bob"));
  });

  it("a session replacing its own counts as an open: a replace loop is held to the same bucket", async () => {
    const now = Date.now();
    relay = await TestRelay.start({ clock: () => now, limits: LIMITS });
    for (let i = 0; i < 3; i++) await relay.connect(alice);
    expectOpensLimited((await refusedHello(relay, alice)).end);
  });

  it("a stranger cannot spend another's bucket: a wrong key for the name, or no proof, takes nothing of it", async () => {
    const now = Date.now();
    relay = await TestRelay.start({ clock: () => now, limits: LIMITS });
    await openAndClose(relay, alice); // alice's name is bound to her key
    // Mallory proves her own key under alice's name, again and again: USERNAME_TAKEN, and only
    // her own key's bucket pays for it (she is refused at her Hello once it is empty).
    const mallory = identityFromPrivateKeys("alice", generateKeyPairSync("ed25519").privateKey, rsa);
    for (let i = 0; i < 3; i++) {
      const s = relay.open();
      await expect(s.handshake(mallory)).rejects.toThrow();
      expect((await s.ended).errorCode).toBe("ERROR_CODE_USERNAME_TAKEN");
    }
    expectOpensLimited((await refusedHello(relay, mallory)).end);
    // A Hello with alice's own keys and no valid proof, again and again: PROOF_INVALID, nothing taken.
    for (let i = 0; i < 5; i++) {
      const s = relay.open();
      s.hello(alice);
      await s.next("challenge");
      s.write({ $case: "proof", value: { signature: Buffer.alloc(64, 7) } });
      expect((await s.ended).errorCode).toBe("ERROR_CODE_PROOF_INVALID");
    }
    // Alice still has the two opens left of her burst of three.
    await openAndClose(relay, alice);
    await openAndClose(relay, alice);
    expectOpensLimited((await refusedHello(relay, alice)).end);
  });

  it("the bucket is per key too: a key with two names opens at most the burst over both", async () => {
    const now = Date.now();
    relay = await TestRelay.start({ clock: () => now, limits: { ...LIMITS, maxNamesPerKey: 2 } });
    const key = generateKeyPairSync("ed25519").privateKey;
    const [m1, m2] = [identityFromPrivateKeys("m1", key, rsa), identityFromPrivateKeys("m2", key, rsa)];
    await openAndClose(relay, m1);
    await openAndClose(relay, m2);
    await openAndClose(relay, m1);
    // m2's address has opened once, but the key three times.
    expectOpensLimited((await refusedHello(relay, m2)).end);
  });

  it("a relay refusing opens still serves the device's live session and everyone else", async () => {
    const now = Date.now();
    relay = await TestRelay.start({ clock: () => now, limits: LIMITS });
    for (let i = 0; i < 2; i++) await openAndClose(relay, alice);
    const live = await relay.connect(alice);
    expectOpensLimited((await refusedHello(relay, alice)).end);
    // The refused Hello replaced nothing: the live session still answers.
    live.write({ $case: "ping", value: { nonce: 5 } });
    expect((await live.next("pong")).nonce).toBe(5);
    expect(relay.running.stats().openBuckets).toBe(2); // alice's key and address
  });
});
