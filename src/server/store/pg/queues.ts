// The delivery queues in PostgreSQL: accepted (sender, message_id) pairs, envelopes stored once,
// one queue row per recipient address; enqueue in group-commit batches, fetch in seq order
// (queue-reader.ts), acks, purge. Mirrors store/queues.ts; what differs is what many relays on one database need:
//
// - Per address, commit order = seq order. Seqs come from one global sequence, and a transaction
//   that queues rows first locks the recipients' `queue_heads` rows, sorted by address, and only
//   then takes seqs (the embedded store has one writer and gets this for free). A delivery pump
//   that has read up to seq N for an address never later finds a row < N committed for it.
// - A resend through another relay is a duplicate: the `accepted` insert decides
//   (ON CONFLICT DO NOTHING; a concurrent insert of the same pair waits for the first's fate).
// - No shared reference count (a 500-member room's acks would serialise on it): an ack deletes
//   the envelope when no other queue row points at it; two acks racing for its last two rows may
//   both leave it, and the purge removes such orphans.
// - Hops: a whole batch (BEGIN, locks, accepted, envelopes, queue rows, acks, COMMIT) is ONE
//   SyncPg call; inside a caller's transaction (enqueueInside) the same statements, one call.
// - Queue usage is cached per address for at most USAGE_TTL_MS (other relays write too), kept in
//   step with this process's enqueues and acks meanwhile.
import type { AckRequest, EnqueueOutcome, EnqueueRequest, PurgeResult, QueuedItem, QueueUsage } from "../queues.js";
import { CachedUsage } from "../queue-usage.js";
import { RecentEnvelopes } from "../recent-envelopes.js";
import type { PgStoreContext } from "./context.js";
import { PgQueueReader } from "./queue-reader.js";
import { PAYLOAD_ENVELOPE, PAYLOAD_MLS } from "./schema.js";
import { CONFLICT_RETRIES, isConflict, type SqlStep, type SyncPg } from "./sync-client.js";

/**
 * How an accepted commit's deliveries are stored (PgQueues implements it; the MLS store,
 * pg/mls.ts, uses it): `enqueueInside` is called INSIDE the commit's open db.transaction.
 * `settled`, when present, is called once that transaction has ended (committed or rolled
 * back), for work that must wait for the commit (e.g. caches of what was stored).
 */
export interface PgQueueWriter {
  enqueueInside(reqs: readonly EnqueueRequest[]): EnqueueOutcome[];
  settled?(committed: boolean): void;
}

/** Longest a cached queue usage is trusted: other relays enqueue and ack the same queues. */
export const USAGE_TTL_MS = 1000;
/** Most "not accepted" answers remembered within one turn of the event loop. */
const NOT_ACCEPTED_MAX = 4096;
/** Most addresses one usage read refreshes. */
const USAGE_REFRESH_MAX = 1000;
/** A cached usage nobody read for this long is dropped (the map does not grow with every address ever seen). */
const USAGE_FORGET_MS = 60_000;

// Locks the recipients' queue heads in address order (the insert makes missing ones; a new head
// inserted by a concurrent transaction is waited for in the same order). An existing head is
// locked by the insert itself (DO UPDATE … WHERE false locks the row and writes nothing): the
// purge deletes heads with no queue rows left (purgeOlderThan), and with DO NOTHING a head seen
// at the insert could be deleted before HEADS_LOCK, which would then lock nothing for it. A head
// the purge deleted meanwhile is inserted again (the conflict is re-checked).
const HEADS_INSERT = `INSERT INTO queue_heads (address) SELECT a FROM unnest($1::text[]) AS a ORDER BY a COLLATE "C"
  ON CONFLICT (address) DO UPDATE SET address = excluded.address WHERE false`;
const HEADS_LOCK = `SELECT address FROM queue_heads WHERE address = ANY($1::text[]) ORDER BY address FOR UPDATE`;

