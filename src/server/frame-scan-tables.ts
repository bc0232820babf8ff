// The tables the frame scan (frame-scan.ts) walks: chat.proto's request messages as the generated
// decoder reads them, each field's kind, whether it is repeated, where the scan keeps what it reads
// of it (a slot) and, for a repeated one, the most elements an honest request holds; and, from
// them, the steps of the largest honest frame of each kind (frameScanBoundsFor).
//
// The bounds (frameScanBoundsFor), each the limit of the check that follows the decode:
//   - Ack.seqs: MAX_ACK_SEQS (limits.ts), the session ends (sessionEnd.tooManyAcks), as before;
//   - LookupKeys.usernames, FetchDeviceLists.usernames: max_recipients, BAD_FRAME;
//   - PublishKeyPackages.one_time: MAX_ONE_TIME_KEY_PACKAGES, MLS_LIMIT;
//   - ClaimKeyPackages.usernames: MAX_CLAIM_USERS, MLS_LIMIT; .device_ids: MAX_DEVICES, BAD_FRAME;
//   - SendCommit.added + removed: MAX_HINT_NAMES, MLS_LIMIT (a CommitResult);
//   - PublishDeviceList.list.devices: MAX_DEVICES, BAD_DEVICE_LIST;
//   - SendEnvelope (protocol v1, refused on every session, §13.2): header.recipients and wraps,
//     max_recipients each; past them the envelope is not decoded, and refused as every
//     SendEnvelope is (BAD_FRAME, its message id read from the wire).
import { MAX_DEVICES } from "../protocol/devices.js";
import { MAX_HINT_NAMES } from "./commit-checks.js";
import { MAX_ACK_SEQS, type RelayLimits } from "./limits.js";
import { MAX_CLAIM_USERS, MAX_ONE_TIME_KEY_PACKAGES } from "./mls-key-packages.js";

/**
 * Fields an honest frame does not carry that the relay still takes, per frame: a newer client's,
 * a field repeated, a group (skipped by the decoder up to 100 deep: 99 nested groups are 198
 * tags), a few KB of bytes that happen to parse as fields. At most ~1 ms of decoding (a known
 * field repeated is one allocation each); 330,000 of them cost the decoder 5-15 ms.
 */
export const STEP_SLACK = 1024;

// Slots: what the scan keeps of the request's fields (counts of repeated ones, the last value or
// length of singular ones), reset when the message holding them starts (ts-proto replaces a
// message field by its last occurrence).
export const S_REQUEST_ID = 0;
export const S_ACK_SEQS = 1;
export const S_LOOKUP_NAMES = 2;
export const S_KP_ONE_TIME = 3;
export const S_KP_LAST_RESORT = 4;
export const S_CLAIM_NAMES = 5;
export const S_CLAIM_DEVICES = 6;
export const S_COMMIT_ADDED = 7;
export const S_COMMIT_REMOVED = 8;
export const S_COMMIT_BYTES = 9; // commit, group_info, welcome, ratchet_tree: 4 slots
export const S_DL_DEVICES = 13;
export const S_FETCH_DL_NAMES = 14;
export const S_ENV_RECIPIENTS = 15;
export const S_ENV_WRAPS = 16;
export const S_ENV_MESSAGE_ID = 17; // its length; its offset in `at`
export const SLOTS = 18;

/** How the generated decoder reads a field: a varint, length-delimited bytes/string, a message, or repeated varints (packed or not). */
export const enum Kind { Varint, Bytes, Message, Varints }

type MaxOf = (b: Pick<RelayLimits, "maxRecipients">) => number;

/** Every field has every property (one object shape: the scan's reads of them stay monomorphic). */
interface Field {
  readonly kind: Kind;
  readonly repeated: boolean;
  readonly message: Message | null;
  /** Where the scan keeps it (a count if repeated, else a value or length); -1: nowhere. */
  readonly slot: number;
  /** Most elements in an honest request (repeated fields), from the bounds. */
  readonly max: MaxOf | null;
}

export interface Message {
  readonly name: string;
  /** By field number, null where the message has none. */
  readonly fields: ReadonlyArray<Field | null>;
  /** The slots of this message and the messages under it (reset when one starts). */
  readonly slots: readonly number[];
}

