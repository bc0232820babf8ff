// Keepalive between relay and clients: the relay's gRPC options allow the client's pings (a
// relay or proxy that polices pings would otherwise answer them with GOAWAY "too_many_pings"),
// and the relay's own pings find a client whose network died silently, so its session ends
// (presence goes offline, the slot frees) while everyone else stays connected.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { channelOptions as clientChannelOptions, DEFAULT_KEEPALIVE } from "../../src/client/transport.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { DEFAULT_RELAY_LIMITS } from "../../src/server/limits.js";
import { channelOptions as relayChannelOptions, KEEPALIVE } from "../../src/server/relay.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { startRecordingProxy, type RecordingProxy } from "../helpers/recording-proxy.js";
import { RawSession } from "../helpers/raw-session.js";
import { TestRelay } from "../helpers/relay-harness.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let relay: TestRelay | undefined;
let proxy: RecordingProxy | undefined;

beforeAll(async () => {
  [alice, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("bob")]);
});

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await relay?.cleanup();
  relay = undefined;
});

describe("relay keepalive", () => {
  it("permits the client's pings: as often as the client sends them, and with no call open", () => {
    const relay = relayChannelOptions(DEFAULT_RELAY_LIMITS);
    const client = clientChannelOptions(1 << 20);
    // The client pings every 15 s; the relay lets a client ping every 10 s, even when idle...
    expect(client["grpc.keepalive_time_ms"]).toBe(DEFAULT_KEEPALIVE.timeMs);
    expect(relay["grpc.http2.min_ping_interval_without_data_ms"]).toBeLessThan(DEFAULT_KEEPALIVE.timeMs);
    // ...and between calls, while the client reconnects.
    expect(client["grpc.keepalive_permit_without_calls"]).toBe(1);
    expect(relay["grpc.keepalive_permit_without_calls"]).toBe(1);
    // The relay's own pings: every 30 s, dropped after 10 s unanswered (a dead client is gone in ~40 s).
    expect([relay["grpc.keepalive_time_ms"], relay["grpc.keepalive_timeout_ms"]]).toEqual([KEEPALIVE.timeMs, KEEPALIVE.timeoutMs]);
    expect(KEEPALIVE.timeMs + KEEPALIVE.timeoutMs).toBeLessThanOrEqual(45_000);
  });

  it("drops a client whose network died silently, and only that one", async () => {
    // The same mechanism as in production, on a short fuse: ping every 200 ms, give up after 1 s
    // (generous, so a busy CI machine's stall never drops the healthy client).
    relay = await TestRelay.start({ keepalive: { timeMs: 200, timeoutMs: 1000 } });
    proxy = await startRecordingProxy("127.0.0.1", relay.running.port);
    const b = await relay.connect(bob); // direct: healthy
    const a = new RawSession(`127.0.0.1:${proxy.port}`, relay.transport);
    await a.handshake(alice);
    await b.nextPresence("alice", true);

    // alice's path goes silent: no FIN, no RST, no bytes. Only the relay's pings can tell.
    proxy.freezeAll();
    await relay.waitForLog("session.close", (l) => l.user === "alice", 10_000);
    await b.nextPresence("alice", false, 10_000);

    // bob, answering the same pings, stayed; the relay still serves him.
    await b.barrier();
    expect(relay.events("session.close").filter((l) => l.user === "bob")).toEqual([]);
    expect(relay.running.stats().online).toBe(1);
    a.close();
  });
});
