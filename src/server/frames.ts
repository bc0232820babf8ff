// Frame (de)serialisation for the relay. The service is registered with identity
// (de)serialisers (relay.ts), so decoding happens here, inside the session, where a malformed
// frame can end that one stream with a clear INVALID_ARGUMENT instead of grpc-js's opaque
// INTERNAL "Error deserializing request".
import { SessionRequest, SessionResponse, type SendResult } from "../gen/securechat/v1/chat.js";
import { sessionEnd } from "./errors.js";
import { RefusedRequest, scanRequest, type FrameScanBounds } from "./frame-scan.js";
import type { QueuedItem } from "./store.js";

export type RequestFrame = NonNullable<SessionRequest["frame"]>;
export { RefusedRequest, frameScanBoundsFor, type FrameScanBounds } from "./frame-scan.js";
export type ResponseFrame = NonNullable<SessionResponse["frame"]>;

/**
 * Decodes one client frame (PROTOCOL.md §13.2, §13.3), a handshake's too: the common SendMls
 * read directly; anything else scanned first (frame-scan.ts: the elements of its repeated fields
 * and the fields it holds, counted on the wire), so a frame whose counts pass the relay's limits
 * is refused before ts-proto builds an object per element. A RefusedRequest is answered by the
 * request's handler (the session goes on); an Ack over its limit, a frame of more fields than the
 * largest honest one, or bytes that do not decode end the session.
 */
export function decodeSessionRequest(bytes: Uint8Array, bounds: FrameScanBounds): RequestFrame | RefusedRequest {
  const mls = sendMlsPayload(bytes);
  if (mls !== undefined) return { $case: "sendMls", value: { mls } };
  const scanned = scanRequest(bytes, bounds);
  if (scanned !== undefined) return scanned;
  return decodeFrame(bytes);
}

function decodeFrame(bytes: Uint8Array): RequestFrame {
  let req: SessionRequest;
  try {
    req = SessionRequest.decode(bytes);
  } catch (e) {
    const why = e instanceof Error ? e.message : "undecodable bytes";
    throw sessionEnd.malformedFrame(why.slice(0, 200));
  }
  if (req.frame === undefined) throw sessionEnd.malformedFrame("the frame carries no known request");
  return req.frame;
}

const TAG_REQUEST_SEND_MLS_0 = 0x8a; // SessionRequest.send_mls (17, length-delimited): varint 138
const TAG_REQUEST_SEND_MLS_1 = 0x01;
const TAG_SEND_MLS_MLS = (1 << 3) | 2; // SendMls.mls

/** A varint of at most 3 bytes at `at` (lengths below 2 MiB) as [value, end]; undefined otherwise. */
function shortVarint(b: Uint8Array, at: number): [number, number] | undefined {
  const b0 = b[at];
  if (b0 === undefined) return undefined;
  if (b0 < 0x80) return [b0, at + 1];
  const b1 = b[at + 1];
  if (b1 === undefined) return undefined;
  if (b1 < 0x80) return [(b0 & 0x7f) | (b1 << 7), at + 2];
  const b2 = b[at + 2];
  if (b2 === undefined || b2 >= 0x80) return undefined;
  return [(b0 & 0x7f) | ((b1 & 0x7f) << 7) | (b2 << 14), at + 3];
}

/**
 * The common frame read without a protobuf reader: exactly SessionRequest{send_mls:
 * SendMls{mls}} with a non-empty mls and nothing else, its MLS bytes a view into the frame (not
 * a copy). Anything else (other fields, empty or repeated ones, longer varints) is undefined and
 * goes through ts-proto, which decodes these same bytes to the same frame (test/unit/frames.test.ts).
 */
function sendMlsPayload(b: Uint8Array): Buffer | undefined {
  if (b.length < 5 || b[0] !== TAG_REQUEST_SEND_MLS_0 || b[1] !== TAG_REQUEST_SEND_MLS_1) return undefined;
  const outer = shortVarint(b, 2);
  if (outer === undefined || outer[1] + outer[0] !== b.length || b[outer[1]] !== TAG_SEND_MLS_MLS) return undefined;
  const inner = shortVarint(b, outer[1] + 1);
  if (inner === undefined || inner[0] === 0 || inner[1] + inner[0] !== b.length) return undefined;
  return Buffer.from(b.buffer, b.byteOffset + inner[1], inner[0]);
}

