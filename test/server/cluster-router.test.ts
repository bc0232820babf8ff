// The router in a cluster (src/server/router.ts with a Cluster): what it tells the other relays
// (presence, sessions, rows for addresses not here, user changes), how remote presence counts,
// and that a session ended because its device moved elsewhere is not announced offline. The
// cluster is a recorder (a bus, not a database); streams and pumps are fakes.
import type { StatusObject } from "@grpc/grpc-js";
import { beforeAll, describe, expect, it } from "vitest";
import { SessionResponse } from "../../src/gen/securechat/v1/chat.js";
import type { Cluster, ClusterEventBody } from "../../src/server/cluster.js";
import type { DeliveryPump } from "../../src/server/delivery.js";
import { DirectoryUser } from "../../src/server/directory.js";
import { Router, type RoutedSession } from "../../src/server/router.js";
import type { FrameStream } from "../../src/server/stream.js";
import { fixtureIdentity } from "../helpers/identities.js";

class RecordingCluster implements Cluster {
  readonly instanceId = "me";
  readonly healthy = true;
  readonly published: ClusterEventBody[] = [];
  readonly remote = new Map<string, Set<string>>();
  start(): Promise<void> {
    return Promise.resolve();
  }
  publish(event: ClusterEventBody): void {
    this.published.push(event);
  }
  remoteAddresses(username: string): ReadonlySet<string> | undefined {
    return this.remote.get(username);
  }
  remoteOnlineNames(): Iterable<string> {
    return this.remote.keys();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface FakeSession extends RoutedSession {
  readonly sent: Buffer[];
  readonly arrived: number[];
  replacedCalls: number;
}

const users = new Map<string, DirectoryUser>();
beforeAll(async () => {
  for (const name of ["alice", "bob"] as const) {
    const id = await fixtureIdentity(name);
    users.set(name, new DirectoryUser({ username: name, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, sigFpr: id.sigFpr, encFpr: id.encFpr, createdAtMs: 1 }));
  }
});

function session(name: string, address = name): FakeSession {
  const sent: Buffer[] = [];
  const arrived: number[] = [];
  const stream = {
    closed: false,
    send: (frame: Uint8Array) => {
      sent.push(Buffer.from(frame));
      return Promise.resolve(true);
    },
    end: (_: StatusObject) => undefined,
  } as Partial<FrameStream> as FrameStream;
  const s: FakeSession = {
    username: name, address, user: users.get(name)!, stream, sent, arrived, replacedCalls: 0,
    pump: { arrived: (n: number) => arrived.push(n), kick: () => undefined } as Partial<DeliveryPump> as DeliveryPump,
    replaced() {
      s.replacedCalls++;
    },
    unlinked() {},
    released() {},
  };
  return s;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function presenceSeen(s: FakeSession): Array<[string, boolean]> {
  return s.sent.flatMap((b) => {
    const f = SessionResponse.decode(b).frame;
    return f?.$case === "directoryUpdate" ? f.value.entries.map((e) => [e.username, e.online] as [string, boolean]) : [];
  });
}

describe("Router in a cluster", () => {
  it("wakes local pumps and publishes one rows event for the addresses not here", () => {
    const c = new RecordingCluster();
    const r = new Router(c);
    const a = session("alice");
    r.attach(a);
    c.published.length = 0;
    r.delivered(new Map([["alice", 1], ["bob", 2], ["bob/0000000000000001", 1]]));
    expect(a.arrived).toEqual([1]);
    expect(c.published).toEqual([{ kind: "rows", rows: [["bob", 2], ["bob/0000000000000001", 1]] }]);
    r.delivered(new Map([["alice", 3]]));
    expect(c.published).toHaveLength(1);
  });

  it("publishes presence then session on attach, presence offline on detach, a user change on announce", () => {
    const c = new RecordingCluster();
    const r = new Router(c);
    const a = session("alice");
    r.attach(a);
    r.announceUser(users.get("alice")!);
    r.detach(a);
    expect(c.published).toEqual([
      { kind: "presence", username: "alice", address: "alice", online: true },
      { kind: "session", address: "alice" },
      { kind: "user", username: "alice" },
      { kind: "presence", username: "alice", address: "alice", online: false },
    ]);
  });

  it("counts remote presence: isOnline, isAddressOnline, onlineNames; the session cap's local view stays local", () => {
    const c = new RecordingCluster();
    const r = new Router(c);
    c.remote.set("bob", new Set(["bob/0000000000000001"]));
    expect(r.isOnline("bob")).toBe(true);
    expect(r.isAddressOnline("bob/0000000000000001")).toBe(true);
    expect(r.isAddressOnline("bob")).toBe(false);
    expect([...r.onlineNames()]).toEqual(["bob"]);
    expect(r.sessionAt("bob/0000000000000001")).toBeUndefined();
    expect(r.onlineCount).toBe(0);
  });

  it("a device that moved to another relay: replaced here, not announced offline to sessions here; its end is published (the other relays drop it as stale: it is online there); a user still online elsewhere stays online", async () => {
    const c = new RecordingCluster();
    const r = new Router(c);
    const watcher = session("bob");
    r.attach(watcher);
    const a = session("alice");
    r.attach(a);
    await nextTurn();
    c.published.length = 0;
    // alice's device connected to another relay: its presence there arrives, then its session event.
    c.remote.set("alice", new Set(["alice"]));
    r.movedElsewhere("alice");
    expect(a.replacedCalls).toBe(1);
    r.detach(a);
    await nextTurn();
    // Published all the same: had the other relay's session ended too (one device on two relays
    // at once), nobody would ever say it went (test/adversarial/cluster-sessions.test.ts).
    expect(c.published).toEqual([{ kind: "presence", username: "alice", address: "alice", online: false }]);
    expect(presenceSeen(watcher).filter(([u, online]) => u === "alice" && !online)).toEqual([]);
    expect(r.isOnline("alice")).toBe(true);
  });

  it("without a cluster it publishes nothing and sees only its own sessions", () => {
    const r = new Router();
    const a = session("alice");
    r.attach(a);
    r.delivered(new Map([["alice", 1], ["bob", 1]]));
    expect(a.arrived).toEqual([1]);
    expect(r.isOnline("bob")).toBe(false);
    expect([...r.onlineNames()]).toEqual(["alice"]);
  });
});
