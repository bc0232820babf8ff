// The cost of a request frame, counted before ts-proto decodes it (PROTOCOL.md §13.2 "Then the
// checks", §13.3 "elements in one request frame"). SessionRequest.decode builds one JS object per
// element of every repeated field (and per occurrence of any known field) before any check runs:
// a PublishKeyPackages of 330,000 empty one_time entries (a 660 KB frame) took ~450 ms of the
// relay's event loop, an honest maximal one well under a millisecond, and the count limits
// (100 KeyPackages, 1,000 hint names, …) applied only after. This scan walks the protobuf wire
// format the way the generated decoder does (same tags, same wire-type matching, same positions,
// the same stops: a zero tag or an end-group tag ends a message, a group is skipped with the same
// nesting limit), reads lengths and a few numbers only, allocates nothing, and counts:
//   - the elements each repeated field of the request would hold once decoded (the last
//     occurrence of a message field counts, as in ts-proto, which replaces rather than merges);
//   - every field read at any depth ("steps": each tag, known or not, and each packed element):
//     the decoder's work, known fields being one allocation each.
// A count over the limit the later check applies is refused here with that check's own code and
// sentence (the session goes on, answered to the request's id as before); more steps than the
// largest honest frame of its kind (+ STEP_SLACK for fields this relay does not know) end the
// session as a malformed frame. What the scan lets through costs the decoder at most what the
// relay's largest honest request costs, and the decoder's verdict on it stands as before.
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
// A refused request still takes its tokens first (§13.2 "Then the rate"): the session hands the
// refusal to the request's own handler (session.ts), which takes them as for a decoded one.
import { ErrorCode, SendEnvelope, type SessionRequest } from "../gen/securechat/v1/chat.js";
import { MAX_DEVICES } from "../protocol/devices.js";
import { keyPackagePublishTokens, mlsWriteTokens } from "../protocol/limits.js";
import { MAX_HINT_NAMES } from "./commit-checks.js";
import { Refusal, sessionEnd, type SessionEnd } from "./errors.js";
import { MAX_ACK_SEQS, type RelayLimits } from "./limits.js";
import { MAX_CLAIM_USERS, MAX_ONE_TIME_KEY_PACKAGES } from "./mls-key-packages.js";

type RequestFrame = NonNullable<SessionRequest["frame"]>;
type RefusableCase = "lookupKeys" | "publishKeyPackages" | "claimKeyPackages" | "sendCommit" | "publishDeviceList" | "fetchDeviceLists";

/**
 * A request refused by the scan, not decoded: a stand-in frame of its case carrying only its
 * request id (for the handler's bucket and answer), the refusal, and the tokens the decoded
 * request would have taken (writeTokens, §13.2).
 */
export class RefusedRequest {
  constructor(readonly frame: Extract<RequestFrame, { $case: RefusableCase }>, readonly refusal: Refusal, readonly tokens: number) {}
}

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
const S_REQUEST_ID = 0;
const S_ACK_SEQS = 1;
const S_LOOKUP_NAMES = 2;
const S_KP_ONE_TIME = 3;
const S_KP_LAST_RESORT = 4;
const S_CLAIM_NAMES = 5;
const S_CLAIM_DEVICES = 6;
const S_COMMIT_ADDED = 7;
const S_COMMIT_REMOVED = 8;
const S_COMMIT_BYTES = 9; // commit, group_info, welcome, ratchet_tree: 4 slots
const S_DL_DEVICES = 13;
const S_FETCH_DL_NAMES = 14;
const S_ENV_RECIPIENTS = 15;
const S_ENV_WRAPS = 16;
const S_ENV_MESSAGE_ID = 17; // its length; its offset in `at`
const SLOTS = 18;

/** How the generated decoder reads a field: a varint, length-delimited bytes/string, a message, or repeated varints (packed or not). */
const enum Kind { Varint, Bytes, Message, Varints }

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

