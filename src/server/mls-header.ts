// The clear header of an MLS PrivateMessage, read without decoding the whole MLSMessage
// (RFC 9420 §6, §6.3.1): what SendMls's checks need (wire format, group id, epoch, content
// type) for a fraction of a general decode's cost, and no copy of anything.
//
//   struct {
//     ProtocolVersion version = mls10;          // uint16, 0x0001
//     WireFormat wire_format;                   // uint16, 0x0002 = mls_private_message
//     opaque group_id<V>;
//     uint64 epoch;
//     ContentType content_type;                 // uint8: 1 application, 2 proposal, 3 commit
//     opaque authenticated_data<V>;
//     opaque encrypted_sender_data<V>;
//     opaque ciphertext<V>;
//   } MLSMessage (as a PrivateMessage), and nothing after it.
//
// <V> is a vector with a variable-size length header (RFC 9420 §2.1.2, QUIC's varint): the top
// two bits of its first byte give the header's size (00: 1, 01: 2, 10: 4 bytes; 11 is invalid).
//
// Strictness: this reader says yes only to bytes that ts-mls's decode (decodeMls: MLS 1.0, no
// trailing bytes) also takes as a PrivateMessage, with the same fields; anything else (another
// wire format, a truncation, an unknown content type, an 8-byte length, trailing bytes) is
// undefined, and the caller then runs the general decode, whose verdict and refusal sentence
// stand. So the relay refuses exactly what it refused before, in the same words (but for a list
// beyond the bounds of mls-shape.ts, refused before that decode, PROTOCOL.md §8.2), and only the
// common case (a well-formed PrivateMessage) takes the short path. test/server/mls-header.test.ts
// holds the two readers against each other on real and mutated messages.

import { ErrorCode } from "../gen/securechat/v1/chat.js";
import { decodeMls } from "../protocol/mls/client.js";
import { isMlsProtocolError } from "../protocol/mls/errors.js";
import { Refusal } from "./errors.js";
import { checkMlsShape, type MlsShapeBounds } from "./mls-shape.js";

export type PrivateContentType = "application" | "proposal" | "commit";

export interface PrivateMessageHeader {
  /** A view into the message's bytes (not a copy). */
  readonly groupId: Buffer;
  /** The epoch; a bigint only when above Number.MAX_SAFE_INTEGER (the caller refuses it). */
  readonly epoch: number | bigint;
  readonly contentType: PrivateContentType;
}

const CONTENT_TYPES: readonly (PrivateContentType | undefined)[] = [undefined, "application", "proposal", "commit"];
const MLS10 = 0x0001;
const WIRE_FORMAT_PRIVATE_MESSAGE = 0x0002;

/**
 * The end (exclusive) of the <V> vector whose length header starts at `at`, or -1 when the
 * header or the vector runs past `end`, or the header is an 8-byte one (ts-mls takes none).
 */
function vectorEnd(b: Uint8Array, at: number, end: number): number {
  if (at >= end) return -1;
  const first = b[at]!;
  const prefix = first >> 6;
  let length: number;
  let header: number;
  if (prefix === 0) {
    length = first;
    header = 1;
  } else if (prefix === 1) {
    if (at + 2 > end) return -1;
    length = ((first & 0x3f) << 8) | b[at + 1]!;
    header = 2;
  } else if (prefix === 2) {
    if (at + 4 > end) return -1;
    length = (first & 0x3f) * 0x1000000 + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
    header = 4;
  } else {
    return -1;
  }
  const after = at + header + length;
  return after > end ? -1 : after;
}

/**
 * The header of `bytes` when they are exactly one MLS 1.0 PrivateMessage; undefined for
 * anything else (then decode with decodeMls for the verdict and its sentence).
 */
