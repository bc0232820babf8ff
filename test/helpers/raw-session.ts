// A minimal protocol-level client for relay tests: it speaks the frames of PROTOCOL.md §8
// directly (no outbox, no trust store), keeps every frame it receives in an inbox, and can
// write raw bytes for malformed-frame tests. The stream's requests are serialised here, so one
// code path writes both well-formed and hostile frames.
import { sign, type KeyObject } from "node:crypto";
import {
  Client, credentials, Metadata, status as GrpcStatus, type ChannelCredentials, type ChannelOptions, type ClientDuplexStream, type StatusObject,
} from "@grpc/grpc-js";
import {
  ChatServiceService, SessionRequest, SessionResponse, SendStatus, type Delivery, type DirectoryEntry, type Envelope, type Hello,
  type SendResult, type Welcome,
} from "../../src/gen/securechat/v1/chat.js";
import { envelopeFromWire, envelopeToWire } from "../../src/protocol/codec.js";
import {
  openEnvelope, sealEnvelope, ZERO_HASH, type OpenedEnvelope, type SealedEnvelope, type SealInput, type SealRecipient,
} from "../../src/protocol/envelope.js";
import {
  keyBindingBytes, PLAINTEXT_CHANNEL_BINDING, signProof, tlsChannelBinding, type PrivateIdentity, type PublicIdentity,
} from "../../src/protocol/keys.js";
import { certificateFingerprint } from "../../src/protocol/x509.js";

/** How a RawSession reaches the relay: credentials, channel options, and what its proof binds. */
export interface RawTransport {
  readonly creds: ChannelCredentials;
  readonly options: ChannelOptions;
  /** The channel binding of PROTOCOL.md §8 (SHA-256 of the relay certificate, or empty). */
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

export type RequestFrame = NonNullable<SessionRequest["frame"]>;
export type ResponseFrame = NonNullable<SessionResponse["frame"]>;
export type ResponseCase = ResponseFrame["$case"];
export type ResponseOf<C extends ResponseCase> = Extract<ResponseFrame, { $case: C }>["value"];

/** How a call ended, as the client saw it. */
export interface EndStatus {
  readonly code: GrpcStatus;
  readonly details: string;
  /** The relay's `securechat-error-code` trailer, when it sent one. */
  readonly errorCode: string | undefined;
}

const DEFAULT_WAIT_MS = 5000;

export class RawSession {
  /** Every frame received and not yet taken by next(), oldest first. */
  readonly inbox: ResponseFrame[] = [];
  /** The latest directory entry seen for each user in DirectoryUpdates (updates are coalesced). */
  readonly presence = new Map<string, DirectoryEntry>();
  /** Every directory entry seen in DirectoryUpdates, in order. */
  readonly presenceLog: DirectoryEntry[] = [];
  /** Resolves when the call ends, with the status the client saw. */
  readonly ended: Promise<EndStatus>;
  private endStatus: EndStatus | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly client: Client;
  private readonly call: ClientDuplexStream<Uint8Array, SessionResponse>;

  /** What this session's proof binds (PROTOCOL.md §8). */
  readonly channelBinding: Uint8Array;

  constructor(readonly address: string, transport: RawTransport = PLAINTEXT_TRANSPORT) {
    this.channelBinding = transport.channelBinding;
    // A connection of its own per session, as real clients have (no shared subchannel).
    this.client = new Client(address, transport.creds, { "grpc.use_local_subchannel_pool": 1, ...transport.options });
    this.call = this.client.makeBidiStreamRequest(
      ChatServiceService.session.path,
      (bytes: Uint8Array) => Buffer.from(bytes),
      (bytes: Buffer) => SessionResponse.decode(bytes),
      new Metadata(),
    );
    this.call.on("data", (r: SessionResponse) => {
      if (r.frame !== undefined) this.inbox.push(r.frame);
      if (r.frame?.$case === "directoryUpdate") {
        for (const e of r.frame.value.entries) {
          this.presence.set(e.username, e);
          this.presenceLog.push(e);
        }
      }
      this.notify();
    });
    this.ended = new Promise((resolve) => {
      this.call.on("status", (s: StatusObject) => {
        const code = s.metadata.get("securechat-error-code")[0];
        this.endStatus = { code: s.code, details: s.details, errorCode: typeof code === "string" ? code : undefined };
        resolve(this.endStatus);
        this.notify();
      });
    });
    // The status event carries the outcome; an 'error' without a listener would throw.
    this.call.on("error", () => {});
  }