export function encodeResponse(frame: ResponseFrame): Buffer {
  const bytes = SessionResponse.encode({ frame }).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// Field tags of chat.proto (field number << 3 | wire type), for the hand-built DeliverBatch.
const TAG_RESPONSE_DELIVER = (3 << 3) | 2; // SessionResponse.deliver: DeliverBatch
const TAG_BATCH_ITEMS = (1 << 3) | 2; // DeliverBatch.items: repeated Delivery
const TAG_DELIVERY_SEQ = (1 << 3) | 0; // Delivery.seq: uint64
const TAG_DELIVERY_CONVERSATION = (2 << 3) | 2; // Delivery.conversation_id: string
const TAG_DELIVERY_ENVELOPE = (3 << 3) | 2; // Delivery.envelope: Envelope
const TAG_DELIVERY_MLS = (5 << 3) | 2; // Delivery.mls: MlsDelivery (protocol v2, stored as payload "mls")
const TAG_DELIVERY_RELAY_TIME = (4 << 3) | 0; // Delivery.relay_time_ms: uint64 (left out when 0)

/** Bytes of a varint (protobuf base-128) encoding of a non-negative safe integer. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

/**
 * Encodes a SessionResponse{deliver: DeliverBatch{items}} around the stored envelope bytes
 * without parsing them (field 3, Envelope, or field 5, MlsDelivery, by the item's payload): an embedded message is encoded exactly like a bytes field, so the
 * envelope goes out byte for byte as it was accepted, and delivery costs no decode/re-encode.
 * Sizes are computed first and the frame is written into one buffer: each envelope is copied
 * once (a general protobuf writer copied a 40 KB room envelope three times per recipient).
 * The bytes equal what ts-proto's SessionResponse.encode makes (test/unit/frames.test.ts).
 */
/** The relay's acceptance time of a queued item, or 0 when it has none (the field is left out). */
function relayTime(item: QueuedItem): number {
  const t = item.relayTimeMs ?? 0;
  return Number.isSafeInteger(t) && t > 0 ? t : 0;
}

export function encodeDeliverBatch(items: readonly QueuedItem[]): Buffer {
  const conversations = items.map((item) => Buffer.from(item.conversationId, "utf8"));
  const itemSizes = items.map((item, i) => {
    if (!Number.isSafeInteger(item.seq) || item.seq < 0) throw new RangeError(`delivery seq must be a non-negative integer, got ${item.seq}`);
    const conv = conversations[i]!;
    const time = relayTime(item);
    return 1 + varintSize(item.seq) + 1 + varintSize(conv.length) + conv.length + 1 + varintSize(item.envelope.length) + item.envelope.length +
      (time > 0 ? 1 + varintSize(time) : 0);
  });
  const batchSize = itemSizes.reduce((sum, size) => sum + 1 + varintSize(size) + size, 0);
  const out = Buffer.allocUnsafe(1 + varintSize(batchSize) + batchSize);
  let at = writeVarint(out, 0, TAG_RESPONSE_DELIVER);
  at = writeVarint(out, at, batchSize);
  items.forEach((item, i) => {
    const conv = conversations[i]!;
    out[at++] = TAG_BATCH_ITEMS;
    at = writeVarint(out, at, itemSizes[i]!);
    out[at++] = TAG_DELIVERY_SEQ;
    at = writeVarint(out, at, item.seq);
    out[at++] = TAG_DELIVERY_CONVERSATION;
    at = writeVarint(out, at, conv.length);
    at += conv.copy(out, at);
    out[at++] = item.payload === "mls" ? TAG_DELIVERY_MLS : TAG_DELIVERY_ENVELOPE;
    at = writeVarint(out, at, item.envelope.length);
    out.set(item.envelope, at);
    at += item.envelope.length;
    const time = relayTime(item);
    if (time > 0) {
      out[at++] = TAG_DELIVERY_RELAY_TIME;
      at = writeVarint(out, at, time);
    }
  });
  if (at !== out.length) throw new Error(`DeliverBatch encoding wrote ${at} of ${out.length} bytes`);
  return out;
}

/** What encodeMlsDelivery writes: MlsDelivery's fields (chat.proto), the bytes ones given as they are. */
export interface MlsDeliveryFields {
  readonly kind: number;
  readonly groupId: Uint8Array;
  readonly sender: string;
  readonly mls: Uint8Array;
  readonly ratchetTree?: Uint8Array;
  readonly epoch?: number;
  readonly senderDevice?: string;
}

/**
 * Encodes an MlsDelivery (the stored bytes of a protocol-v2 delivery) into one buffer of its
 * exact size: the MLS message is copied once, where ts-proto's writer copied it into its chunk
 * list and again into the joined result. The bytes equal MlsDelivery.encode's (fields in number
 * order, defaults left out; test/unit/frames.test.ts).
 */
export function encodeMlsDelivery(d: MlsDeliveryFields): Buffer {
  const { kind, groupId, mls } = d;
  const tree = d.ratchetTree ?? EMPTY;
  const epoch = d.epoch ?? 0;
  // An int32 enum: a negative one would take ten bytes (never made here; refused rather than guessed).
  if (!Number.isInteger(kind) || kind < 0 || kind > 0x7fffffff) throw new RangeError(`MlsDelivery kind must be a non-negative int32, got ${kind}`);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`MlsDelivery epoch must be a non-negative integer, got ${epoch}`);
  const senderLength = Buffer.byteLength(d.sender, "utf8");
  const device = d.senderDevice ?? "";
  const deviceLength = Buffer.byteLength(device, "utf8");
  const size = (kind === 0 ? 0 : 1 + varintSize(kind)) + fieldSize(groupId.length) + fieldSize(senderLength) + fieldSize(mls.length) +
    fieldSize(tree.length) + (epoch === 0 ? 0 : 1 + varintSize(epoch)) + fieldSize(deviceLength);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  if (kind !== 0) {
    out[at++] = (1 << 3) | 0;
    at = writeVarint(out, at, kind);
  }
  at = writeBytesField(out, at, (2 << 3) | 2, groupId);
  at = writeStringField(out, at, (3 << 3) | 2, d.sender, senderLength);
  at = writeBytesField(out, at, (4 << 3) | 2, mls);
  at = writeBytesField(out, at, (5 << 3) | 2, tree);
  if (epoch !== 0) {
    out[at++] = (6 << 3) | 0;
    at = writeVarint(out, at, epoch);
  }
  at = writeStringField(out, at, (7 << 3) | 2, device, deviceLength);
  if (at !== out.length) throw new Error(`MlsDelivery encoding wrote ${at} of ${out.length} bytes`);
  return out;
}

