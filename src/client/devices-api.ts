// What the client's parts need to know about devices (PROTOCOL.md §4.5): which device this
// client runs as, and every user's verified, pinned device list. Implemented by
// src/client/device-directory.ts over the relay's FetchDeviceLists (and by a double in tests).
// Types only.
import type { VerifiedDeviceList } from "../protocol/devices.js";

/** The device this client runs as. */
export interface ThisDevice {
  readonly username: string;
  readonly deviceId: string;
  readonly name: string;
  /** Holds the identity key (`<username>_key.pem`): the only device that can sign device lists. */
  readonly primary: boolean;
  /** This device's MLS signature public key (its leaves' key in every group). */
  readonly mlsSignatureKey: Uint8Array;
}

/** The relay's unsigned view of a device, for /devices only. */
export interface DeviceLastSeen {
  readonly online: boolean;
  /** ms since the Unix epoch; 0: never seen by this relay. */
  readonly lastSeenMs: number;
}

/** How a refresh treats a relay that did not answer (not connected, the connection lost, a refusal). */
export interface RefreshOptions {
  /**
   * Reject (DeviceListsUnanswered) instead of resolving to what is kept: for a caller that would
   * read "no list kept" as the relay's answer "this user has no list" (a sender-device check),
   * where a moment offline must not count as a hostile relay.
   */
  readonly mustAnswer?: boolean;
}

/** The relay did not answer a device-list fetch made with `mustAnswer`. */
export class DeviceListsUnanswered extends Error {
  constructor(readonly code: string) {
    super(`the relay did not answer for device lists (${code})`);
    this.name = "DeviceListsUnanswered";
  }
}

/**
 * Verified device lists, pinned (PROTOCOL.md §4.5). A list is taken only when it verifies
 * against the user's identity key as pinned for them (the trust store: TOFU, §6), and only when
 * its version is not lower than the highest one kept for that user (no rollback, the pin survives
 * restarts). The highest version kept is what `known` returns.
 */
export interface DeviceDirectory {
  readonly self: ThisDevice;
  /** U's newest verified list, or undefined when none was ever verified here. */
  known(username: string): VerifiedDeviceList | undefined;
  /**
   * Fetches these users' lists from the relay and takes each that verifies and is not older than
   * the kept one. Resolves to what is kept afterwards (users without any list left out). A list
   * that does not verify, or is older than the kept one, is refused and reported to onRefused.
   */
  refresh(usernames: readonly string[], o?: RefreshOptions): Promise<ReadonlyMap<string, VerifiedDeviceList>>;
  /** The relay's last-seen view of U's devices as of the last refresh, by device id. */
  lastSeen(username: string): ReadonlyMap<string, DeviceLastSeen>;
  /** Called after a user's kept list changed (a newer version was taken). Returns an unsubscribe. */
  onChange(listener: (username: string, list: VerifiedDeviceList, previous: VerifiedDeviceList | undefined) => void): () => void;
  /** Called when a list was refused (bad signature, rollback): the engine shows one line. */
  onRefused(listener: (username: string, reason: string) => void): () => void;
}