export function privateMessageHeader(bytes: Uint8Array): PrivateMessageHeader | undefined {
  if (!(bytes instanceof Uint8Array)) return undefined;
  const end = bytes.length;
  if (end < 4) return undefined;
  if (((bytes[0]! << 8) | bytes[1]!) !== MLS10 || ((bytes[2]! << 8) | bytes[3]!) !== WIRE_FORMAT_PRIVATE_MESSAGE) return undefined;
  const groupIdEnd = vectorEnd(bytes, 4, end);
  if (groupIdEnd < 0) return undefined;
  const groupIdStart = groupIdEnd - vectorLength(bytes, 4);
  let at = groupIdEnd;
  if (at + 9 > end) return undefined; // epoch (8) and content_type (1)
  const hi = ((bytes[at]! << 24) >>> 0) + (bytes[at + 1]! << 16) + (bytes[at + 2]! << 8) + bytes[at + 3]!;
  const lo = ((bytes[at + 4]! << 24) >>> 0) + (bytes[at + 5]! << 16) + (bytes[at + 6]! << 8) + bytes[at + 7]!;
  const contentType = CONTENT_TYPES[bytes[at + 8]!];
  if (contentType === undefined) return undefined;
  at += 9;
  for (let i = 0; i < 3; i++) { // authenticated_data, encrypted_sender_data, ciphertext
    at = vectorEnd(bytes, at, end);
    if (at < 0) return undefined;
  }
  if (at !== end) return undefined;
  // 2^53 - 1 = (2^21 - 1) * 2^32 + (2^32 - 1): any hi below 2^21 keeps the number exact.
  const epoch = hi < 0x200000 ? hi * 0x100000000 + lo : (BigInt(hi) << 32n) | BigInt(lo);
  return { groupId: Buffer.from(bytes.buffer, bytes.byteOffset + groupIdStart, groupIdEnd - groupIdStart), epoch, contentType };
}

/** The length of the <V> vector at `at` (its header already checked by vectorEnd). */
function vectorLength(b: Uint8Array, at: number): number {
  const first = b[at]!;
  const prefix = first >> 6;
  if (prefix === 0) return first;
  if (prefix === 1) return ((first & 0x3f) << 8) | b[at + 1]!;
  return (first & 0x3f) * 0x1000000 + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
}

/**
 * SendMls's framing (mls-ds.ts admitMls): the header read in place when the bytes are a
 * well-formed PrivateMessage; otherwise the general decode (decodeMls, after the bounded walk of
 * mls-shape.ts: a PublicMessage commit, GroupInfo or Welcome sent here has lists too, PROTOCOL.md
 * §8.2) and the refusals of anything that is not an MLS 1.0 PrivateMessage, in the order and words
 * the relay always gave them (BAD_MLS_MESSAGE). A commit comes back as such: the caller refuses it.
 */
export function sendMlsFraming(mlsBytes: Uint8Array, shape: MlsShapeBounds): PrivateMessageHeader {
  const header = privateMessageHeader(mlsBytes);
  if (header !== undefined) return header;
  const bad = (detail: string): Refusal => new Refusal(ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail);
  checkMlsShape(mlsBytes, "the MLS message", shape);
  let msg: ReturnType<typeof decodeMls>;
  try {
    msg = decodeMls(mlsBytes, "the MLS message");
  } catch (e) {
    if (isMlsProtocolError(e)) throw bad(e.message);
    throw e;
  }
  if (msg.wireformat === "mls_public_message" && msg.publicMessage.content.contentType === "commit") {
    throw bad("the message is a commit: send commits with SendCommit, not SendMls");
  }
  if (msg.wireformat !== "mls_private_message") throw bad(`SendMls carries an MLS PrivateMessage (application or proposal), not a ${msg.wireformat}`);
  const f = msg.privateMessage;
  if (f.contentType !== "application" && f.contentType !== "proposal" && f.contentType !== "commit") {
    throw bad(`SendMls carries application messages and proposals, not ${String(f.contentType)} messages`);
  }
  return { groupId: Buffer.from(f.groupId), epoch: f.epoch, contentType: f.contentType };
}
