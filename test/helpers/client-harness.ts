// Real ChatClient sessions for integration tests: fixture identities, a temp dir for the
// known_peers file, in-memory state, and an event log to wait on.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChatClient, type ChatClientOptions } from "../../src/client/chat-client.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { KnownRelays } from "../../src/client/known-relays.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { TrustStore } from "../../src/client/trust-store.js";
import type { ChatMessage, SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { waitUntil } from "./wait.js";

export class TestClient {
  readonly events: SessionEvent[] = [];
  private constructor(readonly client: ChatClient, private readonly dir: string | undefined) {
    client.subscribe((e) => this.events.push(e));
  }

  static async start(identity: PrivateIdentity, port: number, o: Partial<ChatClientOptions> & { dir?: string; statePath?: string } = {}): Promise<TestClient> {
    const t = await TestClient.begin(identity, port, o);
    await t.client.waitConnected(15_000);
    return t;
  }

  /** Starts connecting without waiting for the session (for clients that may not get in). */
  static async begin(identity: PrivateIdentity, port: number, o: Partial<ChatClientOptions> & { dir?: string; statePath?: string } = {}): Promise<TestClient> {
    const dir = o.dir ?? mkdtempSync(join(tmpdir(), `sc-client-${identity.username}-`));
    const trust = o.trust ?? (await TrustStore.open(join(dir, `${identity.username}_known_peers.json`)));
    const state = o.state ?? ClientStateStore.open(o.statePath ?? ":memory:");
    // The default path of chat-tui: TLS, the relay's certificate pinned on first use in a
    // known_relays file beside known_peers.
    const transport = o.transport ?? { kind: "pinned" as const, pins: await KnownRelays.open(join(dir, `${identity.username}_known_relays.json`)) };
    const v2 = o.v2 ?? { store: MlsKeyStore.open(join(dir, `${identity.username}_mls.db`), { username: identity.username, sigPrivate: identity.sigPrivate }) };
    const client = new ChatClient({ identity, server: `127.0.0.1:${port}`, trust, state, reconnect: false, transport, ...o, v2 });
    const t = new TestClient(client, o.dir === undefined ? dir : undefined);
    client.start();
    return t;
  }

  messages(conversationId?: string): ChatMessage[] {
    return this.events.flatMap((e) => (e.type === "message" && (conversationId === undefined || e.message.conversationId === conversationId) ? [e.message] : []));
  }

  async waitFor<T extends SessionEvent>(pred: (e: SessionEvent) => e is T, what: string, timeoutMs?: number): Promise<T>;
  async waitFor(pred: (e: SessionEvent) => boolean, what: string, timeoutMs?: number): Promise<SessionEvent>;
  async waitFor(pred: (e: SessionEvent) => boolean, what: string, timeoutMs = 10_000): Promise<SessionEvent> {
    return waitUntil(() => this.events.find(pred), what, timeoutMs);
  }

  async waitForMessage(text: string, timeoutMs = 10_000): Promise<ChatMessage> {
    return waitUntil(() => this.messages().find((m) => m.text === text && !m.own), `a message "${text}" at ${this.client.me}`, timeoutMs);
  }

  async waitForState(id: string, state: "accepted" | "failed", timeoutMs = 10_000): Promise<SessionEvent> {
    return this.waitFor((e) => e.type === "message-state" && e.id === id && e.state === state, `message ${id.slice(0, 8)} ${state}`, timeoutMs);
  }

  async close(): Promise<void> {
    await this.client.close();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
