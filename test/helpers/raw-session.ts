// A minimal protocol-level client for relay tests: it speaks the frames of PROTOCOL.md §9
// directly (no outbox, no trust store), keeps every frame it receives in an inbox, and can
// write raw bytes for malformed-frame tests. The stream's requests are serialised here, so one
// code path writes both well-formed and hostile frames.
import { sign, type KeyObject } from "node:crypto";
import { once } from "node:events";
import {
  Client, credentials, Metadata, status as GrpcStatus, type ChannelCredentials, type ChannelOptions, type ClientDuplexStream, type StatusObject,
} from "@grpc/grpc-js";
import {
  SessionRequest, SessionResponse, SendStatus, type Delivery, type DirectoryEntry, type Envelope, type SendResult, type Welcome,
} from "../../src/gen/securechat/v1/chat.js";
import { envelopeFromWire, envelopeToWire } from "../../src/protocol/codec.js";
import {
  openEnvelope, sealEnvelope, ZERO_HASH, type OpenedEnvelope, type SealedEnvelope, type SealInput, type SealRecipient,
} from "../../src/protocol/envelope.js";
import {
  keyBindingBytes, PLAINTEXT_CHANNEL_BINDING, tlsChannelBinding, type PrivateIdentity, type PublicIdentity,
} from "../../src/protocol/keys.js";
import { certificateFingerprint } from "../../src/protocol/x509.js";
import { FrameInbox, type RequestFrame, type ResponseFrame } from "./raw-frames.js";
import { RAW_SESSION_SERVICE } from "./raw-service.js";

/** How a RawSession reaches the relay: credentials, channel options, and what its proof binds. */
export interface RawTransport {
  readonly creds: ChannelCredentials;
  readonly options: ChannelOptions;
  /** The channel binding of PROTOCOL.md §9 (SHA-256 of the relay certificate, or empty). */
  readonly channelBinding: Uint8Array;
}

export const PLAINTEXT_TRANSPORT: RawTransport = { creds: credentials.createInsecure(), options: {}, channelBinding: PLAINTEXT_CHANNEL_BINDING };

/**
 * TLS trusting exactly this certificate (as a client that pinned it does): it is the only root,
 * and the leaf must be it. The proof binds it.
 */
export function pinnedTransport(certPem: Buffer, certDer: Buffer): RawTransport {
  const sha = certificateFingerprint(certDer);
  return {
    creds: credentials.createSsl(certPem, null, null, {
      checkServerIdentity: (_host, cert) => (certificateFingerprint(cert.raw) === sha ? undefined : new Error("not the pinned certificate")),
    }),
    // SNI may not be an IP literal; the name is not what is checked.
    options: { "grpc.ssl_target_name_override": "secure-chat-relay" },
    channelBinding: tlsChannelBinding(certDer),
  };
}

export type { EndStatus, RequestFrame, ResponseCase, ResponseFrame, ResponseOf } from "./raw-frames.js";

export class RawSession extends FrameInbox {
  /** The latest directory entry seen for each user in DirectoryUpdates (updates are coalesced). */
  readonly presence = new Map<string, DirectoryEntry>();
  /** Every directory entry seen in DirectoryUpdates, in order. */
  readonly presenceLog: DirectoryEntry[] = [];
  clientVersion = "raw-session/test";
  /**
   * What happens to each message received, as raw bytes with the time it arrived: by default it
   * is decoded and kept (receive()). The benchmarks replace it: the ceiling forwards
   * SessionRequests, not SessionResponses, and idle sessions skip the work.
   */
  onRaw: (bytes: Buffer, at: number) => void = (bytes, at) => this.decode(bytes, at);
  /**
   * Whether a write copies its bytes: true, so a caller may reuse or change them at once (the
   * fuzzers do), since grpc-js frames a message only a tick after write(). The benchmarks write
   * frames they never change, and skip the copy.
   */
  copyWrites = true;
  private readonly client: Client;
  private readonly call: ClientDuplexStream<Uint8Array, Buffer>;

  /** What this session's proof binds (PROTOCOL.md §9). */
  readonly channelBinding: Uint8Array;

