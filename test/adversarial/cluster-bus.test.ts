// The bus between relays of a SERVICE on one PostgreSQL (issue 14), attacked from outside and
// from inside: a stranger trying to make a user look offline (or online) on other relays, and
// payloads on the NOTIFY channel that no relay sent (anyone with access to the database can
// NOTIFY): garbage, wrong shapes, and well-formed events as large as a payload may be. Presence
// comes only from authenticated sessions; a relay ignores what it cannot parse, and keeps serving.
import { generateKeyPairSync } from "node:crypto";
import { status as GrpcStatus } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { identityFromPrivateKeys, signProof, type PrivateIdentity } from "../../src/protocol/keys.js";
import { CLUSTER_CHANNEL } from "../../src/server/store/pg/pg-cluster.js";
import { createAndAdd, joinFromQueue, openAll, publishKeyPackage } from "../helpers/cluster-mls.js";
import { PgRelays } from "../helpers/cluster-pg-relays.js";
import { ed25519Pair, openDevice } from "../helpers/device-session.js";
import { fixtureIdentity, fixtureKeys } from "../helpers/identities.js";
import { mlsPerson } from "../helpers/mls-ds.js";
import { sendMlsAccepted, takeMls } from "../helpers/mls-queues.js";
import { freshDatabase, pgQuery, type TestDatabase } from "../helpers/pg.js";
import type { TestRelay } from "../helpers/relay-harness.js";

let db: TestDatabase;
let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let relays: PgRelays | undefined;

beforeAll(async () => {
  db = await freshDatabase();
  [alice, bob, carol] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
});
afterEach(async () => {
  await relays?.cleanup();
  relays = undefined;
});
afterAll(async () => {
  await db.drop();
});

const sql = (text: string, params: unknown[] = []): Promise<pg.QueryResult> => pgQuery(db.url, text, params);

describe("presence forgery", () => {
  it("a stranger with bob's public keys, or a device of its own under bob's name, cannot make bob look offline (or online) anywhere", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 3);
    const g = relays;
    const eye = await g.connect(2, carol);
    const b = await g.connect(0, bob);
    await eye.nextPresence("bob", true);
    // bob's public keys in the Hello, a proof by another key.
    const forger = g.open(1);
    forger.hello(bob, { protocolVersion: 2 });
    const challenge = await forger.next("challenge");
    const other = identityFromPrivateKeys("bob", generateKeyPairSync("ed25519").privateKey, fixtureKeys("carol")[1]!);
    forger.write({ $case: "proof", value: { signature: signProof(other, challenge.relayId, challenge.nonce, forger.channelBinding) } });
    expect([(await forger.status()).code, (await forger.status()).errorCode]).toEqual([GrpcStatus.UNAUTHENTICATED, "ERROR_CODE_PROOF_INVALID"]);
    // A "linked device" of bob's that bob's device list does not name.
    const pair = ed25519Pair();
    const device = await openDevice({ open: () => g.open(2) } as unknown as TestRelay, bob, { deviceKey: pair.privateKey, deviceSpki: pair.spki });
    expect([(await device.status()).code, (await device.status()).errorCode]).toEqual([GrpcStatus.PERMISSION_DENIED, "ERROR_CODE_DEVICE_UNKNOWN"]);
    // A stranger claiming a name nobody holds, with a bad proof: never online anywhere.
    const ghost = g.open(1);
    const ghostId = identityFromPrivateKeys("ghost", generateKeyPairSync("ed25519").privateKey, fixtureKeys("carol")[1]!);
    ghost.hello(ghostId, { protocolVersion: 2 });
    const c2 = await ghost.next("challenge");
    ghost.write({ $case: "proof", value: { signature: signProof(other, c2.relayId, c2.nonce, ghost.channelBinding) } });
    expect((await ghost.status()).code).toBe(GrpcStatus.UNAUTHENTICATED);
    await g.busBarrier();
    // bob's session stands, nobody saw him go, the table and every other relay have him on relay 0.
    expect(b.isEnded).toBe(false);
    // (bob's first binding may reach relay 2 before his presence: an offline entry before any online one.)
    const seen = eye.presenceLog.filter((e) => e.username === "bob").map((e) => e.online);
    expect(seen.slice(seen.indexOf(true))).toEqual(seen.slice(seen.indexOf(true)).map(() => true));
    expect(seen).toContain(true);
    expect(eye.sawPresence("ghost", true)).toBe(false);
    expect((await sql("SELECT address, instance_id FROM presence ORDER BY address")).rows).toEqual([
      { address: "bob", instance_id: g.members[0]!.cluster.instanceId }, { address: "carol", instance_id: g.members[2]!.cluster.instanceId },
    ]);
    expect([1, 2].map((i) => g.members[i]!.cluster.remoteAddresses("bob")?.has("bob"))).toEqual([true, true]);
    expect((await eye.lookupKeys(["bob"]))[0]?.online).toBe(true);
  });
});

