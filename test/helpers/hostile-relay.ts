// A relay under the attacker's control: it speaks the protocol well enough for a real ChatClient
// to connect (it never checks proofs), then lets a test push any frame — or raw bytes — and see
// what the client sends back. Used to show the client refuses what a malicious relay can do.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  Metadata, Server, ServerCredentials, status, type ServerDuplexStream,
} from "@grpc/grpc-js";
import {
  Envelope, SessionRequest, SessionResponse, type DirectoryEntry, type Hello,
} from "../../src/gen/securechat/v1/chat.js";
import { envelopeToWire } from "../../src/protocol/codec.js";
import type { SealedEnvelope } from "../../src/protocol/envelope.js";
import { fingerprint, keyTag, type PublicIdentity } from "../../src/protocol/keys.js";
import { RAW_SESSION_SERVICE } from "./raw-service.js";
import { waitUntil } from "./wait.js";

/** The full entry (with keys) the hostile relay serves for a user, keys however wrong. */
export function directoryEntry(id: PublicIdentity, online = true): DirectoryEntry {
  let tag: Buffer = Buffer.alloc(0);
  try {
    tag = keyTag(fingerprint(id.sigSpki), fingerprint(id.encSpki));
  } catch {
    // An entry too broken to tag: the client sees no tag.
  }
  return { username: id.username, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, online, keyTag: tag, deviceListVersion: 0 };
}

function light(e: DirectoryEntry): DirectoryEntry {
  return { ...e, sigSpki: Buffer.alloc(0), encSpki: Buffer.alloc(0), encKeySig: Buffer.alloc(0) };
}

export class HostileSession {
  readonly received: SessionRequest[] = [];
  hello: Hello | undefined;
  private seq = 1;

  constructor(readonly call: ServerDuplexStream<Buffer, Buffer>) {}

  send(frame: SessionResponse["frame"]): void {
    this.call.write(Buffer.from(SessionResponse.encode({ frame }).finish()));
  }

  sendRaw(bytes: Uint8Array): void {
    this.call.write(Buffer.from(bytes));
  }

  /** Delivers sealed envelopes into a conversation (the relay's claim); returns the seqs used. */
  deliver(conversationId: string, ...envelopes: SealedEnvelope[]): number[] {
    return this.deliverWire(conversationId, ...envelopes.map(envelopeToWire));
  }

  /** The relay time the next deliveries claim (0: none, as an older relay sends). */
  relayTimeMs = 0;

  /** Delivers wire envelopes, however malformed. */
  deliverWire(conversationId: string, ...envelopes: Envelope[]): number[] {
    const items = envelopes.map((envelope) => ({ seq: this.seq++, conversationId, envelope, mls: undefined, relayTimeMs: this.relayTimeMs }));
    this.send({ $case: "deliver", value: { items } });
    return items.map((i) => i.seq);
  }

  /** Seqs the client acknowledged. */
  acked(): number[] {
    return this.received.flatMap((r) => (r.frame?.$case === "ack" ? r.frame.value.seqs : []));
  }

  async waitForAck(seq: number): Promise<void> {
    await waitUntil(() => this.acked().includes(seq), `the client to ack ${seq}`);
  }

  /** Envelopes the client handed over for delivery. */
  sent(): Envelope[] {
    return this.received.flatMap((r) => (r.frame?.$case === "send" && r.frame.value.envelope ? [r.frame.value.envelope] : []));
  }

  /** Ends the stream with a status; `errorCode` (e.g. "ERROR_CODE_USERNAME_TAKEN") goes in the relay's trailer. */
  end(code = status.UNAVAILABLE, details = "hostile relay hangs up", errorCode?: string): void {
    const metadata = new Metadata();
    if (errorCode !== undefined) metadata.set("securechat-error-code", errorCode);
    this.call.emit("error", { code, details, metadata });
  }
}

// It serves TLS with a certificate of its own, as any relay does by default: clients pin it on
// first use, so what is tested here is what a relay the client trusts at the TLS level can do.
const FIXTURES = join(import.meta.dirname, "..", "fixtures", "tls");
const HOSTILE_TLS = ServerCredentials.createSsl(null, [{
  cert_chain: readFileSync(join(FIXTURES, "relay-cert.pem")), private_key: readFileSync(join(FIXTURES, "relay-key.pem")),
}], false);

export class HostileRelay {
  readonly sessions: HostileSession[] = [];
  /**
   * The relay's directory, full entries: the Welcome shows them light (as the real relay does)
   * and LookupKeys answers with these keys, whatever they are. Set before a client connects;
   * change it and announce() to play a key change.
   */
  directory: DirectoryEntry[] = [];
  /** Set to end every session at its Hello with this status (and trailer), instead of a Challenge. */
  refuseHello: { readonly code: status; readonly details: string; readonly errorCode?: string } | undefined;
  private readonly server = new Server();
  port = 0;

  static async start(): Promise<HostileRelay> {
    const r = new HostileRelay();
    r.server.addService(RAW_SESSION_SERVICE, { session: (call: ServerDuplexStream<Buffer, Buffer>) => r.serve(call) });
    r.port = await new Promise<number>((resolve, reject) =>
      r.server.bindAsync("127.0.0.1:0", HOSTILE_TLS, (err, port) => (err ? reject(err) : resolve(port))));
    return r;
  }

  private serve(call: ServerDuplexStream<Buffer, Buffer>): void {
    const s = new HostileSession(call);
    this.sessions.push(s);
    call.on("error", () => {});
    call.on("data", (b: Buffer) => {
      const req = SessionRequest.decode(b);
      s.received.push(req);
      if (req.frame?.$case === "hello") {
        s.hello = req.frame.value;
        if (this.refuseHello !== undefined) {
          s.end(this.refuseHello.code, this.refuseHello.details, this.refuseHello.errorCode);
          return;
        }
        s.send({ $case: "challenge", value: { relayId: randomBytes(16), nonce: randomBytes(32) } });
      } else if (req.frame?.$case === "proof") {
        // A hostile relay accepts anything and hands out whatever directory it likes.
        s.send({
          $case: "welcome",
          value: { username: s.hello?.username ?? "", directory: this.directory.map(light), rooms: [], queued: 0, limits: undefined, serverTimeMs: Date.now(), relayVersion: "hostile", deviceId: "", deviceListVersion: 0 },
        });
      } else if (req.frame?.$case === "lookupKeys") {
        const asked = new Set(req.frame.value.usernames);
        s.send({ $case: "keyList", value: { requestId: req.frame.value.requestId, entries: this.directory.filter((e) => asked.has(e.username)) } });
      } else if (req.frame?.$case === "send" && req.frame.value.envelope?.header) {
        s.send({ $case: "sendResult", value: { messageId: req.frame.value.envelope.header.messageId, status: 1, code: 0, detail: "", queuedFor: [] } });
      }
    });
  }

  /** Tells every session the directory changed for these users (light entries, as the real relay). */
  announce(...usernames: string[]): void {
    const entries = this.directory.filter((e) => usernames.includes(e.username)).map(light);
    for (const s of this.sessions) s.send({ $case: "directoryUpdate", value: { entries } });
  }

  async session(index = 0): Promise<HostileSession> {
    return waitUntil(() => (this.sessions[index]?.received.some((r) => r.frame?.$case === "proof") ? this.sessions[index] : undefined), `hostile session ${index}`);
  }

  async stop(): Promise<void> {
    this.server.forceShutdown();
  }
}
