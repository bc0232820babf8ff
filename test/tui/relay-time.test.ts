// The relay's time beside the sender's claim (issue 9 §5): a message whose claimed sent_at
// differs from when the relay accepted it by more than a minute shows both.
import { describe, expect, it } from "vitest";
import type { ChatMessage } from "../../src/client/types.js";
import type { Entry } from "../../src/tui/state/state.js";
import { rowText } from "../../src/tui/view/row.js";
import { entryRows, type ScrollbackContext } from "../../src/tui/view/scrollback-rows.js";

const utcClock = (ms: number) => new Date(ms).toISOString().slice(11, 16);
const ctx: ScrollbackContext = { width: 60, me: "alice", nickWidth: 5, formatTime: utcClock };
const T = Date.UTC(2026, 11, 6, 12, 1);

function message(extra: Partial<ChatMessage>): Entry {
  return { kind: "message", seq: 1, message: { id: "01", conversationId: "lobby", from: "bob", kind: "text", text: "hello", sentAtMs: T, receivedAtMs: T, own: false, ...extra } };
}

describe("relay time", () => {
  it("shows the relay's time and the claimed one when they differ by more than a minute", () => {
    expect(entryRows(message({ sentAtMs: T - 21 * 60_000, relayAtMs: T }), ctx).map(rowText)).toEqual(["12:01 bob    (sent 11:40) hello"]);
    // A claim from the future (a fast clock) too.
    expect(entryRows(message({ sentAtMs: T + 3 * 60_000, relayAtMs: T }), ctx).map(rowText)).toEqual(["12:01 bob    (sent 12:04) hello"]);
    expect(entryRows(message({ kind: "action", text: "waves", sentAtMs: T - 5 * 60_000, relayAtMs: T }), ctx).map(rowText)).toEqual(["12:01 (sent 11:56) * bob waves"]);
  });

  it("shows only the claimed time within a minute, or without a relay time", () => {
    expect(entryRows(message({ sentAtMs: T - 59_000, relayAtMs: T }), ctx).map(rowText)).toEqual(["12:00 bob    hello"]);
    expect(entryRows(message({ sentAtMs: T - 21 * 60_000 }), ctx).map(rowText)).toEqual(["11:40 bob    hello"]);
  });
});

describe("a room message that left members out", () => {
  it("says who did not receive it", () => {
    expect(entryRows(message({ conversationId: "#ops", notFor: ["carol"] }), ctx).map(rowText)).toEqual(["12:01 bob    hello (not sent to carol)"]);
  });
});
