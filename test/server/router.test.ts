// The relay's router (src/server/router.ts) without gRPC: who is online, presence without
// flicker on replacement, directory updates coalesced into one frame per turn (and throttled in a
// storm), broadcasts, waking pumps, and shutdown. Streams and pumps are fakes that record what
// they were given; directory users are real (fixture keys).
import type { StatusObject } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { SessionResponse, type DirectoryEntry } from "../../src/gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import type { DeliveryPump } from "../../src/server/delivery.js";
import { DirectoryUser } from "../../src/server/directory.js";
import { Router, type RoutedSession } from "../../src/server/router.js";
import type { FrameStream } from "../../src/server/stream.js";
import { fixtureIdentity } from "../helpers/identities.js";

interface FakeStream {
  readonly stream: FrameStream;
  readonly sent: Buffer[];
  readonly ended: StatusObject[];
}

function fakeStream(): FakeStream {
  const sent: Buffer[] = [];
  const ended: StatusObject[] = [];
  const stream = {
    closed: false,
    send: (frame: Uint8Array) => {
      sent.push(Buffer.from(frame));
      return Promise.resolve(true);
    },
    end: (status: StatusObject) => {
      ended.push(status);
    },
  } as Partial<FrameStream> as FrameStream;
  return { stream, sent, ended };
}

interface FakeSession extends RoutedSession {
  readonly io: FakeStream;
  readonly arrived: number[];
  replacedCalls: number;
}

const users = new Map<string, DirectoryUser>();

beforeAll(async () => {
  for (const name of ["alice", "bob", "carol"] as const) {
    const id: PrivateIdentity = await fixtureIdentity(name);
    users.set(name, new DirectoryUser({
      username: name, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, sigFpr: id.sigFpr, encFpr: id.encFpr, createdAtMs: 1,
    }));
  }
});

function session(name: string, address = name): FakeSession {
  const io = fakeStream();
  const arrived: number[] = [];
  const s: FakeSession = {
    username: name,
    address,
    user: users.get(name)!,
    stream: io.stream,
    pump: { arrived: (n: number) => arrived.push(n) } as Partial<DeliveryPump> as DeliveryPump,
    io,
    arrived,
    replacedCalls: 0,
    replaced() {
      s.replacedCalls++;
    },
    unlinked() {},
    released() {},
  };
  return s;
}

/** The directory updates in what a stream was sent, one list of entries per frame. */
function updates(io: FakeStream): Array<Array<Pick<DirectoryEntry, "username" | "online">>> {
  return io.sent.flatMap((b) => {
    const f = SessionResponse.decode(b).frame;
    return f?.$case === "directoryUpdate" ? [f.value.entries.map((e) => ({ username: e.username, online: e.online }))] : [];
  });
}

