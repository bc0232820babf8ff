// The MLS reads-after-writes contract (mls-reads.contract.ts) against both stores.
import { describeMlsReadsContract } from "./mls-reads.contract.js";
import { openPgContractStore, openSqliteContractStore } from "./mls-open-stores.js";

describeMlsReadsContract("SQLite", openSqliteContractStore);
describeMlsReadsContract("PostgreSQL", openPgContractStore);
