// The sentences chat-tui shows for the client's errors (src/client/errors.ts), with the hints
// that name this UI's commands (/verify, /trust, /accept, /join, /topic, /fingerprint). The
// client says what went wrong as data; what to type about it is the UI's business.
import { describeClientError, describeRefusal, type ClientError } from "../../client/errors.js";

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
    // No hint to add: the client's plain sentence is the one shown.
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
      return describeClientError(e);
    default: {
      const never: never = e;
      return never;
    }
  }
}
