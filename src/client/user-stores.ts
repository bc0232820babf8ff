// The user's files beside the key file, opened for a running client (PROTOCOL.md §4.3, §6,
// §10.4): known_peers, known_relays, the state database and the MLS key
// store. Opening takes the user's lock (user-lock.ts) as its first argument: no file here is
// opened by a process that does not hold it.
import type { Logger } from "../protocol/log.js";
import { userFilePath } from "./key-store.js";
import { KnownRelays } from "./known-relays.js";
import { mlsStoreOptions, storeKeyOf, type LocalIdentity } from "./local-identity.js";
import { MlsKeyStore } from "./mls-store.js";
import { ClientStateStore } from "./state-store.js";
import { TrustStore } from "./trust-store.js";
import type { UserLock } from "./user-lock.js";

export interface UserStores {
  readonly trust: TrustStore;
  readonly knownRelays: KnownRelays;
  readonly state: ClientStateStore;
  readonly mlsStore: MlsKeyStore;
}

/** Opens the held user's stores; what was opened is closed again when a later one fails. */
export async function openUserStores(lock: UserLock, local: LocalIdentity, logger: Logger, clock: () => number = Date.now): Promise<UserStores> {
  const { keyDir, username } = lock;
  const trust = await TrustStore.open(userFilePath(keyDir, username, "_known_peers.json"), clock, logger);
  const knownRelays = await KnownRelays.open(userFilePath(keyDir, username, "_known_relays.json"));
  const state = ClientStateStore.open(userFilePath(keyDir, username, "_state.db"));
  try {
    // The MLS key store beside the key file (PROTOCOL.md §10.4).
    const mlsStore = MlsKeyStore.open(userFilePath(keyDir, username, "_mls.db"), storeKeyOf(local), mlsStoreOptions(local));
    return { trust, knownRelays, state, mlsStore };
  } catch (e) {
    state.close();
    throw e;
  }
}
