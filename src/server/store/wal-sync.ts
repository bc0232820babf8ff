// The embedded store's group commit without the event loop waiting on the disk (PROTOCOL.md
// §8.4): a batch's transaction commits with synchronous = NORMAL (its WAL frames are written,
// not synced), then one fdatasync of the `-wal` file runs on libuv's thread pool; the batch is
// durable, and answered, only once that sync returned.
//
// Why that is FULL, moved off the loop (https://www.sqlite.org/pragma.html#pragma_synchronous,
// https://www.sqlite.org/wal.html): in WAL mode a commit only appends frames to the WAL; FULL
// adds exactly one thing to NORMAL, "an additional sync operation of the WAL file after each
// transaction commit". Our fdatasync of the same file (an fd of our own: a sync flushes the
// inode's dirty pages whoever wrote them) issued after COMMIT returned covers every frame that
// commit wrote, and every commit before it. After a crash SQLite replays the WAL's frames up to
// the last valid commit frame (salted, cumulative checksums), so what a returned sync covered
// survives. What NORMAL still syncs by itself, on the loop, as FULL does: at a checkpoint (run
// by the commit that grows the WAL past wal_autocheckpoint pages) the WAL, then the database
// file once the pages are copied; and the WAL header when the WAL starts over after a checkpoint
// (its first sync of a new WAL file also syncs the directory that holds it).
// A checkpoint only makes frames durable sooner; the WAL is only reused (overwritten) once all
// its frames are in the database file and that file was synced. SQLite never deletes or
// replaces the WAL while a connection has it open (journal_size_limit truncates it in place), so
// one fd, opened after the first such commit and kept, always names the WAL. SQLite's POSIX locks
// are on the database and -shm files, never the WAL: opening and closing an fd of the WAL does not
// drop them (closing any fd of a locked file would).
//
// Rows committed but not yet durable never reach a recipient: fetchQueue shows only rows at or
// below the seq where the oldest not-yet-durable batch began (`visibleThrough`). Rows stored after
// it by FULL commits (MLS commits, transactionQueuing) are durable at once, but wait behind it: a
// recipient's rows go out in seq order and its pump never reads below what it sent. The
// recipients a fetch was cut for are returned when the rows show, so their pumps are woken.
//
// Pipelining: at most one sync in flight; commits made meanwhile wait for the next one, which
// starts when it returns and covers all of them. (The group committer makes few: while a sync
// runs its next batch grows, and commits early only at maxBatchBytes.) So a busy relay syncs
// back to back, once per disk round trip, while the loop goes on reading, admitting and delivering.
//
// A failed sync (fsyncgate: after an fsync error Linux may drop the dirty pages and report the
// next fsync as a success, and the WAL's cumulative checksums make a later frame unusable without
// the lost ones) is final: the rows of every batch not yet durable are never shown, every waiting
// batch is refused, and every later transaction, FULL or not, throws. The relay then exits
// without closing the database (relay.ts): at the next start SQLite's recovery keeps exactly the
// frames that reached the disk, and the refused senders resend (answered as duplicates when their
// first copy survived).
import { closeSync, fdatasync, fdatasyncSync, openSync } from "node:fs";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { QueuedItem } from "./queues.js";

/** Makes what was written to the open file `fd` durable (default: fs.fdatasync on the thread pool). Tests inject slow or failing ones. */
export type SyncFile = (fd: number) => Promise<void>;

const fdatasyncOnPool: SyncFile = (fd) => new Promise((resolve, reject) => fdatasync(fd, (e) => (e === null ? resolve() : reject(e))));

/** The error every transaction throws once a sync failed (SQLITE_IOERR's code, so refusals name the disk). */
export class WalSyncFailed extends Error {
  readonly errcode = 10; // SQLITE_IOERR: storageRefusalOf says "it could not write to its disk"
  constructor(cause: unknown) {
    super(`a sync of the database's write-ahead log failed (${cause instanceof Error ? cause.message : String(cause)}); nothing written since the last good sync is known to be on disk`, { cause });
  }
}

interface Waiting {
  readonly resolve: (cut: ReadonlySet<string>) => void;
  readonly reject: (e: Error) => void;
}

/** Commits without an fsync on the loop, one fdatasync of the WAL per batch of commits, and the durable-rows clamp. */
export class WalSync {
  private fd: number | undefined;
  /** Per commit not yet durable, oldest first: the last queue seq before it (its rows are above). */
  private readonly hiddenAfter: number[] = [];
  /** Their waiters, in the same order. */
  private readonly waiting: Waiting[] = [];
  /** The sync in flight, with how many of the oldest `waiting` it covers. */
  private syncing: { readonly covered: number } | undefined;
  /**
   * Recipients a fetch was cut for since rows last showed, each with the seq after which it has
   * nothing to show until more rows do: its pump's next fetches (after an ack, or right after
   * the cut one) are answered without a query.
   */
  private cut = new Map<string, number>();
  private failure: WalSyncFailed | undefined;
  private closed = false;
  private readonly normal: StatementSync;
  private readonly full: StatementSync;

