// The device store contract (devices.contract.ts) against both stores.
import { describeDeviceStoreContract } from "./devices.contract.js";
import { openPgContractStore, openSqliteContractStore } from "./mls-open-stores.js";

describeDeviceStoreContract("SQLite", openSqliteContractStore);
describeDeviceStoreContract("PostgreSQL", openPgContractStore);
