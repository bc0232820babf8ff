// The relay's error kinds and their mapping to gRPC statuses and protocol ErrorCodes, in one
// place. Two kinds cross the wire:
//   - SessionEnd: the stream ends with a gRPC status (details = one sentence) and a trailer
//     `securechat-error-code` naming the ErrorCode, so clients can tell "username taken" (do not
//     retry) from "relay shutting down" (retry) without parsing sentences;
//   - Refusal: one request is refused (SendResult REFUSED or RequestError); the session goes on.
// Anything else is a relay bug: the client sees INTERNAL "internal relay error", never a stack.
import { Metadata, status as GrpcStatus, type StatusObject } from "@grpc/grpc-js";
import { ErrorCode, errorCodeToJSON } from "../gen/securechat/v1/chat.js";
import { isProtocolError } from "../protocol/errors.js";
import { isUnreachable } from "./cluster-store-guard.js";
import { SQLITE_FULL, SQLITE_IOERR, sqliteErrorCode } from "./store.js";
import { PgError } from "./store/pg/sync-client.js";

/** Trailer carrying the ErrorCode name (e.g. "ERROR_CODE_USERNAME_TAKEN") of a session-ending status. */
export const ERROR_CODE_TRAILER = "securechat-error-code";
/** Trailer of a rate refusal (PROTOCOL.md §9.3): milliseconds until the same attempt would be taken, decimal. */
export const RETRY_AFTER_TRAILER = "securechat-retry-after-ms";

/** Ends the session with a gRPC status. `message` is the sentence the client sees. */
export class SessionEnd extends Error {
  /**
   * @param retryAfterMs when the refusal is a rate (PROTOCOL.md §9.3): how long until the relay
   *   would take the same attempt, sent in the `securechat-retry-after-ms` trailer.
   */
  constructor(readonly grpcCode: GrpcStatus, readonly code: ErrorCode, message: string, readonly logReason?: string, readonly retryAfterMs?: number) {
    super(message);
    this.name = "SessionEnd";
  }
}

/** Refuses one request; the session continues. `message` is the sentence the client sees. */
export class Refusal extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = "Refusal";
  }
}

