// PLACEHOLDER on the integration branch only (the pg-store helper replaces this file): the
// agreed entry points of the PostgreSQL store (notes/cluster-design.md §1).
import type { RelayStore } from "../../store.js";

export interface PgStoreOptions {
  readonly clock?: () => number;
  readonly recentEnvelopeBytes?: number;
}

export interface MigrateResult {
  readonly from: number;
  readonly to: number;
}

export type PgRelayStore = RelayStore;

export function openPgStore(_url: string, _options: PgStoreOptions = {}): PgRelayStore {
  throw new Error("the PostgreSQL store is not built yet");
}

export function migratePg(_url: string): MigrateResult {
  throw new Error("the PostgreSQL store is not built yet");
}
