// Operator commands on a relay's data dir: `chat-relay users list` and `users release <name>`.
// They open the same database (WAL lets them run beside a live relay) and never create one.
// With `--store postgres://…` they work on the shared database of a cluster of relays instead.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { checkUsername } from "../protocol/names.js";
import { RelayStartError } from "./relay.js";
import { openStore, type RelayStore, type UserRecord } from "./store.js";

/**
 * Where the users are: a data dir's relay.db (a string, or `dataDir`), or a shared PostgreSQL
 * database (`openStore` opens it: cluster-store-open.ts, loaded only when a store is given).
 */
export type UsersTarget = string | { readonly dataDir: string } | { readonly openStore: () => RelayStore };

function openTarget(target: UsersTarget): RelayStore {
  if (typeof target === "string") return openExisting(target);
  return "openStore" in target ? target.openStore() : openExisting(target.dataDir);
}

function openExisting(dataDir: string): RelayStore {
  const path = join(dataDir, "relay.db");
  if (!existsSync(path)) {
    throw new RelayStartError(`no relay database in ${dataDir} (has chat-relay run with this --data-dir?)`);
  }
  try {
    return openStore(path, { upgrade: false });
  } catch (e) {
    throw new RelayStartError(`cannot open the relay database in ${dataDir}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** Every bound username with its keys' fingerprints and when it was bound. */
export function listBoundUsers(target: UsersTarget): UserRecord[] {
  const store = openTarget(target);
  try {
    return store.listUsers();
  } finally {
    store.close();
  }
}

/**
 * Forgets a binding so that a new key can claim the name (a user who lost their key). Their
 * queued envelopes (sealed to the old key, unreadable by a new one), room memberships, MLS
 * group memberships and KeyPackages go too: a new owner of the name must not inherit the old
 * one's rooms or groups. Peers will see the new
 * key as a key change. Returns false when the name was not bound.
 */
export function releaseUsername(target: UsersTarget, username: string): boolean {
  const c = checkUsername(username);
  if (!c.ok) throw new RelayStartError(c.reason);
  const store = openTarget(target);
  try {
    return store.releaseUser(username);
  } finally {
    store.close();
  }
}

/** One line per user: name, bound time, signing- and encryption-key fingerprints (hex). */
export function formatUserList(users: readonly UserRecord[]): string {
  if (users.length === 0) return "no usernames are bound on this relay\n";
  const width = Math.max(8, ...users.map((u) => u.username.length));
  const header = `${"USERNAME".padEnd(width)}  ${"BOUND AT (UTC)".padEnd(24)}  SIGNING KEY SHA-256 / ENCRYPTION KEY SHA-256`;
  const lines = users.map((u) =>
    `${u.username.padEnd(width)}  ${new Date(u.createdAtMs).toISOString().padEnd(24)}  ${u.sigFpr.toString("hex")} / ${u.encFpr.toString("hex")}`);
  return `${[header, ...lines].join("\n")}\n`;
}
