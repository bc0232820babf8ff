// The core store contract (core.contract.ts) against both stores: the embedded SQLite store on a
// temp file, and the PostgreSQL store on a fresh database of the run's cluster.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { openPgStore } from "../../src/server/store/pg/pg-store.js";
import { openStore } from "../../src/server/store.js";
import { freshDatabase, type TestDatabase } from "../helpers/pg.js";
import { describeCoreStoreContract } from "./core.contract.js";

describeCoreStoreContract("sqlite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "core-contract-"));
  const store = openStore(join(dir, "relay.db"));
  return {
    store,
    close: async () => {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

/** Databases a failed open left behind. */
const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const d of databases.splice(0)) await d.drop();
});

describeCoreStoreContract("postgres", async () => {
  const db = await freshDatabase();
  databases.push(db);
  const store = openPgStore(db.url);
  return {
    store,
    close: async () => {
      store.close();
      databases.splice(databases.indexOf(db), 1);
      await db.drop();
    },
  };
});
