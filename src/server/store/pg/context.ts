// What every part of the PostgreSQL store shares (notes/cluster-design.md §1): the one SyncPg
// connection (synchronous, on the relay's thread) and the clock. Transactions are
// `db.transaction(fn, { durable })`; the parts never open their own connection.
import type { SyncPg } from "./sync-client.js";

export interface PgStoreContext {
  readonly db: SyncPg;
  readonly clock: () => number;
}