// One statement for a batch: accepted ids (sorted: a fixed lock order), envelopes of the newly
// accepted ones that have recipients, their queue rows in request order (so in seq order).
const ENQUEUE = `
WITH req AS (
  SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::bytea[], $5::int2[], $6::bool[])
    WITH ORDINALITY AS r(sender, message_id, conversation_id, envelope, payload_kind, has_rows, i)
),
a AS (
  INSERT INTO accepted (sender, message_id, accepted_at_ms)
  SELECT sender, message_id, $9 FROM req ORDER BY sender, message_id
  ON CONFLICT DO NOTHING RETURNING sender, message_id
),
e AS (
  INSERT INTO envelopes (conversation_id, sender, message_id, envelope, payload_kind, created_at_ms)
  SELECT req.conversation_id, req.sender, req.message_id, req.envelope, req.payload_kind, $9
  FROM req JOIN a ON a.sender = req.sender AND a.message_id = req.message_id
  WHERE req.has_rows ORDER BY req.i
  RETURNING id, sender, message_id
),
q AS (
  INSERT INTO queue (recipient, envelope_id, created_at_ms)
  SELECT t.recipient, e.id, $9
  FROM unnest($7::int8[], $8::text[]) WITH ORDINALITY AS t(i, recipient, o)
  JOIN req ON req.i = t.i
  JOIN e ON e.sender = req.sender AND e.message_id = req.message_id
  ORDER BY t.o
  RETURNING 1
)
SELECT a.sender, a.message_id, e.id AS envelope_id, (SELECT count(*) FROM q) AS queued
FROM a LEFT JOIN e ON e.sender = a.sender AND e.message_id = a.message_id`;

// Acks: only the named recipient's own rows; envelopes with no other row left go too (the NOT
// EXISTS sees the statement's snapshot, so it skips the rows this statement deletes).
const ACK = `
WITH d AS (
  DELETE FROM queue q USING unnest($1::text[], $2::int8[]) AS a(recipient, seq)
  WHERE q.recipient = a.recipient AND q.seq = a.seq
  RETURNING q.seq, q.recipient, q.envelope_id
),
x AS (
  DELETE FROM envelopes e WHERE e.id IN (SELECT envelope_id FROM d)
    AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.envelope_id = e.id AND q.seq NOT IN (SELECT seq FROM d))
  RETURNING e.id
)
SELECT d.recipient, en.sender, octet_length(en.envelope) AS bytes, (d.envelope_id IN (SELECT id FROM x)) AS dropped, d.envelope_id
FROM d LEFT JOIN envelopes en ON en.id = d.envelope_id`;

// A released name's queues (its own and its linked devices', 'name/…'), with their envelopes
// nobody else waits for.
const DROP_QUEUES = `
WITH d AS (
  DELETE FROM queue WHERE recipient = $1 OR (recipient >= $2 AND recipient < $3)
  RETURNING seq, recipient, envelope_id
),
x AS (
  DELETE FROM envelopes e WHERE e.id IN (SELECT envelope_id FROM d)
    AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.envelope_id = e.id AND q.seq NOT IN (SELECT seq FROM d))
  RETURNING e.id
)
SELECT DISTINCT recipient, NULL::int8 AS dropped FROM d UNION ALL SELECT NULL, id FROM x`;

// Heads of addresses without queue rows (names a commit's hint made up once, devices unlinked,
// queues fully read), in address order, each one only if no enqueuer holds it.
const PURGE_HEADS = `
WITH idle AS (
  SELECT h.address FROM queue_heads h WHERE NOT EXISTS (SELECT 1 FROM queue q WHERE q.recipient = h.address)
  ORDER BY h.address COLLATE "C" FOR UPDATE SKIP LOCKED
),
d AS (DELETE FROM queue_heads h USING idle WHERE h.address = idle.address RETURNING 1)
SELECT count(*) AS n FROM d`;

const key = (sender: string, messageId: Uint8Array): string => `${sender}\n${Buffer.from(messageId).toString("hex")}`;

/** The `accepted`, `envelopes`, `queue` and `queue_heads` tables, with their memory caches. */
export class PgQueues implements PgQueueWriter {
  private readonly db: SyncPg;
  private readonly clock: () => number;
  private readonly depth = new Map<string, CachedUsage>();
  /** Recently stored or read envelope bytes by id (ids are never reused), oldest first, within recentBudget. */
  private readonly recent: RecentEnvelopes;
  private readonly reader: PgQueueReader;
  /** (sender, id) pairs wasAccepted found not accepted in this turn of the event loop. */
  private readonly notAccepted = new Set<string>();
  private forgetNotAccepted: NodeJS.Immediate | undefined;

  /** `monotonic`: the time the usage cache ages by (tests set it). */
  constructor(c: PgStoreContext, recentBudget: number, private readonly monotonic: () => number = () => performance.now()) {
    this.db = c.db;
    this.clock = c.clock;
    this.recent = new RecentEnvelopes(recentBudget);
    this.reader = new PgQueueReader(this.db, this.recent);
  }

