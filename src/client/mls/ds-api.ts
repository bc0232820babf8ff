// What the protocol v2 conversation engine (src/client/mls/conversations.ts) needs from the
// relay as MLS Delivery Service (PROTOCOL.md §8.1, §8.2, §8.3), as promises. Implemented over
// the session's stream by src/client/mls/ds-transport.ts (and by an in-memory double in tests).
// Types only.
import type { DeviceSeen, MlsDelivery } from "../../gen/securechat/v1/chat.js";
import type { SignedDeviceList } from "../../protocol/devices.js";

/** The relay refused a request: its ErrorCode name (e.g. "EPOCH_TAKEN") and its one sentence. */
export interface DsRefused {
  readonly ok: false;
  readonly code: string;
  readonly detail: string;
}

export type DsResult<T> = ({ readonly ok: true } & T) | DsRefused;

export interface DsGroupInfo {
  readonly groupId: Uint8Array;
  readonly groupInfo: Uint8Array;
  readonly groupInfoEpoch: number;
  readonly currentEpoch: number;
}

export interface DsCommit {
  readonly commit: Uint8Array;
  /** The new epoch's GroupInfo (for external joins), sent with every commit. */
  readonly groupInfo: Uint8Array;
  /** The relay's membership hint: usernames this commit adds and removes (an external join: [me]). */
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly welcome?: Uint8Array;
  readonly ratchetTree?: Uint8Array;
}

export interface DsCommitAccepted {
  readonly epoch: number;
  readonly currentEpoch: number;
}

/** EPOCH_TAKEN carries where the group is and who won (DsRefused.code === "EPOCH_TAKEN"). */
export interface DsEpochTaken extends DsRefused {
  readonly code: "EPOCH_TAKEN";
  readonly currentEpoch: number;
  readonly winner: string;
}

export interface DsApi {
  publishKeyPackages(oneTime: readonly Uint8Array[], lastResort: Uint8Array | undefined): Promise<DsResult<{ readonly oneTimeLeft: number; readonly lastResortPresent: boolean }>>;
  /**
   * One KeyPackage per device of each user named (PROTOCOL.md §4.5: every device in the user's
   * current device list, `deviceId` saying whose; only the devices `deviceIds` names when given);
   * `missing`: users with none on this relay.
   */
  claimKeyPackages(usernames: readonly string[], deviceIds?: readonly string[]): Promise<DsResult<{ readonly entries: readonly { readonly username: string; readonly deviceId: string; readonly keyPackage: Uint8Array; readonly lastResort: boolean }[]; readonly missing: readonly string[] }>>;
  /**
   * The device lists the relay keeps for these users (PROTOCOL.md §4.5), NOT verified: the
   * caller verifies each against the user's pinned identity key and refuses a rollback. `seen`:
   * the relay's unsigned last-seen view, for display only.
   */
  fetchDeviceLists(usernames: readonly string[]): Promise<DsResult<{ readonly lists: readonly SignedDeviceList[]; readonly seen: readonly DeviceSeen[] }>>;
  /** Replaces my user's device list at the relay by this newer one; resolves with the list the relay keeps now. */
  publishDeviceList(list: SignedDeviceList): Promise<DsResult<{ readonly list: SignedDeviceList }>>;
  /** Registers a new group (first for its conversation wins: else BAD_CONVERSATION) or publishes the GroupInfo of the epoch my commit made. */
  publishGroupInfo(groupInfo: Uint8Array): Promise<DsResult<DsGroupInfo>>;
  /**
   * Re-creates a room (PROTOCOL.md §8.2): the GroupInfo of my new group for a room
   * whose current group I created replaces it at the relay (FORGED_SENDER when I did not).
   * Optional: a Delivery Service without it cannot re-create rooms.
   */
  recreateRoom?(groupInfo: Uint8Array): Promise<DsResult<DsGroupInfo>>;
  /** The newest GroupInfo by group id or conversation id; UNKNOWN_GROUP when none. */
  fetchGroupInfo(by: { readonly groupId: Uint8Array } | { readonly conversationId: string }): Promise<DsResult<DsGroupInfo>>;
  sendCommit(c: DsCommit): Promise<DsResult<DsCommitAccepted> | DsEpochTaken>;
  fetchCommits(groupId: Uint8Array, fromEpoch: number): Promise<DsResult<{ readonly commits: readonly { readonly epoch: number; readonly commit: Uint8Array; readonly sender: string }[]; readonly currentEpoch: number; readonly more: boolean }>>;
  /**
   * An application message or proposal; resolves with the relay's SendResult: accepted (stored
   * for every member; `queuedFor`: members offline) or refused. A duplicate of bytes already
   * accepted is accepted again.
   */
  sendMls(mls: Uint8Array): Promise<DsResult<{ readonly queuedFor: readonly string[] }>>;
}

/** One MLS message the relay queued for me (Delivery with `mls` set); the caller acks `seq` once the engine resolved. */
export interface MlsQueued {
  readonly seq: number;
  readonly conversationId: string;
  readonly relayTimeMs: number;
  readonly item: MlsDelivery;
}