const EMPTY = new Uint8Array(0);

/** Bytes of a length-delimited field of `n` bytes with a one-byte tag; 0 when empty (left out). */
function fieldSize(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n) + n;
}

/** A length-delimited field (tag of one byte), left out when empty, as proto3 does; returns the new offset. */
function writeBytesField(out: Buffer, at: number, tag: number, b: Uint8Array): number {
  if (b.length === 0) return at;
  out[at++] = tag;
  at = writeVarint(out, at, b.length);
  out.set(b, at);
  return at + b.length;
}

function writeStringField(out: Buffer, at: number, tag: number, s: string, utf8Length: number): number {
  if (utf8Length === 0) return at;
  out[at++] = tag;
  at = writeVarint(out, at, utf8Length);
  return at + out.write(s, at, utf8Length, "utf8");
}

/**
 * Encodes a SessionResponse{send_result} (one per SendMls) into one buffer of its size, as
 * ts-proto's writer would (fields in number order, defaults left out): no writer, fork or join
 * per answer. An enum below zero (never made by the relay) goes through ts-proto, which writes
 * it as ten bytes.
 */
export function encodeSendResult(r: SendResult): Buffer {
  if (r.status < 0 || r.code < 0 || !Number.isInteger(r.status) || !Number.isInteger(r.code) || r.status > 0x7fffffff || r.code > 0x7fffffff) {
    return encodeResponse({ $case: "sendResult", value: r });
  }
  const detailLength = Buffer.byteLength(r.detail, "utf8");
  let size = fieldSize(r.messageId.length) + (r.status === 0 ? 0 : 1 + varintSize(r.status)) + (r.code === 0 ? 0 : 1 + varintSize(r.code)) + fieldSize(detailLength);
  const queued = r.queuedFor.map((u) => Buffer.byteLength(u, "utf8"));
  for (const n of queued) size += 1 + varintSize(n) + n; // a repeated string writes empty ones too
  const out = Buffer.allocUnsafe(1 + varintSize(size) + size);
  out[0] = (4 << 3) | 2; // SessionResponse.send_result
  let at = writeVarint(out, 1, size);
  at = writeBytesField(out, at, (1 << 3) | 2, r.messageId);
  if (r.status !== 0) {
    out[at++] = (2 << 3) | 0;
    at = writeVarint(out, at, r.status);
  }
  if (r.code !== 0) {
    out[at++] = (3 << 3) | 0;
    at = writeVarint(out, at, r.code);
  }
  at = writeStringField(out, at, (4 << 3) | 2, r.detail, detailLength);
  for (let i = 0; i < queued.length; i++) {
    out[at++] = (5 << 3) | 2;
    at = writeVarint(out, at, queued[i]!);
    at += out.write(r.queuedFor[i]!, at, queued[i]!, "utf8");
  }
  if (at !== out.length) throw new Error(`SendResult encoding wrote ${at} of ${out.length} bytes`);
  return out;
}
