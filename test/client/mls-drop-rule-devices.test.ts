// PROTOCOL.md §11, §11.1 with several devices per user (§4.5): chains, `seen` entries and the
// drop rule are per sender DEVICE (app4). Alice on two devices (laptop, desktop) and bob: the
// two devices sending at once are two chains, not a broken one; neither makes anyone's message
// look lost; bob's loss detection still finds a message one of alice's devices never got; my own
// other device's messages open as mine (chain kept, never counted as acknowledging mine).
import { DatabaseSync } from "node:sqlite";
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MlsContentLayer } from "../../src/client/mls/content.js";
import { AcceptanceOrder } from "../../src/client/mls/content-order.js";
import { ContentStore } from "../../src/client/mls/content-store.js";
import { toHex } from "../../src/protocol/bytes.js";
import { decodeAppData, deviceTag } from "../../src/protocol/mls/app-data.js";
import { makeGroupId } from "../../src/protocol/mls/group-id.js";
import { parseConversationId } from "../../src/protocol/names.js";

const DM = "dm:alice:bob";
const ROOM = "#ops";
const T0 = 1_767_225_600_000;
const NONE = { confirmed: [], lost: [] };

/** One device of a user: its content layer behind an AcceptanceOrder, its MLS signature key. */
function device(me: string, db = new DatabaseSync(":memory:")) {
  const key = randomBytes(32);
  const layer = new MlsContentLayer({ me, store: new ContentStore(db), clock: () => T0 });
  layer.thisDevice(key);
  const order = new AcceptanceOrder();
  return { me, key, db, layer, order, content: order.wrap(layer) };
}
type Device = ReturnType<typeof device>;
interface Sent { readonly from: Device; readonly app: Uint8Array; readonly id: string; readonly messageId: Buffer }

function say(d: Device, conv: string, gid: Uint8Array, text: string): Sent {
  const s = d.content.seal(conv, gid, "text", text, T0);
  d.content.accepted(conv, s.messageId);
  return { from: d, app: s.app, id: toHex(s.messageId), messageId: s.messageId };
}
function seal(d: Device, conv: string, gid: Uint8Array, text: string): Sent {
  const s = d.content.seal(conv, gid, "text", text, T0);
  return { from: d, app: s.app, id: toHex(s.messageId), messageId: s.messageId };
}
function hear(d: Device, conv: string, gid: Uint8Array, m: Sent) {
  d.order.arrived();
  const r = d.content.open(conv, gid, m.from.me, m.app, m.from.key);
  d.order.done();
  return r;
}
const leaves = (...ds: Device[]) => ds.map((d) => ({ username: d.me, signatureKey: d.key }));