function message(name: string, fields: Record<number, Field>): Message {
  const numbers = Object.keys(fields).map(Number);
  const byNumber: Array<Field | null> = Array.from({ length: Math.max(...numbers) + 1 }, () => null);
  const slots = new Set<number>();
  for (const no of numbers) {
    const f = fields[no]!;
    byNumber[no] = f;
    if (f.slot >= 0) slots.add(f.slot);
    if (f.message !== null && !f.repeated) for (const x of f.message.slots) slots.add(x);
  }
  return { name, fields: byNumber, slots: [...slots] };
}

const field = (kind: Kind, repeated: boolean, slot: number, max: MaxOf | null, m: Message | null): Field => ({ kind, repeated, message: m, slot, max });
const varint = (slot = -1): Field => field(Kind.Varint, false, slot, null, null);
const bytes = (slot = -1): Field => field(Kind.Bytes, false, slot, null, null);
const sub = (m: Message): Field => field(Kind.Message, false, -1, null, m);
const list = (kind: Kind, slot: number, max: MaxOf, m: Message | null = null): Field => field(kind, true, slot, max, m);
const maxRecipients = (b: Pick<RelayLimits, "maxRecipients">): number => b.maxRecipients;

// chat.proto's request messages, as the generated decoder reads them (strings are bytes here).
const HELLO = message("Hello", { 1: bytes(), 2: bytes(), 3: bytes(), 4: bytes(), 5: bytes(), 6: varint(), 7: bytes() });
const PROOF = message("Proof", { 1: bytes() });
const RECIPIENT = message("Recipient", { 1: bytes(), 2: bytes() });
const KEY_WRAP = message("KeyWrap", { 1: bytes(), 2: bytes() });
const ENVELOPE_HEADER = message("EnvelopeHeader", {
  1: bytes(), 2: bytes(), 3: bytes(S_ENV_MESSAGE_ID), 4: bytes(), 5: bytes(), 6: varint(), 7: bytes(), 8: bytes(),
  9: list(Kind.Message, S_ENV_RECIPIENTS, maxRecipients, RECIPIENT), 10: bytes(),
});
const ENVELOPE = message("Envelope", { 1: sub(ENVELOPE_HEADER), 2: bytes(), 3: bytes(), 4: list(Kind.Message, S_ENV_WRAPS, maxRecipients, KEY_WRAP), 5: bytes() });
const SEND_ENVELOPE = message("SendEnvelope", { 1: sub(ENVELOPE) });
const ACK = message("Ack", { 1: list(Kind.Varints, S_ACK_SEQS, () => MAX_ACK_SEQS) });
const ROOM_REQUEST = message("room request", { 1: varint(S_REQUEST_ID), 2: bytes() }); // JoinRoom, LeaveRoom, ListMembers
const LIST_ROOMS = message("ListRooms", { 1: varint(S_REQUEST_ID) });
const PING = message("Ping", { 1: varint() });
const LOOKUP_KEYS = message("LookupKeys", { 1: varint(S_REQUEST_ID), 2: list(Kind.Bytes, S_LOOKUP_NAMES, maxRecipients) });
const PUBLISH_KEY_PACKAGES = message("PublishKeyPackages", {
  1: varint(S_REQUEST_ID), 2: list(Kind.Bytes, S_KP_ONE_TIME, () => MAX_ONE_TIME_KEY_PACKAGES), 3: bytes(S_KP_LAST_RESORT),
});
const CLAIM_KEY_PACKAGES = message("ClaimKeyPackages", {
  1: varint(S_REQUEST_ID), 2: list(Kind.Bytes, S_CLAIM_NAMES, () => MAX_CLAIM_USERS), 3: list(Kind.Bytes, S_CLAIM_DEVICES, () => MAX_DEVICES),
});
const GROUP_INFO_REQUEST = message("PublishGroupInfo", { 1: varint(S_REQUEST_ID), 2: bytes() }); // and RecreateRoom
const FETCH_GROUP_INFO = message("FetchGroupInfo", { 1: varint(S_REQUEST_ID), 2: bytes(), 3: bytes() });
const SEND_COMMIT = message("SendCommit", {
  1: varint(S_REQUEST_ID), 2: bytes(S_COMMIT_BYTES), 3: bytes(S_COMMIT_BYTES + 1),
  // Added and removed together are at most MAX_HINT_NAMES (checked together: refusalOf in frame-scan.ts); each alone too.
  4: list(Kind.Bytes, S_COMMIT_ADDED, () => MAX_HINT_NAMES), 5: list(Kind.Bytes, S_COMMIT_REMOVED, () => MAX_HINT_NAMES),
  6: bytes(S_COMMIT_BYTES + 2), 7: bytes(S_COMMIT_BYTES + 3),
});
const FETCH_COMMITS = message("FetchCommits", { 1: varint(S_REQUEST_ID), 2: bytes(), 3: varint() });
const SEND_MLS = message("SendMls", { 1: bytes() });
const DEVICE = message("Device", { 1: bytes(), 2: bytes(), 3: bytes(), 4: bytes(), 5: varint(), 6: varint() });
const DEVICE_LIST = message("DeviceList", { 1: bytes(), 2: varint(), 3: varint(), 4: list(Kind.Message, S_DL_DEVICES, () => MAX_DEVICES, DEVICE), 5: bytes() });
const PUBLISH_DEVICE_LIST = message("PublishDeviceList", { 1: varint(S_REQUEST_ID), 2: sub(DEVICE_LIST) });
const FETCH_DEVICE_LISTS = message("FetchDeviceLists", { 1: varint(S_REQUEST_ID), 2: list(Kind.Bytes, S_FETCH_DL_NAMES, maxRecipients) });

