// The MLS store contract (mls.contract.ts) against both stores.
import { describeMlsStoreContract } from "./mls.contract.js";
import { openPgContractStore, openSqliteContractStore } from "./mls-open-stores.js";

describeMlsStoreContract("SQLite", openSqliteContractStore);
describeMlsStoreContract("PostgreSQL", openPgContractStore);
