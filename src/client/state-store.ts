// The client's durable protocol state (PROTOCOL.md §10.4): `<username>_state.db` (node:sqlite,
// 0600) beside the key file. Seen ids stop replays across restarts; chain heads detect dropped
// messages; the outbox survives a crash so pending messages are resent with the same id; held
// envelopes wait for the user's decision on a key change; the history (text encrypted at rest)
// is what the screen shows again at the next start.
import { touchPrivate } from "./atomic-file.js";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { MAX_AGE_MS, MAX_FUTURE_SKEW_MS, ZERO_HASH } from "../protocol/envelope.js";
import type { MessageKind } from "./types.js";

export interface OutboxEntry {
  readonly id: Buffer;
  readonly conversationId: string;
  /** Wire bytes of the sealed Envelope. */
  readonly envelope: Buffer;
  readonly kind: MessageKind;
  /** The text encrypted at rest (at-rest.ts); a string in files written before it was. */
  readonly text: Buffer | string;
  readonly createdAtMs: number;
  readonly sentAtMs: number;
}

/**
 * One message of the local history; `sealed` is its text encrypted at rest (at-rest.ts). Kind
 * "membership": a protocol v2 membership line kept in place (history.ts), `sender` who made it.
 */
export interface HistoryRow {
  readonly messageId: Buffer;
  readonly conversationId: string;
  readonly sender: string;
  readonly own: boolean;
  readonly kind: MessageKind | "membership";
  readonly sentAtMs: number;
  readonly receivedAtMs: number;
  readonly state?: string;
  readonly failure?: string;
  /** Why it failed, as data (a ClientError as JSON), for the UI to word after a restart. */
  readonly failureError?: string;
  readonly queuedFor?: readonly string[];
  readonly gap: boolean;
  readonly sealed: Buffer;
}

export interface HeldEntry {
  readonly rowId: number;
  readonly sender: string;
  readonly deliveredInto: string;
  readonly envelope: Buffer;
  readonly receivedAtMs: number;
  /** The relay's time the envelope came with (0: none). */
  readonly relayTimeMs: number;
}

/** A history row as SQLite returns it, typed (the kind is one the app writes, else "text"). */
function historyRow(r: Record<string, unknown>): HistoryRow {
  return {
    messageId: Buffer.from(r["message_id"] as Uint8Array),
    conversationId: String(r["conversation_id"]),
    sender: String(r["sender"]),
    own: Number(r["own"]) === 1,
    kind: r["kind"] === "action" || r["kind"] === "topic" || r["kind"] === "away" || r["kind"] === "membership" ? r["kind"] : "text",
    sentAtMs: Number(r["sent_at_ms"]),
    receivedAtMs: Number(r["received_at_ms"]),
    ...(r["state"] === null ? {} : { state: String(r["state"]) }),
    ...(r["failure"] === null ? {} : { failure: String(r["failure"]) }),
    ...(r["failure_error"] === null || r["failure_error"] === undefined ? {} : { failureError: String(r["failure_error"]) }),
    ...(r["queued_for"] === null || r["queued_for"] === "" ? {} : { queuedFor: String(r["queued_for"]).split(",") }),
    gap: Number(r["gap"]) === 1,
    sealed: Buffer.from(r["sealed"] as Uint8Array),
  };
}

export class ClientStateStore {
  private readonly db: DatabaseSync;
  private readonly q: Record<string, StatementSync>;