interface Message {
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
  // Added and removed together are at most MAX_HINT_NAMES (checked together below); each alone too.
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
const SESSION_REQUEST = message("SessionRequest", Object.fromEntries(CASES.flatMap((m, no) => (m === undefined ? [] : [[no, sub(m)]]))) as Record<number, Field>);

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

/** The generated decoder would throw here (it reads past the end, or an invalid varint or wire type): the scan stops. */
class Stop extends Error {}
const STOP = new Stop("stop");

/** ts-proto's (and @bufbuild/protobuf's BinaryReader's) group nesting limit for skip(). */
const SKIP_RECURSION_LIMIT = 100;

/**
 * One scan of one frame: a mirror of the generated decoder's reader positions (src/gen: each
 * message's decode, BinaryReader's varint32read/varint64read/skip). The scan and the decoder walk
 * the same fields; where the decoder would throw, the scan stops (`broken`).
 */
class Scan {
  pos = 0;
  steps = 0;
  /** The last top-level case the decoder would keep (its field number), 0: none. */
  frameCase = 0;
  broken = false;
  readonly slots = new Float64Array(SLOTS);
  /** S_ENV_MESSAGE_ID's offset. */
  messageIdAt = 0;
  private readonly len: number;

  constructor(private readonly b: Uint8Array) {
    this.len = b.length;
  }

  private bounds(): void {
    if (this.pos > this.len) throw STOP;
  }

  /** varint32read: up to 10 bytes, the low 32 bits as an unsigned number. */
  uint32(): number {
    const b = this.b;
    let x = b[this.pos++]!;
    if ((x & 0x80) === 0) {
      this.bounds();
      return x;
    }
    let r = x & 0x7f;
    x = b[this.pos++]!;
    r |= (x & 0x7f) << 7;
    if ((x & 0x80) === 0) {
      this.bounds();
      return r;
    }
    x = b[this.pos++]!;
    r |= (x & 0x7f) << 14;
    if ((x & 0x80) === 0) {
      this.bounds();
      return r;
    }
    x = b[this.pos++]!;
    r |= (x & 0x7f) << 21;
    if ((x & 0x80) === 0) {
      this.bounds();
      return r;
    }
    x = b[this.pos++]!;
    r |= (x & 0x0f) << 28;
    for (let n = 5; (x & 0x80) !== 0 && n < 10; n++) x = b[this.pos++]!;
    if ((x & 0x80) !== 0) throw STOP;
    this.bounds();
    return r >>> 0;
  }

  /** varint64read (uint64, bool, int32 fields): the same bytes as uint32(), the value unused. */
  varint(): void {
    this.uint32();
  }

  /** BinaryReader.bytes()/string(): a length, then that many bytes. Returns the length. */
  lengthDelimited(): number {
    const x = this.b[this.pos]!;
    const n = x < 0x80 ? (this.pos++, x) : this.uint32(); // a one-byte length read inline (most are)
    this.pos += n;
    if (this.pos > this.len) throw STOP;
    return n;
  }

  /** BinaryReader.skip(wireType, fieldNo, recursionLimit), as the generated decoder calls it. */
  skip(wireType: number, fieldNo: number | undefined, limit: number): void {
    switch (wireType) {
      case 0:
        while ((this.b[this.pos++]! & 0x80) !== 0) { /* the varint's bytes */ }
        break;
      case 1:
        this.pos += 8;
        break;
      case 2: {
        const n = this.uint32(); // read before pos is: `pos += uint32()` would lose the length's own bytes
        this.pos += n;
        break;
      }
      case 3:
        if (limit <= 0) throw STOP;
        for (;;) {
          // BinaryReader.tag(): at most 5 bytes and a uint32, a field number and a wire type up to 5.
          const start = this.pos;
          const tag = this.uint32();
          const read = this.pos - start;
          if (read > 5 || (read === 5 && this.b[this.pos - 1]! > 0x0f)) throw STOP;
          const fn = tag >>> 3;
          const wt = tag & 7;
          if (fn <= 0 || wt > 5) throw STOP;
          this.steps++;
          if (wt === 4) {
            if (fieldNo !== undefined && fn !== fieldNo) throw STOP;
            break;
          }
          this.skip(wt, fn, limit - 1);
        }
        break;
      case 5:
        this.pos += 4;
        break;
      default:
        throw STOP;
    }
    this.bounds();
  }

