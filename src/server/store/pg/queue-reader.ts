// Reading the delivery queues in PostgreSQL (pg/queues.ts writes them): a page of an address's
// queue in seq order within a count and a byte budget, the envelopes' bytes from memory
// (RecentEnvelopes) or, for the others, one more read.
//
// One read for many pumps. A group commit wakes the pump of every recipient online here, and
// each pump asks for its page at once (delivery.ts: router.delivered -> arrived -> kick -> run,
// all in the commit's synchronous run). Each ask was a round trip; now the first one reads,
// in one statement, the pages of every address of that commit whose pump's next question is
// known (the seq its last page ended at), and the others are answered from what it read. Only
// within that synchronous run and while no other database call was made (SyncPg.callsMade):
// nothing this relay could learn or do in between is missed; another relay's rows committed
// meanwhile are announced by their own event, whose wake-up reads again. An ask that is not the
// expected one (another seq, a bigger count than the page read) reads on its own, as before.
import type { QueuedItem } from "../queues.js";
import type { RecentEnvelopes } from "../recent-envelopes.js";
import { PAYLOAD_MLS } from "./schema.js";
import type { SyncPg } from "./sync-client.js";

type PageRow = {
  readonly seq: number;
  readonly envelope_id: number;
  readonly conversation_id: string;
  readonly created_at_ms: number;
  readonly payload_kind: number;
  readonly bytes: number;
};

/** Pages read ahead for a commit's recipients: each for (after, at most limit rows); valid while `calls` is SyncPg.callsMade. */
interface ReadAhead {
  readonly pages: Map<string, { readonly after: number; readonly limit: number; readonly rows: PageRow[] }>;
  calls: number;
}

const FETCH = `
SELECT seq, envelope_id, conversation_id, created_at_ms, payload_kind, bytes FROM (
  SELECT *, sum(bytes) OVER (ORDER BY seq) AS running, row_number() OVER (ORDER BY seq) AS n FROM (
    SELECT q.seq, q.envelope_id, e.conversation_id, q.created_at_ms, e.payload_kind, octet_length(e.envelope) AS bytes
    FROM queue q JOIN envelopes e ON e.id = q.envelope_id
    WHERE q.recipient = $1 AND q.seq > $2 ORDER BY q.seq LIMIT $3
  ) page
) sized WHERE n = 1 OR running <= $4 ORDER BY seq`;

// Several addresses' pages, each after its own seq, at most $3 rows each (the byte budget is
// applied here, per ask: the same rule as FETCH's).
const FETCH_MANY = `
SELECT w.recipient, p.seq, p.envelope_id, p.conversation_id, p.created_at_ms, p.payload_kind, p.bytes
FROM unnest($1::text[], $2::int8[]) AS w(recipient, after)
CROSS JOIN LATERAL (
  SELECT q.seq, q.envelope_id, e.conversation_id, q.created_at_ms, e.payload_kind, octet_length(e.envelope) AS bytes
  FROM queue q JOIN envelopes e ON e.id = q.envelope_id
  WHERE q.recipient = w.recipient AND q.seq > w.after ORDER BY q.seq LIMIT $3
) p
ORDER BY w.recipient, p.seq`;

/** Addresses whose next expected question is remembered, at most (a map of the pumps here). */
const EXPECTED_MAX = 100_000;

/** FETCH's byte rule on rows in seq order: the first row always, then while the running sum stays within maxBytes. */
function withinBytes(rows: readonly PageRow[], count: number, maxBytes: number): PageRow[] {
  const out: PageRow[] = [];
  let running = 0;
  for (const r of rows) {
    if (out.length >= count) break;
    running += r.bytes;
    if (out.length > 0 && running > maxBytes) break;
    out.push(r);
  }
  return out;
}

export class PgQueueReader {
  /** Per address: the seq after which its pump will ask next (where its last page ended). */
  private readonly expectedAfter = new Map<string, number>();
  /** Addresses this relay just queued rows for, in this synchronous run: their pumps are about to ask. */
  private woken: Set<string> | undefined;
  private ahead: ReadAhead | undefined;

  constructor(private readonly db: SyncPg, private readonly recent: RecentEnvelopes) {}

  /** This relay committed rows for these addresses: their pumps ask in this synchronous run (read together). */
  committed(addresses: Iterable<string>): void {
    const woken = new Set(addresses);
    this.woken = woken;
    this.ahead = undefined;
    queueMicrotask(() => {
      if (this.woken === woken) this.woken = undefined;
    });
  }

