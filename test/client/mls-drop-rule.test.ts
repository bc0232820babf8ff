// PROTOCOL.md §11.1, the drop rule: a peer's message proves my message lost only when it names as
// `settled` a message of theirs that reached me after mine was accepted. Replies sealed before
// mine could reach the peer (typing at the same time, a backlog sealed in one engine turn after a
// reconnect, replies that reached me while my engine was busy) are not proof: no false "lost".
// A real drop is still flagged within one further message of the peer's.
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it, vi } from "vitest";
import { MlsContentLayer } from "../../src/client/mls/content.js";
import { AcceptanceOrder, BACKLOG_QUIET_MS, CLUSTER_SETTLE_MS } from "../../src/client/mls/content-order.js";
import { ContentStore } from "../../src/client/mls/content-store.js";
import { toHex } from "../../src/protocol/bytes.js";
import { APP_LABEL_V2, decodeAppData, ZERO_APP_HASH } from "../../src/protocol/mls/app-data.js";
import { makeGroupId } from "../../src/protocol/mls/group-id.js";
import { parseConversationId } from "../../src/protocol/names.js";
import { encodeFields } from "../../src/protocol/encoding.js";

const DM = "dm:alice:bob";
const ROOM = "#ops";
const T0 = 1_767_225_600_000;
const NONE = { confirmed: [], lost: [] };

/** A user as the session wires it: the content layer behind an AcceptanceOrder (session.ts). */
function user(me: string, db = new DatabaseSync(":memory:")) {
  const layer = new MlsContentLayer({ me, store: new ContentStore(db), clock: () => T0 });
  const order = new AcceptanceOrder();
  return { me, db, layer, order, content: order.wrap(layer) };
}
type User = ReturnType<typeof user>;
interface Sent { readonly from: string; readonly app: Uint8Array; readonly id: string; readonly messageId: Buffer }

function seal(u: User, conv: string, gid: Uint8Array, text: string): Sent {
  const s = u.content.seal(conv, gid, "text", text, T0);
  return { from: u.me, app: s.app, id: toHex(s.messageId), messageId: s.messageId };
}
/** The relay's answer "accepted" for m (recorded once the deliveries that reached u before it are handled). */
function accept(u: User, conv: string, m: Sent): void {
  u.content.accepted(conv, m.messageId);
}
/** Sealed and accepted with nothing waiting: the common case. */
function say(u: User, conv: string, gid: Uint8Array, text: string): Sent {
  const m = seal(u, conv, gid, text);
  accept(u, conv, m);
  return m;
}
/** A delivery reaches u (the engine may not open it yet). */
function arrive(u: User): void {
  u.order.arrived();
}
/** The engine opens a delivery that arrived earlier. */
function open(u: User, conv: string, gid: Uint8Array, m: Sent) {
  const r = u.content.open(conv, gid, m.from, m.app);
  u.order.done();
  return r;
}
/** A delivery that arrives and is opened at once. */
function hear(u: User, conv: string, gid: Uint8Array, m: Sent) {
  arrive(u);
  return open(u, conv, gid, m);
}
function settledOf(m: Sent, conv: string): Buffer {
  return Buffer.from(decodeAppData(m.app, parseConversationId(conv)!, m.from).settled!);
}

