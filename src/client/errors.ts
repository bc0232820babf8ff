// The client's errors as data: a kind the UI can tell apart, and what it is about (a username, a
// room, the relay's ErrorCode). No sentence here names a UI command: the TUI writes its own
// sentences and hints (src/tui/commands/error-text.ts). describeClientError gives a plain
// sentence for logs, for a message's failure line, and for callers without a UI of their own.
import { ErrorCode } from "../gen/securechat/v1/chat.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import type { NoticeAbout } from "./types.js";

export type ClientError =
  // The connection
  | { readonly kind: "not-connected" }
  | { readonly kind: "closed" }
  | { readonly kind: "already-connected" }
  | { readonly kind: "no-answer" }
  | { readonly kind: "connection-lost" }
  | { readonly kind: "unexpected-answer" }
  /** The relay refused a request or a message (PROTOCOL.md §13); `detail` is its sanitised sentence. */
  | { readonly kind: "refused"; readonly code: ErrorCode; readonly detail: string }
  // Names
  | { readonly kind: "invalid-username"; readonly name: string }
  | { readonly kind: "invalid-room"; readonly room: string; readonly reason: string }
  // Sending
  | { readonly kind: "unknown-conversation"; readonly conversationId: string }
  | { readonly kind: "empty-message" }
  | { readonly kind: "invalid-characters" }
  | { readonly kind: "too-large"; readonly bytes: number; readonly max: number }
  | { readonly kind: "not-your-conversation" }
  /** A peer's keys changed and the user has not decided yet (§6): nothing goes to them. */
  | { readonly kind: "key-changed"; readonly username: string }
  /** Not in that room: to send there, or to leave it. */
  | { readonly kind: "not-a-member"; readonly room: string; readonly action: "send" | "leave" }
  | { readonly kind: "topic-outside-room" }
  | { readonly kind: "away-outside-dm" }
  | { readonly kind: "not-failed" }
  | { readonly kind: "unknown-user"; readonly username: string }
  /**
   * No keys pinned for a user yet. `why`: "fetching" (asked the relay now), "no-answer" or
   * "not-connected" (the lookup failed), "not-pinned" (never looked up), "try-again" (a room member
   * whose keys did not come in time).
   */
  | { readonly kind: "keys-not-fetched"; readonly username: string; readonly why: "fetching" | "no-answer" | "not-connected" | "not-pinned" | "try-again" }
  /** The relay served keys for this user that failed the checks: never sealed to. */
  | { readonly kind: "invalid-keys"; readonly username: string }
  | { readonly kind: "too-many-recipients"; readonly count: number; readonly max: number }
  // Trust decisions (§6)
  | { readonly kind: "self"; readonly action: "verify" | "trust" | "accept" }
  | { readonly kind: "digits-missing"; readonly username: string; readonly groups: number }
  | { readonly kind: "digits-mismatch"; readonly username: string; readonly newKeys: boolean }
  | { readonly kind: "keys-changed-meanwhile"; readonly username: string; readonly action: "trust" | "accept" }
  | { readonly kind: "no-key-change"; readonly username: string }
  // Protocol v2 room membership (PROTOCOL.md §7)
  /** Only the room's creator removes others (`creator` when known); nothing changed. */
  | { readonly kind: "not-the-creator"; readonly room: string; readonly creator?: string }
  /** The relay holds no KeyPackage for this user (never online with a v2 client, or all used): cannot be added yet. */
  | { readonly kind: "no-key-package"; readonly username: string }
  /** Devices (PROTOCOL.md §4.5): /devices or /unlink could not be done; `detail` is the client's own sentence. */
  | { readonly kind: "device"; readonly detail: string }
  /** Adding someone who is already a member. */
  | { readonly kind: "already-in-room"; readonly room: string; readonly username: string }
  /** Removing someone who is not a member. */
  | { readonly kind: "not-in-room"; readonly room: string; readonly username: string };

/**
 * Why a session ended or could not start (PROTOCOL.md §9.3): the reason the
 * status shows while reconnecting, and the cause when the client stops for good. Data only; the
 * UI adds what to type about it (src/tui/commands/error-text.ts, sessionEndText).
 */
