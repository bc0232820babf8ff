// What startRelay does before it serves, each turned into one sentence for the operator when it
// fails (RelayStartError): the data directory and its database (with the disk budget), and the
// bind of the listening address.
import { accessSync, chmodSync, closeSync, constants as fsConstants, fstatSync, lstatSync, mkdirSync, openSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Server, ServerCredentials } from "@grpc/grpc-js";
import { databaseBytes, defaultBudget, type DefaultBudget, type FsSpace } from "./disk-budget.js";
import { openStore, type RelayStore } from "./store.js";
import type { Logger } from "../protocol/log.js";

/** A startup problem, as one sentence for the operator (port in use, unwritable data dir). */
export class RelayStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RelayStartError";
  }
}

function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EROFS":
      return "the file system is read-only";
    case "ENOTDIR":
      return "a part of the path is not a directory";
    case "ENOSPC":
      return "the disk is full";
    default:
      return e instanceof Error ? e.message : String(e);
  }
}

function describeBindError(host: string, port: number, e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (msg.includes("EADDRINUSE")) return `cannot listen on ${host}:${port}: the port is already in use`;
  if (msg.includes("EACCES")) return `cannot listen on ${host}:${port}: permission denied (ports below 1024 need privileges)`;
  if (msg.includes("EADDRNOTAVAIL")) return `cannot listen on ${host}:${port}: that address does not belong to this machine`;
  return `cannot listen on ${host}:${port}: ${msg}`;
}

export interface OpenedDataDir {
  readonly store: RelayStore;
  /** The database budget in bytes (file + WAL), and how it was chosen. */
  readonly budget: number;
  readonly budgetRule: string;
}

/**
 * Creates the data dir 0700, or checks an existing one is private: another user who may write in
 * it could plant relay.pid (and keep the relay from starting) or swap relay.db and the TLS key for
 * links to files of theirs. Refused when it belongs to another user or group/others may write it
 * (one sentence with the chmod to run); tightened to 0700 when others may only read it.
 */
export function ensurePrivateDataDir(dataDir: string, uid: number | undefined = typeof process.geteuid === "function" ? process.geteuid() : undefined): void {
  let st;
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    st = statSync(dataDir);
    accessSync(dataDir, fsConstants.W_OK | fsConstants.X_OK);
  } catch (e) {
    throw new RelayStartError(`cannot use data directory ${dataDir}: ${describeFsError(e)}`, { cause: e });
  }
  if (!st.isDirectory()) throw new RelayStartError(`cannot use data directory ${dataDir}: it is not a directory`);
  if (uid !== undefined && st.uid !== uid) {
    throw new RelayStartError(`cannot use data directory ${dataDir}: it belongs to another user (uid ${st.uid}), who could replace the relay's files; use a directory of your own (--data-dir)`);
  }
  if ((st.mode & 0o022) !== 0) {
    throw new RelayStartError(`cannot use data directory ${dataDir}: other users may write in it (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}) and could replace the relay's files; run: chmod 700 '${dataDir}'`);
  }
  if ((st.mode & 0o077) !== 0) {
    try {
      chmodSync(dataDir, 0o700);
    } catch (e) {
      throw new RelayStartError(`cannot make data directory ${dataDir} private (chmod 700): ${describeFsError(e)}`, { cause: e });
    }
  }
}

/** Refuses a symbolic link where the relay's database (or its -wal/-shm) is to be. */
function refuseLink(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return; // absent: created by whoever opens it
  }
  if (st.isSymbolicLink()) throw new RelayStartError(`refusing to open ${path}: it is a symbolic link (remove it; the relay's files are plain files)`);
}

export function openDataDir(dataDir: string, clock: () => number, maxBytes: number | undefined, space: (dir: string) => FsSpace): OpenedDataDir {
  ensurePrivateDataDir(dataDir);
  const dbPath = join(dataDir, "relay.db");
  let budget: DefaultBudget = { bytes: maxBytes ?? 0, rule: "--max-db-mb" };
  if (maxBytes === undefined) {
    try {
      budget = defaultBudget(space(dataDir).freeBytes, databaseBytes(dbPath));
    } catch (e) {
      throw new RelayStartError(`cannot read the free space of ${dataDir} to size the database budget (set --max-db-mb): ${describeFsError(e)}`, { cause: e });
    }
  }
  try {
    // Created 0600 before SQLite opens it (its -wal and -shm files copy these permissions):
    // the database holds who talks to whom, even if never what they say.
    // Not through a symbolic link (O_NOFOLLOW), and only a plain file.
    for (const p of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) refuseLink(p);
    const fd = openSync(dbPath, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW, 0o600);
    try {
      if (!fstatSync(fd).isFile()) throw new RelayStartError(`refusing to open ${dbPath}: it is not a plain file`);
    } finally {
      closeSync(fd);
    }
    return { store: openStore(dbPath, { clock, maxBytes: budget.bytes }), budget: budget.bytes, budgetRule: budget.rule };
  } catch (e) {
    if (e instanceof RelayStartError) throw e;
    if ((e as NodeJS.ErrnoException).code === "ELOOP") throw new RelayStartError(`refusing to open ${dbPath}: it is a symbolic link (remove it; the relay's files are plain files)`, { cause: e });
    throw new RelayStartError(`cannot open the relay database in ${dataDir}: ${describeFsError(e)}`, { cause: e });
  }
}

export function bind(server: Server, host: string, port: number, creds: ServerCredentials): Promise<number> {
  const address = host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, bound) => {
      if (err !== null) reject(new RelayStartError(describeBindError(host, port, err), { cause: err }));
      else resolve(bound);
    });
  });
}

/**
 * Reads the embedded store's queues before the relay's port opens, so the first session does not
 * wait for them (about 0.5 s per 100,000 waiting messages, and up to 0.8 s for the recent accepted
 * ids, README's limits); logs how much waits and how many ids it holds.
 */
export function loadQueues(store: RelayStore, logger: Logger): void {
  if (store.loadQueues === undefined) return;
  const t0 = performance.now();
  let loaded: { readonly messages: number; readonly waiting: number; readonly recentIds: number };
  try {
    loaded = store.loadQueues();
  } catch (e) {
    throw new RelayStartError(`cannot read the relay's queues from its database: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (loaded.messages > 0 || loaded.recentIds > 0) logger.info("queues.loaded", { ...loaded, ms: Math.round(performance.now() - t0) });
}
