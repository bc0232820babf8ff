// A TCP proxy between clients and the relay that records every byte in both directions, so
// tests can prove the relay link never carries plaintext. It can also cut every connection
// (a dropped network) while staying up for new ones.
import { createServer, connect, type Socket } from "node:net";

export interface RecordingProxy {
  readonly port: number;
  /** Everything that crossed the proxy so far, both directions. */
  recorded(): Buffer;
  /** Destroys all live connections (both sides), like a network drop. */
  dropAll(): void;
  /**
   * Live connections stay open but silently stop carrying bytes, like a dead network path
   * (no FIN, no RST): only keepalive can notice. New connections work normally.
   */
  freezeAll(): void;
  /** How many connections the proxy has accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export async function startRecordingProxy(targetHost: string, targetPort: number): Promise<RecordingProxy> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const frozen = new WeakSet<Socket>();
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    const upstream = connect({ host: targetHost, port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    const cleanup = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("data", (d: Buffer) => {
      if (frozen.has(client)) return;
      chunks.push(Buffer.from(d));
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => {
      if (frozen.has(upstream)) return;
      chunks.push(Buffer.from(d));
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
    dropAll: () => {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    freezeAll: () => {
      for (const s of sockets) frozen.add(s);
    },
    connections: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
