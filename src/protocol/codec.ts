// Codec between the generated wire types (src/gen) and the protocol's domain types. The wire
// types are transport framing only; everything security-relevant is checked on the domain side.
import type * as wire from "../gen/securechat/v1/chat.js";
import type { EnvelopeHeader, SealedEnvelope } from "./envelope.js";
import { ProtocolError } from "./errors.js";

/** Converts a parsed wire envelope to the domain type; a missing header is malformed. */
export function envelopeFromWire(w: wire.Envelope | undefined): SealedEnvelope {
  if (w === undefined || w.header === undefined) throw new ProtocolError("malformed", "envelope or its header is missing");
  const h = w.header;
  const header: EnvelopeHeader = {
    suite: h.suite,
    conversationId: h.conversationId,
    messageId: h.messageId,
    sender: h.sender,
    senderSigFpr: h.senderSigFpr,
    sentAtMs: h.sentAtMs,
    prev: h.prev,
    iv: h.iv,
    recipients: h.recipients.map((r) => ({ username: r.username, encFpr: r.encFpr })),
    keyCommitment: h.keyCommitment,
  };
  return {
    header,
    ciphertext: w.ciphertext,
    tag: w.tag,
    wraps: w.wraps.map((k) => ({ username: k.username, wrappedKey: k.wrappedKey })),
    signature: w.signature,
  };
}

export function envelopeToWire(e: SealedEnvelope): wire.Envelope {
  const h = e.header;
  return {
    header: {
      suite: h.suite,
      conversationId: h.conversationId,
      messageId: h.messageId,
      sender: h.sender,
      senderSigFpr: h.senderSigFpr,
      sentAtMs: h.sentAtMs,
      prev: h.prev,
      iv: h.iv,
      recipients: h.recipients.map((r) => ({ username: r.username, encFpr: r.encFpr })),
      keyCommitment: h.keyCommitment,
    },
    ciphertext: e.ciphertext,
    tag: e.tag,
    wraps: e.wraps.map((k) => ({ username: k.username, wrappedKey: k.wrappedKey })),
    signature: e.signature,
  };
}
