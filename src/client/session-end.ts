// Why a session ended, and what the client does about it (PROTOCOL.md §9.3):
// retry with backoff, retry while saying the name is taken, or stop for good. The relay names
// the reason in the `securechat-error-code` trailer of every status it ends a stream with; the
// client decides from that trailer, and from the gRPC status code only when the trailer is
// absent (an older relay, or a proxy in between that ended the call itself).
import type { ServiceError } from "@grpc/grpc-js";
import { ErrorCode, errorCodeFromJSON } from "../gen/securechat/v1/chat.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import { describeSessionEnd, releaseCommand, type SessionEnd } from "./errors.js";
import { grpcStatus, isServiceError } from "./transport.js";

/** The trailer naming the ErrorCode of a status the relay ended the stream with (its enum name). */
export const ERROR_CODE_TRAILER = "securechat-error-code";
/** The trailer of a rate refusal (PROTOCOL.md §9.3): milliseconds until the relay would take the attempt. */
export const RETRY_AFTER_TRAILER = "securechat-retry-after-ms";
/** The longest retry-after the client honours: a relay cannot park a client for longer than this. */
export const MAX_RETRY_AFTER_MS = 10 * 60 * 1000;

/** A session-ending condition that retrying will not fix; `end` says which, as data. */
export class FatalSessionError extends Error {
  constructor(readonly end: SessionEnd) {
    super(describeSessionEnd(end));
  }
}

/**
 * The relay binds the name to another key (PROTOCOL.md §9.1 step 4). Not final: after a lost key the
 * relay's operator releases the name, and the client, retrying with backoff, then claims it.
 */
export class NameTakenError extends Error {
  readonly end: SessionEnd;
  constructor(me: string) {
    const end: SessionEnd = { kind: "name-taken", username: me, operatorCommand: releaseCommand(me) };
    super(describeSessionEnd(end));
    this.end = end;
  }
}

/**
 * The relay refused the attempt for a rate (RATE_LIMITED before Welcome, PROTOCOL.md §9.3): retried
 * with backoff, and not before its retry-after; said once in the conversation.
 */
export class RateLimitedError extends Error {
  readonly end: SessionEnd;
  constructor(detail: string, readonly retryAfterMs: number | undefined) {
    const end: SessionEnd = { kind: "rate-limited", detail, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
    super(describeSessionEnd(end));
    this.end = end;
  }
}

/**
 * The retry-after trailer of a status: whole milliseconds, at most MAX_RETRY_AFTER_MS; undefined
 * when absent or not a plain decimal number.
 */
export function retryAfterOf(e: ServiceError): number | undefined {
  const value = e.metadata?.get(RETRY_AFTER_TRAILER)[0];
  if (typeof value !== "string" || !/^\d{1,12}$/.test(value)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Number(value));
}

/**
 * The ErrorCode in the status's trailer; undefined when there is none (not our relay, or a
 * proxy answered) or it names no code this client knows.
 */
export function relayErrorCode(e: ServiceError): ErrorCode | undefined {
  const value = e.metadata?.get(ERROR_CODE_TRAILER)[0];
  if (typeof value !== "string") return undefined;
  const code = errorCodeFromJSON(value);
  return code === ErrorCode.UNRECOGNIZED || code === ErrorCode.ERROR_CODE_UNSPECIFIED ? undefined : code;
}

/** Codes that end a session for a reason retrying cannot fix (the identity was refused, or replaced). */
const FINAL: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.ERROR_CODE_USERNAME_INVALID,
  ErrorCode.ERROR_CODE_BAD_KEY,
  ErrorCode.ERROR_CODE_PROOF_INVALID,
  ErrorCode.ERROR_CODE_KEY_NAME_LIMIT,
  // A linked device no longer (or never) in its user's device list (PROTOCOL.md §4.5).
  ErrorCode.ERROR_CODE_DEVICE_UNKNOWN,
]);

/** Codes of a passing condition (busy, full, shutting down, too slow): retried with backoff. */
const PASSING: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.ERROR_CODE_TOO_MANY_SESSIONS,
  ErrorCode.ERROR_CODE_RATE_LIMITED,
  ErrorCode.ERROR_CODE_FRAME_TOO_LARGE,
  ErrorCode.ERROR_CODE_SHUTTING_DOWN,
  ErrorCode.ERROR_CODE_SLOW_CONSUMER,
  ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE,
]);

function detailsOf(e: ServiceError): string {
  return sanitizeLine(e.details || "").slice(0, 200);
}

/**
 * The relay refused the Hello's protocol version (PROTOCOL.md §14), read from its sentence: the
 * refusal has no code of its own (it is BAD_FRAME), so the sentence says which side is older.
 * - A v2 (or later) relay: "this relay speaks secure-chat protocol v2: upgrade your client (…)".
 * - A v1 relay: "protocol version 2 is not supported: this relay speaks version 1".
 * Undefined for any other sentence. Only the version numbers are taken from it (small integers):
 * the sentence shown is the client's own (describeSessionEnd), so a relay cannot name what to install.
 */
