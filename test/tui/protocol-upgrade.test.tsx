// A relay that speaks a newer protocol (PROTOCOL.md §14): the session stops for good with the
// cause as data; the screen says the one sentence (in the conversation and the status line), in
// the UI's words, and nothing tries again by itself.
import { afterEach, expect, test } from "vitest";
import { describeSessionEnd, type SessionEnd } from "../../src/client/errors.js";
import { FakeSession } from "../helpers/fake-session.js";
import { renderApp, type RenderedApp } from "./helpers/render-app.js";
import { waitFor } from "./helpers/wait-for.js";

let app: RenderedApp | undefined;
afterEach(() => {
  app?.unmount();
  app = undefined;
});

test("the upgrade sentence, once in the conversation and in the status line; no reconnect asked", async () => {
  const session = new FakeSession({ peers: ["bob"], connection: { state: "connecting", attempt: 1 } });
  app = renderApp(session, { columns: 160, rows: 12 });
  await app.ready();
  const cause: SessionEnd = { kind: "protocol-too-old", relayVersion: 2 };
  // What the client emits when it stops for good (relay-connection.ts).
  session.emit({ type: "notice", level: "error", text: describeSessionEnd(cause), about: { kind: "session-ended", cause } });
  session.setConnection({ state: "failed", reason: describeSessionEnd(cause), cause });
  const sentence = "this relay speaks secure-chat protocol v2: upgrade your client (npm install -g secure-chat@2), then start chat-tui again";
  await waitFor(() => expect(app!.frame()).toContain(`✗ ${sentence}`));
  await waitFor(() => expect(app!.frame()).toContain(`✗ failed: ${sentence}`));
  expect(app.frame().split(sentence)).toHaveLength(3);
  expect(session.callsOf("reconnectNow")).toEqual([]);
});
