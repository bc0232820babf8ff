// Two (or more) in-process relays of one service for the failover tests: one SQLite store shared
// by all (startRelay's `store`), each relay its own data dir, every relay the same TLS certificate
// (as operators give every relay the same --tls-cert/--tls-key); and a TCP proxy in front of a
// relay that can hold back what the client sends (its acks), so that a test knows deliveries are
// unacked when the relay dies.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jsonLineLogger, type Logger } from "../../src/protocol/log.js";
import { openStore } from "../../src/server/store.js";
import type { RelayStore } from "../../src/server/store.js";
import { startRelay, type RunningRelay } from "../../src/server/relay.js";
import { CERT_FILE, KEY_FILE, loadOrCreateTlsIdentity } from "../../src/server/tls-identity.js";
import { TEST_REGISTRATION_LIMITS } from "../helpers/relay-harness.js";

export type LogLine = Readonly<Record<string, unknown>> & { readonly event: string };

/** A logger that keeps its JSON lines as objects. */
export function collectingLogger(lines: LogLine[]): Logger {
  return jsonLineLogger((line) => {
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      // not JSON: nothing to keep
    }
  }, "debug");
}

/** One relay of the service: its address and its log. */
export interface ServiceRelay {
  readonly relay: RunningRelay;
  readonly address: string;
  readonly logs: LogLine[];
}

export class RelayService {
  private readonly relays: ServiceRelay[] = [];

  private constructor(readonly dir: string, readonly store: RelayStore, private readonly tls: { cert: Buffer; key: Buffer }) {}

  /** A temp dir, the shared store in it, and the certificate every relay serves. */
  static create(): RelayService {
    const dir = mkdtempSync(join(tmpdir(), "sc-failover-"));
    const certDir = join(dir, "tls");
    mkdirSync(certDir, { mode: 0o700 });
    loadOrCreateTlsIdentity(certDir);
    const store = openStore(join(dir, "shared.db"));
    const tls = { cert: readFileSync(join(certDir, CERT_FILE)), key: readFileSync(join(certDir, KEY_FILE)) };
    return new RelayService(dir, store, tls);
  }

  /** Starts one more relay on the shared store (its own data dir, the shared certificate). */
  async start(name: string): Promise<ServiceRelay> {
    const logs: LogLine[] = [];
    const relay = await startRelay({
      host: "127.0.0.1", port: 0, dataDir: mkdtempSync(join(this.dir, `${name}-`)), logger: collectingLogger(logs),
      tls: this.tls, store: this.store, limits: TEST_REGISTRATION_LIMITS, shutdownGraceMs: 0,
    });
    const r = { relay, address: `127.0.0.1:${relay.port}`, logs };
    this.relays.push(r);
    return r;
  }

  /** Stops every relay (idempotent), then closes the store and removes the dir. */
  async cleanup(): Promise<void> {
    await Promise.allSettled(this.relays.map((r) => r.relay.shutdown()));
    this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A TCP proxy to `target`. hold(): from then on, what clients send is no longer forwarded (the
 * relay still writes to them): acks, sends and pings stay with the proxy, as with a relay that
 * froze. close(): every connection cut.
 */
export class HoldingProxy {
  private readonly sockets = new Set<Socket>();
  private held = false;

  private constructor(private readonly server: Server, readonly address: string) {}

  static async start(target: string): Promise<HoldingProxy> {
    const i = target.lastIndexOf(":");
    const host = target.slice(0, i);
    const port = Number(target.slice(i + 1));
    let proxy: HoldingProxy | undefined;
    const server = createServer((client) => {
      const upstream = connect({ host, port });
      proxy!.sockets.add(client);
      proxy!.sockets.add(upstream);
      client.on("data", (b) => {
        if (!proxy!.held) upstream.write(b);
      });
      upstream.on("data", (b) => client.write(b));
      const end = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const addr = server.address();
    if (addr === null || typeof addr === "string") throw new Error("the proxy has no port");
    proxy = new HoldingProxy(server, `127.0.0.1:${addr.port}`);
    return proxy;
  }

  hold(): void {
    this.held = true;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
