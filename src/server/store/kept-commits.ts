// The commits the embedded store keeps (PROTOCOL.md §8.2 "kept commits"), read and bounded: the
// per-user bound (trim: a sender's oldest first, inside the accepting transaction or alone), the
// retention purge, and FetchCommits' page (sizes first, a blob only when it fits). The table
// itself (mls-schema.ts COMMITS_TABLE: rowid rows, the blob out of the key's B-tree, the usage
// triggers) and acceptCommit's insert are store/mls.ts's; this is what reads and drops them.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { CommitPage, CommitRecord } from "./mls-types.js";
import { buf, num, str, type Row, type Transaction } from "./schema.js";

interface Statements {
  usage: StatementSync;
  oldest: StatementSync;
  drop: StatementSync;
  purge: StatementSync;
  headsFrom: StatementSync;
  blob: StatementSync;
  from: StatementSync;
}

export class KeptCommits {
  constructor(private readonly db: DatabaseSync, private readonly transaction: Transaction) {}

  private statements: Statements | undefined;

  private get kept(): Statements {
    this.statements ??= {
      // Kept by triggers (mls-schema.ts COMMIT_USAGE): one row, where counting the commits reads one row each.
      usage: this.db.prepare(`SELECT commits, bytes FROM mls_commit_usage WHERE sender = ?`),
      // In mls_commits_by_sender's order; no blob is read (`bytes` is stored beside it).
      oldest: this.db.prepare(`SELECT id, group_id, epoch, bytes FROM mls_commits WHERE sender = ? ORDER BY accepted_at_ms, group_id, epoch LIMIT ?`),
      drop: this.db.prepare(`DELETE FROM mls_commits WHERE id = ?`),
      // Past the retention, except each group's newest (epoch = the group's epoch - 1); and every
      // commit of a group nobody is a member of by the hint (nobody may fetch them).
      purge: this.db.prepare(`DELETE FROM mls_commits WHERE
          NOT EXISTS (SELECT 1 FROM mls_group_members m WHERE m.group_id = mls_commits.group_id)
          OR (accepted_at_ms < ? AND epoch + 1 <> COALESCE((SELECT g.epoch FROM mls_groups g WHERE g.group_id = mls_commits.group_id), -1))`),
      headsFrom: this.db.prepare(`SELECT id, epoch, sender, bytes FROM mls_commits WHERE group_id = ? AND epoch >= ? ORDER BY epoch LIMIT ?`),
      blob: this.db.prepare(`SELECT commit_msg FROM mls_commits WHERE id = ?`),
      from: this.db.prepare(`SELECT epoch, sender, commit_msg FROM mls_commits WHERE group_id = ? AND epoch >= ? ORDER BY epoch LIMIT ?`),
    };
    return this.statements;
  }

  /**
   * PROTOCOL.md §8.2: the per-user bound on kept commits. Drops `sender`'s oldest kept commits
   * until at most `maxCommits` of at most `maxBytes` in all are left (acceptCommit does it for
   * its sender, given the bound). Returns how many went. Costs one read of the sender's usage
   * when nothing has to go.
   */
  trim(sender: string, maxCommits: number, maxBytes: number): number {
    const u = this.kept.usage.get(sender) as Row | undefined;
    if (u === undefined || (num(u.commits) <= maxCommits && num(u.bytes) <= maxBytes)) return 0;
    return this.transaction(() => this.trimInside(sender, maxCommits, maxBytes));
  }

  /** trim's work, inside the caller's transaction (acceptCommit's); never drops `spare` (the commit just accepted). */
  trimInside(sender: string, maxCommits: number, maxBytes: number, spare?: { groupId: Buffer; epoch: number }): number {
    const k = this.kept;
    const u = k.usage.get(sender) as Row | undefined;
    if (u === undefined) return 0;
    let commits = num(u.commits);
    let bytes = num(u.bytes);
    const keepCommits = Math.max(0, maxCommits);
    const keepBytes = Math.max(0, maxBytes);
    let dropped = 0;
    while (commits > keepCommits || bytes > keepBytes) {
      const rows = (k.oldest.all(sender, 65) as Row[])
        .filter((r) => spare === undefined || num(r.epoch) !== spare.epoch || !buf(r.group_id).equals(spare.groupId));
      if (rows.length === 0) break;
      for (const r of rows) {
        if (commits <= keepCommits && bytes <= keepBytes) break;
        k.drop.run(num(r.id));
        commits--;
        bytes -= num(r.bytes);
        dropped++;
      }
    }
    return dropped;
  }

  /**
   * The retention purge of commits (PROTOCOL.md §8.2, §8.4): commits accepted before `cutoffMs`,
   * except each group's newest (it says who made the current epoch, and answers a resend), and
   * every commit of a group no member by the hint counts. Returns how many went.
   */
  purge(cutoffMs: number): number {
    return Number(this.kept.purge.run(cutoffMs).changes);
  }

  /**
   * FetchCommits' answer (PROTOCOL.md §8.2): the accepted commits from `fromEpoch` on, in epoch
   * order, at most `maxCount` and at most `maxBytes` in all, but at least the first whatever its
   * size; `more` when a kept commit follows the last one. The rows' sizes are stepped through one
   * at a time (no blob read: mls-schema.ts COMMITS_TABLE) and the blob of each that fits is read by its
   * row id: it reads the blobs it answers with, and the first row that does not fit without its
   * blob. The sizes' statement, open until the loop ends, holds one read transaction for both
   * (another connection's commit in between, a trim, is not seen half).
   */
  page(groupId: Buffer, fromEpoch: number, maxCount: number, maxBytes: number): CommitPage {
    const commits: CommitRecord[] = [];
    let bytes = 0;
    // Leaving the loop early resets the statement: the rows after are never read.
    for (const r of this.kept.headsFrom.iterate(groupId, fromEpoch, maxCount + 1) as Iterable<Row>) {
      const n = num(r.bytes);
      if (commits.length >= maxCount || (commits.length > 0 && bytes + n > maxBytes)) return { commits, more: true };
      const blob = this.kept.blob.get(num(r.id)) as Row;
      bytes += n;
      commits.push({ epoch: num(r.epoch), sender: str(r.sender), commit: Buffer.from(buf(blob.commit_msg)) });
    }
    return { commits, more: false };
  }

  /** The commit bytes of the row `id` (acceptCommit's duplicate check, once sender and size matched). */
  blobOf(id: number): Buffer {
    return buf((this.kept.blob.get(id) as Row).commit_msg);
  }

  /** Up to `limit` accepted commits from `fromEpoch` on, in epoch order (every blob: tests and tools; FetchCommits uses page). */
  from(groupId: Buffer, fromEpoch: number, limit: number): CommitRecord[] {
    return (this.kept.from.all(groupId, fromEpoch, limit) as Row[]).map((r) => ({ epoch: num(r.epoch), sender: str(r.sender), commit: Buffer.from(buf(r.commit_msg)) }));
  }
}
