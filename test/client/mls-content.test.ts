// The protocol v2 content layer (src/client/mls/content.ts, PROTOCOL.md §10, §11): what is inside
// each MLS application message. Layers for alice, bob (and carol) pass application bytes to each
// other, as the engine would after MLS decryption; a "relay" drops some of them.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ContentInputError, contentLayerOver, CONTENT_IDS_MAX, CONTENT_SENT_MAX, MlsContentLayer, UPDATE_AFTER_MESSAGES, UPDATE_AFTER_MS } from "../../src/client/mls/content.js";
import { ContentStore } from "../../src/client/mls/content-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { toHex } from "../../src/protocol/bytes.js";
import { encodeFields } from "../../src/protocol/encoding.js";
import { APP_LABEL, APP_SEEN_MAX, appHash, decodeAppData, ZERO_APP_HASH } from "../../src/protocol/mls/app-data.js";
import { parseConversationId } from "../../src/protocol/names.js";
import { isMlsProtocolError, makeGroupId, type MlsErrorCode } from "../../src/protocol/mls/index.js";
import { groupOf, person } from "../unit/mls-helpers.js";

const DM = "dm:alice:bob";
const ROOM = "#ops";
const T0 = 1_767_225_600_000;

function mlsError(f: () => unknown, code: MlsErrorCode): boolean {
  try {
    f();
    return false;
  } catch (e) {
    return isMlsProtocolError(e, code);
  }
}

/** One user's content layer over its own database (kept so rows can be counted). */
function user(me: string, clock: () => number = () => T0) {
  const db = new DatabaseSync(":memory:");
  return { me, db, layer: new MlsContentLayer({ me, store: new ContentStore(db), clock }) };
}
type User = ReturnType<typeof user>;

