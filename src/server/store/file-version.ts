// SQLite's data_version for the parts of the embedded store that keep the file in memory (the
// queues, queues.ts; the MLS groups, mls.ts): it changes when another connection commits to the
// file (the operator's `chat-relay users release` beside a live relay), and each part rebuilds
// or drops what it keeps when it sees a new value.
//
// Read once per turn of the event loop outside transactions (a turn's reads are as of its first
// one, as if the turn ran just before the other commit) and at the first read inside each
// transaction (its snapshot, taken at BEGIN IMMEDIATE, may be newer than the turn's look; no
// other connection commits while it holds the write lock). One read shared by the parts: the
// PRAGMA was 2-6% of the relay's samples at K=2 when each part read it.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { num, type Row, type UndoLog } from "./schema.js";

export class FileVersion {
  private value = -1;
  private checkedInTurn = false;
  /** The transaction (UndoLog.generation) of the last read inside one (-1: none). */
  private checkedIn = -1;
  private readonly pragma: StatementSync;

  constructor(private readonly db: DatabaseSync, private readonly undo: UndoLog | undefined) {
    this.pragma = db.prepare("PRAGMA data_version");
  }

  /** The file's data_version as of this turn, or of this transaction; `fresh` reads it now. */
  current(fresh = false): number {
    // The UndoLog knows without a call into SQLite whether one of the store's transactions runs.
    const inTransaction = this.undo === undefined ? this.db.isTransaction : this.undo.open;
    if (!fresh) {
      // Without an UndoLog the transactions cannot be told apart: read at every call inside one.
      if (inTransaction ? this.undo !== undefined && this.checkedIn === this.undo.generation : this.checkedInTurn) return this.value;
    }
    this.value = num((this.pragma.get() as Row).data_version);
    if (inTransaction) {
      this.checkedIn = this.undo?.generation ?? -1;
    } else if (!this.checkedInTurn) {
      this.checkedInTurn = true;
      setImmediate(() => {
        this.checkedInTurn = false;
      });
    }
    return this.value;
  }
}