  /**
   * One message's decode loop (the generated decode), from here to `end` (its parent's length
   * for it; the frame's end for the top): a known field with the wire type the decoder takes is
   * read as it reads it; any other tag ends the message when it is zero or an end-group tag, and
   * is skipped otherwise.
   */
  message(m: Message, end: number, top: boolean): void {
    const slots = this.slots;
    for (const x of m.slots) slots[x] = 0;
    const fields = m.fields;
    const b = this.b;
    while (this.pos < end) {
      const x = b[this.pos]!;
      const tag = x < 0x80 ? (this.pos++, x) : this.uint32(); // a one-byte tag read inline (fields 1-15)
      this.steps++;
      const wt = tag & 7;
      const no = tag >>> 3;
      const f = no < fields.length ? fields[no]! : null;
      if (f !== null) {
        const kind = f.kind;
        if (kind === Kind.Bytes && wt === 2) {
          const n = this.lengthDelimited();
          if (f.slot >= 0) {
            if (f.repeated) {
              slots[f.slot]!++;
              // The same one-byte tag (x < 0x80) again with a one-byte length (a run of names,
              // KeyPackages…): the general path's reads, inline.
              while (x < 0x80 && this.pos < end && b[this.pos] === x && b[this.pos + 1]! < 0x80) {
                this.pos += 2 + b[this.pos + 1]!;
                if (this.pos > this.len) throw STOP;
                this.steps++;
                slots[f.slot]!++;
              }
            } else {
              slots[f.slot] = n;
              if (f.slot === S_ENV_MESSAGE_ID) this.messageIdAt = this.pos - n;
            }
          }
          if (top) this.frameCase = no;
          continue;
        }
        if (kind === Kind.Varint && wt === 0) {
          if (f.slot >= 0) slots[f.slot] = this.uint32();
          else this.varint();
          if (top) this.frameCase = no;
          continue;
        }
        if (kind === Kind.Message && wt === 2) {
          const n = this.uint32();
          // An empty message has nothing to walk (the decoder makes a default one); else walk it.
          if (n > 0) this.message(f.message!, this.pos + n, false);
          else if (this.pos > this.len) throw STOP;
          if (f.repeated) {
            slots[f.slot]!++;
            // A run of empty ones with the same one-byte tag, inline.
            while (x < 0x80 && this.pos < end && b[this.pos] === x && b[this.pos + 1] === 0) {
              this.pos += 2;
              if (this.pos > this.len) throw STOP;
              this.steps++;
              slots[f.slot]!++;
            }
          }
          if (top) this.frameCase = no;
          continue;
        }
        if (kind === Kind.Varints && (wt === 0 || wt === 2)) {
          if (wt === 0) {
            this.varint();
            slots[f.slot]!++;
          } else {
            // Packed: varints up to the run's end (as the decoder reads them, past it if the last one runs over).
            const runEnd = this.uint32() + this.pos;
            let n = 0;
            try {
              while (this.pos < runEnd) {
                const v = b[this.pos]!;
                if (v < 0x80) this.pos++;
                else this.varint();
                n++;
              }
              if (this.pos > this.len) throw STOP;
            } finally {
              // Counted even when the run breaks: the decoder built these before it would throw.
              this.steps += n;
              slots[f.slot]! += n;
            }
          }
          if (top) this.frameCase = no;
          continue;
        }
      }
      if (wt === 4 || tag === 0) return;
      this.skip(wt, undefined, SKIP_RECURSION_LIMIT);
    }
  }
}

/** A count over its bound: the request's own refusal, as its check after the decode words it. */
function refusalOf(s: Scan, b: FrameScanBounds): RefusedRequest | undefined {
  const n = (slot: number): number => s.slots[slot]!;
  const requestId = n(S_REQUEST_ID);
  switch (s.frameCase) {
    case 10: // LookupKeys (session.ts lookupKeys)
      if (n(S_LOOKUP_NAMES) > b.maxRecipients) {
        return new RefusedRequest({ $case: "lookupKeys", value: { requestId, usernames: [] } },
          new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, `a key lookup may name at most ${b.maxRecipients} users, not ${n(S_LOOKUP_NAMES)}`), 1);
      }
      return undefined;
    case 11: { // PublishKeyPackages (mls-key-packages.ts publishKeyPackages); its tokens: writeTokens
      const oneTime = n(S_KP_ONE_TIME);
      if (oneTime <= MAX_ONE_TIME_KEY_PACKAGES) return undefined;
      return new RefusedRequest({ $case: "publishKeyPackages", value: { requestId, oneTime: [], lastResort: Buffer.alloc(0) } },
        new Refusal(ErrorCode.ERROR_CODE_MLS_LIMIT, `at most ${MAX_ONE_TIME_KEY_PACKAGES} one-time KeyPackages per request, not ${oneTime}`),
        keyPackagePublishTokens(oneTime + (n(S_KP_LAST_RESORT) > 0 ? 1 : 0), b.burst));
    }
    case 12: { // ClaimKeyPackages (mls-key-packages.ts claimKeyPackages)
      const value = { requestId, usernames: [], deviceIds: [] };
      if (n(S_CLAIM_NAMES) > MAX_CLAIM_USERS) {
        return new RefusedRequest({ $case: "claimKeyPackages", value }, new Refusal(ErrorCode.ERROR_CODE_MLS_LIMIT, `one claim may name at most ${MAX_CLAIM_USERS} users, not ${n(S_CLAIM_NAMES)}`), 1);
      }
      if (n(S_CLAIM_DEVICES) > MAX_DEVICES) {
        return new RefusedRequest({ $case: "claimKeyPackages", value }, new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, `ClaimKeyPackages names more than ${MAX_DEVICES} devices`), 1);
      }
      return undefined;
    }
    case 15: { // SendCommit (commit-checks.ts checkHint), answered by a CommitResult; its tokens: writeTokens
      if (n(S_COMMIT_ADDED) + n(S_COMMIT_REMOVED) <= MAX_HINT_NAMES) return undefined;
      const mlsBytes = n(S_COMMIT_BYTES) + n(S_COMMIT_BYTES + 1) + n(S_COMMIT_BYTES + 2) + n(S_COMMIT_BYTES + 3);
      const empty = Buffer.alloc(0);
      return new RefusedRequest({ $case: "sendCommit", value: { requestId, commit: empty, groupInfo: empty, added: [], removed: [], welcome: empty, ratchetTree: empty } },
        new Refusal(ErrorCode.ERROR_CODE_MLS_LIMIT, `a commit may name at most ${MAX_HINT_NAMES} added and removed users`), mlsWriteTokens(mlsBytes, b.burst));
    }
    case 19: // PublishDeviceList (devices.ts publishDeviceList: verifyDeviceList's "it lists more than 16 devices")
      if (n(S_DL_DEVICES) > MAX_DEVICES) {
        return new RefusedRequest({ $case: "publishDeviceList", value: { requestId, list: undefined } },
          new Refusal(ErrorCode.ERROR_CODE_BAD_DEVICE_LIST, `malformed list: it lists more than ${MAX_DEVICES} devices`), 1);
      }
      return undefined;
    case 20: // FetchDeviceLists (devices.ts fetchDeviceLists)
      if (n(S_FETCH_DL_NAMES) > b.maxRecipients) {
        return new RefusedRequest({ $case: "fetchDeviceLists", value: { requestId, usernames: [] } },
          new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, `a device list fetch may name at most ${b.maxRecipients} users, not ${n(S_FETCH_DL_NAMES)}`), 1);
      }
      return undefined;
    default:
      return undefined;
  }
}