describe("payloads on the channel that no relay sent", () => {
  it("garbage and wrong shapes are ignored (logged); oversized well-formed events cost nothing; every relay keeps serving", { timeout: 60_000 }, async () => {
    relays = await PgRelays.start(db.url, 3);
    const g = relays;
    const [pa, pb] = await Promise.all([mlsPerson(alice), mlsPerson(bob)]);
    const b = await g.connect(1, bob);
    await publishKeyPackage(b, pb);
    const a = await g.connect(0, alice);
    const eye = await g.connect(2, carol);
    const garbage = [
      "", "not json", "null", "[]", "42", "\"rows\"", "{}", "{\"kind\":\"rows\",\"from\":\"x\",\"rows\":\"no\"}",
      "{\"kind\":\"rows\",\"from\":\"x\",\"rows\":[[\"bob\",-1]]}", "{\"kind\":\"rows\",\"from\":\"x\",\"rows\":[[\"bob\",1.5]]}",
      "{\"kind\":\"presence\",\"from\":\"x\",\"username\":1,\"address\":\"bob\",\"online\":false}", "{\"kind\":\"nope\",\"from\":\"x\"}",
      "{\"kind\":\"session\",\"address\":\"bob\"}", "{\"__proto__\":{\"kind\":\"rescan\"},\"from\":\"x\"}",
      "[".repeat(3_000) + "]".repeat(3_000), "{\"kind\":\"user\",\"from\":\"x\",\"username\":" + "[".repeat(3_000) + "]".repeat(3_000) + "}",
      "x".repeat(7_999),
    ];
    const before = g.members.map((_, i) => g.badEvents(i));
    await sql("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", [CLUSTER_CHANNEL, garbage]);
    // Well-formed and as large as a payload goes: 200 rows (bob's among them) with absurd counts,
    // presence for a name of 3,800 characters, user and session events for one of 7,000, a session for an address nobody has, rescans.
    const rows = Array.from({ length: 200 }, (_, i) => [i === 0 ? "bob" : `nobody${i}`, Number.MAX_SAFE_INTEGER]);
    const huge = "z".repeat(7_000);
    const half = "y".repeat(3_800);
    const valid = [
      JSON.stringify({ kind: "rows", from: "intruder", rows }),
      JSON.stringify({ kind: "presence", from: "intruder", username: half, address: half, online: true }),
      JSON.stringify({ kind: "user", from: "intruder", username: huge }),
      JSON.stringify({ kind: "session", from: "intruder", address: huge }),
      ...Array(50).fill(JSON.stringify({ kind: "rescan", from: "intruder" })),
    ];
    for (const v of valid) expect(Buffer.byteLength(v)).toBeLessThan(8_000);
    await sql("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", [CLUSTER_CHANNEL, valid]);
    await g.busBarrier();
    // Each relay logged every malformed payload (and the barrier), and nothing else as bad.
    expect(g.members.map((_, i) => g.badEvents(i) - before[i]!)).toEqual([garbage.length + 1, garbage.length + 1, garbage.length + 1]);
    expect(g.members.every((m) => m.cluster.healthy)).toBe(true);
    // Every relay still serves: sessions stand, a group is made across relays, a message crosses by an event (no poll).
    expect([a.isEnded, b.isEnded, eye.isEnded]).toEqual([false, false, false]);
    const ga = await createAndAdd(a, pa, "dm:alice:bob", ["bob"]);
    const gb = await joinFromQueue(b, pb);
    await sendMlsAccepted(a, await ga.encrypt(Buffer.from("still here")));
    expect(await openAll(gb, await takeMls(b, 1))).toEqual(["still here"]);
    // A new session anywhere is welcomed, and its directory lists no made-up user.
    const late = await g.connect(2, await fixtureIdentity("dave"));
    expect(late.welcome.directory.map((e) => e.username).sort()).toEqual(["alice", "bob", "carol", "dave"]);
  });
});
