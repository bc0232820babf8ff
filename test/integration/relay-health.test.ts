// The standard gRPC health service on the relay (src/server/health.ts): what grpc_health_probe,
// Kubernetes and load balancers ask. Check answers SERVING while the relay runs and NOT_FOUND
// for a name it does not have; Watch streams the status, says NOT_SERVING when shutdown begins,
// then ends, without holding the orderly shutdown up.
import { Client, Metadata, status as GrpcStatus, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import {
  HealthCheckResponse_ServingStatus as ServingStatus, HealthClient, type HealthCheckResponse,
} from "../../src/gen/grpc/health/v1/health.js";
import { MAX_HEALTH_WATCHERS } from "../../src/server/health.js";
import { waitUntil } from "../helpers/wait.js";
import { TestRelay } from "../helpers/relay-harness.js";

let relay: TestRelay | undefined;
const clients: Array<{ close(): void }> = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await relay?.cleanup();
  relay = undefined;
});

/** Health checks go over the relay's TLS, as a probe configured with its certificate does. */
function healthClient(r: TestRelay): HealthClient {
  const c = new HealthClient(r.address, r.transport.creds, r.transport.options);
  clients.push(c);
  return c;
}

function check(c: HealthClient, service: string): Promise<HealthCheckResponse> {
  return new Promise((resolve, reject) => {
    c.check({ service }, (err: ServiceError | null, res?: HealthCheckResponse) => (err !== null ? reject(err) : resolve(res!)));
  });
}

/** A Watch call that records every status it receives and how it ended. */
function watch(c: HealthClient, service: string) {
  const seen: ServingStatus[] = [];
  let end: StatusObject | undefined;
  const call = c.watch({ service });
  call.on("data", (r: HealthCheckResponse) => seen.push(r.status));
  call.on("status", (s: StatusObject) => {
    end = s;
  });
  call.on("error", () => {});
  return { seen, ended: () => end, cancel: () => call.cancel() };
}

describe("relay health service", () => {
  it("answers Check with SERVING for the relay and its chat service, NOT_FOUND for other names", async () => {
    relay = await TestRelay.start();
    const c = healthClient(relay);
    expect((await check(c, "")).status).toBe(ServingStatus.SERVING);
    expect((await check(c, "securechat.v1.ChatService")).status).toBe(ServingStatus.SERVING);
    const err = await check(c, "payments.v1.Ledger").then(() => undefined, (e: ServiceError) => e);
    expect({ code: err?.code, details: err?.details })
      .toEqual({ code: GrpcStatus.NOT_FOUND, details: "this relay has no service named 'payments.v1.Ledger'" });
  });

  it("speaks the standard wire format: an empty request is answered with the bytes 08 01 (status SERVING)", async () => {
    relay = await TestRelay.start();
    // Raw bytes in and out, as any health client built from the standard proto sends them.
    const raw = new Client(relay.address, relay.transport.creds, relay.transport.options);
    clients.push(raw);
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      raw.makeUnaryRequest("/grpc.health.v1.Health/Check", (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new Metadata(), {},
        (err: ServiceError | null, res?: Buffer) => (err !== null ? reject(err) : resolve(res!)));
    });
    expect(bytes.toString("hex")).toBe("0801");
  });

  it("streams SERVING on Watch, NOT_SERVING when shutdown begins, then ends the call; shutdown is not held up", async () => {
    relay = await TestRelay.start({ shutdownGraceMs: 20_000 });
    const c = healthClient(relay);
    const whole = watch(c, "");
    const unknown = watch(c, "nope.v1.Nothing");
    await waitUntil(() => whole.seen.length === 1 && unknown.seen.length === 1, "the first Watch answers");
    expect(whole.seen).toEqual([ServingStatus.SERVING]);
    // The specification: an unknown name is reported, and the call stays open.
    expect(unknown.seen).toEqual([ServingStatus.SERVICE_UNKNOWN]);
    expect(unknown.ended()).toBeUndefined();

    const started = Date.now();
    await relay.stop();
    // Well within the 20 s grace: the watches did not keep the server from closing.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(relay.events("relay.force_shutdown")).toEqual([]);
    await waitUntil(() => whole.ended() !== undefined && unknown.ended() !== undefined, "the watches end");
    expect(whole.seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect(unknown.seen).toEqual([ServingStatus.SERVICE_UNKNOWN]);
    expect({ code: whole.ended()?.code, details: whole.ended()?.details }).toEqual({ code: GrpcStatus.UNAVAILABLE, details: "relay shutting down" });
  });

  it("caps watchers at MAX_HEALTH_WATCHERS with RESOURCE_EXHAUSTED, and forgets those that go away", async () => {
    // Every watch here shares one connection: allow that many streams on it (the relay's
    // default per connection is far lower, PROTOCOL.md §13.3).
    relay = await TestRelay.start({ limits: { maxStreamsPerConnection: MAX_HEALTH_WATCHERS + 8 } });
    const c = healthClient(relay);
    const watches = Array.from({ length: MAX_HEALTH_WATCHERS }, () => watch(c, ""));
    await waitUntil(() => watches.every((w) => w.seen.length === 1), "every Watch answers");
    const extra = watch(c, "");
    await waitUntil(() => extra.ended(), "the extra watch is refused");
    expect({ code: extra.ended()?.code, details: extra.ended()?.details })
      .toEqual({ code: GrpcStatus.RESOURCE_EXHAUSTED, details: "too many health watchers on this relay; use Check instead" });
    expect((await check(c, "")).status).toBe(ServingStatus.SERVING);

    // Once the watchers go away, their places are free again.
    for (const w of watches) w.cancel();
    const again = await waitUntil(async () => {
      const w = watch(c, "");
      await waitUntil(() => w.seen.length > 0 || w.ended() !== undefined, "an answer");
      return w.seen.length > 0 ? w : undefined;
    }, "a watch to be admitted again");
    expect(again.seen).toEqual([ServingStatus.SERVING]);
  });
});
