// The engine's notices (src/client/mls/engine-state.ts `notice`) may carry an error's message or
// a Delivery Service's sentence: each is one safe line (PROTOCOL.md §11.2), whatever was put in it.
import { describe, expect, it } from "vitest";
import { EngineState, type ConversationDeps } from "../../src/client/mls/engine-state.js";
import type { SessionEvent } from "../../src/client/types.js";
import { nullLogger } from "../../src/protocol/log.js";

describe("engine notices", () => {
  it("are one line with no control, escape, bidi or zero-width character left in them", () => {
    const events: SessionEvent[] = [];
    const s = new EngineState({ me: "alice", clock: () => 0, logger: nullLogger, emit: (e: SessionEvent) => events.push(e) } as unknown as ConversationDeps);
    s.notice("warn", "#ops could not be re-created: \u001b]0;title\u0007\u001b[8mhidden\r\n20:41 carol     FAKE\u202egnp.exe\u200b", "#ops");
    s.notice("info", "plain words stay as they are");
    expect(events).toEqual([
      { type: "notice", level: "warn", conversationId: "#ops", text: "#ops could not be re-created: \uFFFD]0;title\uFFFD\uFFFD[8mhidden\uFFFD 20:41 carol     FAKE\uFFFDgnp.exe\uFFFD" },
      { type: "notice", level: "info", text: "plain words stay as they are" },
    ]);
  });
});