  get isEnded(): boolean {
    return this.endStatus !== undefined;
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Writes one well-formed frame. */
  write(frame: RequestFrame): void {
    this.writeRaw(SessionRequest.encode({ frame }).finish());
  }

  /** Writes arbitrary bytes as one gRPC message. */
  writeRaw(bytes: Uint8Array): void {
    this.call.write(bytes);
  }

  /**
   * Takes the first frame of this case (and matching `pred`) out of the inbox, waiting for one
   * up to timeoutMs. Fails early, with the status, if the call ends first.
   */
  async next<C extends ResponseCase>(c: C, pred: (v: ResponseOf<C>) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<ResponseOf<C>> {
    // The inbox holds a union; a frame of case C carries a ResponseOf<C> by construction.
    const matches = (f: ResponseFrame): boolean => f.$case === c && pred(f.value as ResponseOf<C>);
    const take = (): { value: unknown } | undefined => {
      const i = this.inbox.findIndex(matches);
      return i < 0 ? undefined : { value: this.inbox.splice(i, 1)[0]!.value };
    };
    const now = take();
    if (now !== undefined) return now.value as ResponseOf<C>;
    const value = await new Promise<unknown>((resolve, reject) => {
      const check = (): void => {
        const v = take();
        if (v !== undefined) {
          finish();
          resolve(v.value);
        } else if (this.endStatus !== undefined) {
          finish();
          reject(new Error(`stream ended (${GrpcStatus[this.endStatus.code]}: ${this.endStatus.details}) while waiting for ${c}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${c}; inbox: ${this.inbox.map((f) => f.$case).join(", ") || "empty"}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
    return value as ResponseOf<C>;
  }

  /** True when a frame of this case (matching pred) is in the inbox now. */
  has<C extends ResponseCase>(c: C, pred: (v: ResponseOf<C>) => boolean = () => true): boolean {
    return this.inbox.some((f) => f.$case === c && pred(f.value as ResponseOf<C>));
  }

  /**
   * Waits until the DirectoryUpdates seen so far show `username` with this presence; returns the
   * entry. (Updates are coalesced: one may carry several users, so this tracks state.)
   */
  async nextPresence(username: string, online: boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<DirectoryEntry> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.presence.get(username);
      if (e !== undefined && e.online === online) return e;
      if (this.endStatus !== undefined) throw new Error(`stream ended while waiting for ${username} ${online ? "online" : "offline"}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${username} to be ${online ? "online" : "offline"}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { this.waiters.delete(w); resolve(); }, 50);
        const w = () => { clearTimeout(t); this.waiters.delete(w); resolve(); };
        this.waiters.add(w);
      });
    }
  }

  /** Whether any DirectoryUpdate so far showed `username` with this presence. */
  sawPresence(username: string, online: boolean): boolean {
    return this.presenceLog.some((e) => e.username === username && e.online === online);
  }

  /** Asks for users' keys (LookupKeys) and returns the answer's entries. */
  async lookupKeys(usernames: string[], requestId = 777): Promise<DirectoryEntry[]> {
    this.write({ $case: "lookupKeys", value: { requestId, usernames } });
    return (await this.next("keyList", (k) => k.requestId === requestId)).entries;
  }

  /** Waits for the call to end, up to timeoutMs. */
  async status(timeoutMs = DEFAULT_WAIT_MS): Promise<EndStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for the stream to end`)), timeoutMs);
    });
    try {
      return await Promise.race([this.ended, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  hello(id: Pick<PublicIdentity, "username" | "sigSpki" | "encSpki" | "encKeySig">, over: Partial<Hello> = {}): void {
    this.write({
      $case: "hello",
      value: {
        username: id.username, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig,
        clientVersion: "raw-session/test", protocolVersion: 1, ...over,
      },
    });
  }

  /** Hello -> Challenge -> Proof -> Welcome. */
  async handshake(id: PrivateIdentity): Promise<Welcome> {
    this.hello(id);
    const challenge = await this.next("challenge");
    this.write({ $case: "proof", value: { signature: signProof(id, challenge.relayId, challenge.nonce, this.channelBinding) } });
    return this.next("welcome");
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
  async deliveries(count: number, timeoutMs = DEFAULT_WAIT_MS): Promise<Delivery[]> {
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
