// Hostile relay and hostile peers around my own devices (PROTOCOL.md §4.5, §11, §11.3, §12):
// - the relay marks a peer's message as from one of my devices (sender, or sender_device, not
//   the leaf's): refused, never shown as mine;
// - a peer (here bob, from one of his own two devices) sends `read` markers: ignored, never
//   shown, never taken as my read;
// - a device of mine no longer in my list (unlinked) sends: not shown as mine (refused).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { MlsQueued } from "../../src/client/mls/ds-api.js";
import type { ClientStateStore } from "../../src/client/state-store.js";
import { MlsKind } from "../../src/gen/securechat/v1/chat.js";
import { FakeDs } from "../helpers/fake-ds.js";
import { DeviceWorld } from "../helpers/mls-devices.js";
import { messagesIn, readsOf, realDevice, refusalsOf, sendAccepted, waitUntil } from "../helpers/own-devices.js";

let root: string;
let w: DeviceWorld;
let ds: FakeDs;
const states: ClientStateStore[] = [];
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "sc-own-dev-adv-"));
  ds = new FakeDs();
  w = new DeviceWorld(ds, root);
});
afterEach(() => {
  ds.intercept = undefined;
  w.close();
  for (const s of states.splice(0)) s.close();
  rmSync(root, { recursive: true, force: true });
});

const DM = "dm:alice:bob";
const isApp = (q: MlsQueued): boolean => q.item.kind === MlsKind.MLS_KIND_APPLICATION && q.conversationId === DM;

describe("hostile relay: a peer's message passed off as from my device", () => {
  it("bob's message relabelled as alice's desktop (sender and device, or the device only) is refused on the laptop, never shown as mine", { timeout: 240_000 }, async () => {
    const laptop = await realDevice(w, root, "alice", "laptop", states);
    const desktop = await realDevice(w, root, "alice", "desktop", states);
    const bob = await realDevice(w, root, "bob", "bobpc", states);
    await w.publish("alice", [laptop, desktop]);
    await w.publish("bob", [bob]);
    for (const d of [laptop, desktop, bob]) await w.start(d);
    await sendAccepted(bob, DM, "hello");
    await waitUntil(() => messagesIn(laptop, DM).length === 1 && messagesIn(desktop, DM).length === 1, "hello on both devices");

    const lies: ((q: MlsQueued) => MlsQueued)[] = [
      (q) => ({ ...q, item: { ...q.item, sender: "alice", senderDevice: desktop.entry.deviceId } }),
      (q) => ({ ...q, item: { ...q.item, senderDevice: desktop.entry.deviceId } }),
    ];
    for (const [i, lie] of lies.entries()) {
      ds.intercept = (to, q) => (to === "alice" && isApp(q) && q.item.sender === "bob" ? lie(q) : q);
      const before = refusalsOf(laptop);
      await sendAccepted(bob, DM, `forged ${i}`);
      await waitUntil(() => refusalsOf(laptop) > before, `the laptop refuses forgery ${i}`);
      ds.intercept = undefined;
      expect(messagesIn(laptop, DM).map((m) => m.text)).not.toContain(`forged ${i}`);
      // The desktop got it unaltered and shows it as bob's.
      await waitUntil(() => messagesIn(desktop, DM).some((m) => m.text === `forged ${i}` && m.from === "bob" && !m.own), `the desktop shows forgery ${i} as bob's`);
    }
    // And the desktop's own message, relabelled as from no device, is refused too.
    ds.intercept = (to, q) => (to === "alice" && isApp(q) && q.item.senderDevice === desktop.entry.deviceId ? { ...q, item: { ...q.item, senderDevice: "" } } : q);
    const before = refusalsOf(laptop);
    await sendAccepted(desktop, DM, "relabelled");
    await waitUntil(() => refusalsOf(laptop) > before, "the laptop refuses the relabelled message");
    expect(messagesIn(laptop, DM).map((m) => m.text)).not.toContain("relabelled");
    // Honest traffic goes on.
    ds.intercept = undefined;
    await sendAccepted(desktop, DM, "honest");
    await waitUntil(() => messagesIn(laptop, DM).some((m) => m.text === "honest" && m.own && m.device === "desktop"), "the honest one on the laptop as mine");
  });
});

describe("hostile peer: read markers", () => {
  it("bob's read markers (he has two devices) reach alice's devices and are ignored: no read event, nothing shown, nothing refused", { timeout: 240_000 }, async () => {
    const laptop = await realDevice(w, root, "alice", "laptop", states);
    const bobpc = await realDevice(w, root, "bob", "bobpc", states);
    const bobphone = await realDevice(w, root, "bob", "bobphone", states);
    await w.publish("alice", [laptop]);
    await w.publish("bob", [bobpc, bobphone]);
    for (const d of [laptop, bobpc, bobphone]) await w.start(d);
    const a0 = await sendAccepted(laptop, DM, "a0");
    await waitUntil(() => messagesIn(bobpc, DM).length === 1 && messagesIn(bobphone, DM).length === 1, "a0 on both of bob's devices");
    let markers = 0;
    ds.intercept = (to, q) => {
      if (to === "alice" && isApp(q) && q.item.sender === "bob") markers += 1;
      return q;
    };
    bobpc.engine.markRead(DM, { from: "alice", id: a0 });
    await waitUntil(() => readsOf(bobphone).length === 1, "bob's phone takes his own marker");
    await waitUntil(() => markers === 1, "the marker delivered to alice too");
    await w.settle();
    expect(readsOf(laptop)).toEqual([]);
    expect(messagesIn(laptop, DM).map((m) => m.text)).toEqual(["a0"]);
    expect(refusalsOf(laptop)).toBe(0);
  });
});

describe("a device of mine that my list no longer names", () => {
  it("its message is not shown as mine: refused on the laptop once the list without it is known", { timeout: 240_000 }, async () => {
    const laptop = await realDevice(w, root, "alice", "laptop", states);
    const desktop = await realDevice(w, root, "alice", "desktop", states);
    const bob = await realDevice(w, root, "bob", "bobpc", states);
    await w.publish("alice", [laptop, desktop]);
    await w.publish("bob", [bob]);
    for (const d of [laptop, desktop, bob]) await w.start(d);
    await sendAccepted(bob, DM, "hello");
    await waitUntil(() => messagesIn(desktop, DM).length === 1, "the desktop is in the DM");
    // The desktop writes; the relay holds its message for the laptop until the laptop knows a
    // list without the desktop (unlinked meanwhile).
    let held: MlsQueued | undefined;
    ds.intercept = (to, q) => {
      if (to === "alice" && isApp(q) && q.item.senderDevice === desktop.entry.deviceId) { held = q; return undefined; }
      return q;
    };
    await sendAccepted(desktop, DM, "from a device since unlinked");
    await waitUntil(() => held, "the desktop's message held");
    ds.intercept = undefined;
    await w.publish("alice", [laptop]);
    await laptop.directory.refresh(["alice"]);
    const before = refusalsOf(laptop);
    await laptop.engine.deliver(held!);
    await w.settle();
    expect(messagesIn(laptop, DM).map((m) => m.text)).not.toContain("from a device since unlinked");
    expect(refusalsOf(laptop)).toBeGreaterThan(before);
  });
});
