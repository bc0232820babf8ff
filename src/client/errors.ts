// What the relay's refusals mean to the user. A refusal carries a protocol ErrorCode and the
// relay's own sentence (PROTOCOL.md §7.4); the relay's sentence wins when there is one.
import { ErrorCode } from "../gen/securechat/v1/chat.js";
import { sanitizeLine } from "../protocol/sanitize.js";

/** The user-facing sentence for a relay refusal. */
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