function rows(u: User, table: string): number {
  return Number((u.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n);
}

interface Sent { readonly from: string; readonly app: Uint8Array; readonly id: string }

/** Seals a text and tells the layer the relay accepted it. */
function say(u: User, conv: string, gid: Uint8Array, text: string, now = T0): Sent {
  const s = u.layer.seal(conv, gid, "text", text, now);
  u.layer.accepted(conv, s.messageId);
  return { from: u.me, app: s.app, id: toHex(s.messageId) };
}

function hear(u: User, conv: string, gid: Uint8Array, m: Sent) {
  return u.layer.open(conv, gid, m.from, m.app);
}

/** Application data as raw fields (for inputs the encoder would refuse to make). */
function rawApp(o: { kind?: number; text?: string; id?: Uint8Array; prev?: Uint8Array; seen?: Array<[string, Uint8Array]>; count?: number }): Uint8Array {
  const seen = o.seen ?? [];
  const fields = [new Uint8Array([o.kind ?? 1]), o.text ?? "hi", o.id ?? randomBytes(16), { u64: T0 }, o.prev ?? ZERO_APP_HASH, { u32: o.count ?? seen.length }];
  for (const [n, h] of seen) fields.push(n, h);
  return new Uint8Array(encodeFields(APP_LABEL, fields));
}

describe("chains, gaps and duplicates (§11)", () => {
  it("a DM round trip: text, kind, time, no gap; the reply confirms", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    const a0 = say(alice, DM, gid, "hello ✓", T0 + 5);
    const got = hear(bob, DM, gid, a0);
    expect(got.content).toMatchObject({ kind: "text", text: "hello ✓", sentAtMs: T0 + 5, gap: false, duplicate: false });
    expect(toHex(got.content.messageId)).toBe(a0.id);
    expect(got.own).toEqual({ confirmed: [], lost: [] });
    const b0 = say(bob, DM, gid, "hi");
    expect(hear(alice, DM, gid, b0).own).toEqual({ confirmed: [a0.id], lost: [] });
    // Confirmed messages are no longer watched.
    expect(rows(alice, "mls_content_sent")).toBe(0);
  });

  it("a dropped message shows a gap at the next one; a DM's first message must start the chain", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    const a0 = say(alice, DM, gid, "0");
    say(alice, DM, gid, "1"); // dropped
    const a2 = say(alice, DM, gid, "2");
    expect(hear(bob, DM, gid, a0).content.gap).toBe(false);
    expect(hear(bob, DM, gid, a2).content.gap).toBe(true);
    expect(hear(bob, DM, gid, say(alice, DM, gid, "3")).content.gap).toBe(false);
    // A bob who never saw alice's first message in this group (here: a bob with fresh state) sees a gap.
    const bob2 = user("bob");
    expect(hear(bob2, DM, gid, say(alice, DM, gid, "4")).content.gap).toBe(true);
  });

  it("two messages swapped by the relay: the early one is a gap, the late one and the next are not; the newest is what I acknowledge; it survives a restart", () => {
    const gid = makeGroupId(DM);
    const [alice] = [user("alice")];
    const bobDb = new DatabaseSync(":memory:");
    let bob = new MlsContentLayer({ me: "bob", store: new ContentStore(bobDb), clock: () => T0 });
    const heard = (m: Sent) => bob.open(DM, gid, m.from, m.app);
    const before = say(alice, DM, gid, "before");
    expect(heard(before).content.gap).toBe(false);
    const first = say(alice, DM, gid, "first");
    const second = say(alice, DM, gid, "second");
    expect(heard(second).content.gap).toBe(true); // "first" is missing at this point
    expect(heard(first).content.gap).toBe(false); // it continues "before": nothing else is missing
    // bob's next seen list names "second" (the newest), so alice sees both confirmed.
    const b0 = bob.seal(DM, gid, "text", "got both", T0);
    bob.accepted(DM, b0.messageId);
    expect(alice.layer.open(DM, gid, "bob", b0.app).own.confirmed.toSorted()).toEqual([before.id, first.id, second.id].sort());
    // A restart: the recent chain is read back from the state db.
    bob = new MlsContentLayer({ me: "bob", store: new ContentStore(bobDb), clock: () => T0 });
    expect(heard(say(alice, DM, gid, "third")).content.gap).toBe(false);
    // Two messages naming the same predecessor (forked chain): the second is a gap.
    const fork = rawApp({ prev: Buffer.from(appHash(gid, "alice", first.app)) });
    expect(bob.open(DM, gid, "alice", fork).content.gap).toBe(true);
  });

  it("a state db from before the recent-messages column is upgraded in place; its chain is judged by the last hash until refilled", () => {
    const gid = makeGroupId(DM);
    const alice = user("alice");
    const db = new DatabaseSync(":memory:");
    new MlsContentLayer({ me: "bob", store: new ContentStore(db), clock: () => T0 }).open(DM, gid, "alice", say(alice, DM, gid, "0").app);
    db.exec("ALTER TABLE mls_content_peer DROP COLUMN recent"); // as the table was made before
    const bob = new MlsContentLayer({ me: "bob", store: new ContentStore(db), clock: () => T0 });
    expect(bob.open(DM, gid, "alice", say(alice, DM, gid, "1").app).content.gap).toBe(false);
    say(alice, DM, gid, "2"); // dropped
    expect(bob.open(DM, gid, "alice", say(alice, DM, gid, "3").app).content.gap).toBe(true);
  });

  it("in a room: a member who joined after me starts a chain (first message no gap), one I joined late is not judged by their first", () => {
    const gid = makeGroupId(ROOM);
    const [alice, bob, carol] = [user("alice"), user("bob"), user("carol")];
    alice.layer.membersChanged(ROOM, ["alice"]); // alice creates the room
    const a0 = say(alice, ROOM, gid, "before bob");
    alice.layer.membersChanged(ROOM, ["alice", "bob"]); // bob joins
    bob.layer.membersChanged(ROOM, ["alice", "bob"]);
    const b0 = say(bob, ROOM, gid, "hi all");
    expect(hear(alice, ROOM, gid, b0).content.gap).toBe(false);
    // Bob never saw a0 (sent before he joined): alice's next is not a gap for him.
    const a1 = say(alice, ROOM, gid, "welcome");
    expect(hear(bob, ROOM, gid, a1).content.gap).toBe(false);
    expect(hear(bob, ROOM, gid, a0).content.gap).toBe(true); // a0 arriving late breaks the chain he knows
    // Carol joins; bob's first message she sees continues a chain she never saw: no gap either.
    for (const u of [alice, bob, carol]) u.layer.membersChanged(ROOM, ["alice", "bob", "carol"]);
    const c0 = say(carol, ROOM, gid, "hello");
    expect(hear(alice, ROOM, gid, c0).content.gap).toBe(false);
    expect(hear(bob, ROOM, gid, c0).content.gap).toBe(false);
    say(bob, ROOM, gid, "dropped for carol");
    const b2 = say(bob, ROOM, gid, "after the drop");
    expect(hear(carol, ROOM, gid, b2).content.gap).toBe(false); // her first from bob
    const b3 = say(bob, ROOM, gid, "next");
    expect(hear(carol, ROOM, gid, b3).content.gap).toBe(false);
    say(bob, ROOM, gid, "dropped again");
    expect(hear(carol, ROOM, gid, say(bob, ROOM, gid, "b5")).content.gap).toBe(true);
    // A joiner's chain must start at zeros: carol (fresh to alice) whose first alice saw was not her first.
    say(carol, ROOM, gid, "c1 dropped for alice");
    expect(hear(alice, ROOM, gid, say(carol, ROOM, gid, "c2")).content.gap).toBe(true);
    const dave = user("dave");
    for (const u of [alice, dave]) u.layer.membersChanged(ROOM, ["alice", "bob", "carol", "dave"]);
    say(dave, ROOM, gid, "d0 dropped");
    expect(hear(alice, ROOM, gid, say(dave, ROOM, gid, "d1")).content.gap).toBe(true);
  });

  it("a redelivered message is flagged duplicate and moves nothing; another sender may reuse the id", () => {
    const gid = makeGroupId(ROOM);
    const [alice, bob] = [user("alice"), user("bob")];
    const a0 = say(alice, ROOM, gid, "once");
    expect(hear(bob, ROOM, gid, a0).content.duplicate).toBe(false);
    const again = hear(bob, ROOM, gid, a0);
    expect(again.content).toMatchObject({ duplicate: true, gap: false, text: "once" });
    // The chain did not move twice: alice's next is not a gap.
    expect(hear(bob, ROOM, gid, say(alice, ROOM, gid, "twice")).content.gap).toBe(false);
    // A replayed id with other content (a hostile member) is a duplicate too.
    const id = Buffer.from(a0.id, "hex");
    const replay = rawApp({ id, text: "other text", prev: appHash(gid, "alice", a0.app) });
    expect(bob.layer.open(ROOM, gid, "alice", replay).content.duplicate).toBe(true);
    // Ids are per sender: carol's message with alice's id is not a duplicate.
    const c = rawApp({ id, text: "carol's" });
    expect(bob.layer.open(ROOM, gid, "carol", c).content.duplicate).toBe(false);
  });
});

