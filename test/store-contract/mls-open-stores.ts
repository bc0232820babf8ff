// The two stores the contracts run against: the embedded SQLite store on a temp file, and the
// PostgreSQL store on a fresh database of the run's cluster (test/helpers/pg.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../../src/server/store.js";
import { openPgStore } from "../../src/server/store/pg/pg-store.js";
import { freshDatabase } from "../helpers/pg.js";
import type { OpenContractStore } from "./mls.contract.js";

export const openSqliteContractStore: OpenContractStore = async ({ clock }) => {
  const dir = mkdtempSync(join(tmpdir(), "store-contract-"));
  const store = openStore(join(dir, "relay.db"), { clock });
  return {
    store,
    close: async () => {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

export const openPgContractStore: OpenContractStore = async ({ clock }) => {
  const db = await freshDatabase();
  try {
    const store = openPgStore(db.url, { clock });
    return {
      store,
      close: async () => {
        store.close();
        await db.drop();
      },
    };
  } catch (e) {
    await db.drop();
    throw e;
  }
};
