// The format of a commit kept in flight (PROTOCOL.md §8.1 "A commit in flight", §10.4): what
// MlsKeyStore seals in a `pending_commits` row. Bytes in, bytes out: the store seals, keeps and
// deletes them (mls-store.ts).
import { encodeFields } from "../protocol/encoding.js";
import { decodeFields } from "../protocol/mls/index.js";
import type { DsCommit } from "./mls/ds-api.js";

const LABEL = "securechat/v1/mls-pending-commit";
const VERSION = "1";

/**
 * A commit of mine sent to the relay and not yet answered: what the SendCommit carried, the next
 * epoch's state it makes, and the membership lines to show once accepted.
 */
export interface KeptCommit extends DsCommit {
  readonly conversationId: string;
  /** The epoch the commit was made in (the group's, before it). */
  readonly epoch: bigint;
  /** The next epoch's GroupInfo, whether it rode along or not. */
  readonly nextGroupInfo: Uint8Array;
  /** The next epoch's state (MlsGroup.serializePending). */
  readonly nextState: Uint8Array;
  /** JSON of the membership lines to show once accepted ("[]" for none). */
  readonly lines: string;
}

/** What a caller gives to keep a commit: the rest (conversation, epoch, state) comes from its group. */
export type KeptCommitParts = Omit<KeptCommit, "conversationId" | "epoch" | "nextState">;

/** Refuses parts that are not what a SendCommit carries (argument checks first). */
export function checkKeptCommitParts(c: KeptCommitParts): void {
  for (const b of [c.commit, c.groupInfo, c.nextGroupInfo, c.welcome ?? new Uint8Array(0), c.ratchetTree ?? new Uint8Array(0)]) {
    if (!(b instanceof Uint8Array)) throw new TypeError("a kept commit's parts must be bytes");
  }
  if (c.commit.length === 0) throw new TypeError("a kept commit needs its commit");
  if (![...c.added, ...c.removed].every((u) => typeof u === "string")) throw new TypeError("added and removed must be usernames");
  if (typeof c.lines !== "string") throw new TypeError("lines must be JSON");
}

/** The plaintext to seal: the next state, then the parts (presence of the optional ones marked). */
export function encodeKeptCommit(nextState: Uint8Array, c: KeptCommitParts): Buffer {
  return encodeFields(LABEL, [VERSION, nextState, c.commit, c.groupInfo, c.nextGroupInfo,
    c.welcome === undefined ? "" : "w", c.welcome ?? new Uint8Array(0), c.ratchetTree === undefined ? "" : "t", c.ratchetTree ?? new Uint8Array(0),
    JSON.stringify({ added: c.added, removed: c.removed }), c.lines]);
}

/** Reads encodeKeptCommit's bytes (own copies); throws a sentence on anything else. */
export function decodeKeptCommit(bytes: Uint8Array, conversationId: string, epoch: bigint): KeptCommit {
  let f: Buffer[];
  try {
    f = decodeFields(bytes, LABEL, 11, "kept commit");
  } catch (e) {
    throw new Error(`the commit kept for ${conversationId} does not decode: ${(e as Error).message}`, { cause: e });
  }
  const [version, next, commit, groupInfo, nextGroupInfo, hasWelcome, welcome, hasTree, tree, hint, lines] = f as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
  if (version.toString() !== VERSION) throw new Error(`the commit kept for ${conversationId} has version ${version.toString()}, this client knows ${VERSION}`);
  const names = JSON.parse(hint.toString("utf8")) as { added: string[]; removed: string[] };
  const copy = (b: Buffer): Uint8Array => new Uint8Array(b);
  return {
    conversationId, epoch, nextState: copy(next), commit: copy(commit), groupInfo: copy(groupInfo), nextGroupInfo: copy(nextGroupInfo),
    added: names.added, removed: names.removed, lines: lines.toString("utf8"),
    ...(hasWelcome.length > 0 ? { welcome: copy(welcome) } : {}), ...(hasTree.length > 0 ? { ratchetTree: copy(tree) } : {}),
  };
}
