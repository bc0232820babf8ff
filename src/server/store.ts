// The relay's durable state in one SQLite file (node:sqlite, synchronous API).
//
// What lives here: the relay's stable identity (relay_id), username bindings (first key wins,
// forever, unless an operator releases the name), the per-recipient delivery queue, the
// de-duplication record of accepted (sender, message_id) pairs, and room membership.
//
// The queue is normalised on purpose: one `envelopes` row holds the wire bytes once, and one
// `queue` row per recipient points at it. Storing a copy per recipient (the obvious schema)
// would write ~100 MB for a single message to a 500-member room (each envelope carries one
// 384-byte RSA wrap per member); here that message costs one blob plus 499 small rows.
//
// Everything runs synchronously on the event loop. Statements are prepared once; multi-row
// writes run in one transaction so an envelope is either queued for every recipient or for none.
// Envelopes are written in batches (enqueueBatch): the group committer (group-commit.ts) hands
// over everything admitted since the last commit, and one transaction, one fsync, stores it all.
import { randomBytes } from "node:crypto";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { RELAY_ID_BYTES } from "../protocol/keys.js";

/** A bound username and the keys that own it. */
export interface UserRecord {
  readonly username: string;
  readonly sigSpki: Buffer;
  readonly encSpki: Buffer;
  readonly encKeySig: Buffer;
  readonly sigFpr: Buffer;
  readonly encFpr: Buffer;
  readonly createdAtMs: number;
}

export type BindOutcome =
  /** The name was free and now belongs to these keys. */
  | { readonly kind: "bound"; readonly user: UserRecord }
  /** The name already belongs to exactly these keys. */
  | { readonly kind: "same"; readonly user: UserRecord }
  /** The name belongs to another key. */
  | { readonly kind: "taken"; readonly user: UserRecord };

/** One envelope to store, and who gets a queue row for it. */
export interface EnqueueRequest {
  readonly sender: string;
  readonly messageId: Buffer;
  readonly conversationId: string;
  /** The wire `Envelope` protobuf bytes, delivered unchanged. */
  readonly envelope: Uint8Array;
  /** Recipients that get a queue row (never the sender). May be empty (lobby, nobody online). */
  readonly recipients: readonly string[];
}

/** What enqueueBatch did with one request. */
export type EnqueueOutcome =
  /** Recorded as accepted and queued for its recipients. */
  | "stored"
  /** (sender, messageId) was accepted before, or earlier in the same batch: nothing stored. */
  | "duplicate";

export interface QueueUsage {
  readonly count: number;
  readonly bytes: number;
  readonly senderCount: number;
  readonly senderBytes: number;
}

export interface QueuedItem {
  readonly seq: number;
  readonly conversationId: string;
  readonly envelope: Buffer;
  /** When the relay accepted the envelope (its queue row's time), shown by clients beside sent_at. */
  readonly relayTimeMs?: number;
}

/** A recipient's processed deliveries, to delete. */
export interface AckRequest {
  readonly recipient: string;
  readonly seqs: readonly number[];
}

export interface RoomSummaryRecord {
  readonly room: string;
  readonly memberCount: number;
}

export interface PurgeResult {
  readonly queueRows: number;
  readonly envelopes: number;
  readonly acceptedIds: number;
}

export interface RelayStore {
  readonly relayId: Buffer;
  getUser(username: string): UserRecord | undefined;
  listUsers(): UserRecord[];
  /** First key wins: binds a free name, or reports who owns it. Atomic. */
  bindUser(user: Omit<UserRecord, "createdAtMs">): BindOutcome;
  /** The usernames bound to this signing key (by its fingerprint), oldest first. */
  namesOfKey(sigFpr: Buffer): string[];
  /**
   * Operator action: forgets the binding so a new key can claim the name, with the name's
   * queued envelopes and room memberships (all of which belong to the old key). A running
   * relay sees the release at the name's next handshake.
   */
  releaseUser(username: string): boolean;