describe("a dropped LAST message is shown within one further exchange (§11)", () => {
  it("DM: alice's last message is dropped; bob's second message without it flags it lost, and bob sees the gap at alice's next", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    const a0 = say(alice, DM, gid, "are you there?");
    hear(bob, DM, gid, a0);
    expect(hear(alice, DM, gid, say(bob, DM, gid, "yes")).own.confirmed).toEqual([a0.id]);
    const a1 = say(alice, DM, gid, "the last one"); // accepted by the relay, never delivered
    // Bob writes again (his first may have crossed a1): not flagged yet.
    expect(hear(alice, DM, gid, say(bob, DM, gid, "still there?")).own).toEqual({ confirmed: [], lost: [] });
    // His second without acknowledging a1: lost.
    expect(hear(alice, DM, gid, say(bob, DM, gid, "hello?")).own).toEqual({ confirmed: [], lost: [a1.id] });
    // Reported once.
    expect(hear(alice, DM, gid, say(bob, DM, gid, "…")).own.lost).toEqual([]);
    // Alice answers: bob's side shows the gap (a1 missing) at once.
    expect(hear(bob, DM, gid, say(alice, DM, gid, "sorry")).content.gap).toBe(true);
  });

  it("DM: a reply that crossed my message does not flag it; the next one confirms it", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    const b0 = say(bob, DM, gid, "hi"); // crosses a0
    const a0 = say(alice, DM, gid, "hi too");
    expect(hear(alice, DM, gid, b0).own).toEqual({ confirmed: [], lost: [] });
    hear(bob, DM, gid, a0);
    expect(hear(alice, DM, gid, say(bob, DM, gid, "ok")).own).toEqual({ confirmed: [a0.id], lost: [] });
  });

  it("a message the relay has not accepted yet is not flagged lost", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    alice.layer.seal(DM, gid, "text", "waiting", T0); // no accepted()
    for (const t of ["1", "2", "3"]) expect(hear(alice, DM, gid, say(bob, DM, gid, t)).own.lost).toEqual([]);
  });

  it("room: alice's last message reaches bob but not carol; carol's second message without it flags it lost", () => {
    const gid = makeGroupId(ROOM);
    const [alice, bob, carol] = [user("alice"), user("bob"), user("carol")];
    for (const u of [alice, bob, carol]) u.layer.membersChanged(ROOM, ["alice", "bob", "carol"]);
    const a0 = say(alice, ROOM, gid, "everyone?");
    hear(bob, ROOM, gid, a0);
    hear(carol, ROOM, gid, a0);
    const a1 = say(alice, ROOM, gid, "last"); // the relay drops carol's copy
    hear(bob, ROOM, gid, a1);
    // Carol's first message (it may have crossed a1): nothing yet; bob acknowledges a1, but carol,
    // heard from since, has not: not confirmed.
    expect(hear(alice, ROOM, gid, say(carol, ROOM, gid, "c1")).own).toEqual({ confirmed: [a0.id], lost: [] });
    expect(hear(alice, ROOM, gid, say(bob, ROOM, gid, "b1")).own).toEqual({ confirmed: [], lost: [] });
    expect(hear(alice, ROOM, gid, say(carol, ROOM, gid, "c2")).own).toEqual({ confirmed: [], lost: [a1.id] });
  });

  it("room: a member who joined after my message was sent is not asked to acknowledge it", () => {
    const gid = makeGroupId(ROOM);
    const [alice, bob, dave] = [user("alice"), user("bob"), user("dave")];
    for (const u of [alice, bob]) u.layer.membersChanged(ROOM, ["alice", "bob"]);
    const a0 = say(alice, ROOM, gid, "before dave");
    hear(bob, ROOM, gid, a0);
    for (const u of [alice, bob, dave]) u.layer.membersChanged(ROOM, ["alice", "bob", "dave"]);
    // Dave cannot read a0 (an epoch before his): his two messages do not make it lost…
    expect(hear(alice, ROOM, gid, say(dave, ROOM, gid, "d0")).own).toEqual({ confirmed: [], lost: [] });
    expect(hear(alice, ROOM, gid, say(dave, ROOM, gid, "d1")).own).toEqual({ confirmed: [], lost: [] });
    // …nor keep bob's acknowledgement from confirming it, and it is no longer watched after.
    expect(hear(alice, ROOM, gid, say(bob, ROOM, gid, "b0")).own).toEqual({ confirmed: [a0.id], lost: [] });
    expect(rows(alice, "mls_content_sent")).toBe(0);
    // A message after he joined is his to acknowledge.
    const a1 = say(alice, ROOM, gid, "after dave");
    hear(bob, ROOM, gid, a1);
    expect(hear(alice, ROOM, gid, say(bob, ROOM, gid, "b1")).own.confirmed).toEqual([a1.id]);
    hear(alice, ROOM, gid, say(dave, ROOM, gid, "d2"));
    expect(hear(alice, ROOM, gid, say(dave, ROOM, gid, "d3")).own.lost).toEqual([a1.id]);
  });

  it("room: the last message dropped for everyone is flagged by the first member who sends twice", () => {
    const gid = makeGroupId(ROOM);
    const [alice, bob, carol] = [user("alice"), user("bob"), user("carol")];
    for (const u of [alice, bob, carol]) u.layer.membersChanged(ROOM, ["alice", "bob", "carol"]);
    const a0 = say(alice, ROOM, gid, "dropped");
    expect(hear(alice, ROOM, gid, say(bob, ROOM, gid, "b0")).own.lost).toEqual([]);
    expect(hear(alice, ROOM, gid, say(carol, ROOM, gid, "c0")).own.lost).toEqual([]);
    expect(hear(alice, ROOM, gid, say(carol, ROOM, gid, "c1")).own.lost).toEqual([a0.id]);
    expect(hear(alice, ROOM, gid, say(bob, ROOM, gid, "b1")).own.lost).toEqual([]); // already reported
  });

  it("a peer whose chain has a gap is not believed silent about my message (the ack may be what was dropped)", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    const a0 = say(alice, DM, gid, "a0");
    hear(bob, DM, gid, a0);
    say(bob, DM, gid, "b0 acknowledges a0: dropped");
    // b1 and b2 do not name alice (bob told her already in b0): without the gap rule a0 would be "lost".
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b1")).content.gap).toBe(true);
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b2")).own.lost).toEqual([]);
  });
});

