// PLACEHOLDER owned by helper "pgmls", who replaces this file with the real PostgreSQL MLS
// Delivery Service store. What the facade (pg-store.ts) relies on: the constructor
// (ctx: PgStoreContext, queues: PgQueueWriter), MlsStore's methods, and the *Locked methods that
// run inside the facade's db.transaction (releaseUser, replaceDeviceList), named as in
// store/mls.ts. Those are real here so the facade's cross-table transactions are testable; every
// MlsStore method throws until pgmls's file lands.
import type { MlsStore } from "../../store.js";
import type { PgStoreContext } from "./context.js";
import type { PgQueueWriter } from "./queues.js";
import type { SyncPg } from "./sync-client.js";

function notBuilt(): never {
  throw new Error("the PostgreSQL MLS store is not built yet");
}

export class PgMlsStore implements MlsStore {
  private readonly db: SyncPg;

  constructor(ctx: PgStoreContext, _queues: PgQueueWriter) {
    this.db = ctx.db;
  }

  keyPackageCounts(): never { return notBuilt(); }
  publishKeyPackages(): never { return notBuilt(); }
  claimKeyPackage(): never { return notBuilt(); }
  keyPackagesOfAddress(): never { return notBuilt(); }
  dropKeyPackagesById(): never { return notBuilt(); }
  purgeExpiredKeyPackages(): never { return notBuilt(); }
  group(): never { return notBuilt(); }
  groupOfConversation(): never { return notBuilt(); }
  groupsCreatedBy(): never { return notBuilt(); }
  createGroup(): never { return notBuilt(); }
  replaceGroup(): never { return notBuilt(); }
  roomSummaries(): never { return notBuilt(); }
  roomsOfMember(): never { return notBuilt(); }
  isGroupMember(): never { return notBuilt(); }
  groupMembers(): never { return notBuilt(); }
  setGroupInfo(): never { return notBuilt(); }
  commitSender(): never { return notBuilt(); }
  acceptCommit(): never { return notBuilt(); }
  commitsFrom(): never { return notBuilt(); }

  /** A device's KeyPackages (an unlinked device, or its MLS key changed): inside a transaction. */
  dropKeyPackagesOfAddressLocked(address: string): void {
    this.db.query("DELETE FROM mls_key_packages WHERE address = $1", [address]);
  }

  /** A released name's KeyPackages belong to the old key: inside a transaction. */
  dropKeyPackagesLocked(username: string): void {
    this.db.query("DELETE FROM mls_key_packages WHERE username = $1", [username]);
  }

  /** A released name is no member of any group by the relay's record: inside a transaction. */
  dropMembershipsLocked(username: string): void {
    this.db.query("DELETE FROM mls_group_members WHERE username = $1", [username]);
  }
}