  constructor(readonly address: string, transport: RawTransport = PLAINTEXT_TRANSPORT) {
    super();
    this.channelBinding = transport.channelBinding;
    // A connection of its own per session, as real clients have (no shared subchannel).
    this.client = new Client(address, transport.creds, { "grpc.use_local_subchannel_pool": 1, ...transport.options });
    const raw = RAW_SESSION_SERVICE.session;
    const serialize = (bytes: Uint8Array): Buffer => (this.copyWrites ? Buffer.from(bytes) : raw.requestSerialize(bytes));
    this.call = this.client.makeBidiStreamRequest(raw.path, serialize, raw.responseDeserialize, new Metadata());
    this.call.on("data", (bytes: Buffer) => this.onRaw(bytes, performance.now()));
    this.call.on("status", (s: StatusObject) => {
      const code = s.metadata.get("securechat-error-code")[0];
      const retryAfter = s.metadata.get("securechat-retry-after-ms")[0];
      this.markEnded({
        code: s.code, details: s.details, errorCode: typeof code === "string" ? code : undefined,
        ...(typeof retryAfter === "string" ? { retryAfterMs: Number(retryAfter) } : {}),
      });
    });
    // The status event carries the outcome; an 'error' without a listener would throw.
    this.call.on("error", () => {});
  }

  /** Decodes one SessionResponse and receives its frame; bytes that are none end the call. */
  private decode(bytes: Buffer, at: number): void {
    let r: SessionResponse;
    try {
      r = SessionResponse.decode(bytes);
    } catch (e) {
      this.markEnded({ code: GrpcStatus.INTERNAL, details: `the relay sent a message that is not a SessionResponse: ${(e as Error).message}`, errorCode: undefined });
      this.close();
      return;
    }
    if (r.frame !== undefined) this.receive(r.frame, at);
  }

  /** One frame arrived, at `at` (performance.now()). */
  protected override receive(frame: ResponseFrame, _at?: number): void {
    if (frame.$case === "directoryUpdate" && this.keepFrames) {
      for (const e of frame.value.entries) {
        this.presence.set(e.username, e);
        this.presenceLog.push(e);
      }
    }
    super.receive(frame);
  }

  /** Writes one well-formed frame. */
  write(frame: RequestFrame): void {
    this.writeRaw(SessionRequest.encode({ frame }).finish());
  }

  /**
   * Writes arbitrary bytes as one gRPC message. False when grpc-js's buffer is full: whoever
   * honours backpressure (the benchmarks) waits for drained() before writing more.
   */
  writeRaw(bytes: Uint8Array): boolean {
    return this.call.write(bytes);
  }

  /** Resolves at grpc-js's next 'drain'. */
  async drained(): Promise<void> {
    await once(this.call, "drain");
  }

