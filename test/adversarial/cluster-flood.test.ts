// A flood spread over every relay of a SERVICE on one PostgreSQL (issue 14) against one
// recipient's queue caps. The caps are counted from the database (queue rows), each relay keeping
// a recipient's usage for at most USAGE_TTL_MS (1 s) and adding its own sends to it: within that
// second each relay admits up to the cap by its own count, so N relays admit at most N times the
// cap, and once the usage is read again every relay refuses. Rate limits are per session (one
// session per device service-wide), so spreading over relays buys a flooder nothing there.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, SendStatus, type SendResult } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import type { MlsGroup } from "../../src/protocol/mls/index.js";
import { USAGE_TTL_MS } from "../../src/server/store/pg/queues.js";
import { createAndAdd, joinFromQueue, publishKeyPackage } from "../helpers/cluster-mls.js";
import { PgRelays } from "../helpers/cluster-pg-relays.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { mlsPerson } from "../helpers/mls-ds.js";
import { sendMls } from "../helpers/mls-queues.js";
import { freshDatabase, pgQuery, type TestDatabase } from "../helpers/pg.js";
import type { RawSession } from "../helpers/raw-session.js";
import { waitUntil } from "../helpers/wait.js";

const CAP = 12;
/** Each sender tries more than the cap: each relay must refuse some by its own count. */
const EACH = 16;

let db: TestDatabase;
let people: PrivateIdentity[];
let relays: PgRelays | undefined;

beforeAll(async () => {
  db = await freshDatabase();
  people = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("dave")]);
});
afterEach(async () => {
  await relays?.cleanup();
  relays = undefined;
});
afterAll(async () => {
  await db.drop();
});

async function queued(address: string): Promise<number> {
  return Number((await pgQuery(db.url, "SELECT count(*) AS n FROM queue WHERE recipient = $1", [address])).rows[0].n);
}

/** Sends `n` messages one after the other; the results. */
async function flood(s: RawSession, g: MlsGroup, n: number, tag: string): Promise<SendResult[]> {
  const out: SendResult[] = [];
  for (let i = 0; i < n; i++) out.push(await sendMls(s, await g.encrypt(Buffer.from(`${tag} ${i}`))));
  return out;
}

describe("a flood spread over three relays", () => {
  it("three senders on three relays against one recipient's queue cap: at most three caps within the usage cache's second, then every relay refuses", { timeout: 90_000 }, async () => {
    // The per-recipient cap is the one under attack; the per-sender share and the rate stay out of the way.
    relays = await PgRelays.start(db.url, 3, { limits: { maxQueuePerUser: CAP, maxQueuePerSender: 1_000, messagesPerSecond: 1_000, burst: 1_000 } });
    const g = relays;
    const [alice, bob, carol, dave] = people as [PrivateIdentity, PrivateIdentity, PrivateIdentity, PrivateIdentity];
    const [pa, pb, pc, pd] = await Promise.all([alice, bob, carol, dave].map((p) => mlsPerson(p)));
    const b = await g.connect(0, bob);
    await publishKeyPackage(b, pb!);
    const c = await g.connect(1, carol);
    await publishKeyPackage(c, pc!);
    const d = await g.connect(2, dave);
    await publishKeyPackage(d, pd!);
    const a = await g.connect(0, alice);
    const ga = await createAndAdd(a, pa!, "#flood", ["bob", "carol", "dave"]);
    const [gc, gd] = [await joinFromQueue(c, pc!), await joinFromQueue(d, pd!)];
    b.close(); // bob is away: his queue fills
    await waitUntil(() => g.members.every((m) => m.cluster.remoteAddresses("bob") === undefined), "every relay heard bob go");
    const start = await queued("bob"); // the Welcome
    // alice floods through relay 0, carol through relay 1, dave through relay 2, all at once.
    const results = (await Promise.all([flood(a, ga, EACH, "a"), flood(c, gc, EACH, "c"), flood(d, gd, EACH, "d")])).flat();
    const accepted = results.filter((r) => r.status === SendStatus.SEND_STATUS_ACCEPTED).length;
    const refused = results.filter((r) => r.status !== SendStatus.SEND_STATUS_ACCEPTED);
    for (const r of refused) expect(r.code).toBe(ErrorCode.ERROR_CODE_QUEUE_FULL);
    // Each relay admitted at most the cap by its own count (so each sender was refused some):
    // three relays, at most three caps in bob's queue.
    expect(start + accepted).toBe(await queued("bob"));
    expect(await queued("bob")).toBeLessThanOrEqual(3 * CAP);
    for (let i = 0; i < 3; i++) expect(results.slice(i * EACH, (i + 1) * EACH).some((r) => r.status === SendStatus.SEND_STATUS_REFUSED)).toBe(true);
    // Once every relay's cached usage is older than the cache's second, none admits one more.
    const aged = performance.now() + USAGE_TTL_MS;
    await waitUntil(() => performance.now() > aged, "the usage caches aged");
    const late = [await sendMls(a, await ga.encrypt(Buffer.from("late a"))), await sendMls(c, await gc.encrypt(Buffer.from("late c"))), await sendMls(d, await gd.encrypt(Buffer.from("late d")))];
    expect(late.map((r) => [r.status, r.code])).toEqual(Array(3).fill([SendStatus.SEND_STATUS_REFUSED, ErrorCode.ERROR_CODE_QUEUE_FULL]));
  });
});
