// The client's HTTP/2 receive window (src/client/transport.ts FLOW_CONTROL_WINDOW_BYTES): a real
// grpc-js channel made with the client's options grants it, per connection and per stream,
// before its first stream, as seen by the HTTP/2 server it talks to. A grpc-js upgrade that
// dropped the option would fail here, not silently slow every catch-up down to 64 KiB a round trip.
import { once } from "node:events";
import { createServer, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import { Client, credentials, Metadata } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { channelOptions, FLOW_CONTROL_WINDOW_BYTES } from "../../src/client/transport.js";

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** What the server sees of the window a client with these options grants, at its first stream. */
async function windowsGranted(options: Record<string, number>): Promise<{ connection: number; stream: number }> {
  const server = createServer();
  const seen = new Promise<{ connection: number; stream: number }>((resolve) => {
    server.on("stream", (stream: ServerHttp2Stream) => {
      resolve({ connection: stream.session!.state.remoteWindowSize!, stream: stream.session!.remoteSettings.initialWindowSize! });
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const client = new Client(`127.0.0.1:${(server.address() as AddressInfo).port}`, credentials.createInsecure(), options);
  closers.push(() => {
    client.close();
    server.close();
  });
  const call = client.makeUnaryRequest("/t.T/M", (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new Metadata(), () => {});
  closers.push(() => call.cancel());
  return seen;
}

describe("the client's HTTP/2 receive window", () => {
  it("is FLOW_CONTROL_WINDOW_BYTES for the connection and for the stream, where grpc-js alone grants 64 KiB", async () => {
    const ours = await windowsGranted(channelOptions(1 << 20));
    expect(FLOW_CONTROL_WINDOW_BYTES).toBeGreaterThanOrEqual(4 * 128 * 1024); // several 128 KiB DeliverBatches
    expect(ours.stream).toBe(FLOW_CONTROL_WINDOW_BYTES);
    expect(ours.connection).toBeGreaterThanOrEqual(FLOW_CONTROL_WINDOW_BYTES);
    const plain = await windowsGranted({ "grpc.use_local_subchannel_pool": 1 });
    expect(plain.stream).toBe(65_535);
    expect(plain.connection).toBeLessThan(FLOW_CONTROL_WINDOW_BYTES);
  });
});