describe("the seen list (§11)", () => {
  it("names only the members whose last message changed since my previous message", () => {
    const gid = makeGroupId(ROOM);
    const [alice, bob, carol] = [user("alice"), user("bob"), user("carol")];
    for (const u of [alice, bob, carol]) u.layer.membersChanged(ROOM, ["alice", "bob", "carol"]);
    hear(alice, ROOM, gid, say(bob, ROOM, gid, "b0"));
    hear(alice, ROOM, gid, say(carol, ROOM, gid, "c0"));
    const big = say(alice, ROOM, gid, "a0");
    hear(alice, ROOM, gid, say(bob, ROOM, gid, "b1"));
    const small = say(alice, ROOM, gid, "a1");
    const none = say(alice, ROOM, gid, "a2");
    // Each seen entry is a name, a device tag (app4: empty here, no device known) and a 32-byte
    // hash: a1 carries one entry fewer than a0, a2 none.
    expect(big.app.length - small.app.length).toBe(4 + "carol".length + 4 + 4 + 32);
    expect(small.app.length - none.app.length).toBe(4 + "bob".length + 4 + 4 + 32);
  });
});

describe("update policy (§10)", () => {
  it("after 100 messages, after 24 h since my last commit (offline included); committed() resets", () => {
    let now = T0;
    const alice = user("alice", () => now);
    const gid = makeGroupId(ROOM);
    expect(alice.layer.shouldUpdate(ROOM, now)).toBe(false); // no group yet
    alice.layer.membersChanged(ROOM, ["alice", "bob"]); // joined now: the clock starts here
    for (let i = 0; i < UPDATE_AFTER_MESSAGES - 1; i++) alice.layer.seal(ROOM, gid, "text", `m${i}`, now);
    expect(alice.layer.shouldUpdate(ROOM, now)).toBe(false);
    alice.layer.seal(ROOM, gid, "text", "the 100th", now);
    expect(alice.layer.shouldUpdate(ROOM, now)).toBe(true);
    alice.layer.committed(ROOM, now);
    expect(alice.layer.shouldUpdate(ROOM, now)).toBe(false);
    now += UPDATE_AFTER_MS;
    expect(alice.layer.shouldUpdate(ROOM, now)).toBe(false);
    now += 1;
    expect(alice.layer.shouldUpdate(ROOM, now)).toBe(true);
    alice.layer.committed(ROOM, now);
    // Offline for 25 hours (no call at all), back: due before anything is sent.
    now += 25 * 60 * 60 * 1000;
    expect(alice.layer.shouldUpdate(ROOM, now)).toBe(true);
    // Per group: another group joined just now is not due.
    alice.layer.membersChanged("#dev", ["alice"]);
    expect(alice.layer.shouldUpdate("#dev", now)).toBe(false);
    expect(mlsError(() => alice.layer.shouldUpdate(ROOM, -1), "bad-argument")).toBe(true);
  });
});

