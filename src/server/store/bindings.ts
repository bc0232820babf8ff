// Username bindings (PROTOCOL.md §9): first key wins, forever, unless an operator releases the
// name. One row per bound name in `users`; one username per signing key is checked against
// users_by_sig_fpr.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { buf, num, str, type Row, type StoreContext, type Transaction } from "./schema.js";

/** A bound username and the keys that own it. */
export interface UserRecord {
  readonly username: string;
  readonly sigSpki: Buffer;
  readonly encSpki: Buffer;
  readonly encKeySig: Buffer;
  readonly sigFpr: Buffer;
  readonly encFpr: Buffer;
  readonly createdAtMs: number;
}

export type BindOutcome =
  /** The name was free and now belongs to these keys. */
  | { readonly kind: "bound"; readonly user: UserRecord }
  /** The name already belongs to exactly these keys. */
  | { readonly kind: "same"; readonly user: UserRecord }
  /** The name belongs to another key. */
  | { readonly kind: "taken"; readonly user: UserRecord };

export function userFromRow(r: Row): UserRecord {
  return {
    username: str(r.username),
    sigSpki: buf(r.sig_spki),
    encSpki: buf(r.enc_spki),
    encKeySig: buf(r.enc_key_sig),
    sigFpr: buf(r.sig_fpr),
    encFpr: buf(r.enc_fpr),
    createdAtMs: num(r.created_at_ms),
  };
}

function prepareBindingStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    userGet: p("SELECT * FROM users WHERE username = ?"),
    userList: p("SELECT * FROM users ORDER BY username"),
    userInsert: p(`INSERT INTO users (username, sig_spki, enc_spki, enc_key_sig, sig_fpr, enc_fpr, created_at_ms)
                   VALUES (?, ?, ?, ?, ?, ?, ?)`),
    userDelete: p("DELETE FROM users WHERE username = ?"),
    usersOfKey: p("SELECT username FROM users WHERE sig_fpr = ? ORDER BY created_at_ms, username"),
  };
}

/** The `users` table. */
export class Bindings {
  private readonly clock: () => number;
  private readonly transaction: Transaction;
  private readonly s: ReturnType<typeof prepareBindingStatements>;

  /** `onBound`: a name was bound (the facade forgets the name's cached queue usage). */
  constructor(c: StoreContext, private readonly onBound: (username: string) => void) {
    this.clock = c.clock;
    this.transaction = c.transaction;
    this.s = prepareBindingStatements(c.db);
  }

  getUser(username: string): UserRecord | undefined {
    const r = this.s.userGet.get(username) as Row | undefined;
    return r === undefined ? undefined : userFromRow(r);
  }

  listUsers(): UserRecord[] {
    return (this.s.userList.all() as Row[]).map(userFromRow);
  }

  bindUser(u: Omit<UserRecord, "createdAtMs">): BindOutcome {
    return this.transaction((): BindOutcome => {
      const existing = this.getUser(u.username);
      if (existing !== undefined) {
        const same = existing.sigSpki.equals(u.sigSpki) && existing.encSpki.equals(u.encSpki);
        return { kind: same ? "same" : "taken", user: existing };
      }
      const createdAtMs = this.clock();
      this.s.userInsert.run(u.username, u.sigSpki, u.encSpki, u.encKeySig, u.sigFpr, u.encFpr, createdAtMs);
      // The name may have been released by `chat-relay users release` in another process,
      // which dropped its queue: a cached depth would be stale.
      this.onBound(u.username);
      return { kind: "bound", user: { ...u, createdAtMs } };
    });
  }

  namesOfKey(sigFpr: Buffer): string[] {
    return (this.s.usersOfKey.all(sigFpr) as Row[]).map((r) => str(r.username));
  }

  /** Deletes the binding (in a transaction: releaseUser); false when the name was not bound. */
  unbindLocked(username: string): boolean {
    return this.s.userDelete.run(username).changes > 0;
  }
}