/** What the scan found: the counts, for tests and measurements. */
export interface FrameCounts {
  /** The request's case (SessionRequest field number; 0: none). */
  readonly frameCase: number;
  readonly steps: number;
  /** The decoder would throw before the frame's end. */
  readonly broken: boolean;
  /** Elements of each repeated field of the request, by its path (e.g. "publishKeyPackages.oneTime"). */
  readonly counts: Readonly<Record<string, number>>;
  readonly requestId: number;
}

function runScan(bytes: Uint8Array): Scan {
  const s = new Scan(bytes);
  try {
    s.message(SESSION_REQUEST, bytes.length, true);
  } catch (e) {
    if (e !== STOP) throw e;
    s.broken = true;
  }
  return s;
}

/** The scan's counts of `bytes` (tests, benchmarks): the repeated fields of the request's case. */
export function countFrame(bytes: Uint8Array): FrameCounts {
  const s = runScan(bytes);
  const n = (slot: number): number => s.slots[slot]!;
  const byCase: Record<number, Record<string, number>> = {
    3: { "send.envelope.header.recipients": n(S_ENV_RECIPIENTS), "send.envelope.wraps": n(S_ENV_WRAPS) },
    4: { "ack.seqs": n(S_ACK_SEQS) },
    10: { "lookupKeys.usernames": n(S_LOOKUP_NAMES) },
    11: { "publishKeyPackages.oneTime": n(S_KP_ONE_TIME) },
    12: { "claimKeyPackages.usernames": n(S_CLAIM_NAMES), "claimKeyPackages.deviceIds": n(S_CLAIM_DEVICES) },
    15: { "sendCommit.added": n(S_COMMIT_ADDED), "sendCommit.removed": n(S_COMMIT_REMOVED) },
    19: { "publishDeviceList.list.devices": n(S_DL_DEVICES) },
    20: { "fetchDeviceLists.usernames": n(S_FETCH_DL_NAMES) },
  };
  return { frameCase: s.frameCase, steps: s.steps, broken: s.broken, counts: byCase[s.frameCase] ?? {}, requestId: n(S_REQUEST_ID) };
}