describe("members and forgetting", () => {
  it("a departed member's chain is dropped: back later, they start afresh without a gap", () => {
    const gid = makeGroupId(ROOM);
    const [alice, bob] = [user("alice"), user("bob")];
    alice.layer.membersChanged(ROOM, ["alice", "bob"]);
    bob.layer.membersChanged(ROOM, ["alice", "bob"]);
    hear(alice, ROOM, gid, say(bob, ROOM, gid, "b0"));
    hear(alice, ROOM, gid, say(bob, ROOM, gid, "b1"));
    alice.layer.membersChanged(ROOM, ["alice"]); // bob leaves
    bob.layer.forget(ROOM);
    expect(rows(bob, "mls_content_conv") + rows(bob, "mls_content_device") + rows(bob, "mls_content_sent") + rows(bob, "mls_content_id")).toBe(0);
    expect(rows(alice, "mls_content_device")).toBe(0);
    alice.layer.membersChanged(ROOM, ["alice", "bob"]); // back
    bob.layer.membersChanged(ROOM, ["alice", "bob"]);
    expect(hear(alice, ROOM, gid, say(bob, ROOM, gid, "back")).content.gap).toBe(false);
  });

  it("another group of the same conversation starts fresh chains", () => {
    const [g1, g2] = [makeGroupId(DM), makeGroupId(DM)];
    const [alice, bob] = [user("alice"), user("bob")];
    hear(bob, DM, g1, say(alice, DM, g1, "in g1"));
    // The relay kept another DM group (both created at once): alice's first there starts at
    // zeros (a bob who never saw g1 expects zeros)…
    expect(hear(user("bob"), DM, g2, say(alice, DM, g2, "in g2")).content.gap).toBe(false);
    // …and bob, who heard her in g1, expects them too.
    expect(hear(bob, DM, g2, say(user("alice"), DM, g2, "first in g2")).content.gap).toBe(false);
  });

  it("a message re-sealed with its id (for the group that replaced its own, or again) keeps it; a copy that arrived is a duplicate", () => {
    const [g1, g2] = [makeGroupId(DM), makeGroupId(DM)];
    const [alice, bob] = [user("alice"), user("bob")];
    const first = alice.layer.seal(DM, g1, "text", "pending", T0); // never delivered: g1 was dropped
    const again = alice.layer.seal(DM, g2, "text", "pending", T0, first.messageId);
    expect(again.messageId.equals(first.messageId)).toBe(true);
    const got = bob.layer.open(DM, g2, "alice", again.app);
    expect(got.content).toMatchObject({ gap: false, duplicate: false });
    expect(got.content.messageId.equals(first.messageId)).toBe(true);
    // Sealed once more in g2 (a resend after a crash): the copy that arrived makes it a duplicate.
    alice.layer.accepted(DM, again.messageId);
    const third = alice.layer.seal(DM, g2, "text", "pending", T0, first.messageId);
    expect(bob.layer.open(DM, g2, "alice", third.app).content.duplicate).toBe(true);
    expect(mlsError(() => alice.layer.seal(DM, g2, "text", "x", T0, Buffer.alloc(15)), "bad-argument")).toBe(true);
  });

  it("a DM's other member stays its member whatever list comes (a group just created has only me)", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    alice.layer.membersChanged(DM, ["alice"]);
    say(bob, DM, gid, "b0: dropped");
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b1")).content.gap).toBe(true);
  });

  it("the lobby keeps no per-member state: any number of members, no gaps, no seen list, nothing watched", () => {
    const gid = makeGroupId("lobby");
    const [alice, bob] = [user("alice"), user("bob")];
    alice.layer.membersChanged("lobby", Array.from({ length: 3 * APP_SEEN_MAX }, (_, i) => `u${i}`));
    hear(bob, "lobby", gid, say(alice, "lobby", gid, "a0"));
    say(alice, "lobby", gid, "a1: not delivered to bob (he was offline)");
    const a2 = say(alice, "lobby", gid, "a2");
    expect(hear(bob, "lobby", gid, a2).content).toMatchObject({ gap: false, duplicate: false });
    expect(hear(bob, "lobby", gid, a2).content.duplicate).toBe(true);
    const b0 = say(bob, "lobby", gid, "b0");
    expect(hear(alice, "lobby", gid, b0).own).toEqual({ confirmed: [], lost: [] });
    expect(hear(alice, "lobby", gid, say(bob, "lobby", gid, "b1")).own).toEqual({ confirmed: [], lost: [] });
    expect(alice.layer.seal("lobby", gid, "text", "a3", T0).app.length).toBe(say(user("carol"), "lobby", gid, "a3").app.length);
    for (const u of [alice, bob]) expect(rows(u, "mls_content_device") + rows(u, "mls_content_sent")).toBe(0);
  });

  it("refuses member lists that are not usernames, too long, or a third member of a DM", () => {
    const alice = user("alice");
    expect(mlsError(() => alice.layer.membersChanged(ROOM, ["alice", "Bad Name"]), "bad-argument")).toBe(true);
    const many = Array.from({ length: APP_SEEN_MAX + 1 }, (_, i) => `u${i}`);
    expect(mlsError(() => alice.layer.membersChanged(ROOM, many), "bad-argument")).toBe(true);
    expect(mlsError(() => alice.layer.membersChanged(DM, ["alice", "bob", "carol"]), "bad-argument")).toBe(true);
  });
});