  private constructor(path: string) {
    if (path !== ":memory:") touchPrivate(path, "client state");
    // One process per file (the user's lock, user-lock.ts); a write still waits briefly for
    // SQLite's lock instead of failing with SQLITE_BUSY (a tool reading the file meanwhile).
    this.db = new DatabaseSync(path, { timeout: 2_000 });
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA secure_delete = ON; -- what /clear forgets is overwritten, not left in free pages
      -- Seen ids are keyed by (sender, id): ids are chosen by senders, so one peer reusing
      -- another's id must not make the other's message a "replay" (PROTOCOL.md Appendix A.3).
      -- Rows from the older id-only table keep sender '' and count for every sender until pruned.
      CREATE TABLE IF NOT EXISTS seen_from (sender TEXT NOT NULL, message_id BLOB NOT NULL, sent_at_ms INTEGER NOT NULL,
        PRIMARY KEY (sender, message_id)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS seen_from_by_time ON seen_from(sent_at_ms);
      CREATE TABLE IF NOT EXISTS chain (conversation_id TEXT NOT NULL, sender TEXT NOT NULL, last_hash BLOB NOT NULL,
        PRIMARY KEY (conversation_id, sender)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS own_chain (conversation_id TEXT PRIMARY KEY, head BLOB NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS outbox (message_id BLOB PRIMARY KEY, conversation_id TEXT NOT NULL, envelope BLOB NOT NULL,
        kind TEXT NOT NULL, text TEXT NOT NULL, created_at_ms INTEGER NOT NULL, sent_at_ms INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS held (row_id INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT NOT NULL, delivered_into TEXT NOT NULL,
        envelope BLOB NOT NULL, received_at_ms INTEGER NOT NULL, relay_time_ms INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE IF NOT EXISTS history (${HISTORY_COLUMNS});
      CREATE INDEX IF NOT EXISTS history_by_conversation ON history(conversation_id, row_id);
      CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    `);
    migrateSeen(this.db);
    migrateHistory(this.db);
    // Held envelopes keep the relay's time they came with (a column files written before lack).
    const heldColumns = this.db.prepare("SELECT name FROM pragma_table_info('held')").all() as { name: string }[];
    if (!heldColumns.some((c) => c.name === "relay_time_ms")) this.db.exec("ALTER TABLE held ADD COLUMN relay_time_ms INTEGER NOT NULL DEFAULT 0");
    // History rows keep why a message failed as data too (a column files written before lack).
    const historyColumns = this.db.prepare("SELECT name FROM pragma_table_info('history')").all() as { name: string }[];
    if (!historyColumns.some((c) => c.name === "failure_error")) this.db.exec("ALTER TABLE history ADD COLUMN failure_error TEXT");
    const p = (sql: string) => this.db.prepare(sql);
    this.q = {
      hasSeen: p("SELECT 1 AS x FROM seen_from WHERE message_id = ? AND sender IN (?, '')"),
      markSeen: p("INSERT OR IGNORE INTO seen_from (sender, message_id, sent_at_ms) VALUES (?, ?, ?)"),
      pruneSeen: p("DELETE FROM seen_from WHERE sent_at_ms < ?"),
      lastHash: p("SELECT last_hash FROM chain WHERE conversation_id = ? AND sender = ?"),
      setLastHash: p("INSERT INTO chain (conversation_id, sender, last_hash) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET last_hash = excluded.last_hash"),
      forgetChains: p("DELETE FROM chain WHERE sender = ?"),
      ownHead: p("SELECT head FROM own_chain WHERE conversation_id = ?"),
      setOwnHead: p("INSERT INTO own_chain (conversation_id, head) VALUES (?, ?) ON CONFLICT DO UPDATE SET head = excluded.head"),
      outboxAdd: p("INSERT OR REPLACE INTO outbox (message_id, conversation_id, envelope, kind, text, created_at_ms, sent_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      outboxRemove: p("DELETE FROM outbox WHERE message_id = ?"),
      outboxGet: p("SELECT * FROM outbox WHERE message_id = ?"),
      outboxAll: p("SELECT * FROM outbox ORDER BY created_at_ms, rowid"),
      holdAdd: p("INSERT INTO held (sender, delivered_into, envelope, received_at_ms, relay_time_ms) VALUES (?, ?, ?, ?, ?)"),
      heldFor: p("SELECT * FROM held WHERE sender = ? ORDER BY row_id"),
      heldCount: p("SELECT COUNT(*) AS n FROM held WHERE sender = ?"),
      holdRemove: p("DELETE FROM held WHERE row_id = ?"),
      historyAdd: p(`INSERT OR IGNORE INTO history (message_id, conversation_id, sender, own, kind, sent_at_ms, received_at_ms,
        state, failure, failure_error, queued_for, gap, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      historyState: p("UPDATE history SET state = ?, failure = ?, failure_error = ?, queued_for = ? WHERE message_id = ? AND own = 1"),
      // A new row id past every one (AUTOINCREMENT picks later ones above the table's largest).
      historyMoveToEnd: p("UPDATE history SET row_id = (SELECT MAX(row_id) FROM history) + 1 WHERE sender = ? AND message_id = ?"),
      historyConversations: p("SELECT DISTINCT conversation_id FROM history"),
      historyRecent: p("SELECT * FROM (SELECT * FROM history ORDER BY row_id DESC LIMIT ?) ORDER BY row_id"),
      historyForget: p("DELETE FROM history WHERE conversation_id = ?"),
      historyRemove: p("DELETE FROM history WHERE message_id = ? AND own = 1"),
      historyRowId: p("SELECT row_id FROM history WHERE conversation_id = ? AND sender = ? AND message_id = ? ORDER BY row_id DESC LIMIT 1"),
      historyBefore: p(`SELECT * FROM (SELECT * FROM history WHERE conversation_id = ? AND row_id < ?
        ORDER BY row_id DESC LIMIT ?) ORDER BY row_id`),
      historyAll: p("SELECT * FROM history ORDER BY row_id"),
      settingGet: p("SELECT value FROM settings WHERE name = ?"),
      settingSet: p("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value"),
      historyTrim: p(`DELETE FROM history WHERE conversation_id = ? AND row_id <= (SELECT row_id FROM history
        WHERE conversation_id = ? ORDER BY row_id DESC LIMIT 1 OFFSET ?)`),
    };
  }

  /** The open database, for the protocol v2 content layer's own tables (src/client/mls/content-store.ts). */
  get database(): DatabaseSync {
    return this.db;
  }

  /** Opens (creating 0600) the state database at path, or an in-memory one for tests. */
  static open(path: string): ClientStateStore {
    return new ClientStateStore(path);
  }

  /** Whether this sender's message id was seen (ids are per sender: Appendix A.3). */
  hasSeen(messageId: Uint8Array, sender: string): boolean {
    return this.q["hasSeen"]!.get(messageId, sender) !== undefined;
  }

  /** Open step 9: the id is seen and the sender's chain in this conversation moves on. */
  recordOpened(messageId: Uint8Array, sentAtMs: number, conversationId: string, sender: string, hash: Uint8Array): void {
    this.db.exec("BEGIN");
    try {
      this.q["markSeen"]!.run(sender, messageId, sentAtMs);
      this.q["setLastHash"]!.run(conversationId, sender, hash);
      this.db.exec("COMMIT");
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  markSeen(messageId: Uint8Array, sender: string, sentAtMs: number): void {
    this.q["markSeen"]!.run(sender, messageId, sentAtMs);
  }

  lastHash(conversationId: string, sender: string): Buffer | undefined {
    const row = this.q["lastHash"]!.get(conversationId, sender) as { last_hash: Uint8Array } | undefined;
    return row === undefined ? undefined : Buffer.from(row.last_hash);
  }

  /** Forgets a sender's chains in every conversation (their accepted new key starts afresh, §6). */
  forgetChains(sender: string): void {
    this.q["forgetChains"]!.run(sender);
  }

  ownHead(conversationId: string): Buffer {
    const row = this.q["ownHead"]!.get(conversationId) as { head: Uint8Array } | undefined;
    return row === undefined ? ZERO_HASH : Buffer.from(row.head);
  }

  setOwnHead(conversationId: string, head: Uint8Array): void {
    this.q["setOwnHead"]!.run(conversationId, head);
  }

  /** Sealing a message moves my chain head and queues it, atomically (its id is seen as mine). */
  addOutgoing(entry: OutboxEntry, newHead: Uint8Array, me: string): void {
    this.db.exec("BEGIN");
    try {
      this.q["outboxAdd"]!.run(entry.id, entry.conversationId, entry.envelope, entry.kind, entry.text, entry.createdAtMs, entry.sentAtMs);
      this.q["setOwnHead"]!.run(entry.conversationId, newHead);
      this.q["markSeen"]!.run(me, entry.id, entry.sentAtMs);
      this.db.exec("COMMIT");
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  outboxRemove(messageId: Uint8Array): void {
    this.q["outboxRemove"]!.run(messageId);
  }

  outboxGet(messageId: Uint8Array): OutboxEntry | undefined {
    const r = this.q["outboxGet"]!.get(messageId) as Record<string, unknown> | undefined;
    return r === undefined ? undefined : rowToOutbox(r);
  }

  outbox(): OutboxEntry[] {
    return (this.q["outboxAll"]!.all() as Record<string, unknown>[]).map(rowToOutbox);
  }

  hold(sender: string, deliveredInto: string, envelope: Uint8Array, receivedAtMs: number, relayTimeMs = 0): void {
    this.q["holdAdd"]!.run(sender, deliveredInto, envelope, receivedAtMs, relayTimeMs);
  }

  heldFor(sender: string): HeldEntry[] {
    return (this.q["heldFor"]!.all(sender) as Record<string, unknown>[]).map((r) => ({
      rowId: Number(r["row_id"]),
      sender: String(r["sender"]),
      deliveredInto: String(r["delivered_into"]),
      envelope: Buffer.from(r["envelope"] as Uint8Array),
      receivedAtMs: Number(r["received_at_ms"]),
      relayTimeMs: Number(r["relay_time_ms"] ?? 0),
    }));
  }

  heldCount(sender: string): number {
    return Number((this.q["heldCount"]!.get(sender) as { n: number }).n);
  }

  releaseHeld(rowId: number): void {
    this.q["holdRemove"]!.run(rowId);
  }

  /** Keeps a message for the history shown at the next start (the text arrives already sealed). */
  historyAdd(r: HistoryRow): void {
    this.q["historyAdd"]!.run(
      r.messageId, r.conversationId, r.sender, r.own ? 1 : 0, r.kind, r.sentAtMs, r.receivedAtMs,
      r.state ?? null, r.failure ?? null, r.failureError ?? null, r.queuedFor === undefined ? null : r.queuedFor.join(","), r.gap ? 1 : 0, r.sealed,
    );
  }

  historySetState(messageId: Uint8Array, state: string, failure: string | undefined, queuedFor: readonly string[] | undefined, failureError?: string): void {
    this.q["historyState"]!.run(state, failure ?? null, failureError ?? null, queuedFor === undefined ? null : queuedFor.join(","), messageId);
  }

  /** The newest `total` rows, in the order they were kept (historyTrim bounds each conversation). */
  historyRecent(total: number): HistoryRow[] {
    return (this.q["historyRecent"]!.all(total) as Record<string, unknown>[]).map(historyRow);
  }

  /**
   * One page of a conversation's kept rows, oldest first: the `limit` rows kept just before the
   * row of message `before` (the newest ones when `before` is undefined or not kept). A message
   * is its sender and its id: another sender's message may carry the same id (PROTOCOL.md §11.1).
   */
  historyPage(conversationId: string, before: { readonly sender: string; readonly messageId: Uint8Array } | undefined, limit: number): HistoryRow[] {
    const at = before === undefined ? undefined : (this.q["historyRowId"]!.get(conversationId, before.sender, before.messageId) as { row_id: number } | undefined);
    const below = at === undefined ? Number.MAX_SAFE_INTEGER : Number(at.row_id);
    return (this.q["historyBefore"]!.all(conversationId, below, limit) as Record<string, unknown>[]).map(historyRow);
  }

  /**
   * Moves these kept rows (by sender and message id), in this order, after every other row: a
   * line that came later but belongs before them (a new DM's "you started this conversation"
   * before my first lines, which waited for the group) then replays in its place.
   */
  historyMoveToEnd(rows: ReadonlyArray<{ readonly sender: string; readonly messageId: Uint8Array }>): void {
    if (rows.length === 0) return;
    this.db.exec("BEGIN");
    try {
      for (const r of rows) this.q["historyMoveToEnd"]!.run(r.sender, r.messageId);
      this.db.exec("COMMIT");
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  /** Every kept row, oldest first (/search; each conversation is bounded by historyTrim). */
  historyAll(): HistoryRow[] {
    return (this.q["historyAll"]!.all() as Record<string, unknown>[]).map(historyRow);
  }

  /** A small named setting of the UI (JSON text), undefined when never written. */
  settingGet(name: string): string | undefined {
    const row = this.q["settingGet"]!.get(name) as { value: string } | undefined;
    return row === undefined ? undefined : String(row.value);
  }

  settingSet(name: string, value: string): void {
    this.q["settingSet"]!.run(name, value);
  }

  /** Keeps only the newest `perConversation` rows of every conversation. */
  historyTrim(perConversation: number): void {
    for (const c of this.q["historyConversations"]!.all() as Record<string, unknown>[]) {
      const id = String(c["conversation_id"]);
      this.q["historyTrim"]!.run(id, id, perConversation);
    }
  }

  /** Forgets one message (a failed one that was sent again as a new message). */
  historyRemove(messageId: Uint8Array): void {
    this.q["historyRemove"]!.run(messageId);
  }

  /** Forgets a conversation's history on this machine. */
  historyForget(conversationId: string): void {
    this.q["historyForget"]!.run(conversationId);
  }

  /** Forgets seen ids older than any envelope that could still be accepted. */
  prune(nowMs: number): void {
    this.q["pruneSeen"]!.run(nowMs - MAX_AGE_MS - MAX_FUTURE_SKEW_MS);
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}

/**
 * History rows are unique per (sender, message id), like seen ids: a peer reusing another's id
 * must not keep the other's message out of the history.
 */
const HISTORY_COLUMNS = `row_id INTEGER PRIMARY KEY AUTOINCREMENT, message_id BLOB NOT NULL,
        conversation_id TEXT NOT NULL, sender TEXT NOT NULL, own INTEGER NOT NULL, kind TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL, state TEXT, failure TEXT, queued_for TEXT,
        gap INTEGER NOT NULL, sealed BLOB NOT NULL, failure_error TEXT, UNIQUE (sender, message_id)`;

/** Rebuilds a history table of the older shape (message_id unique on its own) once. */
function migrateHistory(db: DatabaseSync): void {
  const row = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'history'").get() as { sql: string } | undefined;
  if (row === undefined || row.sql.includes("UNIQUE (sender, message_id)")) return;
  db.exec(`BEGIN;
    CREATE TABLE history_by_sender (${HISTORY_COLUMNS});
    INSERT INTO history_by_sender (row_id, message_id, conversation_id, sender, own, kind, sent_at_ms, received_at_ms,
      state, failure, queued_for, gap, sealed) SELECT row_id, message_id, conversation_id, sender, own, kind, sent_at_ms, received_at_ms,
      state, failure, queued_for, gap, sealed FROM history;
    DROP TABLE history;
    ALTER TABLE history_by_sender RENAME TO history;
    CREATE INDEX IF NOT EXISTS history_by_conversation ON history(conversation_id, row_id);
    COMMIT;`);
}

/** Moves seen ids of the older id-only table (kept as sender '', matching every sender) once. */
function migrateSeen(db: DatabaseSync): void {
  const old = db.prepare("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'seen'").get();
  if (old === undefined) return;
  db.exec(`BEGIN;
    INSERT OR IGNORE INTO seen_from (sender, message_id, sent_at_ms) SELECT '', message_id, sent_at_ms FROM seen;
    DROP TABLE seen;
    COMMIT;`);
}

function rowToOutbox(r: Record<string, unknown>): OutboxEntry {
  return {
    id: Buffer.from(r["message_id"] as Uint8Array),
    conversationId: String(r["conversation_id"]),
    envelope: Buffer.from(r["envelope"] as Uint8Array),
    kind: r["kind"] === "action" || r["kind"] === "topic" || r["kind"] === "away" ? r["kind"] : "text",
    text: r["text"] instanceof Uint8Array ? Buffer.from(r["text"]) : String(r["text"]),
    createdAtMs: Number(r["created_at_ms"]),
    sentAtMs: Number(r["sent_at_ms"]),
  };
}
