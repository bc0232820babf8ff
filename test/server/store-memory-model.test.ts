// Random sequences of the queue operations against the embedded store, each answer compared with
// the file read through a second connection (store/queues.ts answers fetches, accepted-id checks
// and acks from memory: queue-memory.ts, recent-ids.ts, accepted-filter.ts). Pumps fetch
// in seq order with small limits and byte budgets, reconnect from 0, ack their own rows, rows not
// yet fetched and others' rows; batches and commits' deliveries are stored, some rolled back;
// names are released here and by another process; old rows are purged. After every step the
// file must hold no envelope without a queue row (the `queue` view), and at the end a store opened afresh on the file
// (as after kill -9: the live one is not closed first) must answer as the live one does.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type AckRequest, type EnqueueRequest, type QueuedItem, type RelayStore } from "../../src/server/store.js";
import { hex, user } from "../helpers/store-records.js";

const RECIPIENTS = ["bob", "carol", "dave", "bob/d1", "erin"];
const NAMES = ["bob", "carol", "dave", "erin"];
const SENDERS = ["alice", "bob", "carol"];
const GROUP = Buffer.alloc(20, 7);

/** mulberry32: the same sequence for the same seed, to replay a failure. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Shown = [number, string, string, string, number];
const shown = (i: QueuedItem): Shown => [i.seq, i.conversationId, hex(i.envelope), i.payload ?? "envelope", i.relayTimeMs ?? -1];

let dir: string;
let path: string;
let store: RelayStore;
let file: DatabaseSync;
let now: number;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "store-memory-model-"));
  path = join(dir, "relay.db");
  now = 1_000_000;
  // A budget of 6 recent ids: the oldest move into `accepted` every few steps (queues.ts).
  store = openStore(path, { clock: () => now, recentAcceptedIds: RECENT_IDS });
  file = new DatabaseSync(path, { readOnly: true });
});

afterEach(() => {
  file.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** fetchQueue as the file says it (seq order, limit, maxBytes with at least one row). */
function fileFetch(r: string, after: number, limit: number, maxBytes: number): Shown[] {
  const rows = file.prepare(`SELECT q.seq AS seq, q.created_at_ms AS t, e.conversation_id AS c, e.payload_kind AS k, e.envelope AS env
                             FROM queue q JOIN envelopes e ON e.id = q.envelope_id WHERE q.recipient = ? AND q.seq > ? ORDER BY q.seq`)
    .all(r, after) as Array<{ seq: number; t: number; c: string; k: number; env: Uint8Array }>;
  const out: Shown[] = [];
  let bytes = 0;
  for (const row of rows) {
    if (out.length >= limit || (out.length > 0 && bytes + row.env.length > maxBytes)) break;
    bytes += row.env.length;
    out.push([Number(row.seq), row.c, hex(row.env), Number(row.k) === 1 ? "mls" : "envelope", Number(row.t)]);
  }
  return out;
}

function fileUsage(r: string, sender: string) {
  const rows = file.prepare(`SELECT e.sender AS s, COUNT(*) AS n, SUM(length(e.envelope)) AS b FROM queue q JOIN envelopes e ON e.id = q.envelope_id
                             WHERE q.recipient = ? GROUP BY e.sender`).all(r) as Array<{ s: string; n: number; b: number }>;
  const mine = rows.find((x) => x.s === sender);
  return {
    count: rows.reduce((n, x) => n + Number(x.n), 0), bytes: rows.reduce((n, x) => n + Number(x.b), 0),
    senderCount: Number(mine?.n ?? 0), senderBytes: Number(mine?.b ?? 0),
  };
}

/** Recent accepted ids the live store keeps in memory before moving the oldest. */
const RECENT_IDS = 6;

/** Whether the file holds the id, in either table (schema version 3: accepted_recent has a row per transaction, its ids end to end). */
const fileAccepted = (sender: string, id: Buffer): boolean =>
  file.prepare("SELECT 1 FROM accepted WHERE sender = ? AND message_id = ?").get(sender, id) !== undefined ||
  (file.prepare("SELECT senders, message_ids FROM accepted_recent").all() as Array<{ senders: string; message_ids: Uint8Array }>)
    .some((r) => (JSON.parse(r.senders) as string[]).some((s, i) => s === sender && id.equals(r.message_ids.subarray(16 * i, 16 * i + 16))));

/** No envelope stays that no queue holds (the `queue` view computes the rows from the tables). */
function expectRefsMatchRows(): void {
  const bad = file.prepare(`SELECT e.id AS id FROM envelopes e WHERE NOT EXISTS (SELECT 1 FROM queue q WHERE q.envelope_id = e.id)`).all();
  expect(bad).toEqual([]);
}