/** The ways a session ends, each with its status, code and sentence. */
export const sessionEnd = {
  malformedFrame: (why: string) => new SessionEnd(GrpcStatus.INVALID_ARGUMENT, ErrorCode.ERROR_CODE_BAD_FRAME, `malformed frame: ${why}`),
  outOfOrder: (why: string) => new SessionEnd(GrpcStatus.INVALID_ARGUMENT, ErrorCode.ERROR_CODE_BAD_FRAME, why),
  badProtocolVersion: (v: number, accepted: readonly number[]) =>
    new SessionEnd(GrpcStatus.INVALID_ARGUMENT, ErrorCode.ERROR_CODE_BAD_FRAME,
      v === 1 ? "this relay speaks secure-chat protocol v2: upgrade your client (npm install -g secure-chat@2)"
        : `protocol version ${v} is not supported: this relay speaks version${accepted.length > 1 ? "s" : ""} ${accepted.join(" and ")}`),
  usernameInvalid: (reason: string) => new SessionEnd(GrpcStatus.INVALID_ARGUMENT, ErrorCode.ERROR_CODE_USERNAME_INVALID, reason),
  badKey: (reason: string) => new SessionEnd(GrpcStatus.INVALID_ARGUMENT, ErrorCode.ERROR_CODE_BAD_KEY, reason),
  proofInvalid: (reason: string) => new SessionEnd(GrpcStatus.UNAUTHENTICATED, ErrorCode.ERROR_CODE_PROOF_INVALID, reason),
  usernameTaken: (name: string) =>
    new SessionEnd(GrpcStatus.ALREADY_EXISTS, ErrorCode.ERROR_CODE_USERNAME_TAKEN, `username '${name}' is taken by another key`),
  handshakeTimeout: (ms: number) =>
    new SessionEnd(GrpcStatus.DEADLINE_EXCEEDED, ErrorCode.ERROR_CODE_BAD_FRAME, `handshake not completed within ${ms / 1000} seconds`, "handshake-timeout"),
  preAuthFrameTooLarge: (bytes: number, limit: number) =>
    new SessionEnd(GrpcStatus.RESOURCE_EXHAUSTED, ErrorCode.ERROR_CODE_FRAME_TOO_LARGE,
      `frame too large: before the handshake completes this relay accepts frames of at most ${limit} bytes, and this one has ${bytes}`,
      "pre-auth-frame-too-large"),
  handshakesBusy: (limit: number) =>
    new SessionEnd(GrpcStatus.RESOURCE_EXHAUSTED, ErrorCode.ERROR_CODE_TOO_MANY_SESSIONS,
      `relay is busy: ${limit} handshakes are in progress, the most it takes at once; try again in a moment`, "handshakes-busy"),
  sourceBusy: (limit: number) =>
    new SessionEnd(GrpcStatus.RESOURCE_EXHAUSTED, ErrorCode.ERROR_CODE_TOO_MANY_SESSIONS,
      `too many handshakes from your address: ${limit} are in progress, the most this relay takes from one address; try again in a moment`,
      "source-busy"),
  keyNameLimit: (owned: readonly string[], limit: number) =>
    new SessionEnd(GrpcStatus.PERMISSION_DENIED, ErrorCode.ERROR_CODE_KEY_NAME_LIMIT,
      `this key already owns ${owned.length === 1 ? "the username" : "the usernames"} ${owned.slice(0, 3).map((n) => `'${n}'`).join(", ")}${owned.length > 3 ? ", ..." : ""} ` +
      `on this relay, and a key may own ${limit === 1 ? "only one" : `at most ${limit}`}; connect as ${owned.length === 1 ? `'${owned[0]}'` : "one of them"}, or make a new key for a new name`),
  registrationLimited: (retryAfterMs: number) =>
    new SessionEnd(GrpcStatus.RESOURCE_EXHAUSTED, ErrorCode.ERROR_CODE_RATE_LIMITED,
      `too many new usernames were registered from your address; try again in ${describeWait(retryAfterMs)}`, "registration-limited", retryAfterMs),
  /** This device (its key or its address) opened sessions too often lately (PROTOCOL.md §9.1 step 4, §13.3). */
  opensLimited: (retryAfterMs: number, burst: number, perMinute: number) =>
    new SessionEnd(GrpcStatus.RESOURCE_EXHAUSTED, ErrorCode.ERROR_CODE_RATE_LIMITED,
      `this device opened too many sessions lately: this relay takes ${burst} at once, then ${perMinute} per minute; try again in ${describeWait(retryAfterMs)}`,
      "opens-limited", retryAfterMs),
  relayFull: () => new SessionEnd(GrpcStatus.RESOURCE_EXHAUSTED, ErrorCode.ERROR_CODE_TOO_MANY_SESSIONS, "relay is full: too many sessions, try again later"),
  deviceUnknown: (name: string) =>
    new SessionEnd(GrpcStatus.PERMISSION_DENIED, ErrorCode.ERROR_CODE_DEVICE_UNKNOWN,
      `this device is not linked to ${name} (never linked, or unlinked): run chat-tui ${name} --link`),
  unlinked: (name: string) =>
    new SessionEnd(GrpcStatus.PERMISSION_DENIED, ErrorCode.ERROR_CODE_DEVICE_UNKNOWN, `this device was unlinked by ${name}'s primary device`),
  replaced: () => new SessionEnd(GrpcStatus.ABORTED, ErrorCode.ERROR_CODE_SESSION_REPLACED, "replaced by a newer session"),
  /** The operator released the name (chat-relay users release) while this key's session ran (PROTOCOL.md §8.2). */
  released: (name: string) =>
    new SessionEnd(GrpcStatus.PERMISSION_DENIED, ErrorCode.ERROR_CODE_USERNAME_TAKEN, `the name '${name}' was released by this relay's operator: this key no longer owns it`, "released"),
  shuttingDown: () => new SessionEnd(GrpcStatus.UNAVAILABLE, ErrorCode.ERROR_CODE_SHUTTING_DOWN, "relay shutting down"),
  slowConsumer: (why: string) =>
    new SessionEnd(GrpcStatus.RESOURCE_EXHAUSTED, ErrorCode.ERROR_CODE_SLOW_CONSUMER,
      `disconnected because this client reads too slowly (${why}); nothing is lost: its messages stay queued for the next connection`),
  /** The session cannot start because the relay's database is unreachable (many relays on one database). */
  storageUnreachable: () =>
    new SessionEnd(GrpcStatus.UNAVAILABLE, ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE,
      "the relay cannot reach its database right now; try again in a moment", "storage-unreachable"),
  /** The session cannot start because the relay could not write its storage (full, or an I/O error: PROTOCOL.md §13.2). */
  storageFailed: () =>
    new SessionEnd(GrpcStatus.UNAVAILABLE, ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE,
      "the relay's storage is full or failing, so it could not record this session; try again later", "storage-failed"),
  tooManyAcks: (n: number, max: number) =>
    new SessionEnd(GrpcStatus.INVALID_ARGUMENT, ErrorCode.ERROR_CODE_BAD_FRAME, `malformed frame: an Ack carries ${n} seqs (limit ${max})`),
} as const;

