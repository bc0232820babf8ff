// Red team, relay (rt4): a commit's membership hint names users (§8.2). A member alone in a room
// of her own tries to add 497 made-up names with one commit (with any Welcome of our suite: the
// relay checks only its framing): refused whole, UNKNOWN_RECIPIENT, so nothing is queued for
// them nor counted as members (ListRooms); removing such names changes nothing. Nothing is queued
// for a name nobody owns (§8.3): no queue row on either store, and on PostgreSQL no
// `queue_heads` row either; and the retention purge deletes the heads of addresses with no queue
// row left, while a queue that still holds rows keeps them and its head.
import { randomBytes } from "node:crypto";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { MlsGroup } from "../../src/protocol/mls/index.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { makeKeyPackage, mlsPerson, must, sendCommit } from "../helpers/mls-ds.js";
import { fakePrivateCommit, queuedRows } from "../helpers/mls-queues.js";
import { openPgStore } from "../../src/server/store/pg/pg-store.js";
import { freshDatabase, pgQuery } from "../helpers/pg.js";
import { TestRelay } from "../helpers/relay-harness.js";

let mallory: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let relay: TestRelay | undefined;
beforeAll(async () => {
  [mallory, bob, carol] = await Promise.all([fixtureIdentity("mallory"), fixtureIdentity("bob"), fixtureIdentity("carol")]);
});
let onEnd: (() => Promise<void>) | undefined;
afterEach(async () => {
  await relay?.cleanup();
  relay = undefined;
  await onEnd?.();
  onEnd = undefined;
});

describe("made-up names in a commit's hint", () => {
  it("get no queue row (nor a queue_heads row); the purge leaves no head without queue rows, and real queues as they were", { timeout: 120_000 }, async () => {
    let now = Date.now();
    relay = await TestRelay.start({ clock: () => now, logLevel: "warn" });
    // bob and carol are bound, then offline: what is queued for them waits.
    for (const id of [bob, carol]) (await relay.connect(id)).close();
    const m = await relay.connect(mallory);
    const pm = await mlsPerson(mallory);
    const room = await MlsGroup.create(pm.client, "#mine");
    await must(m, { $case: "publishGroupInfo", value: { requestId: 0, groupInfo: Buffer.from(await room.groupInfo()) } }, "groupInfoResult");
    const other = await MlsGroup.create(pm.client, "#other");
    const welcome = Buffer.from((await other.addMembers([await makeKeyPackage(await mlsPerson(mallory, "someone"))])).welcome!);
    let epoch = 0;
    const commit = async (hint: { added?: string[]; removed?: string[] }): Promise<void> => {
      for (;;) {
        const r = await sendCommit(m, fakePrivateCommit(room.groupId, epoch, 200), undefined,
          hint.added === undefined ? hint : { ...hint, welcome, ratchetTree: Buffer.from("t") });
        if (r.accepted) { epoch++; return; }
        expect(r.code).toBe(ErrorCode.ERROR_CODE_RATE_LIMITED);
        now += 1000;
      }
    };
    const pg = relay.storeUrl;
    const heads = async (): Promise<string[]> => (await pgQuery(pg!, "SELECT address FROM queue_heads ORDER BY address")).rows.map((r) => r.address as string);
    const names = Array.from({ length: 497 }, () => `z${randomBytes(10).toString("hex")}`);

    for (;;) {
      const r = await sendCommit(m, fakePrivateCommit(room.groupId, epoch, 200), undefined, { added: [bob.username, ...names], welcome, ratchetTree: Buffer.from("t") });
      if (r.code === ErrorCode.ERROR_CODE_RATE_LIMITED) { now += 1000; continue; }
      expect(r).toMatchObject({ accepted: false, code: ErrorCode.ERROR_CODE_UNKNOWN_RECIPIENT });
      expect(r.detail).toMatch(/^the commit adds z[0-9a-f]{20}, who has no account on this relay$/);
      break;
    }
    expect(queuedRows(relay, bob.username)).toBe(0);
    await commit({ added: [bob.username, carol.username] }); // a Welcome row each
    await commit({ removed: [carol.username, ...names] }); // the commit for bob and carol (members before it)
    for (const n of names.slice(0, 20)) expect(queuedRows(relay, n)).toBe(0);
    expect(queuedRows(relay, bob.username)).toBe(2);
    expect(queuedRows(relay, carol.username)).toBe(2);
    if (pg !== undefined) {
      expect(Number((await pgQuery(pg, "SELECT count(*) AS n FROM queue WHERE recipient = ANY($1)", [names])).rows[0].n)).toBe(0);
      expect(await heads()).toEqual([bob.username, carol.username].sort());
    }

    // Past the retention: the old rows go; then one commit queues a fresh row for bob (the only other member).
    now += 31 * 24 * 3600 * 1000;
    expect(relay.running.purgeExpired()).toMatchObject({ queueRows: 4 });
    if (pg !== undefined) expect(await heads()).toEqual([]); // no queue holds a row: no head is kept
    await commit({});
    if (pg !== undefined) expect(await heads()).toEqual([bob.username]); // queued again: its head again
    relay.running.purgeExpired();
    expect(queuedRows(relay, bob.username)).toBe(1);
    expect(queuedRows(relay, carol.username)).toBe(0);
    // Only the head of a queue that holds rows is left.
    if (pg !== undefined) expect(await heads()).toEqual([bob.username]);
  });
});

// The PostgreSQL store itself (a fresh database of the tests' cluster), whichever store the
// project gives the relays above: it runs in both projects.
describe("idle queue heads (the PostgreSQL store)", () => {
  it("an address whose rows were all acked loses its head at the next purge; one that queues again gets it back", { timeout: 60_000 }, async () => {
    const db = await freshDatabase();
    const store = openPgStore(db.url);
    onEnd = async () => {
      store.close();
      await db.drop();
    };
    const pg = db.url;
    const heads = async (): Promise<string[]> => (await pgQuery(pg, "SELECT address FROM queue_heads ORDER BY address")).rows.map((r) => r.address as string);
    const env = (i: number) => ({ sender: "mallory", messageId: Buffer.from(`m${i}`.padEnd(16, ".")), conversationId: "lobby", envelope: Buffer.alloc(10, 7), recipients: ["bob", "carol"] });
    expect(store.enqueue(env(1))).toBe(true);
    const [row] = store.fetchQueue("bob", 0, 10, 1 << 20);
    expect(store.ack("bob", [row!.seq])).toBe(1);
    expect(await heads()).toEqual(["bob", "carol"]);
    store.purgeOlderThan(0);
    expect(await heads()).toEqual(["carol"]);
    expect(store.queueDepth("carol")).toBe(1);
    expect(store.enqueue(env(2))).toBe(true);
    expect(await heads()).toEqual(["bob", "carol"]);
    expect(store.fetchQueue("bob", row!.seq, 10, 1 << 20)).toHaveLength(1);
  });
});