describe("persistence in the state db", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "sc-content-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("a restart mid-conversation keeps chains, seen ids, the watched messages and the counters", () => {
    const gid = makeGroupId(DM);
    const path = join(dir, "alice_state.db");
    let state = ClientStateStore.open(path);
    let alice: User = { me: "alice", db: state.database, layer: contentLayerOver(state, "alice", { clock: () => T0 }) };
    const bob = user("bob");
    const b0 = say(bob, DM, gid, "b0");
    hear(alice, DM, gid, b0);
    const a0 = say(alice, DM, gid, "a0");
    hear(bob, DM, gid, a0);
    const a1 = say(alice, DM, gid, "a1: dropped");
    state.close();

    state = ClientStateStore.open(path);
    alice = { me: "alice", db: state.database, layer: contentLayerOver(state, "alice", { clock: () => T0 }) };
    // The redelivered b0 is still a duplicate; bob's chain continues without a gap.
    expect(hear(alice, DM, gid, b0).content.duplicate).toBe(true);
    const b1 = hear(alice, DM, gid, say(bob, DM, gid, "b1"));
    expect(b1.content.gap).toBe(false);
    expect(b1.own).toEqual({ confirmed: [a0.id], lost: [] });
    // The dropped a1, accepted before the restart, is flagged after it.
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b2")).own.lost).toEqual([a1.id]);
    // My chain continues: bob sees a gap for a1 only.
    expect(hear(bob, DM, gid, say(alice, DM, gid, "a2")).content.gap).toBe(true);
    expect(hear(bob, DM, gid, say(alice, DM, gid, "a3")).content.gap).toBe(false);
    // The update counter survived: 4 sent, 96 more make it due.
    for (let i = 0; i < UPDATE_AFTER_MESSAGES - 5; i++) alice.layer.seal(DM, gid, "text", "x", T0);
    state.close();
    state = ClientStateStore.open(path);
    const again = new MlsContentLayer({ me: "alice", store: new ContentStore(state.database), clock: () => T0 });
    expect(again.shouldUpdate(DM, T0)).toBe(false);
    again.seal(DM, gid, "text", "100th", T0);
    expect(again.shouldUpdate(DM, T0)).toBe(true);
    // The v1 tables are untouched and the file still opens as a state db.
    expect(state.outbox()).toEqual([]);
    state.close();
  });

  it("open and the caller's own write are one transaction (runAtomically)", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    const b0 = say(bob, DM, gid, "b0");
    expect(() => alice.layer.runAtomically(() => {
      hear(alice, DM, gid, b0);
      throw new Error("the history write failed");
    })).toThrow("history write");
    // Rolled back: the id is not seen, so the redelivery opens as new (memory is reloaded from disk).
    expect(rows(alice, "mls_content_id")).toBe(0);
    expect(hear(alice, DM, gid, b0).content).toMatchObject({ duplicate: false, gap: false });
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b1")).content.gap).toBe(false);
    // Inside the caller's transaction, a refused message undoes nothing of the caller's.
    alice.layer.runAtomically(() => {
      alice.db.exec("CREATE TABLE caller_rows (x INTEGER); INSERT INTO caller_rows VALUES (1)");
      expect(mlsError(() => alice.layer.open(DM, gid, "bob", randomBytes(64)), "malformed")).toBe(true);
      hear(alice, DM, gid, say(bob, DM, gid, "b2"));
    });
    expect(rows(alice, "caller_rows")).toBe(1);
    expect(rows(alice, "mls_content_id")).toBe(3);
  });
});

