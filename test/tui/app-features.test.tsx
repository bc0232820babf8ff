// Issue 10 §3/§4 on the whole screen, against the fake session: presence lines, the room's
// sidebar, topics, away, notify settings kept, history read when scrolling past the top and
// when a closed conversation is reopened, /search over everything, /reconnect and /quit <text>.
import { afterEach, describe, expect, test } from "vitest";
import type { ChatMessage } from "../../src/client/types.js";
import { FakeSession } from "../helpers/fake-session.js";
import { renderApp, type RenderAppOptions, type RenderedApp } from "./helpers/render-app.js";
import { KEY } from "./helpers/terminal.js";
import { waitFor } from "./helpers/wait-for.js";

let app: RenderedApp | undefined;
afterEach(() => {
  app?.unmount();
  app = undefined;
});

async function open(session: FakeSession, options: RenderAppOptions = {}): Promise<RenderedApp> {
  app = renderApp(session, { columns: 100, rows: 16, ...options });
  await app.ready();
  return app;
}

function enter(a: RenderedApp, line: string): void {
  a.type(line);
  a.press(KEY.enter);
}

const words = (a: RenderedApp): string => a.lines().map((l) => l.replace(/ *│.*$/, "").trim()).filter((l) => l !== "").join(" ");
const see = (a: RenderedApp, text: string) => waitFor(() => expect(words(a)).toContain(text));
/** The sidebar column, rows joined. */
const sidebar = (a: RenderedApp): string[] => a.lines().flatMap((l) => (l.includes("│") ? [l.replace(/^.*│ ?/, "").trim()] : [])).filter((l) => l !== "");

let n = 0;
const kept = (conversationId: string, from: string, text: string, sentAtMs = Date.now() - 3_600_000 + n): ChatMessage =>
  ({ id: (0xf000 + n++).toString(16).padStart(32, "0"), conversationId, from, kind: "text", text, sentAtMs, receivedAtMs: sentAtMs, own: false });

describe("presence and the sidebar", () => {
  test("who comes online and goes offline shows in the lobby; /filter none hides it", async () => {
    const session = new FakeSession({ peers: ["bob", { username: "carol", online: false }] });
    const a = await open(session);
    session.setPeer({ username: "carol", online: true });
    session.setPeer({ username: "bob", online: false });
    await see(a, "carol came online");
    await see(a, "bob went offline");
    enter(a, "/filter none");
    await see(a, "presence lines in lobby: hidden");
    await waitFor(() => expect(words(a)).not.toContain("carol came online"));
  });

  test("in a room the sidebar lists its members and their state; in the lobby, who is online", async () => {
    const session = new FakeSession({
      peers: ["bob", { username: "carol", online: false }, { username: "dave", trust: "verified" }],
      rooms: { "#ops": ["alice", "carol", "dave"] },
    });
    const a = await open(session);
    await waitFor(() => expect(sidebar(a)).toEqual(["users · 3 online", "● alice (you)", "● bob", "● dave ✓", "○ 1 offline (/users)"]));
    a.press(KEY.alt("2"));
    await waitFor(() => expect(sidebar(a)).toEqual(["#ops · 3 · 2 online", "● alice (you)", "● dave ✓", "○ carol"]));
  });
});

describe("topics and away", () => {
  test("/topic sends a topic message to the room; the header shows it", async () => {
    const session = new FakeSession({ peers: ["bob"], rooms: { "#ops": ["alice", "bob"] } });
    const a = await open(session);
    enter(a, "/topic deploy friday");
    await see(a, "/topic works inside a room");
    a.press(KEY.ctrlU);
    a.press(KEY.alt("2"));
    enter(a, "/topic deploy friday 16:00");
    await waitFor(() => expect(session.callsOf("send").at(-1)).toMatchObject({ conversationId: "#ops", text: "deploy friday 16:00", kind: "topic" }));
    await see(a, "you set the topic: deploy friday 16:00");
    await waitFor(() => expect(a.lines()[1]).toContain("#ops — deploy friday 16:00 — 2 members"));
    enter(a, "/topic");
    await see(a, "topic of #ops (set by alice");
  });

  test("/away marks me away in the status line and tells the session; /away alone: back", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    enter(a, "/away lunch until 2");
    await waitFor(() => expect(a.lines()[0]).toContain("● connected  away"));
    expect(session.away).toBe("lunch until 2");
    await see(a, "you are away");
    enter(a, "/away");
    await waitFor(() => expect(a.lines()[0]).not.toContain("away"));
    expect(session.away).toBeUndefined();
  });
});

