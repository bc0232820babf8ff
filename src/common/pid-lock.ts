// A lock held as a pid file, one implementation for both kinds (src/common/pid-file.ts): the
// relay's `relay.pid` in its data dir (src/server/pid-lock.ts) and a client's `<username>.lock`
// beside its key file (src/client/user-lock.ts).
//
// Taking it: the file is written in full to a temporary file (O_CREAT | O_EXCL | O_NOFOLLOW, mode
// 0600) and put in place with link(2), which never replaces an existing path and never follows a
// symlink there; so the lock never exists half written, and of two takers racing, exactly one
// links it. A lock in place is refused while its holder runs (pid-file.ts's rule: alive, our uid,
// started when the file says), and also when that cannot be proven ("unproven": a system without
// /proc or ps; "elsewhere": written on another host sharing the directory). It is taken over only
// when its holder is provably gone, or is another process now (pid reuse, another user's).
//
// Taking over, safely against other takers doing the same: the file judged stale is known by its
// exact text (each taking writes a random nonce). A taker first claims `<lock>.takeover` (O_EXCL,
// holding its own lock's text), reads the lock again, and only if it is still the text it judged
// renames its claim over it (atomic). A lock cannot change under a claim holder: no one links
// over an existing lock, a live holder removes only its own, and a second taker is refused the
// claim; so no live lock is ever replaced. A claim left by a taker that crashed in those few
// microseconds is removed once it is older than CLAIM_STALE_MS.
//
// A symlink at the lock's path is refused, never followed nor removed (the directory is private:
// one there was planted).
import { randomBytes } from "node:crypto";
import { closeSync, constants as fsConstants, fsyncSync, linkSync, lstatSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, resolve } from "node:path";
import { holderState, parsePidFile, processStart, readPidFileText, systemProbe, type HolderState, type PidFileContents, type ProcessProbe } from "./pid-file.js";

/** Why a lock was refused: its holder runs (or cannot be proven gone); "this-process": held here already. */
export type LockRefusal = Exclude<HolderState, "stale"> | "this-process";

/** The lock is held by another process (or by this one already). */
export class PidLockHeld extends Error {
  constructor(readonly path: string, readonly holder: PidFileContents, readonly state: LockRefusal, readonly why: string) {
    super(`${path} is held by process ${holder.pid}${holder.hostname === undefined ? "" : ` on ${holder.hostname}`} (${state}${why === "" ? "" : `: ${why}`})`);
    this.name = "PidLockHeld";
  }
}

/** A symlink (or another non-file) stands where the lock goes: refused, never followed. */
export class PidLockPathUnsafe extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`${path} ${reason}; refusing to use it as a lock (remove it if you did not put it there)`);
    this.name = "PidLockPathUnsafe";
  }
}

export interface PidLock {
  readonly path: string;
  /** What this lock's file says now. */
  readonly contents: PidFileContents;
  /** Rewrites the file with more fields (atomically: readers see the old or the new file). */
  update(extra: Partial<Pick<PidFileContents, "host" | "port">>): void;
  /** Removes the file if it is still this taking's (never one a later process took over). Idempotent. */
  release(): void;
}

export interface PidLockOptions {
  readonly clock?: () => number;
  readonly probe?: ProcessProbe;
  /** Names the holder in a refusal's `why` (default "the holder"). */
  readonly what?: string;
  /** Writes this host's name in the file (a lock in a directory other hosts may share). */
  readonly recordHostname?: boolean;
}

/** A claim older than this is left from a crashed taker (a claim lives for microseconds). */
const CLAIM_STALE_MS = 10_000;
/** Give up after this long of other takers claiming (a sentence then, not a hang). */
const TAKE_DEADLINE_MS = 15_000;

/** The paths locked by this process (a second take here is refused, not taken over). */
const heldHere = new Set<string>();

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

/** Writes `text` to a new private file (O_EXCL | O_NOFOLLOW, 0600), synced. Throws EEXIST when it exists. */
function writeNew(path: string, text: string): void {
  const fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  try {
    const buf = Buffer.from(text, "utf8");
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if (code(e) !== "ENOENT") throw e;
  }
}

