// Protocol v2: a lobby line reaches those in the lobby's MLS group when it is sent, and entering
// it takes a moment after connecting (PROTOCOL.md §7). The lobby's header says how many can
// read a new line, read from the session (members("lobby")) once at start and after each
// membership line of the lobby's group (my own entry is a `joined` line of mine, no polling);
// a v1 session is never asked.
import { afterEach, describe, expect, test } from "vitest";
import type { Outcome } from "../../src/client/types.js";
import { FakeSession } from "../helpers/fake-session.js";
import { FakeV2Session } from "../helpers/fake-session-v2.js";
import { renderApp, type RenderedApp } from "./helpers/render-app.js";
import { waitFor } from "./helpers/wait-for.js";

class LobbySession extends FakeV2Session {
  lobby: string[] = [];
  override async members(room: string): Promise<Outcome<readonly string[]>> {
    if (room === "lobby") return this.lobby.length === 0 ? { ok: false, error: { kind: "not-a-member", room, action: "send" } } : { ok: true, value: [...this.lobby] };
    return super.members(room);
  }
}

let app: RenderedApp | undefined;
afterEach(() => {
  app?.unmount();
  app = undefined;
});

describe("the lobby header on protocol v2", () => {
  test("no count until I am in the lobby's group; then who is in it, as it changes", async () => {
    const s = new LobbySession({ peers: ["bob", "carol"] });
    app = renderApp(s, { columns: 100, rows: 12 });
    await app.ready();
    expect(app.frame()).not.toContain("can read");
    s.lobby = ["alice", "bob"];
    s.membership("lobby", { kind: "joined", by: "alice", users: [] });
    await waitFor(() => expect(app!.frame()).toContain("can read new lines"), { timeoutMs: 500 });
    expect(app.frame()).toContain("2 can read new lines");
    s.lobby = ["alice", "bob", "carol"];
    s.membership("lobby", { kind: "joined", by: "carol", users: [] });
    await waitFor(() => expect(app!.frame()).toContain("3 can read new lines"), { timeoutMs: 500 });
  });

  test("a v1 session is never asked and shows no count", async () => {
    const s = new FakeSession({ peers: ["bob"] });
    app = renderApp(s, { columns: 100, rows: 12 });
    await app.ready();
    s.emit({ type: "membership", conversationId: "lobby", line: { kind: "joined", by: "bob", users: [], atMs: Date.now() } });
    s.receive("bob", "after the change", { conversationId: "lobby" });
    await waitFor(() => expect(app!.frame()).toContain("after the change"));
    expect(app.frame()).not.toContain("can read");
    expect(s.calls.some((c) => c.method === "members")).toBe(false);
  });

  test("in the lobby before the UI starts: the count at once, without any event", async () => {
    const s = new LobbySession({ peers: ["bob"] });
    s.lobby = ["alice", "bob"];
    app = renderApp(s, { columns: 100, rows: 12 });
    await app.ready();
    await waitFor(() => expect(app!.frame()).toContain("2 can read new lines"), { timeoutMs: 500 });
  });
});