/** SessionRequest's oneof cases by field number (chat.proto). */
const CASES: ReadonlyArray<Message | undefined> = [
  undefined, HELLO, PROOF, SEND_ENVELOPE, ACK, ROOM_REQUEST, ROOM_REQUEST, LIST_ROOMS, ROOM_REQUEST, PING, LOOKUP_KEYS,
  PUBLISH_KEY_PACKAGES, CLAIM_KEY_PACKAGES, GROUP_INFO_REQUEST, FETCH_GROUP_INFO, SEND_COMMIT, FETCH_COMMITS, SEND_MLS,
  GROUP_INFO_REQUEST, PUBLISH_DEVICE_LIST, FETCH_DEVICE_LISTS,
];
export const SESSION_REQUEST = message("SessionRequest", Object.fromEntries(CASES.flatMap((m, no) => (m === undefined ? [] : [[no, sub(m)]]))) as Record<number, Field>);

/** What a relay with these limits lets a request frame hold (above). */
export interface FrameScanBounds {
  readonly maxRecipients: number;
  readonly burst: number;
  /** Most steps (tags and packed elements at every depth) of a frame, by its case's field number; [0]: no known case. */
  readonly maxSteps: readonly number[];
}

/** The steps of the largest honest `m`: every field once, each repeated one at its bound. */
function honestSteps(m: Message, b: Pick<RelayLimits, "maxRecipients">): number {
  let steps = 0;
  for (const f of m.fields) {
    if (f === null) continue;
    const inner = 1 + (f.message === null ? 0 : honestSteps(f.message, b));
    // Packed varints: one tag and an element each (unpacked: a tag each, fewer steps).
    steps += f.kind === Kind.Varints ? 1 + f.max!(b) : (f.repeated ? f.max!(b) : 1) * inner;
  }
  return steps;
}

const boundsByLimits = new WeakMap<object, FrameScanBounds>();

/** The bounds of a relay with these limits (kept per limits object: each session and handshake asks). */
export function frameScanBoundsFor(limits: Pick<RelayLimits, "maxRecipients" | "burst">): FrameScanBounds {
  // Argument checks first: a bound that is no positive integer would refuse everything, or nothing.
  for (const k of ["maxRecipients", "burst"] as const) {
    if (!Number.isSafeInteger(limits[k]) || limits[k] < 1) throw new RangeError(`limit ${k} must be a positive integer, not ${limits[k]}`);
  }
  const kept = boundsByLimits.get(limits);
  if (kept !== undefined && kept.maxRecipients === limits.maxRecipients && kept.burst === limits.burst) return kept;
  const maxSteps = CASES.map((m) => STEP_SLACK + (m === undefined ? 0 : 1 + honestSteps(m, limits)));
  const bounds = { maxRecipients: limits.maxRecipients, burst: limits.burst, maxSteps };
  boundsByLimits.set(limits, bounds);
  return bounds;
}
