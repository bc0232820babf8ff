// What SQLite has written for a database: the file and its write-ahead log, for tests that
// check no plaintext reached the disk.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export function sqliteFileBytes(path: string): Buffer {
  return Buffer.concat([path, `${path}-wal`].filter((p) => existsSync(p)).map((p) => readFileSync(p)));
}

/** Every byte of every file in a directory (a database, its -wal, -shm and -journal, the key file...). */
export function directoryBytes(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isFile()) out.set(name, readFileSync(p));
  }
  return out;
}

/**
 * The files of a directory that hold any `chunk`-byte piece of `secret` (pieces, not the whole:
 * SQLite splits a large value over overflow pages, each with its own header).
 */
export function filesHolding(dir: string, secret: Uint8Array, chunk = 32): string[] {
  const s = Buffer.from(secret);
  const pieces: Buffer[] = [];
  for (let i = 0; i + chunk <= s.length; i += chunk) pieces.push(s.subarray(i, i + chunk));
  if (pieces.length === 0) pieces.push(s);
  return [...directoryBytes(dir)].filter(([, bytes]) => pieces.some((p) => bytes.includes(p))).map(([name]) => name);
}
