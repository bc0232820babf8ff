// Something that is not a relay on the port is named as such (issue 10 §3), instead of the
// client "reconnecting" forever: real servers of each kind on 127.0.0.1:0.
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from "node:net";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttp2Server } from "node:http2";
import { Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ChatClient } from "../../src/client/chat-client.js";
import { probe } from "../../src/client/not-a-relay.js";
import { KnownRelays } from "../../src/client/known-relays.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { RelayTransport } from "../../src/client/relay-transport.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { TrustStore } from "../../src/client/trust-store.js";
import type { ConnectionStatus } from "../../src/client/types.js";
import { connectionWithUiText } from "../../src/tui/commands/error-text.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

let alice: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  alice = await fixtureIdentity("alice");
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listen(server: TcpServer | ReturnType<typeof createHttpServer> | ReturnType<typeof createHttp2Server>): Promise<number> {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  const a = server.address();
  if (a === null || typeof a === "string") throw new Error("no port");
  return a.port;
}

/** A reconnecting client (as chat-tui runs it); resolves with the state it settles in. */
const PLAINTEXT: RelayTransport = { kind: "plaintext" };
const pinned = (): RelayTransport => ({ kind: "pinned", pins: KnownRelays.inMemory() });

async function connectTo(port: number, transport: RelayTransport = PLAINTEXT): Promise<{ status: ConnectionStatus; client: ChatClient; seen: ConnectionStatus[] }> {
  const dir = mkdtempSync(join(tmpdir(), "sc-notrelay-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  // Protocol v2, as chat-tui speaks it (the relay refuses v1 Hellos).
  const store = MlsKeyStore.open(join(dir, "alice_mls.db"), { username: alice.username, sigPrivate: alice.sigPrivate });
  cleanups.push(() => store.close());
  const client = new ChatClient({
    identity: alice, server: `127.0.0.1:${port}`, trust: await TrustStore.open(join(dir, "alice_known_peers.json")),
    state: ClientStateStore.open(":memory:"), reconnect: { initialMs: 50, maxMs: 200 }, transport, v2: { store },
  });
  cleanups.push(() => client.close());
  const seen: ConnectionStatus[] = [];
  client.subscribe((e) => {
    if (e.type === "connection") seen.push(e.status);
  });
  client.start();
  await client.waitConnected(10_000).catch(() => {});
  return { status: client.snapshot().connection, client, seen };
}

function expectNamed(status: ConnectionStatus, port: number, what: RegExp): void {
  expect(status.state).toBe("failed");
  if (status.state !== "failed") return;
  expect(status.reason).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port} is not a secure-chat relay \\(`));
  expect(status.reason).toMatch(what);
}

describe("something that is not a relay on the port", () => {
  it("an HTTP/1 server", async () => {
    const port = await listen(createHttpServer((_q, s) => s.end("hello")));
    const { status, seen } = await connectTo(port);
    expectNamed(status, port, /an HTTP\/1 server answers there: "HTTP\/1\.1 400 Bad Request"/);
    expect(seen.filter((s) => s.state === "reconnecting")).toEqual([]);
  });

  it("an HTTP/1 server, for a client that speaks TLS", async () => {
    const port = await listen(createHttpServer((_q, s) => s.end("hello")));
    const { status } = await connectTo(port, { kind: "ca" });
    expectNamed(status, port, /an HTTP\/1 server answers there/);
  });

  it("an SSH server (it speaks first)", async () => {
    const port = await listen(createTcpServer((c) => {
      c.on("error", () => {});
      c.write("SSH-2.0-OpenSSH_9.6p1 Debian-3\r\n");
    }));
    const { status } = await connectTo(port);
    expectNamed(status, port, /an SSH server answers there: "SSH-2\.0-OpenSSH_9\.6p1 Debian-3"/);
  });

  it("a TCP echo service", async () => {
    const port = await listen(createTcpServer((c) => {
      c.on("error", () => {});
      c.pipe(c);
    }));
    const { status } = await connectTo(port);
    expectNamed(status, port, /sends back what it receives/);
  });

  it("an HTTP/2 web server (404, and 200 with a web page)", async () => {
    const notFound = createHttp2Server();
    notFound.on("stream", (s) => {
      s.respond({ ":status": 404, "content-type": "text/html" });
      s.end("not found");
    });
    const p404 = await listen(notFound);
    expectNamed((await connectTo(p404)).status, p404, /an HTTP server answered with status 404/);
    const page = createHttp2Server();
    page.on("stream", (s) => {
      s.respond({ ":status": 200, "content-type": "text/html" });
      s.end("<html><body>hello</body></html>");
    });
    const p200 = await listen(page);
    expectNamed((await connectTo(p200)).status, p200, /an HTTP\/2 server answered, but not with gRPC/);
  });

  it("someone else's gRPC server", async () => {
    const server = new GrpcServer();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    cleanups.push(() => server.forceShutdown());
    expectNamed((await connectTo(port)).status, port, /a gRPC server without the secure-chat service/);
  });

  it("the default client (TLS, pinned on first use) names them too, and stops retrying", async () => {
    const http = await listen(createHttpServer((_q, s) => s.end("hello")));
    expectNamed((await connectTo(http, pinned())).status, http, /an HTTP\/1 server answers there/);
    const ssh = await listen(createTcpServer((c) => {
      c.on("error", () => {});
      c.write("SSH-2.0-OpenSSH_9.6p1 Debian-3\r\n");
    }));
    expectNamed((await connectTo(ssh, pinned())).status, ssh, /an SSH server answers there/);
    // A plaintext HTTP/2 server might be a relay run with --insecure-plaintext: say both.
    const h2 = createHttp2Server();
    h2.on("stream", (st) => {
      st.respond({ ":status": 404 });
      st.end();
    });
    const p = await listen(h2);
    const { status, seen } = await connectTo(p, pinned());
    expect(status.state).toBe("failed");
    if (status.state === "failed") {
      expect(status.cause).toEqual({ kind: "not-tls", address: `127.0.0.1:${p}` });
      expect(connectionWithUiText(status)).toMatchObject({ reason: expect.stringMatching(/does not speak TLS: if it is a relay started with --insecure-plaintext, start chat-tui with --insecure-plaintext too/) });
    }
    expect(seen.filter((x) => x.state === "reconnecting")).toEqual([]);
  });

  it("a real relay, a relay that is down and a silent port are not called 'not a relay'", async () => {
    const relay = await TestRelay.start();
    cleanups.push(() => relay.cleanup());
    expect(await probe(relay.address)).toBeUndefined();
    const { status } = await connectTo(relay.running.port, pinned());
    expect(status.state).toBe("connected");
    // Nothing listening: the client keeps trying (the relay may come back).
    const closed = await listen(createTcpServer());
    await new Promise<void>((resolve) => {
      const last = cleanups.pop()!;
      void Promise.resolve(last()).then(() => resolve());
    });
    expect(await probe(`127.0.0.1:${closed}`)).toBeUndefined();
    // A relay that serves TLS, probed in plaintext: it answers with a TLS alert, not a verdict.
    const fixtures = join(import.meta.dirname, "..", "fixtures", "tls");
    const tlsRelay = await TestRelay.start({ tls: { cert: readFileSync(join(fixtures, "relay-cert.pem")), key: readFileSync(join(fixtures, "relay-key.pem")) } });
    cleanups.push(() => tlsRelay.cleanup());
    expect(await probe(tlsRelay.address)).toBeUndefined();
    // A server that accepts and says nothing, even to the HTTP/2 preface.
    const silent = await listen(createTcpServer((c) => c.on("error", () => {})));
    expect(await probe(`127.0.0.1:${silent}`)).toBeUndefined();
  });
});