export type SessionEnd =
  /** The stream ended without a status (the relay closed it). */
  | { readonly kind: "relay-closed" }
  | { readonly kind: "unreachable" }
  | { readonly kind: "cancelled" }
  /** Any other end of the stream, with its sanitised sentence. */
  | { readonly kind: "stream-error"; readonly detail: string }
  /**
   * The relay refused the attempt for a rate (RATE_LIMITED, PROTOCOL.md §9.3): this device opened
   * sessions too often, or its address registered too many names. `detail` is its sentence;
   * `retryAfterMs` its retry-after trailer, when sent (the client waits at least that). Retried.
   */
  | { readonly kind: "rate-limited"; readonly detail: string; readonly retryAfterMs?: number }
  /** The name is bound to another key (§8 step 4); the relay operator's command that releases it. Retried. */
  | { readonly kind: "name-taken"; readonly username: string; readonly operatorCommand: string }
  /** Another session of the same user took over (SESSION_REPLACED). Final. */
  | { readonly kind: "replaced"; readonly username: string }
  /** The relay refused this identity for good (bad name, bad key, bad proof, key/name limit); `detail` is its sentence. */
  | { readonly kind: "identity-refused"; readonly detail: string }
  /** Something else answers on the port (`what` says what). Final. */
  | { readonly kind: "not-a-relay"; readonly address: string; readonly what: string }
  /** The address answered the TLS first contact with something that is not TLS. Final. */
  | { readonly kind: "not-tls"; readonly address: string }
  /** A pinned relay presented another certificate (§8 TLS pinning). Final. */
  | { readonly kind: "certificate-changed"; readonly address: string; readonly presentedSha256: string; readonly pinnedSha256: string; readonly pinnedAtMs: number }
  /** First contact, with a certificate other than the one the user said to accept. Final. */
  | { readonly kind: "certificate-not-accepted"; readonly address: string; readonly presentedSha256: string; readonly acceptedSha256: string }
  /**
   * The relay refused this client's protocol version and speaks a newer one (PROTOCOL.md §14):
   * this client must be upgraded. Final (retrying cannot help).
   */
  | { readonly kind: "protocol-too-old"; readonly relayVersion: number }
  /** The relay refused this client's protocol version and speaks only an older one: the relay must be upgraded. Final. */
  | { readonly kind: "relay-too-old"; readonly relayVersion: number; readonly clientVersion: number };

/** What a request to reconnect now did. */
export type ReconnectStart = "connecting-again" | "reconnecting-now" | "already-connecting";

/** The operator's command that releases a name bound to a lost key (src/server/users-command.ts). */
export function releaseCommand(username: string): string {
  return `chat-relay users release ${username}`;
}