describe("settings and history", () => {
  test("/notify, /mute and /highlight are kept through the session", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    enter(a, "/notify mentions");
    await see(a, "only DMs, mentions of you and highlight words count");
    enter(a, "/highlight add deploy");
    await waitFor(() => expect(JSON.parse(session.settings.get("tui") ?? "{}")).toMatchObject({ notify: { lobby: "mentions" }, highlights: ["deploy"] }));
    enter(a, "/mute");
    await waitFor(() => expect(JSON.parse(session.settings.get("tui") ?? "{}")).toMatchObject({ notify: { lobby: "none" } }));
    a.unmount();
    // The next start reads them back.
    app = renderApp(session, { columns: 100, rows: 16 });
    await app.ready();
    enter(app, "/notify");
    await see(app, "notify level of lobby: muted");
  });

  test("scrolling past the top reads older kept messages from disk", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    session.kept = Array.from({ length: 150 }, (_, i) => kept("lobby", "bob", `old message ${i}`, Date.now() - 3_600_000 + i));
    const backlog = session.kept.slice(-20);
    const a = await open(session, { backlog });
    // The backlog fills more than the pane: nothing is read until the user scrolls to the top.
    await see(a, "old message 149");
    for (let i = 0; i < 4; i++) a.press(KEY.pageUp);
    await waitFor(() => expect(session.callsOf("olderHistory").length).toBeGreaterThan(0));
    expect(session.callsOf("olderHistory")[0]).toMatchObject({ conversationId: "lobby", beforeId: backlog[0]!.id, limit: 100 });
    // Each page comes in front of what is shown, and the view stays where it was: keep scrolling.
    for (let i = 0; i < 30; i++) a.press(KEY.pageUp);
    await waitFor(() => expect(session.callsOf("olderHistory").length).toBeGreaterThan(1));
    for (let i = 0; i < 10; i++) a.press(KEY.pageUp);
    await see(a, "old message 0");
    // All of it read: no further reads however far one scrolls.
    const reads = session.callsOf("olderHistory").length;
    for (let i = 0; i < 5; i++) a.press(KEY.pageUp);
    await see(a, "old message 0");
    expect(session.callsOf("olderHistory")).toHaveLength(reads);
  });

  test("/close then reopening shows the kept history again", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    const message = session.receive("bob", "remember the milk");
    session.kept.push(message);
    await waitFor(() => expect(a.lines()[0]).toContain("2:@bob"));
    a.press(KEY.alt("2"));
    await see(a, "remember the milk");
    enter(a, "/wc");
    await waitFor(() => expect(a.lines()[0]).not.toContain("@bob"));
    expect(JSON.parse(session.settings.get("tui") ?? "{}").closed).toEqual(["dm:alice:bob"]);
    enter(a, "/q bob");
    await see(a, "remember the milk");
    expect(JSON.parse(session.settings.get("tui") ?? "{}").closed).toEqual([]);
  });

  test("/search finds text in every conversation and in the kept history, naming each conversation", async () => {
    const session = new FakeSession({ peers: ["bob"], rooms: { "#ops": ["alice", "bob"] } });
    session.kept = [kept("#old", "bob", "the deploy of last week")];
    const a = await open(session);
    session.receive("bob", "deploy now?");
    session.receive("bob", "deploy in the lobby", { conversationId: "lobby" });
    await see(a, "deploy in the lobby");
    enter(a, "/search DEPLOY");
    await see(a, "3 messages contain \"DEPLOY\":");
    await see(a, "#old bob: the deploy of last week");
    await see(a, "@bob bob: deploy now?");
    await see(a, "lobby bob: deploy in the lobby");
  });
});

describe("muscle memory", () => {
  test("/reconnect asks the session to connect now", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    enter(a, "/reconnect");
    await see(a, "already connected to the relay");
    session.setConnection({ state: "reconnecting", attempt: 3, retryAtMs: Date.now() + 20_000, reason: "relay unreachable" });
    enter(a, "/reconnect");
    await see(a, "reconnecting now instead of waiting");
    expect(session.callsOf("reconnectNow")).toHaveLength(2);
  });

  test("/quit <text> says goodbye in the lobby, then leaves once the relay took it", async () => {
    const session = new FakeSession({ peers: ["bob"] });
    const a = await open(session);
    enter(a, "/quit see you tomorrow");
    await waitFor(() => expect(session.callsOf("send").at(-1)).toMatchObject({ conversationId: "lobby", text: "quit: see you tomorrow", kind: "action" }));
    expect(session.closed).toBe(false);
    session.accept(session.lastSent().id);
    await expect(a.exited).resolves.toBe(0);
    expect(session.closed).toBe(true);
  });
});