describe("hostile inputs", () => {
  const gid = makeGroupId(ROOM);

  it("malformed data is refused and leaves the chain as it was", () => {
    const [alice, bob] = [user("alice"), user("bob")];
    alice.layer.membersChanged(ROOM, ["alice", "bob"]);
    bob.layer.membersChanged(ROOM, ["alice", "bob"]);
    hear(alice, ROOM, gid, say(bob, ROOM, gid, "b0"));
    const b1 = say(bob, ROOM, gid, "b1");
    for (const bad of [randomBytes(300), b1.app.subarray(0, b1.app.length - 1), new Uint8Array([...b1.app, 0]), new Uint8Array(0)]) {
      expect(mlsError(() => alice.layer.open(ROOM, gid, "bob", bad), "malformed")).toBe(true);
    }
    expect(hear(alice, ROOM, gid, b1).content).toMatchObject({ gap: false, duplicate: false, text: "b1" });
  });

  it("data bound to another conversation, group or sender is refused or shown as a gap", () => {
    const [alice, bob] = [user("alice"), user("bob")];
    const dmGid = makeGroupId(DM);
    // Another conversation's group id.
    const a0 = say(alice, DM, dmGid, "for bob");
    expect(mlsError(() => bob.layer.open(DM, makeGroupId("dm:bob:carol"), "alice", a0.app), "wrong-group")).toBe(true);
    expect(mlsError(() => bob.layer.open(ROOM, dmGid, "alice", a0.app), "wrong-group")).toBe(true);
    // A room's topic delivered as a DM's.
    const topic = alice.layer.seal(ROOM, gid, "topic", "new topic", T0);
    expect(mlsError(() => bob.layer.open(DM, dmGid, "alice", topic.app), "malformed")).toBe(true);
    // A DM message from someone who is not the other member.
    expect(mlsError(() => bob.layer.open(DM, dmGid, "carol", a0.app), "bad-argument")).toBe(true);
    // From myself (MLS refuses reflections; the layer too: I would then name myself in my seen list).
    expect(mlsError(() => alice.layer.open(DM, dmGid, "alice", a0.app), "bad-argument")).toBe(true);
    expect(mlsError(() => alice.layer.open(ROOM, gid, "alice", rawApp({})), "bad-argument")).toBe(true);
    expect(alice.layer.seal(ROOM, gid, "text", "still sealing", T0).app.length).toBeGreaterThan(0);
    // Alice's second message presented as carol's: the hash binds the sender, so carol's chain breaks.
    hear(bob, DM, dmGid, a0);
    const carolGid = makeGroupId("dm:bob:carol");
    const carol = user("carol");
    hear(bob, "dm:bob:carol", carolGid, say(carol, "dm:bob:carol", carolGid, "c0"));
    const a1 = say(alice, DM, dmGid, "a1");
    expect(bob.layer.open("dm:bob:carol", carolGid, "carol", a1.app).content.gap).toBe(true);
    // And moved into another group of the same pair it starts no valid chain either.
    const bobToo = user("bob");
    bobToo.layer.open(DM, dmGid, "alice", a0.app);
    const other = makeGroupId(DM);
    expect(bobToo.layer.open(DM, other, "alice", a1.app).content.gap).toBe(true);
  });

  it("a seen list naming its sender, or longer than the cap, is refused", () => {
    const alice = user("alice");
    const h = randomBytes(32);
    expect(mlsError(() => alice.layer.open(ROOM, gid, "bob", rawApp({ seen: [["bob", h]] })), "malformed")).toBe(true);
    const huge = Array.from({ length: APP_SEEN_MAX + 1 }, (_, i): [string, Uint8Array] => [`u${String(i).padStart(4, "0")}`, h]);
    expect(mlsError(() => alice.layer.open(ROOM, gid, "bob", rawApp({ seen: huge })), "malformed")).toBe(true);
    // A count that claims a billion entries without them: refused before any allocation.
    expect(mlsError(() => alice.layer.open(ROOM, gid, "bob", rawApp({ count: 1e9 })), "malformed")).toBe(true);
    expect(rows(alice, "mls_content_id")).toBe(0);
  });

  it("a full seen list of strangers grows nothing on my side", () => {
    const alice = user("alice");
    alice.layer.membersChanged(ROOM, ["alice", "bob"]);
    const h = randomBytes(32);
    const full = Array.from({ length: APP_SEEN_MAX }, (_, i): [string, Uint8Array] => [`u${String(i).padStart(4, "0")}`, h]);
    expect(alice.layer.open(ROOM, gid, "bob", rawApp({ seen: full })).content.gap).toBe(false);
    expect(rows(alice, "mls_content_device")).toBe(1);
  });

  it("text with escape sequences and invisible characters is shown sanitised", () => {
    const alice = user("alice");
    const evil = "\u001b[2J\u001b]0;owned\u0007hi\u202Eevil\u200B";
    const got = alice.layer.open(ROOM, gid, "bob", rawApp({ text: evil })).content.text;
    expect(got).not.toMatch(/[\u001b\u0007\u202E\u200B]/u);
    expect(got).toContain("hi");
  });

  it("bounds: senders, watched messages and remembered ids per conversation", () => {
    const alice = user("alice");
    alice.layer.membersChanged(ROOM, ["alice", "bob"]);
    // Past-epoch messages from 1,100 strangers: at most APP_SEEN_MAX peers are kept.
    for (let i = 0; i < APP_SEEN_MAX + 100; i++) alice.layer.open(ROOM, gid, `s${i}`, rawApp({}));
    expect(rows(alice, "mls_content_device")).toBeLessThanOrEqual(APP_SEEN_MAX);
    expect(rows(alice, "mls_content_device")).toBeGreaterThan(1);
    // Never acknowledged: at most CONTENT_SENT_MAX own messages watched.
    for (let i = 0; i < CONTENT_SENT_MAX + 20; i++) say(alice, ROOM, gid, `m${i}`);
    expect(rows(alice, "mls_content_sent")).toBe(CONTENT_SENT_MAX);
    for (let i = 0; i < CONTENT_IDS_MAX; i++) alice.layer.open(ROOM, gid, "bob", rawApp({}));
    expect(rows(alice, "mls_content_id")).toBe(CONTENT_IDS_MAX);
  });

  it("seal refuses bad input with the client's error data", () => {
    const alice = user("alice");
    const dmGid = makeGroupId(DM);
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof ContentInputError ? e.error.kind : String(e);
      }
      return "no error";
    };
    expect(err(() => alice.layer.seal(DM, dmGid, "text", "x".repeat(64 * 1024 + 1), T0))).toBe("too-large");
    expect(err(() => alice.layer.seal(DM, dmGid, "text", "  \n", T0))).toBe("empty-message");
    expect(err(() => alice.layer.seal(DM, dmGid, "text", "bad \uD800", T0))).toBe("invalid-characters");
    expect(err(() => alice.layer.seal(DM, dmGid, "topic", "t", T0))).toBe("topic-outside-room");
    expect(err(() => alice.layer.seal(ROOM, gid, "away", "t", T0))).toBe("away-outside-dm");
    expect(mlsError(() => alice.layer.seal("dm:bob:carol", makeGroupId("dm:bob:carol"), "text", "x", T0), "bad-argument")).toBe(true);
    expect(mlsError(() => alice.layer.seal(DM, gid, "text", "x", T0), "wrong-group")).toBe(true);
    // The largest text fits.
    expect(alice.layer.seal(DM, dmGid, "text", "x".repeat(64 * 1024), T0).app.length).toBeGreaterThan(64 * 1024);
  });
});

