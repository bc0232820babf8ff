// PostgreSQL-only tests of the MLS DS and device-list parts (src/server/store/pg/{mls,devices}.ts),
// on a real database of the run's cluster: the MLS and device contracts on the parts alone
// (with a stand-in queue table), and what only many relays on one database can show (two stores
// racing for one epoch, concurrent KeyPackage claims, device list versions under concurrency).
import { describeDeviceStoreContract } from "../store-contract/devices.contract.js";
import { describeMlsStoreContract } from "../store-contract/mls.contract.js";
import { openPgPartsStore } from "../store-contract/mls-pg-parts.js";

describeMlsStoreContract("PostgreSQL parts", openPgPartsStore);
describeDeviceStoreContract("PostgreSQL parts", openPgPartsStore);