describe("no false 'lost' for honest peers (§11.1)", () => {
  it("typing at the same time: bob's burst, sealed before my message reached him, does not flag it; his next one confirms it", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    const a0 = say(alice, DM, gid, "a0");
    // Bob's client seals three before any answer comes back (the relay's answers follow).
    const burst = ["b0", "b1", "b2"].map((t) => seal(bob, DM, gid, t));
    for (const m of burst) accept(bob, DM, m);
    // The old rule called a0 lost at b1 (two messages after its acceptance without naming it).
    for (const m of burst) expect(hear(alice, DM, gid, m).own).toEqual(NONE);
    hear(bob, DM, gid, a0);
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b3")).own).toEqual({ confirmed: [a0.id], lost: [] });
  });

  it("a backlog sealed in one engine turn after a reconnect, with my messages queued for him unread: nothing flagged", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    const hello = say(alice, DM, gid, "hello");
    hear(bob, DM, gid, hello); // the DM exists on both sides
    const a = ["a1", "a2", "a3"].map((t) => say(alice, DM, gid, t));
    // Bob reconnects: the relay's backlog (a1..a3) reaches him while his engine seals his outbox,
    // each message answered "accepted" before the next is sealed.
    for (let i = 0; i < a.length; i++) arrive(bob);
    const backlog = ["b1", "b2", "b3", "b4", "b5"].map((t) => say(bob, DM, gid, t));
    // None names a settled message: the answers wait for the deliveries that came before them.
    for (const m of backlog) expect(settledOf(m, DM).equals(Buffer.from(ZERO_APP_HASH))).toBe(true);
    // The first confirms "hello" (bob had read it); the old rule called a1..a3 lost at b2.
    expect(backlog.map((m) => hear(alice, DM, gid, m).own)).toEqual([{ confirmed: [hello.id], lost: [] }, NONE, NONE, NONE, NONE]);
    for (const m of a) open(bob, DM, gid, m);
    // Now the answers are recorded: his next message is sealed after reading a1..a3 and says so.
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b6")).own).toEqual({ confirmed: a.map((m) => m.id), lost: [] });
  });

  it("bob's replies reached me while my engine was sealing: my message's acceptance counts from after I opened them", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    const b0 = say(bob, DM, gid, "b0");
    const b1 = say(bob, DM, gid, "b1"); // names b0 as settled; both sealed before a0 existed
    arrive(alice);
    arrive(alice);
    const a0 = say(alice, DM, gid, "a0"); // the relay's answer comes after b0 and b1 reached alice
    expect(open(alice, DM, gid, b0).own).toEqual(NONE);
    // The old rule recorded a0's acceptance before b1 was opened: b1 counted, a0 "lost".
    expect(open(alice, DM, gid, b1).own).toEqual(NONE);
    hear(bob, DM, gid, a0);
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b2")).own).toEqual({ confirmed: [a0.id], lost: [] });
  });

  it("room: members typing at the same time as me flag nothing; each confirms once they read mine", () => {
    const gid = makeGroupId(ROOM);
    const [alice, bob, carol] = [user("alice"), user("bob"), user("carol")];
    for (const u of [alice, bob, carol]) u.layer.membersChanged(ROOM, ["alice", "bob", "carol"]);
    const a0 = say(alice, ROOM, gid, "a0");
    const fromBob = ["b0", "b1"].map((t) => seal(bob, ROOM, gid, t));
    const fromCarol = ["c0", "c1"].map((t) => seal(carol, ROOM, gid, t));
    for (const m of fromBob) accept(bob, ROOM, m);
    for (const m of fromCarol) accept(carol, ROOM, m);
    for (const m of [...fromBob, ...fromCarol]) expect(hear(alice, ROOM, gid, m).own).toEqual(NONE);
    hear(bob, ROOM, gid, a0);
    hear(carol, ROOM, gid, a0);
    expect(hear(alice, ROOM, gid, say(bob, ROOM, gid, "b2")).own).toEqual(NONE);
    expect(hear(alice, ROOM, gid, say(carol, ROOM, gid, "c2")).own).toEqual({ confirmed: [a0.id], lost: [] });
  });
});