  constructor(
    db: DatabaseSync,
    private readonly walPath: string,
    private readonly lastSeq: () => number,
    private readonly syncFile: SyncFile = fdatasyncOnPool,
  ) {
    this.normal = db.prepare("PRAGMA synchronous = NORMAL");
    this.full = db.prepare("PRAGMA synchronous = FULL");
  }

  /** The error of the failed sync, if one failed: then nothing more may be written. */
  get failed(): WalSyncFailed | undefined {
    return this.failure;
  }

  /**
   * Runs `commit` (one transaction) under synchronous = NORMAL. Its queue rows stay hidden from
   * fetchQueue until `durable` resolves (with the recipients whose fetches were cut meanwhile:
   * wake them); `durable` rejects when the sync failed (the rows then never show). Throws what
   * the commit throws (nothing stored, nothing to wait for).
   */
  commitUnsynced<T>(commit: () => T): { readonly out: T; readonly durable: Promise<ReadonlySet<string>> } {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed) throw new Error("the store is closed");
    const before = this.lastSeq();
    this.normal.run();
    let out: T;
    try {
      out = commit();
    } finally {
      this.full.run();
    }
    this.hiddenAfter.push(before);
    const durable = new Promise<ReadonlySet<string>>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.startSync();
    return { out, durable };
  }

  /** Rows with a seq above this are not durable yet (Infinity: all are). */
  get visibleThrough(): number {
    return this.hiddenAfter[0] ?? Infinity;
  }

  /** `fetch` (fetchQueue after afterSeq) without the rows not durable yet (a suffix: rows come in seq order). */
  visible(recipient: string, afterSeq: number, fetch: () => QueuedItem[]): QueuedItem[] {
    const limit = this.visibleThrough;
    if (limit === Infinity) return fetch();
    const emptyAfter = Math.min(limit, this.cut.get(recipient) ?? Infinity);
    if (afterSeq >= emptyAfter) {
      this.cut.set(recipient, emptyAfter);
      return [];
    }
    const items = fetch();
    const last = items.at(-1);
    if (last === undefined || last.seq <= limit) return items;
    const shown = items.filter((i) => i.seq <= limit);
    this.cut.set(recipient, shown.at(-1)?.seq ?? afterSeq);
    return shown;
  }

  /** A transaction may run (none once a sync failed). */
  check(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private startSync(): void {
    if (this.syncing !== undefined || this.waiting.length === 0 || this.failure !== undefined || this.closed) return;
    const token = { covered: this.waiting.length };
    this.syncing = token;
    let sync: Promise<void>;
    try {
      // Opened once the WAL surely exists (a commit just wrote to it); read-write, no create.
      this.fd ??= openSync(this.walPath, "r+");
      sync = this.syncFile(this.fd);
    } catch (e) {
      sync = Promise.reject(e);
    }
    sync.then(() => this.finished(token, undefined), (e: unknown) => this.finished(token, e ?? new Error("sync failed")));
  }

  private finished(token: { readonly covered: number }, error: unknown): void {
    this.syncing = undefined;
    // Closed meanwhile: close() synced and settled every commit; only the fd is left.
    if (this.closed) return this.closeFd();
    if (error === undefined) this.release(token.covered);
    else this.fail(error);
    this.startSync();
  }

  /** The oldest `covered` commits are durable: their rows show, their waiters hear it. */
  private release(covered: number): void {
    this.hiddenAfter.splice(0, covered);
    const done = this.waiting.splice(0, covered);
    const cut = new Set(this.cut.keys());
    this.cut = new Map();
    for (const w of done) w.resolve(cut);
  }

  private fail(e: unknown): void {
    this.failure ??= new WalSyncFailed(e);
    // hiddenAfter stays: those rows never show in this process.
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
  }

  /**
   * Before the database closes (shutdown): commits still waiting are synced here, on the loop,
   * and settled; the fd closes once no sync on the thread pool uses it.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.waiting.length > 0 && this.failure === undefined) {
      try {
        this.fd ??= openSync(this.walPath, "r+");
        fdatasyncSync(this.fd);
        this.release(this.waiting.length);
      } catch (e) {
        this.fail(e);
      }
    }
    if (this.syncing === undefined) this.closeFd();
  }

  private closeFd(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}
