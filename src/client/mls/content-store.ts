// Where the protocol v2 content layer (content.ts, PROTOCOL.md §11) keeps its state across
// restarts: four tables (five: peers per device, §4.5, and the table of before) in the client's `<user>_state.db` (ClientStateStore.database), beside the
// v1 tables they do not touch. Hashes, message ids, counters and usernames only: no keys and no
// text. Every table is bounded per conversation by content.ts (members ≤ APP_SEEN_MAX, own
// messages awaiting acknowledgement ≤ CONTENT_SENT_MAX, remembered ids ≤ CONTENT_IDS_MAX).
import { DatabaseSync, type StatementSync } from "node:sqlite";

/** One conversation's group and my side of it. */
export interface ContentConvRow {
  readonly conversationId: string;
  readonly groupId: Buffer;
  /** appHash of my last message in this group (zeros before the first). */
  readonly ownHead: Buffer;
  /** How many peer messages were opened in this group (orders receipts against acceptances). */
  readonly recvSeq: number;
  /** Sequence of my last sealed message (orders the sent list). */
  readonly sentSeq: number;
  /** Sequence of the last remembered message id (orders the id list for pruning). */
  readonly idSeq: number;
  /** §10: application messages I sent since my last commit here. */
  readonly sentSinceCommit: number;
  /** §10: when my last commit here was accepted (or when I joined: content.ts). */
  readonly lastCommitMs: number;
  /** Whether the member list was given at least once (later arrivals start their chain fresh). */
  readonly membersKnown: boolean;
  /**
   * §11.1: appHash of my newest message here whose acceptance was recorded (accepted, and all
   * delivered to me before the answer opened), zeros for none; carried as `settled`. Its sentSeq.
   */
  readonly settledHead: Buffer;
  readonly settledSeq: number;
}

/** What I know of one peer DEVICE in one group (§11 with §4.5: chains are per sender device). */
export interface ContentPeerRow {
  readonly username: string;
  /**
   * deviceTag of the device's MLS signature key (app-data.ts), or empty: a record made before
   * devices (or by a caller that does not say the device), which the user's first device heard
   * from takes over (content.ts).
   */
  readonly device: Buffer;
  /** In the group's member list now (false: heard from, not listed, e.g. a past-epoch message). */
  readonly member: boolean;
  /** Joined after me: their first message must start their chain (prev = zeros). */
  readonly fresh: boolean;
  /** My sentSeq when they became a member: my messages numbered up to it were not theirs to read. */
  readonly memberSince: number;
  /**
   * appHash of the newest message of their chain opened (the one no other recent message of
   * theirs names as prev; after a swap, not the late one); undefined before the first.
   */
  readonly lastHash: Buffer | undefined;
  /**
   * Their recent messages as opened, the oldest first: (appHash, prev) pairs of 32 + 32 bytes,
   * at most CONTENT_RECENT_MAX (content.ts). A late message is judged against these (§11.1 gap).
   */
  readonly recent: Buffer;
  /** recvSeq of each of `recent` as opened (u64 each, same order); shorter when made before it: unknown. */
  readonly recentAt: Buffer;
  /** Messages opened from them. */
  readonly count: number;
  /** recvSeq of their last and second-to-last message (0: none). */
  readonly lastSeq: number;
  readonly prevSeq: number;
  /** The hash of my message that their seen list last named (undefined: none yet). */
  readonly acked: Buffer | undefined;
  /** What my last sent seen list said of them (the list names only what changed since). */
  readonly told: Buffer | undefined;
  /** A gap in their chain: the message that acknowledged mine may be the missing one. */
  readonly ackUncertain: boolean;
}

/** One own message awaiting acknowledgement. */
export interface ContentSentRow {
  readonly seq: number;
  readonly messageId: Buffer;
  readonly hash: Buffer;
  /** recvSeq when it was sealed, and when the relay accepted it (undefined: not yet). */
  readonly sealSeq: number;
  readonly acceptSeq: number | undefined;
  readonly confirmed: boolean;
  readonly lost: boolean;
}