  /**
   * Runs steps atomically in ONE call: inside the caller's transaction, or wrapped in BEGIN …
   * COMMIT. On its own, a transaction PostgreSQL aborted as a deadlock victim (an ack batch and a
   * release deleting the same rows in another order) or for a serialization failure runs again
   * (at most CONFLICT_RETRIES more times): the steps are plain statements and memory is updated
   * only from the returned rows, after the commit. Inside a caller's transaction the caller decides.
   */
  private atomically(steps: readonly SqlStep[], durable = true): unknown[][] {
    if (this.db.transactionOpen) return this.db.batch(steps);
    const begin: SqlStep[] = [{ sql: "BEGIN" }];
    if (!durable) begin.push({ sql: "SET LOCAL synchronous_commit = off" });
    for (let attempt = 0; ; attempt++) {
      try {
        return this.db.batch([...begin, ...steps, { sql: "COMMIT" }]).slice(begin.length, begin.length + steps.length);
      } catch (e) {
        try {
          this.db.query("ROLLBACK"); // the failed step left the transaction open (aborted)
        } catch {
          // The connection is gone: PostgreSQL rolled back on its own.
        }
        if (attempt >= CONFLICT_RETRIES || !isConflict(e)) throw e;
      }
    }
  }

  forgetUsage(address: string): void {
    this.depth.delete(address);
  }

  /**
   * Whether (sender, id) was accepted. A SendMls asks twice within one turn of the event loop
   * (the session before admitting it, admitMls again for resends): a "no" is remembered until
   * the loop's next check phase (setImmediate) or this relay's next enqueue, whichever is first,
   * so the second question costs no round trip. Safe however stale: the `accepted` insert of the
   * commit decides (ON CONFLICT), and a message another relay accepted meanwhile is found a
   * duplicate there and answered as one. A "yes" is never cached (nothing to gain: it ends the send).
   */
  /** `ask`: how to ask the database, when it must be asked (pg/mls.ts reads a group along: PgMlsStore.askAcceptedReadingGroup). */
  wasAccepted(sender: string, messageId: Buffer, ask?: (sender: string, messageId: Buffer) => boolean): boolean {
    const k = key(sender, messageId);
    if (this.notAccepted.has(k)) return false;
    const hit = ask !== undefined ? ask(sender, messageId)
      : this.db.query("SELECT 1 FROM accepted WHERE sender = $1 AND message_id = $2", [sender, messageId]).length > 0;
    if (!hit) {
      if (this.notAccepted.size >= NOT_ACCEPTED_MAX) this.notAccepted.clear();
      this.notAccepted.add(k);
      this.forgetNotAccepted ??= setImmediate(() => {
        this.forgetNotAccepted = undefined;
        this.notAccepted.clear();
      }).unref();
    }
    return hit;
  }

  /** Drops the remembered "no"s (an enqueue of this relay may have stored any of them). */
  private clearNotAccepted(): void {
    this.notAccepted.clear();
    if (this.forgetNotAccepted !== undefined) clearImmediate(this.forgetNotAccepted);
    this.forgetNotAccepted = undefined;
  }

  /** The statements that store `reqs`, and how to read their outcome from the ENQUEUE rows. */
  private enqueueSteps(reqs: readonly EnqueueRequest[], now: number): { steps: SqlStep[]; first: boolean[] } {
    const seen = new Set<string>();
    const first = reqs.map((r) => {
      const k = key(r.sender, r.messageId);
      if (seen.has(k)) return false; // a repeat inside the batch shares the first's fate
      seen.add(k);
      return true;
    });
    const unique = reqs.filter((_, i) => first[i]);
    const addresses = [...new Set(unique.flatMap((r) => r.recipients))];
    const rowReq: number[] = [];
    const rowAddr: string[] = [];
    unique.forEach((r, i) => {
      for (const a of r.recipients) {
        rowReq.push(i + 1);
        rowAddr.push(a);
      }
    });
    const steps: SqlStep[] = [];
    if (addresses.length > 0) steps.push({ sql: HEADS_INSERT, params: [addresses] }, { sql: HEADS_LOCK, params: [addresses] });
    steps.push({
      sql: ENQUEUE,
      params: [
        unique.map((r) => r.sender), unique.map((r) => Buffer.from(r.messageId)), unique.map((r) => r.conversationId),
        unique.map((r) => Buffer.from(r.envelope)), unique.map((r) => (r.payload === "mls" ? PAYLOAD_MLS : PAYLOAD_ENVELOPE)),
        unique.map((r) => r.recipients.length > 0), rowReq, rowAddr, now,
      ],
    });
    return { steps, first };
  }

