// The sentences chat-tui shows for what the client reports as data: its errors
// (src/client/errors.ts) and the outcome of a trust decision, with the hints that name this UI's
// commands (/verify, /trust, /accept, /join, /topic, /fingerprint). The client says what
// happened; what to type about it is the UI's business.
import { describeClientError, describeReconnectStart, describeRefusal, describeSessionEnd, type ClientError, type ReconnectStart, type SessionEnd } from "../../client/errors.js";
import { sanitizeLine } from "../../protocol/sanitize.js";
import type { ChatMessage, ConnectionStatus, NoticeAbout, SessionEvent, TrustResult } from "../../client/types.js";

/** The UI's sentence for a notice the client reports as data (the same text as before issue 11). */
export function noticeText(about: NoticeAbout): string {
  switch (about.kind) {
    case "nobody-online":
      return about.connected
        ? "nobody else is online, so nobody will read that: the lobby reaches people online when you send; use /msg or a room for people who are away"
        : "not connected, and nobody was known to be online, so nobody will read that: use /msg or a room for messages that should wait";
    case "not-sent-to":
      return `not sent to ${about.usernames.join(", ")}: ${about.usernames.length === 1 ? "their keys" : "each one's keys"} changed and you have not decided yet (/verify ${about.usernames[0] ?? ""}, then /trust or /accept)`;
    case "room-key-changed":
      return about.again
        ? `${about.username}'s keys changed AGAIN before you decided: compare again with /verify ${about.username}`
        : `${about.username}'s keys changed: the room goes on with the ${about.username} already in it (the key you had pinned); the new key cannot join it until you decide (/verify ${about.username}, then /trust or /accept)`;
    case "session-ended":
      return sessionEndText(about.cause);
    default: {
      const never: never = about;
      return never;
    }
  }
}

/**
 * A session event as the screen words it: a notice about something known, and a failure with
 * its reason as data, get the UI's sentence. Every other notice of the session is made one safe
 * line (PROTOCOL.md §11.2): it may name what a peer or the relay chose, and a newline in it would
 * draw a row of their choosing (the UI's own notices, with their indented lists, do not come here).
 */
export function withUiText(event: SessionEvent): SessionEvent {
  if (event.type === "notice" && event.about !== undefined) return { ...event, text: noticeText(event.about) };
  if (event.type === "notice") {
    const line = sanitizeLine(event.text);
    return line === event.text ? event : { ...event, text: line };
  }
  if (event.type === "message-state" && event.error !== undefined) return { ...event, failure: errorText(event.error) };
  if (event.type === "connection") return { ...event, status: connectionWithUiText(event.status) };
  return event;
}

/** A kept message (the backlog at start) whose failure the client gave as data, in the UI's words. */
export function messageWithUiText(m: ChatMessage): ChatMessage {
  return m.error === undefined ? m : { ...m, failure: errorText(m.error) };
}

/** A connection status with its reason in the UI's words (the status line shows `reason`). */
export function connectionWithUiText(status: ConnectionStatus): ConnectionStatus {
  if ((status.state === "reconnecting" || status.state === "failed") && status.cause !== undefined) {
    return { ...status, reason: sessionEndText(status.cause) };
  }
  return status;
}

/**
 * Why the session ended, as the status line and the conversation say it: the client's sentence,
 * with what to do in this UI's terms (its command-line options, starting chat-tui).
 */
export function sessionEndText(e: SessionEnd): string {
  switch (e.kind) {
    case "replaced":
      // Not a second chat-tui of this key directory (its lock refuses that at start): the same
      // key file in use elsewhere, another machine or a copy of the directory.
      return `${describeSessionEnd(e)} (is chat-tui ${e.username} running with these keys elsewhere: on another machine, or from a copy of this key directory?)`;
    case "not-a-relay":
      return `${describeSessionEnd(e)}: check the address (--server host:port)`;
    case "not-tls":
      return `${describeSessionEnd(e)}: if it is a relay started with --insecure-plaintext, start chat-tui with --insecure-plaintext too; otherwise check the address (--server host:port)`;
    case "certificate-changed":
      return `${describeSessionEnd(e)}: only if the relay's operator confirms the new fingerprint (chat-relay fingerprint prints it), accept it with --accept-relay-cert ${e.presentedSha256}`;
    case "certificate-not-accepted":
      return `the relay at ${e.address} presented the certificate ${e.presentedSha256}, not the one given with --accept-relay-cert (${e.acceptedSha256})`;
    case "protocol-too-old":
      return `${describeSessionEnd(e)}, then start chat-tui again`;
    case "relay-too-old":
      return `${describeSessionEnd(e)}; or connect to a relay that speaks v${e.clientVersion} (--server host:port)`;
    // No hint to add: the client's plain sentence is the one shown (a taken name names the
    // relay operator's command, which is data from the client).
    case "relay-closed":
    case "unreachable":
    case "cancelled":
    case "stream-error":
    case "rate-limited":
    case "name-taken":
    case "identity-refused":
      return describeSessionEnd(e);
    default: {
      const never: never = e;
      return never;
    }
  }
}

