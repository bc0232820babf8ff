// A TCP proxy between clients and the relay that records every byte in both directions, so
// tests can prove the relay link never carries plaintext. It can also cut every connection
// (a dropped network) while staying up for new ones.
import { createServer, connect, type Socket } from "node:net";

export interface RecordingProxy {
  readonly port: number;
  /** Everything that crossed the proxy so far, both directions. */
  recorded(): Buffer;
  /** The same bytes one stream per connection and direction (client→relay, relay→client), in order. */
  streams(): Buffer[];
  /** Destroys all live connections (both sides), like a network drop. */
  dropAll(): void;
  /**
   * Live connections stay open but silently stop carrying bytes, like a dead network path
   * (no FIN, no RST): only keepalive can notice. New connections work normally.
   */
  freezeAll(): void;
  /**
   * An outage: while down, live connections are cut and new ones are closed at once (the relay
   * is unreachable); back up, connections work normally again.
   */
  setDown(down: boolean): void;
  /**
   * Live connections keep carrying the client's frames to the relay but lose everything the relay
   * answers (its SendResults are lost, as in a drop right after the relay stored a message).
   */
  muteAnswers(): void;
  /** How many connections the proxy has accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export async function startRecordingProxy(targetHost: string, targetPort: number): Promise<RecordingProxy> {
  const chunks: Buffer[] = [];
  const perStream: Buffer[][] = [];
  const sockets = new Set<Socket>();
  const frozen = new WeakSet<Socket>();
  const muted = new WeakSet<Socket>();
  let accepted = 0;
  let down = false;
  const server = createServer((client) => {
    accepted++;
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: targetHost, port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    const toRelay: Buffer[] = [];
    const toClient: Buffer[] = [];
    perStream.push(toRelay, toClient);
    const cleanup = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("data", (d: Buffer) => {
      if (frozen.has(client)) return;
      const copy = Buffer.from(d);
      chunks.push(copy);
      toRelay.push(copy);
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => {
      if (frozen.has(upstream) || muted.has(upstream)) return;
      const copy = Buffer.from(d);
      chunks.push(copy);
      toClient.push(copy);
      client.write(d);
    });
    client.on("error", cleanup);
    upstream.on("error", cleanup);
    client.on("close", cleanup);
    upstream.on("close", cleanup);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  return {
    port: address.port,
    recorded: () => Buffer.concat(chunks),
    streams: () => perStream.map((c) => Buffer.concat(c)),
    dropAll: () => {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    freezeAll: () => {
      for (const s of sockets) frozen.add(s);
    },
    setDown: (d: boolean) => {
      down = d;
      if (d) {
        for (const s of sockets) s.destroy();
        sockets.clear();
      }
    },
    muteAnswers: () => {
      for (const s of sockets) muted.add(s);
    },
    connections: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