  /** Outcomes from the ENQUEUE rows; remembers the stored envelopes' bytes (ids are never reused). */
  private outcomes(reqs: readonly EnqueueRequest[], first: readonly boolean[], rows: readonly unknown[]): EnqueueOutcome[] {
    const accepted = new Map<string, number | null>();
    for (const r of rows as Array<{ sender: string; message_id: Buffer; envelope_id: number | null }>) {
      accepted.set(key(r.sender, r.message_id), r.envelope_id);
    }
    return reqs.map((req, i): EnqueueOutcome => {
      const k = key(req.sender, req.messageId);
      if (!first[i] || !accepted.has(k)) return "duplicate";
      const id = accepted.get(k);
      if (id !== null && id !== undefined) this.recent.remember(id, Buffer.from(req.envelope)); // a copy: the frame buffer is not ours
      return "stored";
    });
  }

  enqueueBatch(reqs: readonly EnqueueRequest[], acks: readonly AckRequest[] = []): EnqueueOutcome[] {
    if (reqs.length === 0) {
      this.ackBatch(acks);
      return [];
    }
    this.clearNotAccepted();
    const { steps, first } = this.enqueueSteps(reqs, this.clock());
    const ack = this.ackStep(acks);
    const results = this.atomically(ack === undefined ? steps : [...steps, ack]);
    const outcomes = this.outcomes(reqs, first, results[steps.length - 1]!);
    if (ack !== undefined) this.applyAcked(results[steps.length]!);
    this.afterEnqueue(reqs, outcomes);
    return outcomes;
  }

  /** Stores these inside the caller's `db.transaction` (only there); duplicates by (sender, id) are skipped. */
  enqueueInside(reqs: readonly EnqueueRequest[]): EnqueueOutcome[] {
    if (!this.db.transactionOpen) throw new Error("enqueueInside runs only inside db.transaction");
    if (reqs.length === 0) return [];
    this.clearNotAccepted();
    const { steps, first } = this.enqueueSteps(reqs, this.clock());
    const results = this.db.batch(steps);
    const outcomes = this.outcomes(reqs, first, results[steps.length - 1]!);
    // The transaction may still roll back: forget the cached usage rather than add to it.
    for (const r of reqs) for (const a of r.recipients) this.depth.delete(a);
    return outcomes;
  }

  /** After the commit: cached usage grows, and the recipients' pumps, about to ask, are read for together. */
  private afterEnqueue(reqs: readonly EnqueueRequest[], outcomes: readonly EnqueueOutcome[]): void {
    const woken = new Set<string>();
    reqs.forEach((req, i) => {
      if (outcomes[i] !== "stored") return;
      for (const r of req.recipients) {
        this.depth.get(r)?.add(req.sender, req.envelope.length);
        woken.add(r);
      }
    });
    if (woken.size > 0) this.reader.committed(woken);
  }

  private ackStep(acks: readonly AckRequest[]): SqlStep | undefined {
    const recipients: string[] = [];
    const seqs: number[] = [];
    for (const a of acks) {
      for (const s of a.seqs) {
        if (!Number.isSafeInteger(s) || s <= 0) continue;
        recipients.push(a.recipient);
        seqs.push(s);
      }
    }
    return seqs.length === 0 ? undefined : { sql: ACK, params: [recipients, seqs] };
  }

  /** After the commit: the cached usage drops by what was acked, dropped envelopes leave memory. */
  private applyAcked(rows: readonly unknown[]): number {
    for (const r of rows as Array<{ recipient: string; sender: string | null; bytes: number | null; dropped: boolean; envelope_id: number }>) {
      this.depth.get(r.recipient)?.remove(r.sender ?? undefined, r.bytes ?? 0);
      if (r.dropped) this.recent.forget(r.envelope_id);
    }
    return rows.length;
  }

  /** Acks alone, committed without waiting for the WAL flush: a lost ack only means a redelivery. */
  ackBatch(acks: readonly AckRequest[]): number {
    const step = this.ackStep(acks);
    if (step === undefined) return 0;
    return this.applyAcked(this.atomically([step], false)[0]!);
  }

  ack(recipient: string, seqs: readonly number[]): number {
    const step = this.ackStep([{ recipient, seqs }]);
    if (step === undefined) return 0;
    return this.applyAcked(this.atomically([step])[0]!);
  }

  /** Drops a released name's queues, its linked devices' too (in the caller's transaction); returns the addresses. */
  dropQueuesOfUserLocked(username: string): string[] {
    const rows = this.db.query<{ recipient: string | null; dropped: number | null }>(DROP_QUEUES, [username, `${username}/`, `${username}0`]);
    const addresses: string[] = [];
    for (const r of rows) {
      if (r.recipient !== null) addresses.push(r.recipient);
      if (r.dropped !== null) this.recent.forget(r.dropped);
    }
    return addresses;
  }

