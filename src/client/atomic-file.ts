// One way to replace a small private file (the pins of peers and of relays): write a temporary
// file next to it that only the owner can read (0600, O_EXCL, fsync), then rename it over the
// old one, so a reader or a crash sees either the old file or the new one, never half of it.
// A write that fails removes its temporary file and rethrows the failure.
import { randomBytes } from "node:crypto";
import { closeSync, constants, fchmodSync, fstatSync, openSync } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import { removeStaleFile, writeNewPrivateFile } from "./key-store.js";

/** Replaces `path` with `text` atomically; the file ends with mode 0600. */
export async function writeAtomicPrivate(path: string, text: string): Promise<void> {
  // Unique per call: two writes in one process (or two processes) never share a temporary file.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await removeStaleFile(tmp);
  try {
    await writeNewPrivateFile(tmp, text);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch((cleanup: NodeJS.ErrnoException) => {
      // Already gone is the usual case when the write itself failed; anything else is added to
      // the failure the caller sees.
      if (cleanup.code !== "ENOENT") throw new AggregateError([e, cleanup], `${(e as Error).message}; and the temporary file '${tmp}' could not be removed: ${cleanup.message}`);
    });
    throw e;
  }
}

/**
 * Makes sure the database file `path` exists and only its owner can read it, before SQLite
 * opens it: created 0600 (never through a symlink), and an existing one readable by others
 * (copied in, or made under a loose umask by an older version) tightened to 0600. SQLite gives
 * its journal and WAL files the database file's mode. `what` names the file in the error.
 */
export function touchPrivate(path: string, what: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    if ((fstatSync(fd).mode & 0o077) !== 0) fchmodSync(fd, 0o600);
  } catch (e) {
    throw new Error(`cannot open ${what} '${path}': ${(e as Error).message}`, { cause: e });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
