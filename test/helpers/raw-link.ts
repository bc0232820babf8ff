// A raw Link stream (PROTOCOL.md §4.6) for relay tests: writes LinkRequests or any bytes, keeps
// every LinkResponse it receives, and the stream's end status. Also a relay started with short
// link limits (the shared harness does not take them).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, credentials, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { ChatServiceService, LinkRequest, LinkResponse, LinkRole } from "../../src/gen/securechat/v1/chat.js";
import { jsonLineLogger } from "../../src/protocol/log.js";
import type { LinkLimits } from "../../src/server/link-rendezvous.js";
import { startRelay, type RunningRelay } from "../../src/server/relay.js";
import { TEST_REGISTRATION_LIMITS } from "./relay-harness.js";
import { waitUntil } from "./wait.js";

export { LinkRole };

export class RawLink {
  readonly responses: LinkResponse[] = [];
  ended: { code: number; details: string } | undefined;
  private readonly client: Client;
  private readonly call: ClientDuplexStream<Uint8Array, Buffer>;

  constructor(address: string) {
    this.client = new Client(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    this.call = this.client.makeBidiStreamRequest(ChatServiceService.link.path, (b: Uint8Array) => Buffer.from(b), (b: Buffer) => b);
    this.call.on("data", (b: Buffer) => {
      try {
        this.responses.push(LinkResponse.decode(b));
      } catch {
        this.responses.push({ payload: Buffer.alloc(0), paired: false, error: "<undecodable>" });
      }
    });
    this.call.on("error", (e: ServiceError) => {
      this.ended ??= { code: e.code, details: e.details };
    });
    this.call.on("status", (s: { code: number; details: string }) => {
      this.ended ??= { code: s.code, details: s.details };
    });
  }

  send(req: Partial<LinkRequest>): void {
    this.raw(LinkRequest.encode({ rendezvous: Buffer.alloc(0), role: LinkRole.LINK_ROLE_UNSPECIFIED, payload: Buffer.alloc(0), ...req }).finish());
  }

  raw(bytes: Uint8Array): void {
    this.call.write(bytes);
  }

  /** Half-closes (no more frames from this side). */
  done(): void {
    this.call.end();
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }

  get paired(): boolean {
    return this.responses.some((r) => r.paired);
  }

  get payloads(): Buffer[] {
    return this.responses.filter((r) => r.payload.length > 0).map((r) => Buffer.from(r.payload));
  }

  get error(): string | undefined {
    return this.responses.find((r) => r.error !== "")?.error;
  }

  waitPaired(): Promise<true> {
    return waitUntil(() => this.paired || (this.ended !== undefined ? Promise.reject(new Error(`ended: ${this.error ?? this.ended.details}`)) : false), "paired");
  }

  /** Waits for the stream to end; resolves with the sentence it ended with ("" for a clean end). */
  async waitEnd(timeoutMs = 10_000): Promise<string> {
    await waitUntil(() => this.ended !== undefined, "the link stream's end", timeoutMs);
    return this.error ?? (this.ended!.code === 0 ? "" : this.ended!.details);
  }
}

export interface LinkTestRelay {
  readonly relay: RunningRelay;
  readonly address: string;
  readonly logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function startLinkRelay(linkLimits: Partial<LinkLimits> = {}, extra: { plaintext?: boolean } = { plaintext: true }): Promise<LinkTestRelay> {
  const dataDir = mkdtempSync(join(tmpdir(), "sc-link-relay-"));
  const logs: Array<Record<string, unknown>> = [];
  const relay = await startRelay({
    host: "127.0.0.1", port: 0, dataDir, logger: jsonLineLogger((l) => logs.push(JSON.parse(l) as Record<string, unknown>), "debug"),
    limits: { ...TEST_REGISTRATION_LIMITS }, linkLimits, ...(extra.plaintext === true ? { plaintext: true } : {}),
  });
  return {
    relay, address: `127.0.0.1:${relay.port}`, logs,
    async stop() {
      await relay.shutdown();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
