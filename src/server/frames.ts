// Frame (de)serialisation for the relay. The service is registered with identity
// (de)serialisers (relay.ts), so decoding happens here, inside the session, where a malformed
// frame can end that one stream with a clear INVALID_ARGUMENT instead of grpc-js's opaque
// INTERNAL "Error deserializing request".
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { SessionRequest, SessionResponse } from "../gen/securechat/v1/chat.js";
import { sessionEnd } from "./errors.js";
import type { QueuedItem } from "./store.js";

export type RequestFrame = NonNullable<SessionRequest["frame"]>;
export type ResponseFrame = NonNullable<SessionResponse["frame"]>;

/** Decodes one client frame; a frame that does not parse or carries no known case ends the session. */
export function decodeRequest(bytes: Uint8Array): RequestFrame {
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

/**
 * Encodes a SessionResponse{deliver: DeliverBatch{items}} around the stored envelope bytes
 * without parsing them: an embedded message is encoded exactly like a bytes field, so the
 * envelope goes out byte for byte as it was accepted, and delivery costs no decode/re-encode.
 */
export function encodeDeliverBatch(items: readonly QueuedItem[]): Buffer {
  const w = new BinaryWriter();
  w.uint32(TAG_RESPONSE_DELIVER).fork();
  for (const item of items) {
    w.uint32(TAG_BATCH_ITEMS).fork();
    w.uint32(TAG_DELIVERY_SEQ).uint64(item.seq);
    w.uint32(TAG_DELIVERY_CONVERSATION).string(item.conversationId);
    w.uint32(TAG_DELIVERY_ENVELOPE).bytes(item.envelope);
    w.join();
  }
  w.join();
  const bytes = w.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
