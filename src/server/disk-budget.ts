// The relay's disk budget (PROTOCOL.md §13.3): how many bytes relay.db and its write-ahead log may
// take, and a small reserve file that keeps a full disk able to delete.
//
// The budget. An operator sets it with --max-db-mb; otherwise it is computed once at start from
// the data dir's file system: half of the space free for unprivileged users, counting what the
// database already takes as the relay's own, at least 64 MiB and at most 8 GiB. Half, so that the
// relay never fills a disk it shares with its host by itself; the ceiling, so that a relay on a
// large disk does not keep gigabytes of a stranger's flood for 30 days by default.
//
// The WAL counts (store/schema.ts): the database file is held to the budget minus a WAL allowance, the
// WAL is checkpointed and truncated within that allowance, and a group commit is kept smaller
// than it.
//
// The reserve. A disk can fill up below the budget (something else wrote to it). SQLite then
// needs a little space to commit anything, deletes included: the WAL grows by the pages a delete
// changes. So the relay keeps a reserve file of a few MiB beside the database; when a commit
// fails for lack of space it deletes that file, which lets acks (which free space) and the
// checkpoint through, and it writes the file again once the disk has room.
import { closeSync, existsSync, openSync, rmSync, statSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";

const MIB = 1024 * 1024;
export const MIN_DEFAULT_BUDGET = 64 * MIB;
export const MAX_DEFAULT_BUDGET = 8 * 1024 * MIB;
/** The reserve file's size (at most; a smaller budget gets a smaller one). */
const MAX_RESERVE_BYTES = 8 * MIB;
/** The reserve is written again only when the disk has this many times its size free. */
const RESTORE_HEADROOM = 4;

export const RESERVE_FILE = "relay.db.reserve";

export interface FsSpace {
  /** Bytes free for unprivileged users (statfs bavail * bsize). */
  readonly freeBytes: number;
}

export function fsSpace(dir: string): FsSpace {
  const s = statfsSync(dir);
  return { freeBytes: Number(s.bavail) * Number(s.bsize) };
}

/** Bytes the database files take now (relay.db and its WAL; 0 for those that do not exist). */
export function databaseBytes(dbPath: string): number {
  let n = 0;
  for (const p of [dbPath, `${dbPath}-wal`]) {
    try {
      n += statSync(p).size;
    } catch {
      // not there yet
    }
  }
  return n;
}

export interface DefaultBudget {
  readonly bytes: number;
  /** One sentence for the start log: how the figure was reached. */
  readonly rule: string;
}

/** The default budget: half the free space plus what the database takes, within [64 MiB, 8 GiB]. */
export function defaultBudget(freeBytes: number, existingBytes: number): DefaultBudget {
  const half = Math.floor(Math.max(0, freeBytes) / 2) + Math.max(0, existingBytes);
  const bytes = Math.min(MAX_DEFAULT_BUDGET, Math.max(MIN_DEFAULT_BUDGET, half));
  const mib = (b: number) => `${Math.round(b / MIB)} MiB`;
  return {
    bytes,
    rule: `half of the ${mib(freeBytes)} free at start plus the ${mib(existingBytes)} the database takes, within ${mib(MIN_DEFAULT_BUDGET)}-${mib(MAX_DEFAULT_BUDGET)}`,
  };
}

/** The reserve file's size for a budget: 1/32 of it, at most 8 MiB, at least 64 KiB. */
export function reserveBytesFor(budget: number): number {
  return Math.max(64 * 1024, Math.min(MAX_RESERVE_BYTES, Math.floor(budget / 32)));
}

/**
 * The reserve file. `release()` on a failed commit (frees its blocks at once); `restore()` when
 * the disk has room again. Never throws: a reserve that cannot be written is just absent.
 */
export class DiskReserve {
  readonly path: string;

  constructor(private readonly dataDir: string, readonly bytes: number, private readonly space: (dir: string) => FsSpace = fsSpace) {
    this.path = join(dataDir, RESERVE_FILE);
  }

  get held(): boolean {
    return existsSync(this.path);
  }

  /** Writes the reserve if it is missing and the disk has room for it and more; true when it is there. */
  restore(): boolean {
    if (this.held) return true;
    try {
      if (this.space(this.dataDir).freeBytes < this.bytes * RESTORE_HEADROOM) return false;
      // Written, not just sized (ftruncate would make a sparse file that frees nothing).
      const fd = openSync(this.path, "w", 0o600);
      try {
        const chunk = Buffer.alloc(Math.min(this.bytes, MIB));
        for (let done = 0; done < this.bytes; done += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, this.bytes - done));
      } finally {
        closeSync(fd);
      }
      return true;
    } catch {
      rmSync(this.path, { force: true });
      return false;
    }
  }

  /** Deletes the reserve; true when there was one to free. */
  release(): boolean {
    if (!this.held) return false;
    try {
      rmSync(this.path, { force: true });
      return true;
    } catch {
      return false;
    }
  }
}
