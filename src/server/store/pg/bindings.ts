// Username bindings in PostgreSQL (PROTOCOL.md §9): first key wins, forever, unless an operator
// releases the name. Many relays bind concurrently: the insert itself decides
// (INSERT … ON CONFLICT DO NOTHING RETURNING), so exactly one key wins a race for a name.
import type { FoundUser } from "../../store.js";
import type { BindOutcome, UserRecord } from "../bindings.js";
import type { PgStoreContext } from "./context.js";
import type { SyncPg } from "./sync-client.js";

type Row = Record<string, unknown>;

function userFromRow(r: Row): UserRecord {
  return {
    username: r.username as string,
    sigSpki: r.sig_spki as Buffer,
    encSpki: r.enc_spki as Buffer,
    encKeySig: r.enc_key_sig as Buffer,
    sigFpr: r.sig_fpr as Buffer,
    encFpr: r.enc_fpr as Buffer,
    createdAtMs: Number(r.created_at_ms),
  };
}

const COLUMNS = "username, sig_spki, enc_spki, enc_key_sig, sig_fpr, enc_fpr, created_at_ms";

/** The `users` table. */
export class PgBindings {
  private readonly db: SyncPg;
  private readonly clock: () => number;
  private readonly onBound: (username: string) => void;

  /** `onBound`: a name was bound (the facade forgets the name's cached queue usage). */
  constructor(c: PgStoreContext, onBound: (username: string) => void) {
    this.db = c.db;
    this.clock = c.clock;
    this.onBound = onBound;
  }

  getUser(username: string): UserRecord | undefined {
    const [r] = this.db.query(`SELECT ${COLUMNS} FROM users WHERE username = $1`, [username]);
    return r === undefined ? undefined : userFromRow(r);
  }

  /** The bound users among these names with their kept device lists: one statement whatever the count (RelayStore.findUsers). */
  findUsers(usernames: readonly string[]): FoundUser[] {
    if (usernames.length === 0) return [];
    const rows = this.db.query(`SELECT ${COLUMNS.split(", ").map((c) => `u.${c}`).join(", ")}, d.version AS list_version, d.list
      FROM users u LEFT JOIN device_lists d ON d.username = u.username WHERE u.username = ANY($1::text[])`, [[...usernames]]);
    return rows.map((r) => {
      const record = userFromRow(r);
      const deviceList = r["list"] === null || r["list"] === undefined ? undefined
        : { username: record.username, version: Number(r["list_version"]), list: Buffer.from(r["list"] as Uint8Array) };
      return { record, deviceList };
    });
  }

  listUsers(): UserRecord[] {
    return this.db.query(`SELECT ${COLUMNS} FROM users ORDER BY username`).map(userFromRow);
  }

  bindUser(u: Omit<UserRecord, "createdAtMs">): BindOutcome {
    // A name released between our failed insert and our read is free again: try once more.
    for (let attempt = 0; attempt < 3; attempt++) {
      const createdAtMs = this.clock();
      const [inserted] = this.db.query(
        `INSERT INTO users (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING RETURNING username`,
        [u.username, u.sigSpki, u.encSpki, u.encKeySig, u.sigFpr, u.encFpr, createdAtMs],
      );
      if (inserted !== undefined) {
        // The name may have been released elsewhere (another relay, `chat-relay users release`),
        // which dropped its queue: a cached usage would be stale.
        this.onBound(u.username);
        return { kind: "bound", user: { ...u, createdAtMs } };
      }
      const existing = this.getUser(u.username);
      if (existing !== undefined) {
        const same = existing.sigSpki.equals(u.sigSpki) && existing.encSpki.equals(u.encSpki);
        return { kind: same ? "same" : "taken", user: existing };
      }
    }
    throw new Error(`the binding of ${u.username} kept changing while it was being claimed; try again`);
  }

  namesOfKey(sigFpr: Buffer): string[] {
    return this.db.query<{ username: string }>("SELECT username FROM users WHERE sig_fpr = $1 ORDER BY created_at_ms, username", [sigFpr])
      .map((r) => r.username);
  }

  /** Deletes the binding (in a transaction: releaseUser); false when the name was not bound. */
  unbindLocked(username: string): boolean {
    return this.db.query("DELETE FROM users WHERE username = $1 RETURNING username", [username]).length > 0;
  }
}