function run(seed: number, steps: number): void {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const ids = Array.from({ length: 40 }, (_, i) => Buffer.alloc(16, i + 1));
  const pos = new Map(RECIPIENTS.map((r) => [r, 0]));
  for (const n of NAMES) store.bindUser(user(n, 1));
  store.mls.createGroup({ groupId: GROUP, conversationId: "#g", creator: "alice", epoch: 0, groupInfo: Buffer.from("gi"), groupInfoEpoch: 0 });
  const newReq = (poison = false): EnqueueRequest => {
    const recipients = RECIPIENTS.filter(() => rnd() < 0.5);
    const r: EnqueueRequest = {
      sender: pick(SENDERS), messageId: pick(ids), conversationId: pick(["#g", "lobby"]), envelope: Buffer.alloc(1 + Math.floor(rnd() * 900), Math.floor(rnd() * 256)),
      payload: rnd() < 0.5 ? "mls" : "envelope", recipients,
    };
    // Poisoned: a new id (so it is not skipped as a duplicate) whose envelope row cannot be stored.
    return poison ? { ...r, messageId: randomBytes(16), conversationId: null as unknown as string, recipients: ["bob"] } : r;
  };
  const someAcks = (): AckRequest[] => RECIPIENTS.filter(() => rnd() < 0.4).map((recipient) => {
    const own = fileFetch(recipient, 0, 1000, Number.POSITIVE_INFINITY).map((x) => x[0]);
    const others = fileFetch(pick(RECIPIENTS), 0, 1000, Number.POSITIVE_INFINITY).map((x) => x[0]);
    return { recipient, seqs: [...own.filter(() => rnd() < 0.5), ...others.filter(() => rnd() < 0.2), ...(rnd() < 0.1 ? [999_999] : [])] };
  });
  for (let step = 0; step < steps; step++) {
    const op = rnd();
    const where = `seed ${seed} step ${step}`;
    if (op < 0.3) {
      const r = pick(RECIPIENTS);
      const limit = 1 + Math.floor(rnd() * 6);
      const maxBytes = pick([1, 500, 2000, Number.POSITIVE_INFINITY]);
      const after = pos.get(r)!;
      const want = fileFetch(r, after, limit, maxBytes);
      expect(store.fetchQueue(r, after, limit, maxBytes).map(shown), `${where}: fetch ${r} after ${after}`).toEqual(want);
      if (want.length > 0) pos.set(r, want.at(-1)![0]);
    } else if (op < 0.35) {
      pos.set(pick(RECIPIENTS), 0); // a new session starts from the oldest row
    } else if (op < 0.55) {
      const reqs = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => newReq());
      const acks = rnd() < 0.3 ? someAcks() : [];
      if (rnd() < 0.15) expect(() => store.enqueueBatch([...reqs, newReq(true)], acks), where).toThrow();
      else store.enqueueBatch(reqs, acks);
    } else if (op < 0.7) {
      const acks = someAcks();
      if (rnd() < 0.5 || acks.length !== 1) store.ackBatch(acks);
      else store.ack(acks[0]!.recipient, acks[0]!.seqs);
    } else if (op < 0.78) {
      const epoch = store.mls.group(GROUP)!.epoch;
      const poison = rnd() < 0.3;
      const commit = () => store.mls.acceptCommit(GROUP, epoch, "alice", Buffer.from(`c${step}`), undefined, { external: false, added: [], removed: [] },
        () => [newReq(), ...(poison ? [newReq(true)] : [])]);
      if (poison) expect(commit, where).toThrow();
      else expect(commit().kind, where).toBe("accepted");
    } else if (op < 0.83) {
      const name = pick(NAMES);
      if (rnd() < 0.5) store.releaseUser(name);
      else {
        // `chat-relay users release` in another process; the relay sees it when the name is bound again.
        const operator = openStore(path);
        try {
          operator.releaseUser(name);
        } finally {
          operator.close();
        }
      }
      store.bindUser(user(name, 2 + step));
    } else if (op < 0.86) {
      now += Math.floor(rnd() * 5000);
      store.purgeOlderThan(now - Math.floor(rnd() * 20_000));
    } else {
      now += Math.floor(rnd() * 1000);
      const sender = pick(SENDERS);
      const id = pick(ids);
      expect(store.wasAccepted(sender, id), `${where}: accepted`).toBe(fileAccepted(sender, id));
      const r = pick(RECIPIENTS);
      expect(store.queueUsage(r, sender), `${where}: usage of ${r}`).toEqual(fileUsage(r, sender));
    }
    expectRefsMatchRows();
  }
  // A restart: a store opened afresh on the file answers as the live one.
  const fresh = openStore(path, { clock: () => now, recentAcceptedIds: RECENT_IDS });
  try {
    for (const r of RECIPIENTS) {
      const after = pos.get(r)!;
      expect(store.fetchQueue(r, after, 1000, Number.POSITIVE_INFINITY).map(shown)).toEqual(fresh.fetchQueue(r, after, 1000, Number.POSITIVE_INFINITY).map(shown));
      for (const s of SENDERS) expect(store.queueUsage(r, s)).toEqual(fresh.queueUsage(r, s));
    }
    for (const s of SENDERS) for (const id of ids) expect(store.wasAccepted(s, id)).toBe(fresh.wasAccepted(s, id));
  } finally {
    fresh.close();
  }
}

describe("the embedded store's memory answers as its file, through random sequences of queue operations", () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`seed ${seed}`, () => {
      run(seed, 400);
    });
  }
});
