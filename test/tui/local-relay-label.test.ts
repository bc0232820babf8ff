// The status line's name for this machine's relay (src/tui/local-relay.ts): no pid, since any
// chat-tui may start the relay again under a new one (seen in tmux: after a restart by carol,
// alice's and bob's status lines still named the old, dead pid).
import { describe, expect, test } from "vitest";
import { localRelayLabel } from "../../src/tui/local-relay.js";

describe("the local relay in the status line", () => {
  test("names the address and that it is this machine's relay, never a pid that may be stale", () => {
    expect(localRelayLabel("127.0.0.1:50051")).toBe("127.0.0.1:50051 (local relay)");
    expect(localRelayLabel("127.0.0.1:50051")).not.toMatch(/pid|\d{3,}\)/);
  });
});