describe("after a (re)connect: the Welcome's backlog comes before my acceptances (§11.1)", () => {
  /**
   * Bob reconnects (to another relay of the cluster, say) while alice's a1..a3 wait for him. The
   * relay answers his resent outbox at once and pumps the backlog after: b1's answer reaches him
   * before a1..a3, all stored before b1. Alice sealed a4 (settled: a3) before b1 reached her.
   */
  function reconnectWithBacklog() {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    hear(bob, DM, gid, say(alice, DM, gid, "hello"));
    const a = ["a1", "a2", "a3"].map((t) => say(alice, DM, gid, t));
    bob.order.welcome(a.length);
    const b1 = say(bob, DM, gid, "b1"); // answered before the backlog arrived
    const backlog = a.map((m) => hear(bob, DM, gid, m).own);
    const a4 = say(alice, DM, gid, "a4"); // sealed before b1 reached alice: names a3 as settled
    return { gid, alice, bob, b1, a4, backlog };
  }

  it("neither the backlog (stored before mine) nor a reply sealed before mine reached the peer flags my message lost", () => {
    const { gid, alice, bob, b1, a4, backlog } = reconnectWithBacklog();
    // Without the wait, b1's acceptance was recorded before bob opened a1..a3: a2 and a3 (settled:
    // a1, a2, stored before b1) and a4 "proved" b1 lost.
    expect(backlog).toEqual([NONE, NONE, NONE]);
    expect(hear(bob, DM, gid, a4).own).toEqual(NONE);
    hear(alice, DM, gid, b1);
    expect(hear(bob, DM, gid, say(alice, DM, gid, "a5")).own).toEqual({ confirmed: [b1.id], lost: [] });
  });

  it("the acceptance is recorded once the backlog is handled: a real drop is still flagged at the peer's next message", () => {
    const { gid, alice, bob, b1, a4 } = reconnectWithBacklog(); // b1 never reaches alice
    expect(hear(bob, DM, gid, a4).own).toEqual(NONE);
    expect(hear(bob, DM, gid, say(alice, DM, gid, "a5")).own).toEqual({ confirmed: [], lost: [b1.id] });
  });

  it("a backlog that never completes (rows expired meanwhile) ends after a quiet while: the acceptance is recorded then", () => {
    vi.useFakeTimers();
    try {
      const gid = makeGroupId(DM);
      const order = new AcceptanceOrder(undefined, 1_000);
      const layer = user("bob").layer;
      const recorded: string[] = [];
      // The layer as the order sees it: records when the acceptance reaches it.
      const spy = order.wrap(new Proxy(layer, { get: (t, k) => (k === "accepted" ? (c: string, id: Buffer) => { recorded.push(toHex(id)); t.accepted(c, id); } : Reflect.get(t, k, t)) }));
      order.welcome(2);
      order.arrived();
      order.done();
      const s = layer.seal(DM, gid, "text", "b1", T0);
      spy.accepted(DM, s.messageId);
      vi.advanceTimersByTime(999);
      expect(recorded).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(recorded).toEqual([toHex(s.messageId)]);
      order.close();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("several relays on one database: answers settle after the relays' hint time (§11.1)", () => {
  /** A client given several relays (chat-client.ts): acceptances recorded CLUSTER_SETTLE_MS after the answer. */
  function clusterUser(me: string, settleMs: number) {
    const layer = new MlsContentLayer({ me, store: new ContentStore(new DatabaseSync(":memory:")), clock: () => T0 });
    const order = new AcceptanceOrder(undefined, BACKLOG_QUIET_MS, settleMs);
    return { me, db: undefined as unknown as DatabaseSync, layer, order, content: order.wrap(layer) };
  }

  /**
   * alice (on relay A) and carol (on relay B) send at the same moment: each relay answers its own
   * sender at once, and the other's message, stored a moment earlier, comes with the relays' hint
   * after the answer. alice seals a9 while her engine has not opened c8 yet.
   */
  function sameMoment(settleMs: number) {
    const gid = makeGroupId(ROOM);
    const [alice, carol] = [clusterUser("alice", settleMs), clusterUser("carol", settleMs)];
    for (const u of [alice, carol]) u.layer.membersChanged(ROOM, ["alice", "carol"]);
    hear(carol, ROOM, gid, say(alice, ROOM, gid, "a7"));
    hear(alice, ROOM, gid, say(carol, ROOM, gid, "c7"));
    vi.advanceTimersByTime(settleMs);
    const a8 = seal(alice, ROOM, gid, "a8");
    const c8 = seal(carol, ROOM, gid, "c8");
    accept(alice, ROOM, a8);
    accept(carol, ROOM, c8);
    arrive(alice); // c8, after alice's answer; her engine opens it after sealing a9
    hear(carol, ROOM, gid, a8);
    const a9 = say(alice, ROOM, gid, "a9");
    return { gid, alice, carol, a9, c8 };
  }

  it("two senders answered at the same moment by two relays: neither message is flagged lost; each is confirmed after", () => {
    vi.useFakeTimers();
    try {
      const { gid, alice, carol, a9, c8 } = sameMoment(CLUSTER_SETTLE_MS);
      // Recorded at once (one relay's order), a8's acceptance made a9 name it as settled, and
      // carol, who had c8's answer before a8, took a9 as proof that c8 never reached alice.
      expect(hear(carol, ROOM, gid, a9).own).toEqual(NONE);
      open(alice, ROOM, gid, c8);
      vi.advanceTimersByTime(CLUSTER_SETTLE_MS);
      const a10 = say(alice, ROOM, gid, "a10");
      expect(hear(carol, ROOM, gid, a10).own).toEqual({ confirmed: [c8.id], lost: [] });
      alice.order.close();
      carol.order.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it("with the answers recorded at once (one relay's promise), the same moment is a false 'lost': why a client of several relays waits", () => {
    vi.useFakeTimers();
    try {
      const { gid, carol, a9, c8 } = sameMoment(0);
      expect(hear(carol, ROOM, gid, a9).own).toEqual({ confirmed: [], lost: [c8.id] });
    } finally {
      vi.useRealTimers();
    }
  });

  it("a real drop is still flagged once the settle time is over", () => {
    vi.useFakeTimers();
    try {
      const gid = makeGroupId(ROOM);
      const [alice, carol] = [clusterUser("alice", CLUSTER_SETTLE_MS), clusterUser("carol", CLUSTER_SETTLE_MS)];
      for (const u of [alice, carol]) u.layer.membersChanged(ROOM, ["alice", "carol"]);
      hear(carol, ROOM, gid, say(alice, ROOM, gid, "a0"));
      const c1 = say(carol, ROOM, gid, "c1"); // dropped: never reaches alice
      vi.advanceTimersByTime(CLUSTER_SETTLE_MS);
      const a1 = say(alice, ROOM, gid, "a1");
      expect(hear(carol, ROOM, gid, a1).own).toEqual(NONE); // a1 names a0 as settled, opened before c1's answer
      vi.advanceTimersByTime(CLUSTER_SETTLE_MS);
      expect(hear(carol, ROOM, gid, say(alice, ROOM, gid, "a2")).own).toEqual({ confirmed: [], lost: [c1.id] });
      alice.order.close();
      carol.order.close();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("a real drop is still flagged within one further message (§11.1)", () => {
  it("DM: after a crossing burst, bob's next settled message without my dropped one flags it", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    const a0 = say(alice, DM, gid, "a0"); // dropped by the relay
    const burst = ["b0", "b1"].map((t) => seal(bob, DM, gid, t));
    for (const m of burst) accept(bob, DM, m);
    for (const m of burst) expect(hear(alice, DM, gid, m).own).toEqual(NONE);
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b2")).own).toEqual({ confirmed: [], lost: [a0.id] });
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b3")).own).toEqual(NONE); // reported once
  });

  it("DM: the last message dropped while bob's engine was busy: flagged once his answers were recorded and he wrote again", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    hear(bob, DM, gid, say(alice, DM, gid, "hello"));
    arrive(bob); // something of alice's he has not opened yet (a commit, say)
    const b0 = say(bob, DM, gid, "b0"); // its answer waits
    const a1 = say(alice, DM, gid, "a1"); // dropped
    expect(hear(alice, DM, gid, b0).own.lost).toEqual([]); // it confirms "hello"
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b1")).own).toEqual(NONE); // settled: none yet
    bob.order.done(); // bob's engine handled the pending delivery: b0, b1 accepted now
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b2")).own).toEqual({ confirmed: [], lost: [a1.id] });
  });

  it("a peer cannot prove a loss with a settled hash I never opened, nor with the older formats", () => {
    const gid = makeGroupId(DM);
    const [alice, bob] = [user("alice"), user("bob")];
    say(alice, DM, gid, "a0");
    const b0 = say(bob, DM, gid, "b0"); // never delivered to alice
    expect(hear(alice, DM, gid, say(bob, DM, gid, "b1")).own).toEqual(NONE); // names b0: unknown to me (and a gap)
    // The app2 format (no settled) opens and proves nothing.
    const d = decodeAppData(b0.app, parseConversationId(DM)!, "bob");
    const fields = [new Uint8Array([1]), "old", Buffer.alloc(16, 7), { u64: T0 }, Buffer.alloc(32), { u32: 0 }, { u32: 0 }];
    const old = { from: "bob", app: new Uint8Array(encodeFields(APP_LABEL_V2, fields)), id: "", messageId: Buffer.alloc(16) };
    expect(d.settled).toBeDefined();
    expect(hear(alice, DM, gid, old).own).toEqual(NONE);
  });
});

describe("the settled head is kept at rest", () => {
  it("a restart keeps what my next message names as settled, and what I opened of theirs and when", () => {
    const gid = makeGroupId(DM);
    const db = new DatabaseSync(":memory:");
    const bob = user("bob", db);
    const alice = user("alice");
    const a0 = say(alice, DM, gid, "a0"); // dropped
    const b0 = say(bob, DM, gid, "b0");
    hear(alice, DM, gid, b0);
    const again = user("bob", db); // bob restarts
    const b1 = say(again, DM, gid, "b1");
    expect(settledOf(b1, DM).equals(settledOf(say(user("bob", db), DM, gid, "b2"), DM))).toBe(false); // b0, then b1
    expect(settledOf(b1, DM).equals(Buffer.from(ZERO_APP_HASH))).toBe(false);
    const alice2 = user("alice", alice.db); // alice restarts too
    expect(hear(alice2, DM, gid, b1).own).toEqual({ confirmed: [], lost: [a0.id] });
  });
});