function day(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * How to install the release that speaks protocol `version`. Made here from the number alone,
 * never taken from the relay's sentence: a relay must not be able to name a package to install.
 */
export function upgradeCommand(version: number): string {
  return `npm install -g secure-chat@${version}`;
}

/** A plain sentence for why a session ended, naming no UI command or option. */
export function describeSessionEnd(e: SessionEnd): string {
  switch (e.kind) {
    case "relay-closed": return "the relay closed the connection";
    case "unreachable": return "relay unreachable";
    case "cancelled": return "connection cancelled";
    case "stream-error": return e.detail;
    case "rate-limited": return e.detail.length > 0 ? e.detail : "the relay asks this client to wait before connecting again";
    case "name-taken":
      return `the name '${e.username}' is taken on this relay by another key. Lost your key? Ask the relay's operator to run: ${e.operatorCommand} (retrying until then)`;
    case "replaced": return `another session of ${e.username} replaced this one`;
    case "identity-refused": return e.detail.length > 0 ? e.detail : "the relay refused this identity";
    case "not-a-relay": return `${e.address} is not a secure-chat relay (${e.what})`;
    case "not-tls": return `${e.address} does not speak TLS`;
    case "certificate-changed":
      return `the relay at ${e.address} presented a certificate (SHA-256 ${e.presentedSha256}) other than the one pinned on ${day(e.pinnedAtMs)} ` +
        `(${e.pinnedSha256.slice(0, 16)}…), so someone may be intercepting the connection`;
    case "certificate-not-accepted":
      return `the relay at ${e.address} presented the certificate ${e.presentedSha256}, not the one this client was told to accept (${e.acceptedSha256})`;
    case "protocol-too-old":
      return `this relay speaks secure-chat protocol v${e.relayVersion}: upgrade your client (${upgradeCommand(e.relayVersion)})`;
    case "relay-too-old":
      return `this relay speaks only secure-chat protocol v${e.relayVersion} and this client speaks v${e.clientVersion}: ` +
        `the relay's operator must upgrade it (${upgradeCommand(e.clientVersion)})`;
    default: {
      const never: never = e;
      return never;
    }
  }
}

/** The plain sentence for what a request to reconnect now did. */
export function describeReconnectStart(r: ReconnectStart): string {
  switch (r) {
    case "connecting-again": return "connecting to the relay again";
    case "reconnecting-now": return "reconnecting now instead of waiting";
    case "already-connecting": return "already connecting to the relay";
    default: {
      const never: never = r;
      return never;
    }
  }
}

/** Every kind of ClientError (the Record makes the compiler keep this list complete). */
const KINDS: Record<ClientError["kind"], true> = {
  "not-connected": true, "closed": true, "already-connected": true, "no-answer": true, "connection-lost": true,
  "unexpected-answer": true, "refused": true, "invalid-username": true, "invalid-room": true, "unknown-conversation": true,
  "empty-message": true, "invalid-characters": true, "too-large": true, "not-your-conversation": true, "key-changed": true,
  "not-a-member": true, "topic-outside-room": true, "away-outside-dm": true, "not-failed": true, "unknown-user": true,
  "keys-not-fetched": true, "invalid-keys": true, "too-many-recipients": true, "self": true, "digits-missing": true,
  "digits-mismatch": true, "keys-changed-meanwhile": true, "no-key-change": true,
  "not-the-creator": true, "no-key-package": true, "already-in-room": true, "not-in-room": true, "device": true,
};

/**
 * A ClientError read back from the history file (JSON), or undefined when it is not one: a known
 * kind, with only plain values, strings sanitised and bounded (the file is local, but its
 * failure column is not sealed).
 */
export function parseStoredError(json: string): ClientError | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const kind = (value as { kind?: unknown }).kind;
  if (typeof kind !== "string" || !Object.hasOwn(KINDS, kind)) return undefined;
  const fields: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === "string") fields[k] = sanitizeLine(v).slice(0, 300);
    else if (typeof v === "number" || typeof v === "boolean") fields[k] = v;
    else return undefined;
  }
  return fields as unknown as ClientError;
}

/** The sentence for a relay refusal: the relay's own when it gave one. */
export function describeRefusal(code: ErrorCode, detail: string): string {
  const d = sanitizeLine(detail).slice(0, 300);
  const generic: Partial<Record<ErrorCode, string>> = {
    [ErrorCode.ERROR_CODE_RATE_LIMITED]: "sending too fast; wait a moment and retry",
    [ErrorCode.ERROR_CODE_QUEUE_FULL]: "a recipient's offline queue is full",
    [ErrorCode.ERROR_CODE_TEXT_TOO_LARGE]: "message too large for this relay",
    [ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS]: "too many recipients for this relay",
    [ErrorCode.ERROR_CODE_STALE_RECIPIENT_KEY]: "a recipient's key changed on the relay",
    [ErrorCode.ERROR_CODE_UNKNOWN_RECIPIENT]: "unknown recipient",
    [ErrorCode.ERROR_CODE_NOT_A_MEMBER]: "not a member of that room",
    [ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE]: "the relay cannot store messages right now",
  };
  return d.length > 0 ? d : generic[code] ?? "refused by the relay";
}

/** A refusal from the relay, as a ClientError (the detail sanitised and bounded). */
export function refused(code: ErrorCode, detail: string): ClientError {
  return { kind: "refused", code, detail: sanitizeLine(detail).slice(0, 300) };
}

function shown(name: string): string {
  return sanitizeLine(name).slice(0, 40);
}