/** Lets the end-of-turn flush (setImmediate) run. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

afterEach(() => {
  vi.useRealTimers();
});

describe("Router: who is online", () => {
  it("attaches and detaches sessions; only the current one of a user can go offline", async () => {
    const r = new Router();
    const old = session("alice");
    const bob = session("bob");
    r.attach(bob);
    r.attach(old);
    expect(r.isOnline("alice")).toBe(true);
    expect(r.onlineCount).toBe(2);
    expect([...r.onlineNames()].sort()).toEqual(["alice", "bob"]);

    const fresh = session("alice");
    r.attach(fresh);
    expect(old.replacedCalls).toBe(1);
    expect(fresh.replacedCalls).toBe(0);
    expect(r.onlineCount).toBe(2);

    // The replaced session ends after the new one took over: alice stays online.
    r.detach(old);
    expect(r.isOnline("alice")).toBe(true);
    r.detach(fresh);
    expect(r.isOnline("alice")).toBe(false);
    expect(r.onlineCount).toBe(1);
    // Detaching twice does nothing more.
    r.detach(fresh);
    await nextTurn();
    expect(updates(bob.io).flat().filter((e) => e.username === "alice")).toEqual([{ username: "alice", online: false }]);
  });

  it("announces a replacement without an offline/online flicker", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "performance"] });
    const r = new Router();
    const bob = session("bob");
    r.attach(bob);
    vi.runAllTimers();
    bob.io.sent.length = 0;
    r.attach(session("alice"));
    vi.runAllTimers();
    expect(updates(bob.io)).toEqual([[{ username: "alice", online: true }]]);
    r.attach(session("alice"));
    vi.runAllTimers();
    expect(updates(bob.io)).toEqual([[{ username: "alice", online: true }]]);
  });

  it("devices (PROTOCOL.md §4.5): one session per device, the user online from the first device to the last, pumps woken per device", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "performance"] });
    const r = new Router();
    const bob = session("bob");
    r.attach(bob);
    vi.runAllTimers();
    bob.io.sent.length = 0;
    const laptop = session("alice");
    const desktop = session("alice", "alice/0123456789abcdef");
    r.attach(laptop);
    r.attach(desktop);
    vi.runAllTimers();
    expect(updates(bob.io)).toEqual([[{ username: "alice", online: true }]]);
    expect(r.onlineCount).toBe(3); // sessions, not users
    expect([...r.onlineNames()].sort()).toEqual(["alice", "bob"]);
    expect([r.isAddressOnline("alice"), r.isAddressOnline("alice/0123456789abcdef")]).toEqual([true, true]);

    // A new session of the desktop replaces the desktop's only.
    const desktop2 = session("alice", "alice/0123456789abcdef");
    r.attach(desktop2);
    expect([laptop.replacedCalls, desktop.replacedCalls]).toEqual([0, 1]);
    r.detach(desktop);
    expect(r.sessionAt("alice/0123456789abcdef")).toBe(desktop2);

    // Rows per queue address wake that device's pump only.
    r.delivered(new Map([["alice/0123456789abcdef", 2]]));
    expect([laptop.arrived, desktop2.arrived]).toEqual([[], [2]]);

    // The laptop leaves: alice is still online (no entry); the desktop leaves: offline.
    r.detach(laptop);
    vi.runAllTimers();
    expect(r.isOnline("alice")).toBe(true);
    expect(updates(bob.io)).toEqual([[{ username: "alice", online: true }]]);
    r.detach(desktop2);
    vi.runAllTimers();
    expect(r.isOnline("alice")).toBe(false);
    expect(updates(bob.io)).toEqual([[{ username: "alice", online: true }], [{ username: "alice", online: false }]]);
  });

  it("counts every tracked stream, authenticated or not", () => {
    const r = new Router();
    const a = fakeStream().stream;
    const b = fakeStream().stream;
    r.trackStream(a);
    r.trackStream(b);
    r.trackStream(a);
    expect(r.streamCount).toBe(2);
    r.untrackStream(a);
    expect(r.streamCount).toBe(1);
    expect(r.onlineCount).toBe(0);
  });
});

describe("Router: directory updates", () => {
  it("sends the changes of one turn as ONE frame, the same bytes to everyone online, last change per name winning", async () => {
    const r = new Router();
    const alice = session("alice");
    const bob = session("bob");
    r.attach(alice);
    r.attach(bob);
    r.announceBinding(users.get("carol")!, true);
    r.announceBinding(users.get("carol")!, false);
    expect(alice.io.sent).toEqual([]); // nothing before the turn ends
    await nextTurn();
    expect(updates(alice.io)).toEqual([[
      { username: "alice", online: true }, { username: "bob", online: true }, { username: "carol", online: false },
    ]]);
    expect(alice.io.sent).toHaveLength(1);
    expect(bob.io.sent).toHaveLength(1);
    expect(bob.io.sent[0]!.equals(alice.io.sent[0]!)).toBe(true);
    // Light entries: no keys in a directory update.
    const entry = SessionResponse.decode(alice.io.sent[0]!).frame;
    expect(entry?.$case === "directoryUpdate" && entry.value.entries.every((e) => e.sigSpki.length === 0 && e.encSpki.length === 0 && e.keyTag.length === 8)).toBe(true);
  });

  it("in a storm, sends at most one update per interval, each carrying everything since the last", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "performance"] });
    const r = new Router();
    const watcher = session("carol");
    r.attach(watcher);
    vi.advanceTimersToNextTimer(); // the first flush (setImmediate)
    expect(updates(watcher.io)).toHaveLength(1);

    r.attach(session("alice"));
    vi.advanceTimersByTime(50);
    r.attach(session("bob"));
    vi.advanceTimersByTime(49);
    expect(updates(watcher.io)).toHaveLength(1); // still inside the 100 ms after the last flush
    vi.advanceTimersByTime(1);
    expect(updates(watcher.io)).toEqual([
      [{ username: "carol", online: true }],
      [{ username: "alice", online: true }, { username: "bob", online: true }],
    ]);
  });

  it("stops a pending update at shutdown", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "performance"] });
    const r = new Router();
    const watcher = session("carol");
    r.attach(watcher);
    vi.advanceTimersToNextTimer();
    r.attach(session("alice")); // scheduled on a timer: within 100 ms of the last flush
    r.endAll({ code: 14, details: "bye", metadata: undefined as never }, () => {});
    vi.advanceTimersByTime(1000);
    expect(updates(watcher.io)).toEqual([[{ username: "carol", online: true }]]);
  });
});

describe("Router: frames to sessions", () => {
  it("broadcasts to everyone online but the one excepted, and sends to the online among names", () => {
    const r = new Router();
    const [a, b, c] = [session("alice"), session("bob"), session("carol")];
    for (const s of [a, b, c]) r.attach(s);
    const frame = Buffer.from("frame");
    r.broadcast(frame, "bob");
    expect([a, b, c].map((s) => s.io.sent.length)).toEqual([1, 0, 1]);
    r.broadcast(frame);
    expect([a, b, c].map((s) => s.io.sent.length)).toEqual([2, 1, 2]);
    r.sendTo(["bob", "nobody", "carol", "bob"], frame);
    expect([a, b, c].map((s) => s.io.sent.length)).toEqual([2, 3, 3]);
  });

  it("wakes the pumps of online recipients with their row counts, and skips the offline", () => {
    const r = new Router();
    const [a, b] = [session("alice"), session("bob")];
    r.attach(a);
    r.attach(b);
    r.delivered(new Map([["alice", 3], ["carol", 5], ["bob", 1]]));
    r.delivered(new Map([["alice", 2]]));
    expect(a.arrived).toEqual([3, 2]);
    expect(b.arrived).toEqual([1]);
  });

  it("at shutdown runs beforeEnd on each authenticated session, then ends every tracked stream", () => {
    const r = new Router();
    const a = session("alice");
    r.attach(a);
    r.trackStream(a.stream);
    const handshaking = fakeStream();
    r.trackStream(handshaking.stream);
    const order: string[] = [];
    const status = { code: 14, details: "shutting down", metadata: undefined as never };
    r.endAll(status, (s) => {
      order.push(`before:${s.username}:${a.io.ended.length}`);
    });
    expect(order).toEqual(["before:alice:0"]);
    expect(a.io.ended).toEqual([status]);
    expect(handshaking.ended).toEqual([status]);
  });
});