  fetchQueue(recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[] {
    // The same answers as the embedded store for any numbers (PostgreSQL would refuse NaN or Infinity as bigint).
    const whole = (n: number, otherwise: number): number => (Number.isNaN(n) ? otherwise : Math.max(0, Math.min(Number.MAX_SAFE_INTEGER, Math.floor(n))));
    const count = whole(limit, 0);
    if (count === 0) return [];
    const after = whole(afterSeq, 0);
    const bytes = whole(maxBytes, 0);
    const rows = this.fromAhead(recipient, after, count, bytes) ?? this.readAhead(recipient, after, count, bytes) ?? this.read<PageRow>(FETCH, [recipient, after, count, bytes]);
    if (this.expectedAfter.size >= EXPECTED_MAX && !this.expectedAfter.has(recipient)) this.expectedAfter.clear();
    this.expectedAfter.set(recipient, rows.at(-1)?.seq ?? after);
    return this.withEnvelopes(rows);
  }

  /** The page read ahead for this ask, if it is the one expected and nothing happened since. */
  private fromAhead(recipient: string, after: number, count: number, maxBytes: number): PageRow[] | undefined {
    const a = this.ahead;
    if (a === undefined || a.calls !== this.db.callsMade) return undefined;
    const page = a.pages.get(recipient);
    if (page === undefined || page.after !== after || (count > page.limit && page.rows.length >= page.limit)) return undefined;
    a.pages.delete(recipient); // answered once: the pump's next ask comes after its write, in another run
    return withinBytes(page.rows, count, maxBytes);
  }

  /**
   * The first ask after a commit of this relay: this address's page and, in the same statement,
   * those of the commit's other recipients whose next ask is known; kept for this synchronous run.
   */
  private readAhead(recipient: string, after: number, count: number, maxBytes: number): PageRow[] | undefined {
    const woken = this.woken;
    if (woken === undefined || !woken.has(recipient)) return undefined;
    this.woken = undefined;
    const addresses = [recipient];
    const afters = [after];
    for (const a of woken) {
      const expected = this.expectedAfter.get(a);
      if (a === recipient || expected === undefined) continue;
      addresses.push(a);
      afters.push(expected);
    }
    if (addresses.length === 1) return undefined;
    const pages: ReadAhead["pages"] = new Map(addresses.map((a, i) => [a, { after: afters[i]!, limit: count, rows: [] as PageRow[] }]));
    for (const r of this.db.query<PageRow & { recipient: string }>(FETCH_MANY, [addresses, afters, count])) pages.get(r.recipient)!.rows.push(r);
    const mine = pages.get(recipient)!;
    pages.delete(recipient);
    const ahead: ReadAhead = { pages, calls: this.db.callsMade };
    this.ahead = ahead;
    queueMicrotask(() => {
      if (this.ahead === ahead) this.ahead = undefined;
    });
    return withinBytes(mine.rows, count, maxBytes);
  }

  /** A read of this reader's own: it changes nothing, so what was read ahead stays valid after it. */
  private read<R extends Record<string, unknown>>(sql: string, params: readonly unknown[]): R[] {
    const before = this.db.callsMade;
    const rows = this.db.query<R>(sql, params);
    if (this.ahead !== undefined && this.ahead.calls === before) this.ahead.calls = this.db.callsMade;
    return rows;
  }

  /** The page's items with their bytes: from memory first (taken before remembering the rest evicts any), then the others in one read. */
  private withEnvelopes(rows: readonly PageRow[]): QueuedItem[] {
    const page = new Map<number, Buffer>();
    const missing: number[] = [];
    for (const r of rows) {
      const b = this.recent.get(r.envelope_id);
      if (b !== undefined) page.set(r.envelope_id, b);
      else missing.push(r.envelope_id);
    }
    if (missing.length > 0) {
      for (const r of this.read<{ id: number; envelope: Buffer }>("SELECT id, envelope FROM envelopes WHERE id = ANY($1::int8[])", [missing])) {
        page.set(r.id, r.envelope);
        this.recent.remember(r.id, r.envelope);
      }
    }
    const out: QueuedItem[] = [];
    for (const r of rows) {
      const envelope = page.get(r.envelope_id);
      if (envelope === undefined) continue; // acked and dropped between the two reads: skip, never crash
      const item: QueuedItem = { seq: r.seq, conversationId: r.conversation_id, envelope, relayTimeMs: Number(r.created_at_ms) };
      out.push(r.payload_kind === PAYLOAD_MLS ? { ...item, payload: "mls" } : item);
    }
    return out;
  }
}