/** "40 seconds", "3 minutes": a wait as people say it. */
function describeWait(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  if (s < 90) return `${s} second${s === 1 ? "" : "s"}`;
  const m = Math.ceil(s / 60);
  return `${m} minutes`;
}

/** The status a stream ends with, for any error thrown while serving it. */
export function statusOf(err: unknown): StatusObject {
  if (err instanceof SessionEnd) return statusFor(err.grpcCode, err.message, err.code, err.retryAfterMs);
  // The database went away under a session (many relays on one database): not a relay bug, and
  // the client (or its next relay) should simply try again.
  if (isUnreachable(err)) return statusOf(sessionEnd.storageUnreachable());
  return statusFor(GrpcStatus.INTERNAL, "internal relay error");
}

export function statusFor(code: GrpcStatus, details: string, errorCode?: ErrorCode, retryAfterMs?: number): StatusObject {
  const metadata = new Metadata();
  if (errorCode !== undefined) metadata.set(ERROR_CODE_TRAILER, errorCodeToJSON(errorCode));
  if (retryAfterMs !== undefined) metadata.set(RETRY_AFTER_TRAILER, String(Math.max(0, Math.ceil(retryAfterMs))));
  return { code, details, metadata };
}

/** A short, stable reason for logs: the ErrorCode name, or the error's class for bugs. */
export function logReasonOf(err: unknown): string {
  if (err instanceof SessionEnd) return err.logReason ?? errorCodeToJSON(err.code);
  if (err instanceof Refusal) return errorCodeToJSON(err.code);
  if (isProtocolError(err)) return `protocol:${err.code}`;
  return err instanceof Error ? err.name : "unknown";
}

/** Handshake: a presented identity failed importPublicIdentity. */
export function handshakeEndOf(err: unknown): SessionEnd {
  if (isProtocolError(err, "bad-key")) return sessionEnd.badKey(err.message);
  if (isProtocolError(err, "bad-key-binding")) return sessionEnd.proofInvalid(err.message);
  if (isProtocolError(err, "malformed")) return sessionEnd.usernameInvalid(err.message);
  if (err instanceof SessionEnd) return err;
  return sessionEnd.badKey("the presented keys could not be checked");
}

/**
 * A request refused because the relay's database could not be reached (many relays on one
 * database): nothing of it was stored, and the database (or another relay) may be back soon.
 */