/**
 * Scans one request frame before it is decoded (above). Returns undefined when the decoder may
 * have it; a RefusedRequest (a count over its bound: answered by the request's handler, the
 * session goes on); or, for a SendEnvelope whose lists pass their bounds, a stand-in frame
 * carrying only its message id (refused as every SendEnvelope is). Throws the session's end for
 * an Ack over MAX_ACK_SEQS (as the Ack check does) and for a frame of more steps than the
 * largest honest one of its kind (malformed frame). Cost: one pass over the frame, no allocation
 * but the refusal.
 */
export function scanRequest(bytes: Uint8Array, b: FrameScanBounds): RefusedRequest | RequestFrame | undefined {
  const s = runScan(bytes);
  const n = (slot: number): number => s.slots[slot]!;
  const maxSteps = b.maxSteps[s.frameCase] ?? b.maxSteps[0]!;
  const overSteps = s.steps > maxSteps;
  const malformed = (): SessionEnd =>
    sessionEnd.malformedFrame(overSteps
      ? `the frame has ${s.steps} fields and elements; the largest honest frame of its kind has ${maxSteps - STEP_SLACK} (PROTOCOL.md §13.3)`
      : "the frame ends inside a field");
  let refused: RefusedRequest | RequestFrame | undefined;
  if (s.frameCase === 4 && n(S_ACK_SEQS) > MAX_ACK_SEQS) {
    if (s.broken) throw malformed();
    // session.ts ack(): the session ends, as before.
    throw sessionEnd.tooManyAcks(n(S_ACK_SEQS), MAX_ACK_SEQS);
  }
  if (s.frameCase === 3 && (n(S_ENV_RECIPIENTS) > b.maxRecipients || n(S_ENV_WRAPS) > b.maxRecipients)) {
    // §13.2: every SendEnvelope is refused (BAD_FRAME, session.ts send) whatever its content; only its message id is read.
    const idLength = n(S_ENV_MESSAGE_ID);
    const messageId = idLength > 0 && idLength <= 64 ? Buffer.from(bytes.subarray(s.messageIdAt, s.messageIdAt + idLength)) : Buffer.alloc(0);
    refused = { $case: "send", value: SendEnvelope.fromPartial({ envelope: { header: { messageId } } }) };
  } else {
    refused = refusalOf(s, b);
  }
  if (refused !== undefined) {
    // A frame the decoder would not even take ends the session, as it did.
    if (s.broken) throw malformed();
    return refused;
  }
  if (overSteps) throw malformed();
  return undefined;
}
