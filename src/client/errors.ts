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
  /** The relay refused a request or a message (PROTOCOL.md §9); `detail` is its sanitised sentence. */
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
  | { readonly kind: "no-key-change"; readonly username: string };

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
        : `${about.username}'s keys changed: the room goes on, but ${about.username} does not receive what you send here, and ${about.username}'s messages here are held, until you decide`;
    default: {
      const never: never = about;
      return never;
    }
  }
}