/** A plain sentence for the error, naming no UI command (logs, failure lines, library callers). */
export function describeClientError(e: ClientError): string {
  switch (e.kind) {
    case "not-connected": return "not connected to the relay";
    case "closed": return "the session is closed";
    case "already-connected": return "already connected to the relay";
    case "no-answer": return "the relay did not answer in time";
    case "connection-lost": return "the connection to the relay was lost";
    case "unexpected-answer": return "unexpected answer from the relay";
    case "refused": return describeRefusal(e.code, e.detail);
    case "invalid-username": return `'${shown(e.name)}' is not a valid username`;
    case "invalid-room": return e.reason;
    case "unknown-conversation": return `unknown conversation '${shown(e.conversationId)}'`;
    case "empty-message": return "nothing to send";
    case "invalid-characters": return "the message contains invalid characters";
    case "too-large": return `the message is ${e.bytes} bytes; this relay accepts at most ${e.max}`;
    case "not-your-conversation": return "that is not one of your conversations";
    case "key-changed": return `${e.username}'s key changed and you have not decided yet: compare safety numbers, then trust or accept the new key`;
    case "not-a-member": return `you are not in ${e.room}`;
    case "topic-outside-room": return "a topic belongs to a room";
    case "away-outside-dm": return "an away reply goes to one person";
    case "not-failed": return "that message has not failed (or is too old to retry)";
    case "unknown-user": return `no user '${e.username}' on this relay`;
    case "keys-not-fetched":
      switch (e.why) {
        case "fetching": return `fetching ${e.username}'s keys from the relay; ask again in a moment`;
        case "no-answer": return `${e.username}'s keys could not be fetched from the relay (no answer)`;
        case "not-connected": return `${e.username}'s keys could not be fetched from the relay (not connected)`;
        case "not-pinned": return `no keys known for ${e.username}`;
        case "try-again": return `no keys known for ${e.username}; try again in a moment`;
        default: {
          const never: never = e.why;
          return never;
        }
      }
    case "invalid-keys": return `the relay sent invalid keys for ${e.username}: not sending (it may be attacking you)`;
    case "too-many-recipients": return `${e.count} recipients; this relay allows at most ${e.max}`;
    case "self": return e.action === "trust" ? "you cannot trust yourself" : e.action === "accept" ? "that is you: your own keys need no accepting" : "that is you";
    case "digits-missing": return `trusting ${e.username} needs the digits you compared (${e.groups} groups)`;
    case "digits-mismatch": return `those digits do not match ${e.username}'s ${e.newKeys ? "new " : ""}keys as they are now: nothing was trusted`;
    case "keys-changed-meanwhile": return `${e.username}'s keys changed meanwhile: nothing was ${e.action === "trust" ? "trusted" : "accepted"}`;
    case "no-key-change": return `${e.username}'s keys have not changed: nothing to accept`;
    case "not-the-creator":
      return e.creator === undefined
        ? `only the creator of ${shown(e.room)} can remove its members`
        : `only ${shown(e.creator)}, who created ${shown(e.room)}, can remove its members`;
    case "no-key-package":
      return `${shown(e.username)} cannot be added yet: the relay holds no key package for them (they have never connected to it, or the name is unknown there)`;
    case "already-in-room": return `${shown(e.username)} is already in ${shown(e.room)}`;
    case "device": return sanitizeLine(e.detail);
    case "not-in-room": return `${shown(e.username)} is not in ${shown(e.room)}`;
    default: {
      const never: never = e;
      return never;
    }
  }
}

/** The client's plain sentence for a notice about something the UI may word with its own hints. */
export function describeNotice(about: NoticeAbout): string {
  switch (about.kind) {
    case "nobody-online":
      return about.connected
        ? "nobody else is online, so nobody will read that: the lobby reaches people online when you send"
        : "not connected, and nobody was known to be online, so nobody will read that";
    case "not-sent-to":
      return `not sent to ${about.usernames.join(", ")}: ${about.usernames.length === 1 ? "their keys" : "each one's keys"} changed and you have not decided yet`;
    case "room-key-changed":
      return about.again
        ? `${about.username}'s keys changed AGAIN before you decided: compare again`
        : `${about.username}'s keys changed: the room goes on with the ${about.username} already in it (the key you had pinned); the new key cannot join it until you decide`;
    case "session-ended":
      return describeSessionEnd(about.cause);
    default: {
      const never: never = about;
      return never;
    }
  }
}