export function protocolRefusal(detail: string): SessionEnd | undefined {
  const newer = /\bthis relay speaks secure-chat protocol v(\d{1,3})\b.*\bupgrade your client\b/i.exec(detail);
  if (newer !== null) {
    const relayVersion = Number(newer[1]);
    return relayVersion >= 2 ? { kind: "protocol-too-old", relayVersion } : undefined;
  }
  const v1 = /\bprotocol version (\d{1,3}) is not supported: this relay speaks version (\d{1,3})\b/i.exec(detail);
  if (v1 !== null) {
    const clientVersion = Number(v1[1]);
    const relayVersion = Number(v1[2]);
    if (relayVersion > clientVersion) return { kind: "protocol-too-old", relayVersion };
    if (relayVersion < clientVersion && relayVersion >= 1) return { kind: "relay-too-old", relayVersion, clientVersion };
  }
  return undefined;
}

/** A session that ended before Welcome: name taken, refused for good, or worth another try. */
export function classifyHandshakeError(e: unknown, me: string): Error {
  if (isServiceError(e)) {
    const code = relayErrorCode(e);
    // A refused protocol version is final whatever the gRPC status says (retrying sends the same
    // Hello again): read before the status decides (BAD_FRAME alone does not).
    if (code === undefined || code === ErrorCode.ERROR_CODE_BAD_FRAME) {
      const refusal = protocolRefusal(detailsOf(e));
      if (refusal !== undefined) return new FatalSessionError(refusal);
    }
    if (code === ErrorCode.ERROR_CODE_USERNAME_TAKEN) return new NameTakenError(me);
    if (code === ErrorCode.ERROR_CODE_SESSION_REPLACED) return replaced(me);
    if (code === ErrorCode.ERROR_CODE_RATE_LIMITED) return new RateLimitedError(detailsOf(e), retryAfterOf(e));
    if (code !== undefined && FINAL.has(code)) return new FatalSessionError({ kind: "identity-refused", detail: detailsOf(e) });
    if (code !== undefined && PASSING.has(code)) return e;
    // No trailer, or one that does not decide (BAD_FRAME: a malformed frame, or too slow a handshake).
    switch (e.code) {
      case grpcStatus.ALREADY_EXISTS:
        return new NameTakenError(me);
      case grpcStatus.UNAUTHENTICATED:
      case grpcStatus.INVALID_ARGUMENT:
      case grpcStatus.PERMISSION_DENIED:
        return new FatalSessionError({ kind: "identity-refused", detail: detailsOf(e) });
      default:
        return e;
    }
  }
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * A session that ended after Welcome: final when replaced by another session, or when the relay
 * ended it because my primary unlinked this device (DEVICE_UNKNOWN, PROTOCOL.md §4.5): a retry
 * would only be refused again, with a vaguer sentence in place of the relay's "was unlinked".
 */
export function classifySessionError(e: unknown, me: string): unknown {
  if (!isServiceError(e)) return e;
  const code = relayErrorCode(e);
  if (code === ErrorCode.ERROR_CODE_SESSION_REPLACED) return replaced(me);
  if (code === ErrorCode.ERROR_CODE_DEVICE_UNKNOWN) return new FatalSessionError({ kind: "identity-refused", detail: detailsOf(e) });
  if (code === undefined && e.code === grpcStatus.ABORTED) return replaced(me);
  return e;
}

/**
 * Another session of the same user took over (SESSION_REPLACED). Reconnecting would take it
 * back, and the two would replace each other forever.
 */
function replaced(me: string): FatalSessionError {
  return new FatalSessionError({ kind: "replaced", username: me });
}

/**
 * Why a session ended, as the status shows it while reconnecting. An UNAVAILABLE the relay ended
 * the stream with itself (its ErrorCode trailer and a sentence: its storage is unreachable, it is
 * shutting down) shows the relay's sentence, sanitised; only an UNAVAILABLE without one (the
 * connection failed or dropped, a proxy answered) is "relay unreachable".
 */
export function sessionEndOf(e: unknown): SessionEnd {
  if (e instanceof NameTakenError || e instanceof FatalSessionError || e instanceof RateLimitedError) return e.end;
  if (isServiceError(e)) {
    if (e.code === grpcStatus.UNAVAILABLE) {
      const detail = relayErrorCode(e) === undefined ? "" : detailsOf(e);
      return detail.length > 0 ? { kind: "stream-error", detail } : { kind: "unreachable" };
    }
    if (e.code === grpcStatus.CANCELLED) return { kind: "cancelled" };
    return { kind: "stream-error", detail: sanitizeLine(e.details || e.message).slice(0, 200) };
  }
  // As a failed gRPC connection says it (relay-transport.ts, the TLS first contact).
  if (e instanceof Error && e.message === "relay unreachable") return { kind: "unreachable" };
  return { kind: "stream-error", detail: sanitizeLine(e instanceof Error ? e.message : String(e)).slice(0, 300) };
}
