// Red team, relay on PostgreSQL (rt4): names nobody owns, by the hundred, in the requests that take
// names. Each store call of a cluster relay is a round trip that blocks its event loop (SyncPg,
// store/pg/sync-client.ts), so what matters is how many calls a request costs, not how long one
// takes here: counted with the relay's own SyncPg counter (callsMade). Made-up names cost one
// read per request at most (the misses read together), nothing the second time (remembered as
// unbound for a short time), and invalid names none; yet a name bound right after, on this relay
// or another, is found at once.
import { generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { identityFromPrivateKeys, type PrivateIdentity } from "../../src/protocol/keys.js";
import type { SyncPg } from "../../src/server/store/pg/sync-client.js";
import { PgRelays, type PgMember } from "../helpers/cluster-pg-relays.js";
import { fixtureIdentity, fixtureKeys } from "../helpers/identities.js";
import { makeKeyPackage, mlsPerson, must } from "../helpers/mls-ds.js";
import { freshDatabase, type TestDatabase } from "../helpers/pg.js";
import type { RawSession } from "../helpers/raw-session.js";
import { waitUntil } from "../helpers/wait.js";

let db: TestDatabase;
let relays: PgRelays | undefined;
let rsa: KeyObject;
let mallory: PrivateIdentity;

beforeAll(async () => {
  db = await freshDatabase();
  rsa = fixtureKeys("carol")[1]!;
  mallory = await fixtureIdentity("mallory");
}, 60_000);
afterEach(async () => {
  await relays?.cleanup();
  relays = undefined;
});
afterAll(async () => {
  await db.drop();
});

/** A user with a signing key of its own (the RSA key is shared: the signing key decides). */
const stranger = (username: string): PrivateIdentity => identityFromPrivateKeys(username, generateKeyPairSync("ed25519").privateKey, rsa);
/** Store calls relay `m` made so far (every round trip to its database). */
const calls = (m: PgMember): number => (m.store as unknown as { readonly db: SyncPg }).db.callsMade;
const madeUp = (n: number): string[] => Array.from({ length: n }, () => `u${randomBytes(8).toString("hex")}`);
/** Not usernames (§4.1): never looked up. */
const INVALID = ["Alice", "x".repeat(40), "", "a/b", "nobody", "ünï", "a b", "-dash"];

/** The store calls one request costs relay `m`, and its answer. */
async function costOf<T>(m: PgMember, request: () => Promise<T>): Promise<{ readonly calls: number; readonly answer: T }> {
  const before = calls(m);
  const answer = await request();
  return { calls: calls(m) - before, answer };
}

const lookup = (s: RawSession, usernames: string[]) => must(s, { $case: "lookupKeys", value: { requestId: 0, usernames } }, "keyList");
const fetchLists = (s: RawSession, usernames: string[]) => must(s, { $case: "fetchDeviceLists", value: { requestId: 0, usernames } }, "deviceListResult");
const claim = (s: RawSession, usernames: string[]) => must(s, { $case: "claimKeyPackages", value: { requestId: 0, usernames, deviceIds: [] } }, "keyPackageList");

describe("made-up names on a cluster relay: store calls per request", () => {
  it("LookupKeys and FetchDeviceLists of 500 made-up and invalid names: one read, none again; names bound right after are found, here and on the other relay", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 2);
    const [r0] = relays.members;
    const m = await relays.connect(0, mallory);
    const here = `h${randomBytes(6).toString("hex")}`;
    const there = `t${randomBytes(6).toString("hex")}`;
    const names = [here, there, ...INVALID, ...madeUp(500 - 2 - INVALID.length)];

    const first = await costOf(r0!, () => lookup(m, names));
    expect(first.answer.entries).toEqual([]);
    expect(first.calls).toBeLessThanOrEqual(1); // was 500 - INVALID.length + (invalid ones read too)
    const again = await costOf(r0!, () => lookup(m, names));
    expect(again.answer.entries).toEqual([]);
    expect(again.calls).toBe(0);
    const lists = await costOf(r0!, () => fetchLists(m, names));
    expect(lists.answer.lists).toEqual([]);
    expect(lists.calls).toBe(0);
    // Fresh made-up names through FetchDeviceLists first: one read there too.
    const fresh = await costOf(r0!, () => fetchLists(m, [...INVALID, ...madeUp(400)]));
    expect(fresh.answer.lists).toEqual([]);
    expect(fresh.calls).toBeLessThanOrEqual(1);

    // Bound right after on this relay: found at once (the binding forgets the name as unbound).
    await relays.connect(0, stranger(here));
    expect((await lookup(m, [here])).entries.map((e) => e.username)).toEqual([here]);
    // Bound on the other relay: found once its `user` event is here (that relay's writer sends it
    // after the binding, so a barrier sent by another connection may come first: wait for it).
    await relays.connect(1, stranger(there));
    await waitUntil(async () => (await lookup(m, [there])).entries.length === 1, "the name bound on the other relay is found", 20_000);
    expect((await lookup(m, names)).entries.map((e) => e.username).sort()).toEqual([here, there].sort());
    expect((await fetchLists(m, [there])).lists).toEqual([]); // bound, no device list kept
  });

  it("ClaimKeyPackages of 100 made-up names: one read, no claim; a real user's KeyPackage beside them is handed out once", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 2);
    const [r0] = relays.members;
    const m = await relays.connect(0, mallory);
    const bobId = stranger(`b${randomBytes(6).toString("hex")}`);
    const b = await relays.connect(1, bobId);
    const bob = await mlsPerson(bobId);
    await must(b, { $case: "publishKeyPackages", value: { requestId: 0, oneTime: [await makeKeyPackage(bob)], lastResort: Buffer.alloc(0) } }, "keyPackageStatus");

    const names = madeUp(100);
    const first = await costOf(r0!, () => claim(m, names));
    expect(first.answer.entries).toEqual([]);
    expect([...first.answer.missing].sort()).toEqual([...names].sort());
    expect(first.calls).toBeLessThanOrEqual(1); // was 200: a user read and a claim per name
    const again = await costOf(r0!, () => claim(m, names));
    expect(again.answer.missing).toHaveLength(100);
    expect(again.calls).toBe(0);

    // bob among 99 made-up names: one read (bob, unknown here yet) and one claim for all.
    const mixed = [...madeUp(99), bobId.username];
    const withBob = await costOf(r0!, () => claim(m, mixed));
    expect(withBob.answer.entries.map((e) => [e.username, e.lastResort])).toEqual([[bobId.username, false]]);
    expect(withBob.answer.missing).toHaveLength(99);
    expect(withBob.calls).toBeLessThanOrEqual(2);
    // Handed out once: the next claim finds none (bob published no last-resort one).
    expect((await claim(m, [bobId.username])).missing).toEqual([bobId.username]);
  });
});
