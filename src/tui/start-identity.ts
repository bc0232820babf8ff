// Which identity chat-tui starts as (PROTOCOL.md §4.5, §10.4), from the files in the key directory:
// - `<username>_key.pem` present: the primary device, as before devices;
// - else `<username>_device.pem` + `<username>_device.json` present: that linked device;
// - else: the first run: a new key file (loadOrCreateIdentity).
// A key file is NEVER created beside device files (key-store.ts refuses it too).
import { existsSync, readFileSync } from "node:fs";
import { KeyStoreError, loadOrCreateIdentity, userFilePath } from "../client/key-store.js";
import { linkedDeviceFilesExist, linkedDevicePaths, readLinkedDevice } from "../client/linked-device.js";
import { linkedIdentity, primaryIdentity, type LocalIdentity } from "../client/local-identity.js";
import { keyFileIsEncrypted } from "../protocol/keyfile.js";

export type StartKind = "primary" | "linked" | "new";

/** What the key directory holds for this user (before anything is asked or created). */
export function startKind(keyDir: string, username: string): StartKind {
  if (existsSync(userFilePath(keyDir, username, "_key.pem"))) return "primary";
  return linkedDeviceFilesExist(keyDir, username) ? "linked" : "new";
}

/** The file a passphrase would unlock for this start (for the prompt). */
export function startKeyPath(keyDir: string, username: string): string {
  return startKind(keyDir, username) === "linked" ? linkedDevicePaths(keyDir, username).pem : userFilePath(keyDir, username, "_key.pem");
}

export interface StartIdentity {
  readonly local: LocalIdentity;
  readonly created: boolean;
  /** The private key file in use. */
  readonly path: string;
}

/** Loads (or, on the first run only, creates) who chat-tui runs as. Throws KeyStoreError with one sentence. */
export async function loadStartIdentity(o: { readonly keyDir: string; readonly username: string; readonly newPassphrase?: string; readonly getPassphrase: () => Promise<string> }): Promise<StartIdentity> {
  if (startKind(o.keyDir, o.username) === "linked") {
    const pem = linkedDevicePaths(o.keyDir, o.username).pem;
    let passphrase: string | undefined;
    try {
      if (existsSync(pem) && keyFileIsEncrypted(readFileSync(pem, "utf8"))) passphrase = await o.getPassphrase();
    } catch (e) {
      throw new KeyStoreError(`cannot read '${pem}': ${(e as Error).message}`, { cause: e });
    }
    const device = readLinkedDevice(o.keyDir, o.username, passphrase);
    if (device === undefined) throw new KeyStoreError(`the device files of ${o.username} went away while chat-tui started`);
    try {
      return { local: linkedIdentity(device), created: false, path: pem };
    } catch (e) {
      throw new KeyStoreError(`cannot use '${pem}': ${(e as Error).message}`, { cause: e });
    }
  }
  const loaded = await loadOrCreateIdentity({ keyDir: o.keyDir, username: o.username, ...(o.newPassphrase !== undefined ? { newPassphrase: o.newPassphrase } : {}), getPassphrase: o.getPassphrase });
  return { local: primaryIdentity(loaded.identity), created: loaded.created, path: loaded.path };
}