describe("end to end through real MLS groups", () => {
  it("a DM over MlsGroup: a dropped last message is flagged, the gap shown, redelivery refused by MLS", async () => {
    const [pa, pb] = await Promise.all([person("alice"), person("bob")]);
    const [ga, gb] = await groupOf(DM, pa, [pb]);
    const [alice, bob] = [user("alice"), user("bob")];
    const send = async (u: User, g: typeof ga, text: string) => {
      const s = u.layer.seal(DM, g!.groupId, "text", text, T0);
      u.layer.accepted(DM, s.messageId);
      return { wire: await g!.encrypt(s.app), id: toHex(s.messageId) };
    };
    const receive = async (u: User, g: typeof ga, wire: Uint8Array) => {
      const got = await g!.process(wire);
      if (got.kind !== "application") throw new Error("expected an application message");
      return u.layer.open(DM, g!.groupId, got.sender.username, got.plaintext);
    };
    const a0 = await send(alice, ga, "hi bob");
    expect((await receive(bob, gb, a0.wire)).content.text).toBe("hi bob");
    const a1 = await send(alice, ga, "dropped by the relay");
    expect((await receive(alice, ga, (await send(bob, gb, "hi")).wire)).own.confirmed).toEqual([a0.id]);
    expect((await receive(alice, ga, (await send(bob, gb, "there?")).wire)).own.lost).toEqual([a1.id]);
    expect((await receive(bob, gb, (await send(alice, ga, "again")).wire)).content.gap).toBe(true);
    await expect(gb!.process(a0.wire)).rejects.toSatisfy((e) => isMlsProtocolError(e));
  });

  it("a room over MlsGroups: alice's last message is dropped for carol only; carol's second message flags it", async () => {
    const people = await Promise.all(["alice", "bob", "carol"].map((n) => person(n)));
    const groups = await groupOf(ROOM, people[0]!, people.slice(1));
    const [alice, bob, carol] = [user("alice"), user("bob"), user("carol")];
    const layers = [alice, bob, carol];
    for (const u of layers) u.layer.membersChanged(ROOM, ["alice", "bob", "carol"]);
    /** Sends from member i to the members in `to` (the others' copies are dropped); returns what each opened. */
    const post = async (i: number, text: string, to: readonly number[]) => {
      const s = layers[i]!.layer.seal(ROOM, groups[i]!.groupId, "text", text, T0);
      layers[i]!.layer.accepted(ROOM, s.messageId);
      const wire = await groups[i]!.encrypt(s.app);
      const out = new Map<number, ReturnType<MlsContentLayer["open"]>>();
      for (const j of to) {
        const got = await groups[j]!.process(wire);
        if (got.kind !== "application") throw new Error("expected an application message");
        out.set(j, layers[j]!.layer.open(ROOM, groups[j]!.groupId, got.sender.username, got.plaintext));
      }
      return { id: toHex(s.messageId), out };
    };
    const a0 = await post(0, "hello room", [1, 2]);
    expect(a0.out.get(2)!.content).toMatchObject({ text: "hello room", gap: false });
    const a1 = await post(0, "carol never gets this", [1]);
    expect((await post(2, "c0", [0, 1])).out.get(0)!.own).toEqual({ confirmed: [a0.id], lost: [] });
    expect((await post(2, "c1", [0, 1])).out.get(0)!.own).toEqual({ confirmed: [], lost: [a1.id] });
    // Carol sees the gap at alice's next message.
    expect((await post(0, "again", [1, 2])).out.get(2)!.content.gap).toBe(true);
  });
});

describe("room epoch views through a DM (§12 fork check)", () => {
  it("a DM carries my newest view of each room the peer is in; the peer flags a different authenticator of the same epoch only", () => {
    const a = user("alice"), b = user("bob");
    const g = makeGroupId(ROOM), other = makeGroupId("#dev");
    const dmG = makeGroupId(DM);
    for (const u of [a, b]) u.layer.membersChanged(ROOM, ["alice", "bob", "carol"]);
    a.layer.membersChanged("#dev", ["alice", "carol"]); // bob is not in #dev: it is not told to him
    const auth1 = randomBytes(32), authA = randomBytes(32), authB = randomBytes(32);
    a.layer.epochView(ROOM, g, 1, auth1);
    b.layer.epochView(ROOM, g, 1, auth1);
    a.layer.epochView("#dev", other, 5, randomBytes(32));
    const open = () => b.layer.open(DM, dmG, "alice", a.layer.seal(DM, dmG, "text", "hi", T0).app).content;
    const sent = decodeAppData(a.layer.seal(DM, dmG, "text", "look", T0).app, parseConversationId(DM)!, "alice").views!;
    expect(sent.map((v) => [Buffer.from(v.groupId).equals(Buffer.from(g)), v.epoch])).toEqual([[true, 1]]); // #ops only, not #dev
    expect(open().forked).toBeUndefined(); // same epoch, same authenticator
    a.layer.epochView(ROOM, g, 2, authA);
    expect(open().forked).toBeUndefined(); // bob has no view of epoch 2 yet: nothing to compare
    b.layer.epochView(ROOM, g, 2, authB);
    expect(open().forked).toEqual([{ conversationId: ROOM, epoch: 2 }]);
    // A re-created room (another group): the old group's views are not compared with it.
    b.layer.epochView(ROOM, makeGroupId(ROOM), 2, randomBytes(32));
    expect(open().forked).toBeUndefined();
    expect(() => a.layer.epochView(DM, dmG, 1, auth1)).toThrow(/rooms only/);
    expect(mlsError(() => a.layer.epochView(ROOM, other, 1, auth1), "wrong-group")).toBe(true);
  });
});
