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
// The bounds, each the limit of the check that follows the decode: frame-scan-tables.ts.
// A refused request still takes its tokens first (§13.2 "Then the rate"): the session hands the
// refusal to the request's own handler (session-requests.ts), which takes them as for a decoded one.
import { SendEnvelope, type SessionRequest } from "../gen/securechat/v1/chat.js";
import { MAX_DEVICES, TOO_MANY_DEVICES } from "../protocol/devices.js";
import { keyPackagePublishTokens, mlsWriteTokens } from "../protocol/limits.js";
import { MAX_HINT_NAMES, tooManyHintNames } from "./commit-checks.js";
import { malformedList, tooManyFetchNames } from "./devices.js";
import { sessionEnd, type Refusal, type SessionEnd } from "./errors.js";
import {
  Kind, S_ACK_SEQS, S_CLAIM_DEVICES, S_CLAIM_NAMES, S_COMMIT_ADDED, S_COMMIT_BYTES, S_COMMIT_REMOVED, S_DL_DEVICES, S_ENV_MESSAGE_ID, S_ENV_RECIPIENTS,
  S_ENV_WRAPS, S_FETCH_DL_NAMES, S_KP_LAST_RESORT, S_KP_ONE_TIME, S_LOOKUP_NAMES, S_REQUEST_ID, SESSION_REQUEST, SLOTS, STEP_SLACK, type FrameScanBounds, type Message,
} from "./frame-scan-tables.js";
import { MAX_ACK_SEQS } from "./limits.js";
import { MAX_CLAIM_USERS, MAX_ONE_TIME_KEY_PACKAGES, tooManyClaimDevices, tooManyClaimUsers, tooManyOneTime } from "./mls-key-packages.js";
import { tooManyLookupNames } from "./session-requests.js";

export { frameScanBoundsFor, STEP_SLACK, type FrameScanBounds } from "./frame-scan-tables.js";

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

/** A count over its bound: the request's own refusal, made by the function its check after the decode throws (one sentence each). */
function refusalOf(s: Scan, b: FrameScanBounds): RefusedRequest | undefined {
  const n = (slot: number): number => s.slots[slot]!;
  const requestId = n(S_REQUEST_ID);
  switch (s.frameCase) {
    case 10: // LookupKeys (session-requests.ts lookupKeys)
      if (n(S_LOOKUP_NAMES) > b.maxRecipients) {
        return new RefusedRequest({ $case: "lookupKeys", value: { requestId, usernames: [] } }, tooManyLookupNames(b.maxRecipients, n(S_LOOKUP_NAMES)), 1);
      }
      return undefined;
    case 11: { // PublishKeyPackages (mls-key-packages.ts publishKeyPackages); its tokens: writeTokens
      const oneTime = n(S_KP_ONE_TIME);
      if (oneTime <= MAX_ONE_TIME_KEY_PACKAGES) return undefined;
      return new RefusedRequest({ $case: "publishKeyPackages", value: { requestId, oneTime: [], lastResort: Buffer.alloc(0) } },
        tooManyOneTime(oneTime), keyPackagePublishTokens(oneTime + (n(S_KP_LAST_RESORT) > 0 ? 1 : 0), b.burst));
    }
    case 12: { // ClaimKeyPackages (mls-key-packages.ts claimKeyPackages)
      const value = { requestId, usernames: [], deviceIds: [] };
      if (n(S_CLAIM_NAMES) > MAX_CLAIM_USERS) {
        return new RefusedRequest({ $case: "claimKeyPackages", value }, tooManyClaimUsers(n(S_CLAIM_NAMES)), 1);
      }
      if (n(S_CLAIM_DEVICES) > MAX_DEVICES) {
        return new RefusedRequest({ $case: "claimKeyPackages", value }, tooManyClaimDevices(), 1);
      }
      return undefined;
    }
    case 15: { // SendCommit (commit-checks.ts checkHint), answered by a CommitResult; its tokens: writeTokens
      if (n(S_COMMIT_ADDED) + n(S_COMMIT_REMOVED) <= MAX_HINT_NAMES) return undefined;
      const mlsBytes = n(S_COMMIT_BYTES) + n(S_COMMIT_BYTES + 1) + n(S_COMMIT_BYTES + 2) + n(S_COMMIT_BYTES + 3);
      const empty = Buffer.alloc(0);
      return new RefusedRequest({ $case: "sendCommit", value: { requestId, commit: empty, groupInfo: empty, added: [], removed: [], welcome: empty, ratchetTree: empty } },
        tooManyHintNames(), mlsWriteTokens(mlsBytes, b.burst));
    }
    case 19: // PublishDeviceList (devices.ts publishDeviceList: verifyDeviceList's TOO_MANY_DEVICES)
      if (n(S_DL_DEVICES) > MAX_DEVICES) {
        return new RefusedRequest({ $case: "publishDeviceList", value: { requestId, list: undefined } }, malformedList(TOO_MANY_DEVICES), 1);
      }
      return undefined;
    case 20: // FetchDeviceLists (devices.ts fetchDeviceLists)
      if (n(S_FETCH_DL_NAMES) > b.maxRecipients) {
        return new RefusedRequest({ $case: "fetchDeviceLists", value: { requestId, usernames: [] } }, tooManyFetchNames(b.maxRecipients, n(S_FETCH_DL_NAMES)), 1);
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
