// My own messages from my other devices (PROTOCOL.md §4.5, §11, §11.3) in the MLS engine over
// real MLS and the in-memory Delivery Service with per-device queues (fake-ds.ts), with the real
// content layer: alice on a laptop and a desktop, and bob. A message of the desktop reaches the
// laptop as mine (the device's name beside it), in order, and is kept in the laptop's history
// in place across a restart; bob sees both devices' messages as alice's with no gap; reading on
// one device sends a read marker that the other turns into a "read" event (never shown).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { READ_MARKER_MIN_MS } from "../../src/client/mls/send.js";
import type { ClientStateStore } from "../../src/client/state-store.js";
import { FakeDs } from "../helpers/fake-ds.js";
import { DeviceWorld } from "../helpers/mls-devices.js";
import { messagesIn as messages, readsOf as reads, realDevice, refusalsOf as refusals, sendAccepted as send, waitUntil } from "../helpers/own-devices.js";

let root: string;
let w: DeviceWorld;
let ds: FakeDs;
const states: ClientStateStore[] = [];
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "sc-own-dev-"));
  ds = new FakeDs();
  w = new DeviceWorld(ds, root);
});
afterEach(() => {
  w.close();
  for (const s of states.splice(0)) s.close();
  rmSync(root, { recursive: true, force: true });
});

const DM = "dm:alice:bob";

async function world() {
  const laptop = await realDevice(w, root, "alice", "laptop", states);
  const desktop = await realDevice(w, root, "alice", "desktop", states);
  const bob = await realDevice(w, root, "bob", "bobpc", states);
  await w.publish("alice", [laptop, desktop]);
  await w.publish("bob", [bob]);
  for (const d of [laptop, desktop, bob]) await w.start(d);
  return { laptop, desktop, bob };
}

describe("my messages from my other devices (§11), read markers (§11.3)", () => {
  it("the desktop's messages reach the laptop as mine, named by device, in order; bob sees both devices without a gap; the laptop's history keeps them in place", { timeout: 240_000 }, async () => {
    const { laptop, desktop, bob } = await world();
    await send(bob, DM, "hi alice");
    await waitUntil(() => messages(laptop, DM).length === 1 && messages(desktop, DM).length === 1, "bob's DM on both of alice's devices");
    // Taking turns: each is written once the one before reached every device.
    const ids: string[] = [];
    for (const [d, text] of [[desktop, "d0"], [laptop, "l0"], [desktop, "d1"], [laptop, "l1"]] as const) {
      ids.push(await send(d, DM, text));
      await waitUntil(() => [laptop, desktop, bob].every((x) => messages(x, DM).some((m) => m.text === text)), `"${text}" on every device`);
    }
    expect(messages(laptop, DM).map((m) => [m.text, m.from, m.own, m.device ?? ""])).toEqual([
      ["hi alice", "bob", false, ""], ["d0", "alice", true, "desktop"], ["l0", "alice", true, ""], ["d1", "alice", true, "desktop"], ["l1", "alice", true, ""],
    ]);
    expect(messages(desktop, DM).filter((m) => m.device !== undefined).map((m) => [m.text, m.device])).toEqual([["l0", "laptop"], ["l1", "laptop"]]);
    const atBob = messages(bob, DM).slice(1);
    expect(atBob.map((m) => [m.text, m.from, m.own, m.gap])).toEqual(["d0", "l0", "d1", "l1"].map((t) => [t, "alice", false, false]));
    expect(atBob.map((m) => m.id)).toEqual(ids);
    for (const d of [laptop, desktop, bob]) expect(refusals(d)).toBe(0);
    // The laptop's history (what a restart shows): the desktop's messages as mine, in place, not pending.
    const kept = laptop.history.backlog([], () => true, () => {}).flatMap((m) => ("type" in m || m.conversationId !== DM ? [] : [[m.text, m.own, m.state ?? ""]]));
    expect(kept).toEqual([["hi alice", false, ""], ["d0", true, "accepted"], ["l0", true, "accepted"], ["d1", true, "accepted"], ["l1", true, "accepted"]]);
  });

  it("a read on the laptop becomes a read event on the desktop, one marker per few seconds; bob ignores it; none for my own message or the lobby", { timeout: 240_000 }, async () => {
    const { laptop, desktop, bob } = await world();
    const b0 = await send(bob, DM, "b0");
    const b1 = await send(bob, DM, "b1");
    await waitUntil(() => messages(laptop, DM).length === 2 && messages(desktop, DM).length === 2, "bob's two on both devices");
    laptop.engine.markRead(DM, { from: "bob", id: b0 });
    await waitUntil(() => reads(desktop).length >= 1, "the first marker");
    expect(reads(desktop)).toEqual([{ type: "read", conversationId: DM, from: "bob", id: b0 }]);
    const started = Date.now();
    laptop.engine.markRead(DM, { from: "bob", id: b1 }); // within the interval: it waits for its turn
    await waitUntil(() => reads(desktop).length >= 2, "the second marker", READ_MARKER_MIN_MS + 60_000);
    expect(Date.now() - started).toBeGreaterThan(READ_MARKER_MIN_MS / 2); // it waited (the first went at once)
    expect(reads(desktop)[1]).toEqual({ type: "read", conversationId: DM, from: "bob", id: b1 });
    laptop.engine.markRead(DM, { from: "bob", id: b1 }); // the same again: nothing
    laptop.engine.markRead(DM, { from: "alice", id: "ab".repeat(16) }); // my own: my devices see it as mine
    laptop.engine.markRead("lobby", { from: "bob", id: b1 });
    await w.settle();
    // Bob received both markers (MLS goes to every member), showed nothing and refused nothing.
    await send(bob, DM, "b2");
    await waitUntil(() => messages(desktop, DM).length === 3, "b2 on the desktop");
    expect(reads(desktop)).toHaveLength(2);
    expect(reads(bob)).toEqual([]);
    expect(messages(bob, DM).map((m) => m.text)).toEqual(["b0", "b1", "b2"]);
    expect(refusals(bob)).toBe(0);
  });
});
