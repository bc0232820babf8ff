// What SQLite has written for a database: the file and its write-ahead log, for tests that
// check no plaintext reached the disk.
import { existsSync, readFileSync } from "node:fs";

export function sqliteFileBytes(path: string): Buffer {
  return Buffer.concat([path, `${path}-wal`].filter((p) => existsSync(p)).map((p) => readFileSync(p)));
}
