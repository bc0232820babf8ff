// The commits the PostgreSQL store keeps (PROTOCOL.md §8.2 "kept commits"), read and bounded,
// as the embedded store's store/kept-commits.ts: the per-user bound (trim: a sender's oldest
// first, inside the accepting transaction or alone), the retention purge, and FetchCommits' page
// (sizes first, the blobs of only what fits, one statement). The table and acceptCommit's insert
// are pg/mls.ts's.
import type { CommitPage, CommitRecord } from "../mls-types.js";
import type { SyncPg } from "./sync-client.js";

const num = (v: unknown): number => Number(v);
const str = (v: unknown): string => String(v);
const bytes = (v: unknown): Buffer => Buffer.from(v as Uint8Array);

/**
 * FetchCommits' answer in one statement (one snapshot, one round trip): the sizes of up to $3 commits
 * from epoch $2 on (octet_length reads a TOASTed value's size from its pointer, not the value),
 * their running total, and the blobs of only those that fit: at most $4, at most $5 bytes in all,
 * always the first. `found` (how many sizes were read) says whether more follow.
 */
export const COMMIT_PAGE_SQL = `WITH s AS (
    SELECT epoch, octet_length(commit_msg) AS n FROM mls_commits WHERE group_id = $1 AND epoch >= $2 ORDER BY epoch LIMIT $3),
  t AS (SELECT epoch, row_number() OVER (ORDER BY epoch) AS k, sum(n) OVER (ORDER BY epoch) AS total FROM s)
  SELECT c.epoch, c.sender, c.commit_msg, (SELECT count(*) FROM s) AS found
  FROM t JOIN mls_commits c ON c.group_id = $1 AND c.epoch = t.epoch
  WHERE t.k <= $4 AND (t.k = 1 OR t.total <= $5) ORDER BY c.epoch`;

export class PgKeptCommits {
  constructor(private readonly db: SyncPg) {}

  /**
   * PROTOCOL.md §8.2: the per-user bound on kept commits. Drops `sender`'s oldest kept commits
   * until at most `maxCommits` of at most `maxBytes` in all are left. Returns how many went.
   */
  trim(sender: string, maxCommits: number, maxBytes: number): number {
    // Kept by triggers (pg/schema.ts, migration 2): one row, where summing the blobs would read them.
    const [u] = this.db.query("SELECT commits, bytes FROM mls_commit_usage WHERE sender = $1", [sender]);
    if (u === undefined || (num(u["commits"]) <= Math.max(0, maxCommits) && num(u["bytes"]) <= Math.max(0, maxBytes))) return 0;
    // Run again when a deadlock with the purge aborts it.
    return this.db.transaction(() => this.trimInside(sender, maxCommits, maxBytes), { rerun: true });
  }

  /** trim's work, oldest first, inside the caller's transaction (acceptCommit's); never drops `spare` (the commit just accepted). */
  trimInside(sender: string, maxCommits: number, maxBytes: number, spare?: { groupId: Buffer; epoch: number }): number {
    let dropped = 0;
    for (;;) {
      const [r] = this.db.query(`WITH o AS (SELECT group_id, epoch FROM mls_commits
          WHERE sender = $1 AND EXISTS (SELECT 1 FROM mls_commit_usage WHERE sender = $1 AND (commits > $2 OR bytes > $3))
            AND NOT (group_id = $4 AND epoch = $5)
          ORDER BY accepted_at_ms, group_id, epoch LIMIT 1 FOR UPDATE),
        d AS (DELETE FROM mls_commits c USING o WHERE c.group_id = o.group_id AND c.epoch = o.epoch RETURNING 1)
        SELECT count(*) AS n FROM d`, [sender, Math.max(0, maxCommits), Math.max(0, maxBytes), spare?.groupId ?? Buffer.alloc(0), spare?.epoch ?? -1]);
      if (num(r!["n"]) === 0) return dropped;
      dropped++;
    }
  }

  /**
   * The retention purge of commits (PROTOCOL.md §8.2, §8.4): commits accepted before `cutoffMs`,
   * except each group's newest, and every commit of a group no member by the hint counts.
   */
  purge(cutoffMs: number): number {
    return this.db.transaction(() => {
      const [r] = this.db.query(`WITH d AS (DELETE FROM mls_commits c WHERE
          NOT EXISTS (SELECT 1 FROM mls_group_members m WHERE m.group_id = c.group_id)
          OR (c.accepted_at_ms < $1 AND c.epoch + 1 <> coalesce((SELECT g.epoch FROM mls_groups g WHERE g.group_id = c.group_id), -1))
        RETURNING 1) SELECT count(*) AS n FROM d`, [cutoffMs]);
      return num(r!["n"]);
    }, { rerun: true });
  }

  /** FetchCommits' answer: as the embedded store's commitPage (store/mls.ts), in one statement (COMMIT_PAGE_SQL). */
  page(groupId: Buffer, fromEpoch: number, maxCount: number, maxBytes: number): CommitPage {
    const rows = this.db.query(COMMIT_PAGE_SQL, [groupId, fromEpoch, maxCount + 1, maxCount, maxBytes]);
    const commits = rows.map((r) => ({ epoch: num(r["epoch"]), sender: str(r["sender"]), commit: bytes(r["commit_msg"]) }));
    return { commits, more: rows.length > 0 && num(rows[0]!["found"]) > rows.length };
  }

  /** Up to `limit` accepted commits from `fromEpoch` on, in epoch order (every blob: tests and tools; FetchCommits uses commitPage). */
  from(groupId: Buffer, fromEpoch: number, limit: number): CommitRecord[] {
    return this.db.query("SELECT epoch, sender, commit_msg FROM mls_commits WHERE group_id = $1 AND epoch >= $2 ORDER BY epoch LIMIT $3", [groupId, fromEpoch, limit])
      .map((r) => ({ epoch: num(r["epoch"]), sender: str(r["sender"]), commit: bytes(r["commit_msg"]) }));
  }
}