/** The lock's text, undefined when there is none; a symlink or non-file is refused. */
function readLock(path: string): string | undefined {
  try {
    return readPidFileText(path);
  } catch (e) {
    if (code(e) === "ENOENT") return undefined;
    if (code(e) === "ELOOP") throw new PidLockPathUnsafe(path, "is a symbolic link");
    if (code(e) === "EISDIR") throw new PidLockPathUnsafe(path, "is a directory");
    throw e;
  }
}

/** Takes the lock at `path` or throws PidLockHeld naming its holder (PidLockPathUnsafe for a symlink). */
export function takePidLock(path: string, o: PidLockOptions = {}): PidLock {
  const clock = o.clock ?? Date.now;
  const probe = o.probe ?? systemProbe;
  const label = { what: o.what ?? "the holder", file: basename(path) };
  const key = resolve(path);
  const nonce = randomBytes(16).toString("hex");
  const start = processStart("self", probe);
  let mine: PidFileContents = {
    pid: process.pid, startedAtMs: clock(), ...start,
    ...(o.recordHostname === true && probe.hostname !== undefined ? { hostname: probe.hostname } : {}), nonce,
  };
  const textOf = (c: PidFileContents): string => `${JSON.stringify(c)}\n`;
  const tmp = `${path}.${process.pid}.${nonce.slice(0, 8)}.tmp`;
  const claim = `${path}.takeover`;
  const deadline = Date.now() + TAKE_DEADLINE_MS;
  let sawUnreadable = false;
  for (;;) {
    if (heldHere.has(key)) {
      throw new PidLockHeld(path, mine, "this-process", `this process holds ${label.file} already`);
    }
    // 1. No lock: put ours in place whole, or lose the race to another taker (EEXIST).
    writeNew(tmp, textOf(mine));
    try {
      linkSync(tmp, path);
      unlinkQuiet(tmp);
      break;
    } catch (e) {
      unlinkQuiet(tmp);
      if (code(e) !== "EEXIST") throw e;
    }
    // 2. A lock is there: whose?
    const text = readLock(path);
    if (text === undefined) continue; // released meanwhile: try again
    const holder = parsePidFile(text);
    if (holder === undefined && !sawUnreadable) {
      // Not a pid file: perhaps one an older version is writing this very moment. Look again once.
      sawUnreadable = true;
      sleepSync(50);
      continue;
    }
    if (holder !== undefined && holder.pid !== process.pid) {
      const judged = holderState(holder, probe, label);
      if (judged.state !== "stale") throw new PidLockHeld(path, holder, judged.state, judged.why);
    }
    // 3. Stale (gone, pid reused, our own pid left by an earlier process, or garbage): claim the takeover.
    try {
      writeNew(claim, textOf(mine));
    } catch (e) {
      if (code(e) !== "EEXIST") throw e;
      // Another taker is at it: wait for it, unless its claim is a crashed taker's leftover.
      let age = 0;
      try {
        age = Date.now() - lstatSync(claim).mtimeMs;
      } catch {
        // gone meanwhile
      }
      if (age > CLAIM_STALE_MS) unlinkQuiet(claim);
      else if (Date.now() > deadline) throw new Error(`cannot take ${path}: another process keeps claiming it (${claim})`);
      else sleepSync(20);
      continue;
    }
    let renamed = false;
    try {
      // Still the very file judged stale? (No one can change it while we hold the claim.)
      if (readLock(path) === text) {
        renameSync(claim, path);
        renamed = true;
      }
    } finally {
      if (!renamed) unlinkQuiet(claim);
    }
    if (renamed) break;
  }
  heldHere.add(key);
  let released = false;
  return {
    path,
    get contents() {
      return mine;
    },
    update(extra) {
      mine = { ...mine, ...extra };
      const next = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
      try {
        writeNew(next, textOf(mine));
        renameSync(next, path);
      } catch (e) {
        unlinkQuiet(next);
        throw e;
      }
    },
    release() {
      if (released) return;
      released = true;
      heldHere.delete(key);
      // Only our own lock: never remove one a later process took over. Best effort, silently (it
      // runs at exit, under a full-screen UI too): a lock left behind is stale once we are gone.
      try {
        const text = readLock(path);
        if (text !== undefined && parsePidFile(text)?.nonce === nonce) unlinkQuiet(path);
      } catch {
        // the stale rule takes it over
      }
    },
  };
}