export function unreachableRefusal(): Refusal {
  return new Refusal(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE, "the relay cannot reach its database right now; nothing was stored, try again in a moment");
}

/**
 * SendEnvelope: the commit that was to store the envelope failed, so nothing of its batch was
 * stored. The sentence says why when it is known: the database cannot be reached, or SQLite
 * says so (full disk or quota, I/O error).
 */
export function storageRefusalOf(err: unknown): Refusal {
  if (isUnreachable(err)) return unreachableRefusal();
  const code = sqliteErrorCode(err);
  const why = code === SQLITE_FULL ? "its storage is full"
    : code === SQLITE_IOERR ? "it could not write to its disk"
    : "its storage failed";
  return new Refusal(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE, `the relay could not store the message because ${why}; it was not sent, try again later`);
}

/**
 * PostgreSQL SQLSTATEs that mean the database's storage failed, not the statement: class 53
 * (insufficient resources: 53100 disk_full, 53200 out_of_memory, 53400 configuration_limit_exceeded)
 * and class 58 (system error: 58030 io_error).
 */
function isPgStorageState(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith("53") || code.startsWith("58"));
}

/**
 * Whether a store call failed because of the relay's storage, not the request (PROTOCOL.md
 * §8.2, §13.2): the database unreachable (a shared one), full (SQLITE_FULL: the disk, or the
 * relay's database budget, §13.2; PostgreSQL's disk_full and the rest of class 53) or an I/O
 * error (SQLITE_IOERR, a failed WAL sync; PostgreSQL class 58). Such a failure refuses the one
 * request with STORAGE_UNAVAILABLE; the session goes on.
 */
export function isStorageFailure(err: unknown): boolean {
  if (isUnreachable(err)) return true;
  if (err instanceof PgError) return isPgStorageState(err.code);
  const code = sqliteErrorCode(err);
  return code === SQLITE_FULL || code === SQLITE_IOERR;
}

/**
 * Any request but a send (PROTOCOL.md §8.2, §13.2): the relay's storage failed under it
 * (isStorageFailure). One sentence naming the storage; nothing of the request was stored.
 */
export function requestStorageRefusalOf(err: unknown): Refusal {
  if (isUnreachable(err)) return unreachableRefusal();
  const full = sqliteErrorCode(err) === SQLITE_FULL || (err instanceof PgError && err.code?.startsWith("53") === true);
  return new Refusal(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE, full
    ? "the relay's storage is full, so it could not do this request; nothing was stored, try again later"
    : "the relay could not read or write its storage, so it could not do this request; nothing was stored, try again later");
}

/** The relay is stopping and stores nothing more. */
export function shuttingDownRefusal(): Refusal {
  return new Refusal(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE, "the relay is shutting down and did not store the message; it was not sent, try again later");
}

/** SendEnvelope: a ProtocolError from the shape checks. Recipient counts are checked before. */
export function envelopeRefusalOf(err: unknown): Refusal {
  if (err instanceof Refusal) return err;
  if (isProtocolError(err, "too-large")) return new Refusal(ErrorCode.ERROR_CODE_TEXT_TOO_LARGE, `message too large: ${err.message}`);
  if (isProtocolError(err)) return new Refusal(ErrorCode.ERROR_CODE_BAD_ENVELOPE, `malformed envelope: ${err.message}`);
  throw err;
}

/**
 * A request's failure as a refusal: a Refusal as it is; a failure of the relay's storage (a
 * shared database unreachable, a full disk or database budget, an I/O error: isStorageFailure)
 * as STORAGE_UNAVAILABLE for this request only, the session going on (PROTOCOL.md §8.2 "No DS
 * request ends the session", §13.2); anything else is a relay bug and is thrown (§9.3: INTERNAL).
 */
export function requestRefusalOf(e: unknown): Refusal {
  if (e instanceof Refusal) return e;
  if (isStorageFailure(e)) return requestStorageRefusalOf(e);
  throw e;
}