export interface ContentSnapshot {
  readonly conv: ContentConvRow;
  readonly peers: ContentPeerRow[];
  readonly sent: ContentSentRow[];
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS mls_content_conv (conversation_id TEXT PRIMARY KEY, group_id BLOB NOT NULL,
    own_head BLOB NOT NULL, recv_seq INTEGER NOT NULL, sent_seq INTEGER NOT NULL, id_seq INTEGER NOT NULL,
    sent_since_commit INTEGER NOT NULL, last_commit_ms INTEGER NOT NULL, members_known INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS mls_content_peer (conversation_id TEXT NOT NULL, username TEXT NOT NULL,
    member INTEGER NOT NULL, fresh INTEGER NOT NULL, member_since INTEGER NOT NULL, last_hash BLOB, count INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, prev_seq INTEGER NOT NULL, acked BLOB, told BLOB, ack_uncertain INTEGER NOT NULL, recent BLOB,
    PRIMARY KEY (conversation_id, username)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS mls_content_device (conversation_id TEXT NOT NULL, username TEXT NOT NULL, device BLOB NOT NULL,
    member INTEGER NOT NULL, fresh INTEGER NOT NULL, member_since INTEGER NOT NULL, last_hash BLOB, count INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, prev_seq INTEGER NOT NULL, acked BLOB, told BLOB, ack_uncertain INTEGER NOT NULL, recent BLOB,
    recent_at BLOB, PRIMARY KEY (conversation_id, username, device)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS mls_content_sent (conversation_id TEXT NOT NULL, seq INTEGER NOT NULL,
    message_id BLOB NOT NULL, hash BLOB NOT NULL, seal_seq INTEGER NOT NULL, accept_seq INTEGER,
    confirmed INTEGER NOT NULL, lost INTEGER NOT NULL, PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS mls_content_id (conversation_id TEXT NOT NULL, sender TEXT NOT NULL,
    message_id BLOB NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (conversation_id, sender, message_id)) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS mls_content_id_by_seq ON mls_content_id(conversation_id, seq);
`;

const blob = (v: unknown): Buffer | undefined => (v === null || v === undefined ? undefined : Buffer.from(v as Uint8Array));

/** The content layer's tables over an open database (the state db's handle, or one of its own). */
export class ContentStore {
  private readonly q: Record<string, StatementSync>;

  constructor(private readonly db: DatabaseSync) {
    db.exec(SCHEMA);
    // A state db made before the recent column: add it (empty: judged by last_hash until refilled).
    const has = (table: string, col: string): boolean => (db.prepare(`PRAGMA table_info(${table})`).all() as Record<string, unknown>[]).some((r) => r["name"] === col);
    if (!has("mls_content_peer", "recent")) db.exec("ALTER TABLE mls_content_peer ADD COLUMN recent BLOB");
    // Made before the §11.1 settled rule: none recorded (nothing of theirs counts until refilled).
    if (!has("mls_content_peer", "recent_at")) db.exec("ALTER TABLE mls_content_peer ADD COLUMN recent_at BLOB");
    if (!has("mls_content_conv", "settled_head")) db.exec("ALTER TABLE mls_content_conv ADD COLUMN settled_head BLOB; ALTER TABLE mls_content_conv ADD COLUMN settled_seq INTEGER");
    // Made before devices (§4.5): each peer's record becomes the record of an unnamed device
    // (device = empty), which their first device heard from takes over (content.ts peerFor).
    const legacy = (db.prepare("SELECT count(*) AS n FROM mls_content_peer").get() as { n: number }).n;
    if (legacy > 0) {
      db.exec(`BEGIN IMMEDIATE;
        INSERT OR IGNORE INTO mls_content_device (conversation_id, username, device, member, fresh, member_since, last_hash, count,
          last_seq, prev_seq, acked, told, ack_uncertain, recent, recent_at)
        SELECT conversation_id, username, X'', member, fresh, member_since, last_hash, count, last_seq, prev_seq, acked, told,
          ack_uncertain, recent, recent_at FROM mls_content_peer;
        DELETE FROM mls_content_peer;
        COMMIT;`);
    }
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      conv: p("SELECT * FROM mls_content_conv WHERE conversation_id = ?"),
      peers: p("SELECT * FROM mls_content_device WHERE conversation_id = ?"),
      sent: p("SELECT * FROM mls_content_sent WHERE conversation_id = ? ORDER BY seq"),
      putConv: p(`INSERT OR REPLACE INTO mls_content_conv (conversation_id, group_id, own_head, recv_seq, sent_seq, id_seq,
        sent_since_commit, last_commit_ms, members_known, settled_head, settled_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      putPeer: p(`INSERT OR REPLACE INTO mls_content_device (conversation_id, username, device, member, fresh, member_since, last_hash,
        count, last_seq, prev_seq, acked, told, ack_uncertain, recent, recent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      deletePeer: p("DELETE FROM mls_content_device WHERE conversation_id = ? AND username = ? AND device = ?"),
      putSent: p(`INSERT OR REPLACE INTO mls_content_sent (conversation_id, seq, message_id, hash, seal_seq, accept_seq,
        confirmed, lost) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      deleteSent: p("DELETE FROM mls_content_sent WHERE conversation_id = ? AND seq = ?"),
      hasId: p("SELECT 1 AS x FROM mls_content_id WHERE conversation_id = ? AND sender = ? AND message_id = ?"),
      addId: p("INSERT OR IGNORE INTO mls_content_id (conversation_id, sender, message_id, seq) VALUES (?, ?, ?, ?)"),
      pruneIds: p("DELETE FROM mls_content_id WHERE conversation_id = ? AND seq <= ?"),
      forget: p("DELETE FROM mls_content_conv WHERE conversation_id = ?"),
      forgetPeers: p("DELETE FROM mls_content_device WHERE conversation_id = ?"),
      forgetSent: p("DELETE FROM mls_content_sent WHERE conversation_id = ?"),
      forgetIds: p("DELETE FROM mls_content_id WHERE conversation_id = ?"),
    };
  }

  /** A store over a private in-memory database (tests, and callers without a state db). */
  static inMemory(): ContentStore {
    return new ContentStore(new DatabaseSync(":memory:"));
  }

  /**
   * Runs fn in one transaction; inside a caller's transaction, in a savepoint of it (a failure
   * undoes this part only, and the caller's commit or rollback decides for all of it).
   */
  transaction<T>(fn: () => T): T {
    const nested = this.db.isTransaction;
    this.db.exec(nested ? "SAVEPOINT mls_content" : "BEGIN IMMEDIATE");
    try {
      const out = fn();
      this.db.exec(nested ? "RELEASE mls_content" : "COMMIT");
      return out;
    } catch (e) {
      this.db.exec(nested ? "ROLLBACK TO mls_content; RELEASE mls_content" : "ROLLBACK");
      throw e;
    }
  }

  load(conversationId: string): ContentSnapshot | undefined {
    const c = this.q["conv"]!.get(conversationId) as Record<string, unknown> | undefined;
    if (c === undefined) return undefined;
    const conv: ContentConvRow = {
      conversationId, groupId: blob(c["group_id"])!, ownHead: blob(c["own_head"])!,
      recvSeq: Number(c["recv_seq"]), sentSeq: Number(c["sent_seq"]), idSeq: Number(c["id_seq"]),
      sentSinceCommit: Number(c["sent_since_commit"]), lastCommitMs: Number(c["last_commit_ms"]),
      membersKnown: Number(c["members_known"]) === 1,
      settledHead: blob(c["settled_head"]) ?? Buffer.alloc(32), settledSeq: c["settled_seq"] === null || c["settled_seq"] === undefined ? 0 : Number(c["settled_seq"]),
    };
    const peers = (this.q["peers"]!.all(conversationId) as Record<string, unknown>[]).map((r): ContentPeerRow => ({
      username: String(r["username"]), device: blob(r["device"]) ?? Buffer.alloc(0), member: Number(r["member"]) === 1, fresh: Number(r["fresh"]) === 1, memberSince: Number(r["member_since"]),
      lastHash: blob(r["last_hash"]), count: Number(r["count"]), lastSeq: Number(r["last_seq"]), prevSeq: Number(r["prev_seq"]),
      acked: blob(r["acked"]), told: blob(r["told"]), ackUncertain: Number(r["ack_uncertain"]) === 1,
      recent: blob(r["recent"]) ?? Buffer.alloc(0), recentAt: blob(r["recent_at"]) ?? Buffer.alloc(0),
    }));
    const sent = (this.q["sent"]!.all(conversationId) as Record<string, unknown>[]).map((r): ContentSentRow => ({
      seq: Number(r["seq"]), messageId: blob(r["message_id"])!, hash: blob(r["hash"])!, sealSeq: Number(r["seal_seq"]),
      acceptSeq: r["accept_seq"] === null ? undefined : Number(r["accept_seq"]),
      confirmed: Number(r["confirmed"]) === 1, lost: Number(r["lost"]) === 1,
    }));
    return { conv, peers, sent };
  }

  putConv(c: ContentConvRow): void {
    this.q["putConv"]!.run(c.conversationId, c.groupId, c.ownHead, c.recvSeq, c.sentSeq, c.idSeq, c.sentSinceCommit, c.lastCommitMs, c.membersKnown ? 1 : 0, c.settledHead, c.settledSeq);
  }

  putPeer(conversationId: string, p: ContentPeerRow): void {
    this.q["putPeer"]!.run(conversationId, p.username, p.device, p.member ? 1 : 0, p.fresh ? 1 : 0, p.memberSince, p.lastHash ?? null, p.count,
      p.lastSeq, p.prevSeq, p.acked ?? null, p.told ?? null, p.ackUncertain ? 1 : 0, p.recent, p.recentAt);
  }

  deletePeer(conversationId: string, username: string, device: Buffer): void {
    this.q["deletePeer"]!.run(conversationId, username, device);
  }

  putSent(conversationId: string, s: ContentSentRow): void {
    this.q["putSent"]!.run(conversationId, s.seq, s.messageId, s.hash, s.sealSeq, s.acceptSeq ?? null, s.confirmed ? 1 : 0, s.lost ? 1 : 0);
  }

  deleteSent(conversationId: string, seq: number): void {
    this.q["deleteSent"]!.run(conversationId, seq);
  }

  hasId(conversationId: string, sender: string, messageId: Uint8Array): boolean {
    return this.q["hasId"]!.get(conversationId, sender, messageId) !== undefined;
  }

  /** Remembers a sender's message id as number `seq` and forgets those numbered `pruneUpTo` or less. */
  addId(conversationId: string, sender: string, messageId: Uint8Array, seq: number, pruneUpTo: number): void {
    this.q["addId"]!.run(conversationId, sender, messageId, seq);
    if (pruneUpTo > 0) this.q["pruneIds"]!.run(conversationId, pruneUpTo);
  }

  forget(conversationId: string): void {
    this.transaction(() => {
      for (const k of ["forget", "forgetPeers", "forgetSent", "forgetIds"]) this.q[k]!.run(conversationId);
    });
  }
}
