// What the MLS Delivery Service's store takes and answers (PROTOCOL.md §8.2), the same for both
// stores: the embedded one (mls.ts) and PostgreSQL's (pg/mls.ts); and the commits both keep per
// group. Apart from how either keeps them.
import type { EnqueueRequest } from "./queue-types.js";

/**
 * The deliveries of an accepted commit (PROTOCOL.md §8.3), made inside its transaction from
 * the group's members by the hint as they were BEFORE the commit (sorted).
 */
export type CommitDeliveries = (membersBefore: readonly string[]) => readonly EnqueueRequest[];

export interface StoredKeyPackageInput {
  readonly ref: Buffer;
  readonly keyPackage: Buffer;
  readonly notAfterMs: number;
}

export interface KeyPackageCounts {
  readonly oneTime: number;
  readonly lastResort: boolean;
}

export interface ClaimedKeyPackage {
  readonly keyPackage: Buffer;
  readonly lastResort: boolean;
}

export interface MlsGroupRecord {
  readonly groupId: Buffer;
  readonly conversationId: string;
  readonly creator: string;
  /** The group's current epoch: the next commit must be for this epoch. */
  readonly epoch: number;
  readonly groupInfo: Buffer;
  readonly groupInfoEpoch: number;
}

/** A group's conversation and current epoch: what a SendMls is checked against (strings and numbers, nothing to copy). */
export interface MlsGroupHead {
  readonly conversationId: string;
  readonly epoch: number;
}

export interface CommitRecord {
  readonly epoch: number;
  readonly sender: string;
  readonly commit: Buffer;
}

/**
 * A FetchCommits answer as the store reads it (PROTOCOL.md §8.2): the commits it answers with, and
 * whether a kept commit follows the last of them.
 */
export interface CommitPage {
  readonly commits: readonly CommitRecord[];
  readonly more: boolean;
}

export type CommitOutcome =
  /** `queued`: the deliveries stored with it (only when deliveries were asked for), for waking pumps. */
  | { readonly kind: "accepted"; readonly epoch: number; readonly queued?: readonly EnqueueRequest[] }
  /** The same sender sent the same bytes for this epoch before, and they were accepted: nothing stored again. */
  | { readonly kind: "duplicate"; readonly epoch: number }
  | { readonly kind: "unknown-group" }
  /** The sender is not a member by the relay's hint (and the commit is not an external join). */
  | { readonly kind: "not-a-member" }
  /** Another commit holds that epoch (`winner` sent it: named only when the sender is a member by the hint), or the group is past it. */
  | { readonly kind: "epoch-taken"; readonly current: number; readonly winner: string | undefined }
  | { readonly kind: "future-epoch"; readonly current: number };

/** The membership hint a commit carries (PROTOCOL.md §8.1): unsigned, for delivery and who may commit. */
export interface MembershipHint {
  /** An external commit: its sender joins by it (and needs no membership before). */
  readonly external: boolean;
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

export type CreateGroupOutcome = "created" | "group-exists" | "conversation-taken";

/**
 * The per-user bound on kept commits (PROTOCOL.md §8.2): an accepted commit's sender keeps at
 * most this many, of at most this many bytes in all; its oldest go, in the commit's transaction.
 */
export interface KeptCommitBound {
  readonly maxCommits: number;
  readonly maxBytes: number;
}

/** Commits kept per group (older ones are dropped as newer ones are accepted). */
export const COMMITS_KEPT_PER_GROUP = 1000;
