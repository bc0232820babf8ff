import type { SyncPg } from "./sync-client.js";

export interface PgStoreContext { readonly db: SyncPg; readonly clock: () => number }
