// Oracles for fuzzing the relay's frame handling: what a frame decodes to (with the same
// generated decoder the relay uses), how a stream may end, and what a refusal may look like.
import { status as GrpcStatus } from "@grpc/grpc-js";
import { ErrorCode, Envelope, SessionRequest } from "../../src/gen/securechat/v1/chat.js";
import type { EndStatus, RawSession, ResponseCase, ResponseOf } from "./raw-session.js";

export type RequestFrame = NonNullable<SessionRequest["frame"]>;

/** What the relay will make of these bytes: undecodable, no known case, or a frame. */
export type Decoded =
  | { readonly kind: "undecodable"; readonly error: string }
  | { readonly kind: "empty" }
  | { readonly kind: "frame"; readonly frame: RequestFrame };

export function decodeAsRelay(bytes: Uint8Array): Decoded {
  try {
    const frame = SessionRequest.decode(bytes).frame;
    return frame === undefined ? { kind: "empty" } : { kind: "frame", frame };
  } catch (e) {
    return { kind: "undecodable", error: e instanceof Error ? e.message : String(e) };
  }
}

/** Stack traces, source paths and internals have no place in what a client is told. */
const LEAK = /\n\s*at |\bat \S+ \(|node:internal|node_modules|\.[cm]?[jt]sx?:\d+|\bTypeError\b|\bRangeError\b|\bReferenceError\b|undefined|\[object /;

/** A sentence a person can read: not empty, bounded, no stack, no internals. */
export function isCleanSentence(s: string): boolean {
  return s.trim().length > 0 && s.length <= 600 && !LEAK.test(s);
}

/** Why a stream ended is never an internal error, and its details are a clean sentence. */
export function cleanEnd(s: EndStatus, allowed: readonly GrpcStatus[]): string | undefined {
  if (!allowed.includes(s.code)) return `ended with ${GrpcStatus[s.code]} (${s.details}), expected one of ${allowed.map((c) => GrpcStatus[c]).join(", ")}`;
  if (!isCleanSentence(s.details)) return `status details are not a clean sentence: ${JSON.stringify(s.details)}`;
  return undefined;
}

/** Codes a SendEnvelope may be refused with by a relay that is not full, failing or stopping. */
export const ENVELOPE_REFUSALS: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.ERROR_CODE_BAD_ENVELOPE, ErrorCode.ERROR_CODE_FORGED_SENDER, ErrorCode.ERROR_CODE_UNKNOWN_RECIPIENT,
  ErrorCode.ERROR_CODE_STALE_RECIPIENT_KEY, ErrorCode.ERROR_CODE_BAD_RECIPIENTS, ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS,
  ErrorCode.ERROR_CODE_TEXT_TOO_LARGE, ErrorCode.ERROR_CODE_NOT_A_MEMBER, ErrorCode.ERROR_CODE_BAD_CONVERSATION,
  ErrorCode.ERROR_CODE_BAD_TIMESTAMP,
]);

/** Codes a room request or key lookup may be refused with. */
export const REQUEST_REFUSALS: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.ERROR_CODE_BAD_CONVERSATION, ErrorCode.ERROR_CODE_NOT_A_MEMBER, ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS,
  ErrorCode.ERROR_CODE_BAD_FRAME, ErrorCode.ERROR_CODE_RATE_LIMITED,
]);

/** The canonical bytes of an envelope (what two envelopes with the same fields share). */
export function canonicalEnvelope(e: Envelope | undefined): Buffer {
  return Buffer.from(Envelope.encode(e ?? Envelope.fromPartial({})).finish());
}

/** A frame of case c (matching pred), or the stream's end, whichever comes first, within timeoutMs. */
export type FrameOrEnd<C extends ResponseCase> =
  | { readonly frame: ResponseOf<C>; readonly ended?: undefined }
  | { readonly frame?: undefined; readonly ended: EndStatus };

export async function frameOrEnd<C extends ResponseCase>(
  s: RawSession, c: C, pred: (v: ResponseOf<C>) => boolean, timeoutMs: number,
): Promise<FrameOrEnd<C>> {
  try {
    const frame: ResponseOf<C> = await s.next(c, pred, timeoutMs);
    return { frame, ended: undefined };
  } catch (e) {
    if (s.isEnded) return { ended: await s.ended };
    throw e;
  }
}