  /** True when (sender, messageId) was accepted before (a resend). */
  wasAccepted(sender: string, messageId: Buffer): boolean;
  /**
   * Records each id as accepted and queues each envelope for its recipients, all in ONE
   * transaction (one fsync for the whole batch), in the order given. Outcomes are in the same
   * order. Throws when the transaction fails (disk full, I/O error): then nothing of the batch
   * is stored.
   */
  enqueueBatch(reqs: readonly EnqueueRequest[], acks?: readonly AckRequest[]): EnqueueOutcome[];
  /**
   * Acks alone, in one transaction that does not wait for an fsync (synchronous=NORMAL): a lost
   * ack only means a redelivery, which clients drop by id; the next FULL commit makes it durable.
   */
  ackBatch(acks: readonly AckRequest[]): number;
  /** enqueueBatch of one request; false when the id was already accepted. */
  enqueue(req: EnqueueRequest): boolean;
  /** The highest queue seq ever assigned (0 for a new database): later rows have larger seqs. */
  lastSeq(): number;
  /** Number of undelivered (unacked) rows for a recipient. */
  queueDepth(recipient: string): number;
  /**
   * A recipient's queue: rows and envelope bytes in all, and those from one sender (each row
   * counts its envelope's full size: what the recipient will download). For the per-sender share.
   */
  queueUsage(recipient: string, sender: string): QueueUsage;
  /** Up to `limit` rows after `afterSeq`, in seq order, stopping once `maxBytes` is reached (at least one row). */
  fetchQueue(recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[];
  /** Deletes the recipient's rows with these seqs (others' rows are untouched); returns how many. */
  ack(recipient: string, seqs: readonly number[]): number;
  /** Drops queue rows, envelopes and accepted ids older than the cutoff. */
  purgeOlderThan(cutoffMs: number): PurgeResult;

  /** Adds a member (creating the room); false when already a member. */
  joinRoom(room: string, username: string): boolean;
  /** Removes a member (deleting an empty room); false when not a member. */
  leaveRoom(room: string, username: string): boolean;
  isMember(room: string, username: string): boolean;
  roomMembers(room: string): string[];
  roomsOf(username: string): string[];
  allRooms(): RoomSummaryRecord[];

  close(): void;
}

export interface OpenStoreOptions {
  readonly clock?: () => number;
  /** Memory for recently stored envelopes' bytes, delivered from there (default 32 MiB). */
  readonly recentEnvelopeBytes?: number;
  /** How long a writer waits for another connection's lock (e.g. `chat-relay users release` while running). */
  readonly busyTimeoutMs?: number;
  /**
   * Caps the database at about this many bytes (SQLite's max_page_count): writes beyond it fail
   * with SQLITE_FULL, exactly as on a full disk. Operators use it as a quota; tests use it to
   * fill the "disk" on purpose.
   */
  readonly maxBytes?: number;
}

/**
 * The part of a database cap (OpenStoreOptions.maxBytes) left to the write-ahead log: 1/8 of it,
 * at least 64 KiB, at most 64 MiB. A group commit stays under a quarter of it.
 */
export function walAllowanceFor(maxBytes: number): number {
  return Math.min(64 * 1024 * 1024, Math.max(64 * 1024, Math.floor(maxBytes / 8)));
}

/** SQLite's primary result code of an error thrown by node:sqlite (e.g. 13 = SQLITE_FULL), if any. */
export function sqliteErrorCode(e: unknown): number | undefined {
  const code = (e as { errcode?: unknown } | undefined)?.errcode;
  return typeof code === "number" ? code & 0xff : undefined;
}

export const SQLITE_IOERR = 10;
export const SQLITE_FULL = 13;

const SCHEMA_VERSION = 1;

/** Memory for the bytes of recently stored envelopes, delivered from there (SqliteStore.recent). */
const RECENT_BYTES = 32 * 1024 * 1024;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS users (
  username      TEXT PRIMARY KEY,
  sig_spki      BLOB NOT NULL,
  enc_spki      BLOB NOT NULL,
  enc_key_sig   BLOB NOT NULL,
  sig_fpr       BLOB NOT NULL,
  enc_fpr       BLOB NOT NULL,
  created_at_ms INTEGER NOT NULL
) STRICT;
-- One username per signing key is checked against this (PROTOCOL.md §8).
CREATE INDEX IF NOT EXISTS users_by_sig_fpr ON users (sig_fpr);
CREATE TABLE IF NOT EXISTS envelopes (
  id              INTEGER PRIMARY KEY,
  conversation_id TEXT NOT NULL,
  sender          TEXT NOT NULL,
  message_id      BLOB NOT NULL,
  envelope        BLOB NOT NULL,
  refs            INTEGER NOT NULL,
  created_at_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS envelopes_by_time ON envelopes (created_at_ms);
CREATE TABLE IF NOT EXISTS queue (
  seq           INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient     TEXT NOT NULL,
  envelope_id   INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS queue_by_recipient ON queue (recipient, seq);
CREATE INDEX IF NOT EXISTS queue_by_time ON queue (created_at_ms);
CREATE TABLE IF NOT EXISTS accepted (
  sender         TEXT NOT NULL,
  message_id     BLOB NOT NULL,
  accepted_at_ms INTEGER NOT NULL,
  PRIMARY KEY (sender, message_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS accepted_by_time ON accepted (accepted_at_ms);
CREATE TABLE IF NOT EXISTS rooms (
  room          TEXT PRIMARY KEY,
  created_at_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS room_members (
  room         TEXT NOT NULL,
  username     TEXT NOT NULL,
  joined_at_ms INTEGER NOT NULL,
  PRIMARY KEY (room, username)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS room_members_by_user ON room_members (username, room);
`;

type Row = Record<string, unknown>;

function buf(v: unknown): Buffer {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError("expected a BLOB column");
}

function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw new TypeError("expected an INTEGER column");
}

function str(v: unknown): string {
  if (typeof v === "string") return v;
  throw new TypeError("expected a TEXT column");
}

function userFromRow(r: Row): UserRecord {
  return {
    username: str(r.username),
    sigSpki: buf(r.sig_spki),
    encSpki: buf(r.enc_spki),
    encKeySig: buf(r.enc_key_sig),
    sigFpr: buf(r.sig_fpr),
    encFpr: buf(r.enc_fpr),
    createdAtMs: num(r.created_at_ms),
  };
}

/**
 * Opens (creating if needed) the relay database at `path`. Throws the underlying error when the
 * file cannot be opened or written; the caller turns that into a startup sentence.
 */
export function openStore(path: string, options: OpenStoreOptions = {}): RelayStore {
  const clock = options.clock ?? Date.now;
  const db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? 5000 });
  try {
    // WAL: readers (the `users list` command, delivery reads) never block the writer, and a
    // commit is one sequential append instead of a rewrite of the page in place.
    db.exec("PRAGMA journal_mode = WAL");
    // FULL, not NORMAL: ACCEPTED promises the envelope is stored durably (PROTOCOL.md §7.4) and
    // the sender drops it from its outbox on that answer. In WAL mode NORMAL syncs only at
    // checkpoints, so an OS crash or power loss could lose envelopes already answered ACCEPTED.
    // FULL syncs the WAL on every commit. Group commit keeps that affordable: one commit (one
    // fsync) stores every envelope admitted since the previous one, from all sessions.
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = OFF");
    db.exec(SCHEMA);
    if (options.maxBytes !== undefined) {
      // The cap counts the WAL (issue 16: a 1 MiB cap once had 4 MiB of WAL beside it). The
      // database file gets the cap minus the WAL allowance; the WAL is checkpointed once it holds
      // half the allowance and truncated back to that at its next reset, and the group committer
      // keeps a transaction under a quarter of it (walAllowanceFor), so file + WAL stay within
      // the cap. Deletes (acks) need no new pages in the file: they go through when it is full.
      const pageSize = num((db.prepare("PRAGMA page_size").get() as Row).page_size);
      const wal = walAllowanceFor(options.maxBytes);
      db.exec(`PRAGMA max_page_count = ${Math.max(1, Math.floor((options.maxBytes - wal) / pageSize))}`);
      // SQLite's default checkpoint point (1,000 pages) when the allowance is larger.
      const checkpointAt = Math.min(1000 * pageSize, Math.floor(wal / 2));
      db.exec(`PRAGMA wal_autocheckpoint = ${Math.max(1, Math.floor(checkpointAt / pageSize))}`);
      db.exec(`PRAGMA journal_size_limit = ${checkpointAt}`);
    }
    const version = db.prepare("PRAGMA user_version").get() as Row | undefined;
    if (num(version?.user_version ?? 0) === 0) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    else if (num(version?.user_version) !== SCHEMA_VERSION) {
      throw new Error(`database schema version ${String(version?.user_version)} is not supported (expected ${SCHEMA_VERSION})`);
    }
  } catch (e) {
    db.close();
    throw e;
  }
  return new SqliteStore(db, clock, options.recentEnvelopeBytes ?? RECENT_BYTES);
}

/** Every statement the store runs, prepared once when the database opens. */
function prepareStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    metaGet: p("SELECT value FROM meta WHERE key = ?"),
    metaPut: p("INSERT INTO meta (key, value) VALUES (?, ?)"),
    userGet: p("SELECT * FROM users WHERE username = ?"),
    userList: p("SELECT * FROM users ORDER BY username"),
    userInsert: p(`INSERT INTO users (username, sig_spki, enc_spki, enc_key_sig, sig_fpr, enc_fpr, created_at_ms)
                   VALUES (?, ?, ?, ?, ?, ?, ?)`),
    userDelete: p("DELETE FROM users WHERE username = ?"),
    usersOfKey: p("SELECT username FROM users WHERE sig_fpr = ? ORDER BY created_at_ms, username"),
    acceptedGet: p("SELECT 1 AS hit FROM accepted WHERE sender = ? AND message_id = ?"),
    acceptedPut: p("INSERT INTO accepted (sender, message_id, accepted_at_ms) VALUES (?, ?, ?)"),
    envelopePut: p(`INSERT INTO envelopes (conversation_id, sender, message_id, envelope, refs, created_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?)`),
    queuePut: p("INSERT INTO queue (recipient, envelope_id, created_at_ms) VALUES (?, ?, ?)"),
    // A recipient's queue per sender: rows and envelope bytes (length() of a blob reads its
    // record header, not its overflow pages).
    queueUsage: p(`SELECT e.sender AS sender, COUNT(*) AS n, SUM(length(e.envelope)) AS b
                   FROM queue q JOIN envelopes e ON e.id = q.envelope_id WHERE q.recipient = ? GROUP BY e.sender`),
    envelopeMeta: p("SELECT sender, length(envelope) AS b FROM envelopes WHERE id = ?"),
    // AUTOINCREMENT keeps the highest seq ever used here, even after its row was deleted.
    lastSeq: p("SELECT seq FROM sqlite_sequence WHERE name = 'queue'"),
    // Not the envelope bytes: recent ones are in memory (SqliteStore.recent), the rest are
    // read one by one (a 40 KB blob spans a chain of overflow pages that the join would read).
    queueFetch: p(`SELECT q.seq AS seq, q.envelope_id AS envelope_id, e.conversation_id AS conversation_id, q.created_at_ms AS created_at_ms
                   FROM queue q JOIN envelopes e ON e.id = q.envelope_id
                   WHERE q.recipient = ? AND q.seq > ? ORDER BY q.seq LIMIT ?`),
    envelopeBytes: p("SELECT envelope FROM envelopes WHERE id = ?"),
    // Only the recipient's own rows: a client cannot delete someone else's deliveries.
    queueTake: p("DELETE FROM queue WHERE seq = ? AND recipient = ? RETURNING envelope_id"),
    // One statement for an Ack frame's seqs (a JSON array of integers), not one per seq.
    queueTakeMany: p("DELETE FROM queue WHERE recipient = ? AND seq IN (SELECT value FROM json_each(?)) RETURNING envelope_id"),
    envelopeUnrefBy: p("UPDATE envelopes SET refs = refs - ? WHERE id = ?"),
    queueDelete: p("DELETE FROM queue WHERE seq = ?"),
    queueOfRecipient: p("SELECT seq, envelope_id FROM queue WHERE recipient = ?"),
    envelopeUnref: p("UPDATE envelopes SET refs = refs - 1 WHERE id = ?"),
    envelopeDrop: p("DELETE FROM envelopes WHERE id = ? AND refs <= 0"),
    purgeQueue: p("DELETE FROM queue WHERE created_at_ms < ?"),
    purgeEnvelopes: p("DELETE FROM envelopes WHERE created_at_ms < ?"),
    purgeAccepted: p("DELETE FROM accepted WHERE accepted_at_ms < ?"),
    roomGet: p("SELECT 1 AS hit FROM rooms WHERE room = ?"),
    roomPut: p("INSERT INTO rooms (room, created_at_ms) VALUES (?, ?)"),
    roomDelete: p("DELETE FROM rooms WHERE room = ?"),
    memberGet: p("SELECT 1 AS hit FROM room_members WHERE room = ? AND username = ?"),
    memberPut: p("INSERT INTO room_members (room, username, joined_at_ms) VALUES (?, ?, ?)"),
    memberDelete: p("DELETE FROM room_members WHERE room = ? AND username = ?"),
    membersOf: p("SELECT username FROM room_members WHERE room = ? ORDER BY username"),
    memberCount: p("SELECT COUNT(*) AS n FROM room_members WHERE room = ?"),
    roomsOf: p("SELECT room FROM room_members WHERE username = ? ORDER BY room"),
    roomsAll: p(`SELECT r.room AS room, COUNT(m.username) AS n FROM rooms r
                 LEFT JOIN room_members m ON m.room = r.room GROUP BY r.room ORDER BY r.room`),
  };
}

/** A row an ack deleted: whose queue, who sent its envelope, the envelope's size. */
interface AckedRow {
  readonly recipient: string;
  readonly sender: string | undefined;
  readonly bytes: number;
}

/** One recipient's queue usage, in all and per sender. */
class CachedUsage {
  count = 0;
  bytes = 0;
  readonly bySender = new Map<string, { count: number; bytes: number }>();

  add(sender: string, bytes: number, rows = 1): void {
    this.count += rows;
    this.bytes += bytes; // the bytes of all `rows`
    const s = this.bySender.get(sender);
    if (s === undefined) this.bySender.set(sender, { count: rows, bytes });
    else {
      s.count += rows;
      s.bytes += bytes;
    }
  }

  remove(sender: string | undefined, bytes: number): void {
    this.count = Math.max(0, this.count - 1);
    this.bytes = Math.max(0, this.bytes - bytes);
    if (sender === undefined) return;
    const s = this.bySender.get(sender);
    if (s === undefined) return;
    s.count--;
    s.bytes -= bytes;
    if (s.count <= 0) this.bySender.delete(sender);
  }
}

class SqliteStore implements RelayStore {
  readonly relayId: Buffer;
  private readonly s: ReturnType<typeof prepareStatements>;
  /**
   * Queue usage per recipient (rows and bytes, in all and per sender), loaded lazily from the
   * database and kept in step with enqueue and ack, so the queue caps cost no COUNT(*) on every
   * send (a 500-member room would otherwise count 500 indexes per message).
   */
  private readonly depth = new Map<string, CachedUsage>();
  /**
   * The bytes of recently stored envelopes by row id, oldest first, at most RECENT_BYTES in all:
   * a room message goes to every member from memory instead of being read back from SQLite once
   * per member. Entries enter only after their commit and leave when the row is dropped.
   */
  private readonly recent = new Map<number, Buffer>();
  private recentBytes = 0;
  /** Rows stored by the transaction in progress, cached once it commits. */
  private storing: Array<[number, Buffer]> = [];

  constructor(private readonly db: DatabaseSync, private readonly clock: () => number, private readonly recentBudget: number) {
    this.s = prepareStatements(db);
    this.relayId = this.loadRelayId();
  }

  /** The relay's identity for proofs: 16 random bytes made once per data dir, then stable. */
  private loadRelayId(): Buffer {
    return this.transaction(() => {
      const row = this.s.metaGet.get("relay_id") as Row | undefined;
      if (row !== undefined) {
        const id = buf(row.value);
        if (id.length !== RELAY_ID_BYTES) throw new Error(`stored relay_id has ${id.length} bytes, expected ${RELAY_ID_BYTES}`);
        return Buffer.from(id);
      }
      const id = randomBytes(RELAY_ID_BYTES);
      this.s.metaPut.run("relay_id", id);
      return id;
    });
  }

  /**
   * Runs fn in one IMMEDIATE transaction (the write lock is taken up front: no upgrade
   * deadlocks). On any failure, COMMIT included, nothing of it stays: SQLite rolls a transaction
   * back by itself after some errors (SQLITE_FULL, I/O errors), otherwise we do; the original
   * error is what the caller sees.
   */
  private transaction<T>(fn: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      this.db.exec("COMMIT");
      return out;
    } catch (e) {
      if (this.db.isTransaction) {
        try {
          this.db.exec("ROLLBACK");
        } catch {
          // The connection is broken beyond a rollback; SQLite discards the transaction anyway.
        }
      }
      throw e;
    }
  }

  getUser(username: string): UserRecord | undefined {
    const r = this.s.userGet.get(username) as Row | undefined;
    return r === undefined ? undefined : userFromRow(r);
  }

  listUsers(): UserRecord[] {
    return (this.s.userList.all() as Row[]).map(userFromRow);
  }

  bindUser(u: Omit<UserRecord, "createdAtMs">): BindOutcome {
    return this.transaction((): BindOutcome => {
      const existing = this.getUser(u.username);
      if (existing !== undefined) {
        const same = existing.sigSpki.equals(u.sigSpki) && existing.encSpki.equals(u.encSpki);
        return { kind: same ? "same" : "taken", user: existing };
      }
      const createdAtMs = this.clock();
      this.s.userInsert.run(u.username, u.sigSpki, u.encSpki, u.encKeySig, u.sigFpr, u.encFpr, createdAtMs);
      // The name may have been released by `chat-relay users release` in another process,
      // which dropped its queue: a cached depth would be stale.
      this.depth.delete(u.username);
      return { kind: "bound", user: { ...u, createdAtMs } };
    });
  }

  namesOfKey(sigFpr: Buffer): string[] {
    return (this.s.usersOfKey.all(sigFpr) as Row[]).map((r) => str(r.username));
  }

  releaseUser(username: string): boolean {
    const released = this.transaction(() => {
      if (this.s.userDelete.run(username).changes === 0) return false;
      // Envelopes queued for the old key cannot be opened by a new one: drop them.
      for (const row of this.s.queueOfRecipient.all(username) as Row[]) {
        const envelopeId = num(row.envelope_id);
        this.s.queueDelete.run(num(row.seq));
        this.s.envelopeUnref.run(envelopeId);
        this.dropIfUnreferenced(envelopeId);
      }
      // A new owner of the name must not inherit the old owner's rooms.
      for (const room of this.roomsOf(username)) this.leaveRoomLocked(room, username);
      return true;
    });
    this.depth.delete(username);
    return released;
  }

  private remember(id: number, envelope: Buffer): void {
    this.forget(id);
    this.recent.set(id, envelope);
    this.recentBytes += envelope.length;
    for (const [oldest, evicted] of this.recent) {
      if (this.recentBytes <= this.recentBudget) break;
      this.recent.delete(oldest);
      this.recentBytes -= evicted.length;
    }
  }

  private forget(id: number): void {
    const bytes = this.recent.get(id);
    if (bytes === undefined) return;
    this.recent.delete(id);
    this.recentBytes -= bytes.length;
  }

  /** Drops an envelope whose last queue row is gone (in a transaction). */
  private dropIfUnreferenced(id: number): void {
    if (this.s.envelopeDrop.run(id).changes > 0) this.forget(id);
  }

  wasAccepted(sender: string, messageId: Buffer): boolean {
    return this.s.acceptedGet.get(sender, messageId) !== undefined;
  }

  enqueueBatch(reqs: readonly EnqueueRequest[], acks: readonly AckRequest[] = []): EnqueueOutcome[] {
    if (reqs.length === 0) {
      this.ackBatch(acks);
      return [];
    }
    const now = this.clock();
    let acked: AckedRow[] = [];
    let outcomes: EnqueueOutcome[];
    try {
      outcomes = this.transaction(() => {
        const o = this.enqueueLocked(reqs, now);
        acked = this.ackLocked(acks);
        return o;
      });
      for (const [id, envelope] of this.storing) this.remember(id, envelope);
    } finally {
      this.storing = [];
    }
    this.applyAcked(acked);
    return this.afterEnqueue(reqs, outcomes);
  }

  ackBatch(acks: readonly AckRequest[]): number {
    if (acks.every((a) => a.seqs.length === 0)) return 0;
    let acked: AckedRow[] = [];
    this.db.exec("PRAGMA synchronous = NORMAL");
    try {
      this.transaction(() => {
        acked = this.ackLocked(acks);
      });
    } finally {
      this.db.exec("PRAGMA synchronous = FULL");
    }
    return this.applyAcked(acked);
  }

  /** Deletes acked rows (set-wise per envelope); returns how many rows per recipient. In a transaction. */
  private ackLocked(acks: readonly AckRequest[]): AckedRow[] {
    const taken: Array<[string, number]> = [];
    const unref = new Map<number, number>();
    for (const { recipient, seqs } of acks) {
      const rows = seqs.length === 1
        ? [this.s.queueTake.get(seqs[0]!, recipient) as Row | undefined]
        : (this.s.queueTakeMany.all(recipient, JSON.stringify(seqs.filter(Number.isSafeInteger))) as Row[]);
      for (const row of rows) {
        if (row === undefined) continue;
        const id = num(row.envelope_id);
        unref.set(id, (unref.get(id) ?? 0) + 1);
        taken.push([recipient, id]);
      }
    }
    // Who sent each envelope and its size, before it may be dropped: for the cached usage.
    const meta = new Map<number, { sender: string; bytes: number }>();
    for (const [id, by] of unref) {
      const m = this.s.envelopeMeta.get(id) as Row | undefined;
      if (m !== undefined) meta.set(id, { sender: str(m.sender), bytes: num(m.b) });
      this.s.envelopeUnrefBy.run(by, id);
      this.dropIfUnreferenced(id);
    }
    return taken.map(([recipient, id]) => ({ recipient, sender: meta.get(id)?.sender, bytes: meta.get(id)?.bytes ?? 0 }));
  }

  /** After a commit: the cached usage drops by what was acked. Returns the rows acked. */
  private applyAcked(acked: readonly AckedRow[]): number {
    for (const a of acked) this.depth.get(a.recipient)?.remove(a.sender, a.bytes);
    return acked.length;
  }

  private enqueueLocked(reqs: readonly EnqueueRequest[], now: number): EnqueueOutcome[] {
    return reqs.map((req): EnqueueOutcome => {
      // Also catches a repeat inside this batch: the earlier row is visible in the transaction.
      if (this.wasAccepted(req.sender, req.messageId)) return "duplicate";
      this.s.acceptedPut.run(req.sender, req.messageId, now);
      if (req.recipients.length === 0) return "stored";
      const envelopeId = this.s.envelopePut.run(
        req.conversationId, req.sender, req.messageId, req.envelope, req.recipients.length, now,
      ).lastInsertRowid;
      this.storing.push([Number(envelopeId), Buffer.from(req.envelope)]); // a copy: the frame buffer is not ours
      const put = this.s.queuePut;
      for (const r of req.recipients) put.run(r, envelopeId, now);
      return "stored";
    });
  }

  /** Only after the commit: a failed batch leaves the cached depths as they were. */
  private afterEnqueue(reqs: readonly EnqueueRequest[], outcomes: EnqueueOutcome[]): EnqueueOutcome[] {
    reqs.forEach((req, i) => {
      if (outcomes[i] !== "stored") return;
      for (const r of req.recipients) this.depth.get(r)?.add(req.sender, req.envelope.length);
    });
    return outcomes;
  }

  enqueue(req: EnqueueRequest): boolean {
    return this.enqueueBatch([req])[0] === "stored";
  }

  lastSeq(): number {
    const row = this.s.lastSeq.get() as Row | undefined;
    return row === undefined ? 0 : num(row.seq);
  }

  queueDepth(recipient: string): number {
    return this.usageOf(recipient).count;
  }

  queueUsage(recipient: string, sender: string): QueueUsage {
    const u = this.usageOf(recipient);
    const s = u.bySender.get(sender);
    return { count: u.count, bytes: u.bytes, senderCount: s?.count ?? 0, senderBytes: s?.bytes ?? 0 };
  }

  private usageOf(recipient: string): CachedUsage {
    let u = this.depth.get(recipient);
    if (u === undefined) {
      u = new CachedUsage();
      for (const r of this.s.queueUsage.iterate(recipient) as Iterable<Row>) u.add(str(r.sender), num(r.b ?? 0), num(r.n));
      this.depth.set(recipient, u);
    }
    return u;
  }

  fetchQueue(recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[] {
    const out: QueuedItem[] = [];
    let bytes = 0;
    for (const r of this.s.queueFetch.iterate(recipient, afterSeq, limit) as Iterable<Row>) {
      const id = num(r.envelope_id);
      let envelope = this.recent.get(id);
      if (envelope === undefined) {
        const row = this.s.envelopeBytes.get(id) as Row | undefined;
        if (row === undefined) continue; // the join just found it (one synchronous call): skip, never crash
        envelope = buf(row.envelope);
        this.remember(id, envelope);
      }
      if (out.length > 0 && bytes + envelope.length > maxBytes) break;
      bytes += envelope.length;
      out.push({ seq: num(r.seq), conversationId: str(r.conversation_id), envelope, relayTimeMs: num(r.created_at_ms) });
    }
    return out;
  }

  ack(recipient: string, seqs: readonly number[]): number {
    if (seqs.length === 0) return 0;
    return this.applyAcked(this.transaction(() => this.ackLocked([{ recipient, seqs }])));
  }

  purgeOlderThan(cutoffMs: number): PurgeResult {
    const result = this.transaction((): PurgeResult => ({
      // An envelope and all its queue rows share one created_at_ms, so dropping both by time
      // never leaves a queue row pointing at a missing envelope.
      queueRows: Number(this.s.purgeQueue.run(cutoffMs).changes),
      envelopes: Number(this.s.purgeEnvelopes.run(cutoffMs).changes),
      acceptedIds: Number(this.s.purgeAccepted.run(cutoffMs).changes),
    }));
    if (result.queueRows > 0) this.depth.clear();
    if (result.envelopes > 0) {
      this.recent.clear();
      this.recentBytes = 0;
    }
    return result;
  }

  joinRoom(room: string, username: string): boolean {
    return this.transaction(() => {
      if (this.s.memberGet.get(room, username) !== undefined) return false;
      const now = this.clock();
      if (this.s.roomGet.get(room) === undefined) this.s.roomPut.run(room, now);
      this.s.memberPut.run(room, username, now);
      return true;
    });
  }

  leaveRoom(room: string, username: string): boolean {
    return this.transaction(() => this.leaveRoomLocked(room, username));
  }

  /** leaveRoom's body, for callers already inside a transaction. */
  private leaveRoomLocked(room: string, username: string): boolean {
    if (this.s.memberDelete.run(room, username).changes === 0) return false;
    // An empty room disappears, so the room list does not fill with ghosts.
    if (num((this.s.memberCount.get(room) as Row).n) === 0) this.s.roomDelete.run(room);
    return true;
  }

  isMember(room: string, username: string): boolean {
    return this.s.memberGet.get(room, username) !== undefined;
  }

  roomMembers(room: string): string[] {
    return (this.s.membersOf.all(room) as Row[]).map((r) => str(r.username));
  }

  roomsOf(username: string): string[] {
    return (this.s.roomsOf.all(username) as Row[]).map((r) => str(r.room));
  }

  allRooms(): RoomSummaryRecord[] {
    return (this.s.roomsAll.all() as Row[]).map((r) => ({ room: str(r.room), memberCount: num(r.n) }));
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}