describe("alice on two devices and bob (§11.1 per device)", () => {
  it("alice's two devices interleaved: two chains, no gap at bob; each device's messages are confirmed to it", () => {
    const gid = makeGroupId(DM);
    const [laptop, desktop, bob] = [device("alice"), device("alice"), device("bob")];
    for (const d of [laptop, desktop, bob]) d.layer.membersChanged(DM, leaves(laptop, desktop, bob));
    const a = [say(laptop, DM, gid, "l0"), say(desktop, DM, gid, "d0"), say(laptop, DM, gid, "l1"), say(desktop, DM, gid, "d1")];
    for (const m of a) expect(hear(bob, DM, gid, m).content.gap).toBe(false);
    // Each of alice's devices sees the other's messages as mine, in order, without a gap.
    expect(hear(laptop, DM, gid, a[1]!).content.gap).toBe(false);
    expect(hear(laptop, DM, gid, a[3]!).content.gap).toBe(false);
    const b0 = say(bob, DM, gid, "b0");
    // bob's seen names each of alice's devices with its own chain's head.
    const seen = decodeAppData(b0.app, parseConversationId(DM)!, "bob").seen;
    expect(seen.map((s) => Buffer.from(s.device!).toString("hex")).sort()).toEqual([deviceTag(laptop.key), deviceTag(desktop.key)].map((t) => t.toString("hex")).sort());
    expect(hear(laptop, DM, gid, b0).own).toEqual({ confirmed: [a[0]!.id, a[2]!.id], lost: [] });
    expect(hear(desktop, DM, gid, b0).own).toEqual({ confirmed: [a[1]!.id, a[3]!.id], lost: [] });
  });

  it("a device added to a DM with a history (my other device's self-heal) takes the chains as begun: the first message is no gap, a later hole still is", () => {
    const gid = makeGroupId(DM);
    const [laptop, bob] = [device("alice"), device("bob")];
    for (const d of [laptop, bob]) d.layer.membersChanged(DM, leaves(laptop, bob));
    const before = [say(bob, DM, gid, "b0"), say(laptop, DM, gid, "l0")];
    expect(hear(laptop, DM, gid, before[0]!).content.gap).toBe(false);
    // The desktop is linked; the laptop's heal adds it; its Welcome says my own device added it.
    const desktop = device("alice");
    for (const d of [laptop, bob, desktop]) d.layer.membersChanged(DM, leaves(laptop, desktop, bob));
    desktop.layer.joinedLate(DM);
    const b1 = say(bob, DM, gid, "b1");
    const l1 = say(laptop, DM, gid, "l1");
    expect(hear(desktop, DM, gid, b1).content.gap).toBe(false);
    expect(hear(desktop, DM, gid, l1).content.gap).toBe(false);
    // From then on the chains are strict: a message bob sent that never came is a gap.
    say(bob, DM, gid, "b2 (lost)");
    expect(hear(desktop, DM, gid, say(bob, DM, gid, "b3")).content.gap).toBe(true);
  });

  it("the old rule keyed by username saw alice's interleaved devices as a broken chain (what this fixes)", () => {
    const gid = makeGroupId(DM);
    const [laptop, desktop] = [device("alice"), device("alice")];
    const bob = device("bob");
    // Opened without the sender's device (as before devices): one chain per username.
    const l0 = say(laptop, DM, gid, "l0");
    const d0 = say(desktop, DM, gid, "d0");
    bob.layer.open(DM, gid, "alice", l0.app);
    expect(bob.layer.open(DM, gid, "alice", d0.app).content.gap).toBe(true);
  });

  it("two devices of alice sending at once do not make bob's message look lost; bob's next one is confirmed by both", () => {
    const gid = makeGroupId(ROOM);
    const [laptop, desktop, bob] = [device("alice"), device("alice"), device("bob")];
    for (const d of [laptop, desktop, bob]) d.layer.membersChanged(ROOM, leaves(laptop, desktop, bob));
    const b0 = say(bob, ROOM, gid, "b0");
    // Both of alice's devices read b0, and write at the same time, several each.
    hear(laptop, ROOM, gid, b0);
    hear(desktop, ROOM, gid, b0);
    const burst = [seal(laptop, ROOM, gid, "l0"), seal(desktop, ROOM, gid, "d0"), seal(laptop, ROOM, gid, "l1"), seal(desktop, ROOM, gid, "d1")];
    for (const m of burst) m.from.content.accepted(ROOM, m.messageId);
    const own = burst.map((m) => hear(bob, ROOM, gid, m).own);
    expect(own.flatMap((o) => o.lost)).toEqual([]);
    expect(own.flatMap((o) => o.confirmed)).toEqual([b0.id]); // by every device heard from since
    for (const m of burst) expect(hear(bob, ROOM, gid, m).content.duplicate).toBe(true);
  });

  it("bob's loss detection still works: a message the laptop never got is flagged by the laptop's next settled message", () => {
    const gid = makeGroupId(DM);
    const [laptop, desktop, bob] = [device("alice"), device("alice"), device("bob")];
    for (const d of [laptop, desktop, bob]) d.layer.membersChanged(DM, leaves(laptop, desktop, bob));
    hear(laptop, DM, gid, say(bob, DM, gid, "hello"));
    const m = say(bob, DM, gid, "dropped for the laptop");
    hear(desktop, DM, gid, m); // the desktop got it
    const d0 = say(desktop, DM, gid, "d0");
    expect(hear(bob, DM, gid, d0).own.lost).toEqual([]);
    const l0 = say(laptop, DM, gid, "l0"); // sealed before it could know: proves nothing
    expect(hear(bob, DM, gid, l0).own).toEqual(NONE);
    const l1 = say(laptop, DM, gid, "l1"); // settled = l0, opened by bob after m's acceptance
    expect(hear(bob, DM, gid, l1).own).toEqual({ confirmed: [], lost: [m.id] });
  });

  it("my other device's message opens as mine: it never acknowledges my messages nor is named in my seen list", () => {
    const gid = makeGroupId(ROOM);
    const [laptop, desktop, bob] = [device("alice"), device("alice"), device("bob")];
    for (const d of [laptop, desktop, bob]) d.layer.membersChanged(ROOM, leaves(laptop, desktop, bob));
    const l0 = say(laptop, ROOM, gid, "l0");
    hear(desktop, ROOM, gid, l0);
    const d0 = say(desktop, ROOM, gid, "d0");
    expect(hear(laptop, ROOM, gid, d0).own).toEqual(NONE);
    const l1 = say(laptop, ROOM, gid, "l1");
    expect(decodeAppData(l1.app, parseConversationId(ROOM)!, "alice").seen).toEqual([]);
    // My own leaf is a reflection, never opened.
    expect(() => laptop.layer.open(ROOM, gid, "alice", l1.app, laptop.key)).toThrow(/this device itself/);
    expect(() => laptop.layer.open(ROOM, gid, "alice", l1.app)).toThrow(/this device itself/);
  });

  it("a record from before devices is taken over by the user's first device heard from: the chain goes on", () => {
    const gid = makeGroupId(DM);
    const db = new DatabaseSync(":memory:");
    const bobOld = new MlsContentLayer({ me: "bob", store: new ContentStore(db), clock: () => T0 });
    const laptop = device("alice");
    const a0 = say(laptop, DM, gid, "a0");
    bobOld.open(DM, gid, "alice", a0.app); // before devices: no device given
    const bob = new MlsContentLayer({ me: "bob", store: new ContentStore(db), clock: () => T0 });
    bob.thisDevice(randomBytes(32));
    const a1 = say(laptop, DM, gid, "a1");
    expect(bob.open(DM, gid, "alice", a1.app, laptop.key).content.gap).toBe(false);
    const rows = db.prepare("SELECT username, hex(device) AS d FROM mls_content_device").all() as { username: string; d: string }[];
    expect(rows).toEqual([{ username: "alice", d: deviceTag(laptop.key).toString("hex").toUpperCase() }]);
  });

  it("a seen entry without a device naming another of my devices' messages proves nothing to this one", () => {
    const gid = makeGroupId(DM);
    const [laptop, desktop] = [device("alice"), device("alice")];
    const bobOld = device("bob"); // a writer that opens alice without devices (one chain per username)
    const hello = say(laptop, DM, gid, "hello");
    bobOld.layer.open(DM, gid, "alice", hello.app);
    const l1 = say(laptop, DM, gid, "l1"); // dropped for bob
    const d0 = say(desktop, DM, gid, "d0");
    bobOld.layer.open(DM, gid, "alice", d0.app);
    // bob's entry for "alice" names d0 (the desktop's): the laptop cannot tell what bob had of its chain.
    const b0 = say(bobOld, DM, gid, "b0");
    const b1 = say(bobOld, DM, gid, "b1");
    expect(hear(laptop, DM, gid, b0).own).toEqual(NONE);
    expect(hear(laptop, DM, gid, b1).own).toEqual(NONE);
    expect(l1.id).toBeDefined();
  });
});