  /** Drops one address's queue (in the caller's transaction: replaceDeviceList). */
  dropQueueLocked(address: string): void {
    const rows = this.db.query<{ dropped: number | null }>(DROP_QUEUES, [address, "\u0001", "\u0001"]);
    for (const r of rows) if (r.dropped !== null) this.recent.forget(r.dropped);
  }

  enqueue(req: EnqueueRequest): boolean {
    return this.enqueueBatch([req])[0] === "stored";
  }

  lastSeq(): number {
    const [r] = this.db.query<{ n: number }>("SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM queue_seq_seq");
    return r?.n ?? 0;
  }

  queueDepth(recipient: string): number {
    return this.usageOf(recipient).count;
  }

  queueUsage(recipient: string, sender: string): QueueUsage {
    return this.usageOf(recipient).usage(sender);
  }

  /**
   * A recipient's usage, from the cache while it is fresh. A read refreshes, in the same query,
   * the other cached addresses about to go stale (oldest first, at most USAGE_REFRESH_MAX): a room
   * message checks every member's caps, and one query a second beats one per member.
   */
  private usageOf(recipient: string): CachedUsage {
    const now = this.monotonic();
    const cached = this.depth.get(recipient);
    if (cached !== undefined && now - cached.loadedAt <= USAGE_TTL_MS) return cached;
    const addresses = [recipient];
    // The map is in load order (a reload deletes and re-adds): the oldest come first.
    for (const [a, u] of this.depth) {
      if (now - u.loadedAt <= USAGE_TTL_MS / 2 || addresses.length >= USAGE_REFRESH_MAX) break;
      if (now - u.loadedAt > USAGE_FORGET_MS) this.depth.delete(a); // nobody asked for a long time
      else if (a !== recipient) addresses.push(a);
    }
    const fresh = new Map(addresses.map((a) => [a, new CachedUsage(now)]));
    const rows = this.db.query<{ recipient: string; sender: string; n: number; b: number }>(
      `SELECT q.recipient, e.sender, count(*) AS n, sum(octet_length(e.envelope))::int8 AS b
       FROM queue q JOIN envelopes e ON e.id = q.envelope_id WHERE q.recipient = ANY($1::text[]) GROUP BY q.recipient, e.sender`,
      [addresses],
    );
    for (const r of rows) fresh.get(r.recipient)?.add(r.sender, r.b, r.n);
    for (const [a, u] of fresh) {
      this.depth.delete(a);
      this.depth.set(a, u);
    }
    return fresh.get(recipient)!;
  }

  /** A page of the recipient's queue (pg/queue-reader.ts: pages of one commit's recipients are read together). */
  fetchQueue(recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[] {
    return this.reader.fetchQueue(recipient, afterSeq, limit, maxBytes);
  }

  purgeOlderThan(cutoffMs: number): PurgeResult {
    const [q, e, a] = this.atomically([
      { sql: "WITH d AS (DELETE FROM queue WHERE created_at_ms < $1 RETURNING 1) SELECT count(*) AS n FROM d", params: [cutoffMs] },
      // Old envelopes, and orphans: two acks racing for an envelope's last rows leave it behind.
      {
        sql: `WITH d AS (DELETE FROM envelopes e WHERE e.created_at_ms < $1
                OR NOT EXISTS (SELECT 1 FROM queue q WHERE q.envelope_id = e.id) RETURNING 1) SELECT count(*) AS n FROM d`,
        params: [cutoffMs],
      },
      { sql: "WITH d AS (DELETE FROM accepted WHERE accepted_at_ms < $1 RETURNING 1) SELECT count(*) AS n FROM d", params: [cutoffMs] },
      // Last (nothing is locked after it): the heads of addresses with no queue row left. A head
      // an enqueuer holds is skipped (SKIP LOCKED: the purge never waits for a head, so it cannot
      // deadlock with the enqueuers' lock order); an enqueuer after the delete inserts it again.
      { sql: PURGE_HEADS },
    ]) as Array<Array<{ n: number }>>;
    const result: PurgeResult = { queueRows: q![0]!.n, envelopes: e![0]!.n, acceptedIds: a![0]!.n };
    if (result.queueRows > 0) this.depth.clear();
    if (result.envelopes > 0) {
      this.recent.clear();
    }
    return result;
  }
}