/** What /reconnect did. */
export function reconnectText(r: ReconnectStart): string {
  return describeReconnectStart(r);
}

/**
 * What /trust or /accept did. Protocol v2 holds nothing (the new key was refused until now): the
 * new key may join conversations from now on, and what it sent before was not kept. Held messages
 * released are counted only by a v1 session.
 */
export function trustText(r: TrustResult): string {
  const parts: string[] = [];
  if (r.shown > 0) parts.push(`${r.shown} held message${r.shown === 1 ? "" : "s"} shown, in the order sent`);
  if (r.discarded > 0) {
    parts.push(`${r.discarded} held message${r.discarded === 1 ? " was" : "s were"} discarded: not signed by the key you accepted, or no longer valid`);
  }
  if (r.keyChange && parts.length === 0) parts.push(`from now on it may join your conversations; anything it sent before was refused (ask ${r.username} to send it again)`);
  const released = parts.length > 0 ? `; ${parts.join("; ")}` : "";
  if (!r.verified) return `continuing with ${r.username}'s new key, NOT verified (compare with /verify ${r.username} when you can)${released}`;
  if (r.keyChange) return `${r.username}'s new key is now trusted and marked verified ✓${released}`;
  return `${r.username} is now marked verified ✓`;
}

/** A name from the client's data, as a hint shows it (one line, bounded: the session's names are checked, but not trusted here). */
function shownName(name: string): string {
  return sanitizeLine(name).slice(0, 40);
}

export function errorText(e: ClientError): string {
  switch (e.kind) {
    case "refused":
      return describeRefusal(e.code, e.detail);
    case "key-changed":
      return `${e.username}'s key changed: compare safety numbers with /verify ${e.username} (it shows the /trust command), or /accept ${e.username} to continue unverified`;
    case "not-a-member":
      return e.action === "send" ? `you are not in ${e.room}: /join ${e.room} first` : `you are not in ${e.room}`;
    case "topic-outside-room":
      return "a topic belongs to a room: /topic works inside a room";
    case "keys-not-fetched":
      switch (e.why) {
        case "fetching":
          return `fetching ${e.username}'s keys from the relay; run /verify ${e.username} again in a moment`;
        case "no-answer":
        case "not-connected":
          return `${e.username}'s keys could not be fetched from the relay (${e.why === "no-answer" ? "no answer" : "not connected"}); try /verify ${e.username} again later`;
        case "not-pinned":
          return `no keys known for ${e.username}: run /verify ${e.username} first`;
        case "try-again":
          return describeClientError(e);
        default: {
          const never: never = e.why;
          return never;
        }
      }
    case "self":
      return e.action === "verify" ? "that is you: use /fingerprint to see your own keys" : describeClientError(e);
    case "digits-missing":
      return `/trust needs the digits you compared: /verify ${e.username} shows the exact command (/trust ${e.username} followed by ${e.groups} groups of digits)`;
    case "digits-mismatch":
      return `those digits do not match ${e.username}'s ${e.newKeys ? "new " : ""}keys as they are now (they may have changed since you ran /verify): nothing was trusted; run /verify ${e.username} again and compare`;
    case "keys-changed-meanwhile":
      return e.action === "trust" ? `${e.username}'s keys changed meanwhile: run /verify ${e.username} again` : describeClientError(e);
    case "no-key-change":
      return `${e.username}'s keys have not changed: nothing to accept (/verify ${e.username} to compare safety numbers)`;
    case "no-key-package":
      // /invite, and also a DM's first message to someone never seen: words for both, no command.
      return `nothing can be encrypted for ${shownName(e.username)} yet: the relay holds no key package for them (they have never connected to it, or the name is unknown there); ${shownName(e.username)} needs to start chat-tui once, then try again`;
    // No hint to add: the client's plain sentence is the one shown.
    case "device":
    case "not-connected":
    case "closed":
    case "already-connected":
    case "no-answer":
    case "connection-lost":
    case "unexpected-answer":
    case "invalid-username":
    case "invalid-room":
    case "unknown-conversation":
    case "empty-message":
    case "invalid-characters":
    case "too-large":
    case "not-your-conversation":
    case "away-outside-dm":
    case "not-failed":
    case "unknown-user":
    case "invalid-keys":
    case "too-many-recipients":
    case "not-the-creator":
    case "already-in-room":
    case "not-in-room":
      return describeClientError(e);
    default: {
      const never: never = e;
      return never;
    }
  }
}