  /**
   * Waits until the DirectoryUpdates seen so far show `username` with this presence; returns the
   * entry. (Updates are coalesced: one may carry several users, so this tracks state.)
   */
  async nextPresence(username: string, online: boolean, timeoutMs = this.waitMs): Promise<DirectoryEntry> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.presence.get(username);
      if (e !== undefined && e.online === online) return e;
      if (this.isEnded) throw new Error(`stream ended while waiting for ${username} ${online ? "online" : "offline"}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${username} to be ${online ? "online" : "offline"}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { stop(); resolve(); }, 50);
        const stop = this.watch(() => { clearTimeout(t); stop(); resolve(); });
      });
    }
  }

  /** Whether any DirectoryUpdate so far (from presenceMark()'s `since` on) showed `username` with this presence. */
  sawPresence(username: string, online: boolean, since = 0): boolean {
    return this.presenceLog.slice(since).some((e) => e.username === username && e.online === online);
  }

  /** Where the presence log stands now: sawPresence(…, mark) looks only at what came after. */
  presenceMark(): number {
    return this.presenceLog.length;
  }

  /** Asks for users' keys (LookupKeys) and returns the answer's entries. */
  async lookupKeys(usernames: string[], requestId = 777): Promise<DirectoryEntry[]> {
    this.write({ $case: "lookupKeys", value: { requestId, usernames } });
    return (await this.next("keyList", (k) => k.requestId === requestId)).entries;
  }

  /** Sends an envelope and waits for its SendResult (matched by message id). */
  async send(envelope: SealedEnvelope): Promise<SendResult> {
    return this.sendWire(envelopeToWire(envelope));
  }

  /** Sends a wire envelope as given (possibly broken) and waits for the SendResult with its id. */
  async sendWire(envelope: Envelope | undefined): Promise<SendResult> {
    this.write({ $case: "send", value: { envelope } });
    const id = Buffer.from(envelope?.header?.messageId ?? Buffer.alloc(0));
    return this.next("sendResult", (r) => Buffer.from(r.messageId).equals(id));
  }

  /** Sends and expects ACCEPTED. */
  async sendAccepted(envelope: SealedEnvelope): Promise<SendResult> {
    const r = await this.send(envelope);
    if (r.status !== SendStatus.SEND_STATUS_ACCEPTED) throw new Error(`expected ACCEPTED, got code ${r.code}: ${r.detail}`);
    return r;
  }

  /** Collects deliveries from DeliverBatch frames until `count` arrived. */
  async deliveries(count: number, timeoutMs = this.waitMs): Promise<Delivery[]> {
    const out: Delivery[] = [];
    while (out.length < count) {
      const batch = await this.next("deliver", () => true, timeoutMs);
      out.push(...batch.items);
    }
    return out;
  }

  ack(seqs: readonly number[]): void {
    this.write({ $case: "ack", value: { seqs: [...seqs] } });
  }

  /** A round trip: every frame the relay wrote before answering this ping is in the inbox after it. */
  async barrier(): Promise<void> {
    const nonce = Math.floor(Math.random() * 2 ** 32);
    this.write({ $case: "ping", value: { nonce } });
    await this.next("pong", (p) => p.nonce === nonce);
  }

  /** Stops reading from the relay (HTTP/2 flow control then pushes back on it), or resumes. */
  pauseReading(paused: boolean): void {
    if (paused) this.call.pause();
    else this.call.resume();
  }

  /** Half-closes our side: the relay ends the call with OK. */
  end(): void {
    this.call.end();
  }

  /** Cancels the call and closes the connection. */
  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

/** Opens a session and completes the handshake. */
export async function connect(address: string, id: PrivateIdentity, transport: RawTransport = PLAINTEXT_TRANSPORT): Promise<{ session: RawSession; welcome: Welcome }> {
  const session = new RawSession(address, transport);
  const welcome = await session.handshake(id);
  return { session, welcome };
}

/** Opens one delivery as `me`, trusting the given peers' keys (as pinned). */
export function openDelivery(d: Delivery, me: PrivateIdentity, peers: readonly PublicIdentity[]): OpenedEnvelope {
  const pins = new Map(peers.map((p) => [p.username, p]));
  return openEnvelope(envelopeFromWire(d.envelope), {
    me,
    deliveredInto: d.conversationId,
    nowMs: Date.now(),
    seen: () => false,
    senderKey: (u) => {
      const p = pins.get(u);
      return p === undefined ? { kind: "unknown" } : { kind: "pinned", sigKey: p.sigKey, sigFpr: p.sigFpr };
    },
  });
}

/** A Hello identity with keys of the caller's choosing (weak RSA, wrong types), bound honestly. */
export function handMadeHello(username: string, sigPrivate: KeyObject, sigSpki: Buffer, encSpki: Buffer): Pick<PublicIdentity, "username" | "sigSpki" | "encSpki" | "encKeySig"> {
  return { username, sigSpki, encSpki, encKeySig: sign(null, keyBindingBytes(username, encSpki), sigPrivate) };
}

/** Seals `text` from `sender` into a conversation for `recipients` (the sender is added). */
export function seal(
  sender: PrivateIdentity, conversationId: string, recipients: readonly SealRecipient[], text: string,
  over: Partial<Pick<SealInput, "messageId" | "sentAtMs" | "prev">> = {},
): SealedEnvelope {
  return sealEnvelope({
    sender, conversationId, recipients, body: { kind: "text", text }, prev: ZERO_HASH, sentAtMs: Date.now(), ...over,
  }).envelope;
}
