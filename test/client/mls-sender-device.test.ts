// Device lists the relay did not answer for (a moment offline) are not "no list" (PROTOCOL.md
// §4.5, §7.6 (e), §8.1): a peer's message is shown, not refused as from "a user without a list"
// (that lost it: a refused delivery is acked); a commit is held, not refused aloud; a DM's
// claim waits for the connection instead of refusing a user's several packages as one device's.
// Found by the paced fault test: bob joined alice's DM while the relay was being killed, the
// fetch got NOT_CONNECTED, and alice's first message was refused for good.
import { describe, expect, it } from "vitest";
import { HOLD_MAX_MS } from "../../src/client/mls/held.js";
import { DEVICE_REFRESH_MS } from "../../src/client/mls/sender-device.js";
import { deviceWorldEachTest, keyOf, leafKeys, linesIn, sendLine, textsIn, type Device } from "../helpers/mls-devices.js";
import { waitUntil } from "../helpers/wait.js";

const t = deviceWorldEachTest("sc-mls-sender-dev-");

const DM = "dm:alice:bob";

const send = (d: Device, text: string): void => sendLine(d, DM, text);

const refusals = (d: Device) => d.events.filter((e) => e.type === "refused");

async function reads(d: Device, line: string): Promise<void> {
  await waitUntil(() => textsIn(d, DM).includes(line), `${d.user.name} to read "${line}"`, 60_000);
}

describe("a peer's message whose sender's device list the relay did not answer for (§8.1, §4.5)", () => {
  it("is shown, the next ones too; once the relay answers, the list is fetched and used", async () => {
    const laptop = await t.w.device("alice", "laptop");
    const bob = await t.w.device("bob", "bobpc");
    await t.w.publish("alice", [laptop]);
    await t.w.publish("bob", [bob]);
    // bob is offline for device lists from the start: he never learns alice's.
    bob.directory.unanswered = "NOT_CONNECTED";
    for (const d of [laptop, bob]) await t.w.start(d);
    expect(bob.directory.known("alice")).toBeUndefined();

    send(laptop, "one");
    await reads(bob, "alice: one");
    // Within DEVICE_REFRESH_MS of the failed fetch: asked again, not judged on "no list".
    t.w.now += 1_000;
    send(laptop, "two");
    await reads(bob, "alice: two");
    expect(refusals(bob)).toEqual([]);
    expect(bob.directory.known("alice")).toBeUndefined();

    // The relay answers again: the next message fetches alice's list (no wait for the 10 s) and is checked against it.
    bob.directory.unanswered = undefined;
    t.w.now += 1_000;
    send(laptop, "three");
    await reads(bob, "alice: three");
    expect(bob.directory.known("alice")?.devices.map((d) => d.deviceId)).toEqual([laptop.entry.deviceId]);
    expect(refusals(bob)).toEqual([]);
    expect(DEVICE_REFRESH_MS).toBeGreaterThan(2_000);
  }, 120_000);

  it("negative: a relay that answers without the sender's list but names a device of theirs is refused", async () => {
    const laptop = await t.w.device("alice", "laptop");
    const bob = await t.w.device("bob", "bobpc");
    // alice never publishes a list, yet the relay names her device as the sender's.
    await t.w.publish("bob", [bob]);
    for (const d of [laptop, bob]) await t.w.start(d);
    send(laptop, "one");
    await waitUntil(() => refusals(bob).length > 0, "bob refuses alice's message", 60_000);
    expect(textsIn(bob, DM)).toEqual([]);
  }, 120_000);

  it("a commit adding a device, judged while the relay does not answer for the list: no refusal aloud; held, then taken once answered", async () => {
    const laptop = await t.w.device("alice", "laptop");
    const bob = await t.w.device("bob", "bobpc");
    await t.w.publish("alice", [laptop]);
    await t.w.publish("bob", [bob]);
    for (const d of [laptop, bob]) await t.w.start(d);
    send(laptop, "hi");
    await reads(bob, "alice: hi");
    // alice links a phone (list v2); her laptop's self-heal adds it to the DM while bob is offline for lists.
    bob.directory.unanswered = "CONNECTION_LOST";
    const phone = await t.w.device("alice", "phone");
    await t.w.publish("alice", [laptop, phone]);
    await t.w.start(phone);
    await laptop.directory.refresh(["alice"]);
    await waitUntil(() => leafKeys(laptop, DM).includes(keyOf(phone)), "laptop's heal adds the phone", 60_000);
    send(laptop, "after the phone");
    await t.w.settle();
    // bob could not judge the commit: not applied, but no "refused" line, warning or event.
    expect(leafKeys(bob, DM)).not.toContain(keyOf(phone));
    expect(linesIn(bob, DM).filter((l) => l.kind === "refused-device")).toEqual([]);
    expect(bob.events.filter((e) => e.type === "notice" && e.level !== "info")).toEqual([]);
    expect(refusals(bob)).toEqual([]);
    expect(textsIn(bob, DM)).toEqual(["alice: hi"]);
    // Still unanswered at the timer: nothing changes; past HOLD_MAX_MS, one warning says why it waits.
    await bob.engine.checkTimers();
    expect(leafKeys(bob, DM)).not.toContain(keyOf(phone));
    expect(bob.events.filter((e) => e.type === "notice")).toEqual([]);
    t.w.now += HOLD_MAX_MS;
    await bob.engine.checkTimers();
    await bob.engine.checkTimers();
    // (The lobby, a group of everyone, got the same commit adding the phone: it waits and says so too.)
    const waiting = bob.events.flatMap((e) => (e.type === "notice" && e.level === "warn" ? [e.text] : [])).sort();
    expect(waiting).toEqual([DM, "lobby"].map((c) => `${c} is waiting for the relay to answer for the device lists of alice, to check a change in it; nothing after that change is shown until it does`));
    // Answered: the list is taken, the commit fetched and applied, the held message read.
    bob.directory.unanswered = undefined;
    await bob.engine.checkTimers();
    await reads(bob, "alice: after the phone");
    expect(leafKeys(bob, DM)).toContain(keyOf(phone));
    expect(linesIn(bob, DM).some((l) => l.kind === "device-added" && l.device === "phone")).toBe(true);
    expect(refusals(bob)).toEqual([]);
  }, 180_000);

  it("a DM started while the relay does not answer for the peer's lists waits for the connection (no 'none was used' warning), then reaches every device", async () => {
    const laptop = await t.w.device("alice", "laptop");
    const desktop = await t.w.device("alice", "desktop");
    const bob = await t.w.device("bob", "bobpc");
    await t.w.publish("alice", [laptop, desktop]);
    await t.w.publish("bob", [bob]);
    bob.directory.unanswered = "NOT_CONNECTED";
    for (const d of [laptop, desktop, bob]) await t.w.start(d);
    send(bob, "hello both");
    await t.w.settle();
    // Two packages for alice and no list answered: not judged "one device, none used"; pending.
    expect(bob.events.filter((e) => e.type === "notice" && e.level !== "info")).toEqual([]);
    expect(bob.events.filter((e) => e.type === "message-state" && e.state === "failed")).toEqual([]);
    expect(textsIn(laptop, DM)).toEqual([]);
    // Connected again: the outbox goes, with a leaf for each of alice's listed devices.
    bob.directory.unanswered = undefined;
    await bob.engine.reconnected();
    await reads(laptop, "bob: hello both");
    await reads(desktop, "bob: hello both");
    expect(leafKeys(bob, DM)).toEqual([keyOf(laptop), keyOf(desktop), keyOf(bob)].sort());
  }, 180_000);
});
