// A hostile relay for protocol v2 tests, built as the real relay with a man in the middle that
// the relay's operator controls (PROTOCOL.md §12): every frame between each client and the real
// relay passes through here, decoded, so a test can drop, hold and release (reorder), duplicate,
// inject or rewrite it per user and per kind, on either side. Plaintext on both sides (the
// operator owns the relay: TLS would not stop it).
//
// Deliveries: a delivery the proxy drops is acknowledged to the relay by the proxy (the relay's
// queue moves on, as when a relay simply never delivers it); a delivery the proxy adds (a
// replay, a copy, a forged one) carries a sequence number of the proxy's own, and the client's
// ack of it is not passed to the relay.
import { Client, Metadata, Server, ServerCredentials, credentials, type ClientDuplexStream, type ServerDuplexStream } from "@grpc/grpc-js";
import { SessionRequest, SessionResponse, type Delivery } from "../../src/gen/securechat/v1/chat.js";
import { RAW_SESSION_SERVICE } from "./raw-service.js";

export type RequestFrame = NonNullable<SessionRequest["frame"]>;
export type ResponseFrame = NonNullable<SessionResponse["frame"]>;

/** What a rule does with one frame: undefined passes it on unchanged; an array replaces it (empty: dropped). */
export type Verdict<T> = T[] | undefined;

export interface ProxiedSession {
  /** The username of the session's Hello (undefined before it). */
  readonly user: string | undefined;
  /** Sends a frame to the client as if the relay had. */
  toClient(frame: ResponseFrame): void;
  /** Sends a frame to the relay as if the client had. */
  toRelay(frame: RequestFrame): void;
}

/** Sequence numbers the proxy gives the deliveries it adds (far above any relay queue's). */
const OWN_SEQ_BASE = 1_000_000_000;

export class MlsHostileProxy {
  /** Rules on deliveries (one item at a time), client frames and relay frames; each may rewrite or drop. */
  onDelivery: ((user: string, d: Delivery) => Verdict<Delivery>) | undefined;
  onRequest: ((user: string, f: RequestFrame, s: ProxiedSession) => Verdict<RequestFrame>) | undefined;
  onResponse: ((user: string, f: ResponseFrame, s: ProxiedSession) => Verdict<ResponseFrame>) | undefined;
  /** Every MLS delivery the relay queued, per user, as it came (before any rule). */
  readonly delivered = new Map<string, Delivery[]>();
  /** Every frame each user's client sent (before any rule). */
  readonly requests = new Map<string, RequestFrame[]>();
  private readonly sessions = new Set<Session>();
  private ownSeq = OWN_SEQ_BASE;

  private constructor(private readonly server: Server, readonly port: number, private readonly upstreams: Client[]) {}

  static async start(relayAddress: string): Promise<MlsHostileProxy> {
    const server = new Server();
    const upstreams: Client[] = [];
    const holder: { proxy?: MlsHostileProxy } = {};
    server.addService(RAW_SESSION_SERVICE, {
      session: (down: ServerDuplexStream<Buffer, Buffer>) => {
        const client = new Client(relayAddress, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
        upstreams.push(client);
        const raw = RAW_SESSION_SERVICE.session;
        const up: ClientDuplexStream<Uint8Array, Buffer> = client.makeBidiStreamRequest(raw.path, raw.requestSerialize, raw.responseDeserialize, new Metadata());
        holder.proxy!.attach(down, up);
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const proxy = new MlsHostileProxy(server, port, upstreams);
    holder.proxy = proxy;
    return proxy;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The live session(s) of a user. */
  sessionsOf(user: string): ProxiedSession[] {
    return [...this.sessions].filter((s) => s.user === user);
  }

  /** Hands copies of deliveries to a user's live session as the relay would, each under a sequence number of the proxy's own; returns the copies. */
  inject(user: string, ...items: Delivery[]): Delivery[] {
    const s = [...this.sessions].find((x) => x.user === user);
    if (s === undefined) throw new Error(`${user} has no session through the proxy`);
    const copies = items.map((d) => this.own(d));
    s.toClient({ $case: "deliver", value: { items: copies } });
    return copies;
  }

  /** MLS deliveries the relay queued for a user that match. */
  deliveredTo(user: string, pred: (d: Delivery) => boolean = () => true): Delivery[] {
    return (this.delivered.get(user) ?? []).filter(pred);
  }

  /** A copy of a delivery under a sequence number of the proxy's own (its ack stays here). */
  own(d: Delivery): Delivery {
    return { ...d, seq: this.ownSeq++ };
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.close();
    for (const c of this.upstreams) c.close();
    this.server.forceShutdown();
  }

  private attach(down: ServerDuplexStream<Buffer, Buffer>, up: ClientDuplexStream<Uint8Array, Buffer>): void {
    const s = new Session(down, up);
    this.sessions.add(s);
    up.on("data", (b: Buffer) => {
      const frame = SessionResponse.decode(b).frame;
      if (frame === undefined) { down.write(b); return; }
      const user = s.user ?? "";
      if (frame.$case === "deliver") {
        const out: Delivery[] = [];
        const ackForClient: number[] = [];
        for (const d of frame.value.items) {
          if (d.mls !== undefined) {
            let list = this.delivered.get(user);
            if (list === undefined) this.delivered.set(user, (list = []));
            list.push(d);
          }
          const v = this.onDelivery?.(user, d);
          if (v === undefined) { out.push(d); continue; }
          let kept = false;
          for (const x of v) {
            if (!kept && x.seq === d.seq) { kept = true; out.push(x); } else out.push(x.seq === d.seq ? this.own(x) : x);
          }
          if (!kept) ackForClient.push(d.seq);
        }
        if (ackForClient.length > 0) s.toRelay({ $case: "ack", value: { seqs: ackForClient } });
        if (out.length > 0) s.toClient({ $case: "deliver", value: { items: out } });
        return;
      }
      const v = this.onResponse?.(user, frame, s);
      if (v === undefined) { down.write(b); return; }
      for (const f of v) s.toClient(f);
    });
    up.on("status", (st: { code: number; details: string; metadata: Metadata }) => {
      if (st.code === 0) down.end();
      else down.emit("error", { code: st.code, details: st.details, metadata: st.metadata });
    });
    up.on("error", () => {});
    down.on("data", (b: Buffer) => {
      const frame = SessionRequest.decode(b).frame;
      if (frame === undefined) { up.write(b); return; }
      if (frame.$case === "hello") s.user = frame.value.username;
      const user = s.user ?? "";
      let list = this.requests.get(user);
      if (list === undefined) this.requests.set(user, (list = []));
      list.push(frame);
      if (frame.$case === "ack") {
        const seqs = frame.value.seqs.filter((q) => q < OWN_SEQ_BASE);
        if (seqs.length !== frame.value.seqs.length) {
          if (seqs.length > 0) s.toRelay({ $case: "ack", value: { seqs } });
          return;
        }
      }
      const v = this.onRequest?.(user, frame, s);
      if (v === undefined) { up.write(b); return; }
      for (const f of v) s.toRelay(f);
    });
    const end = (): void => { this.sessions.delete(s); up.cancel(); };
    down.on("end", () => { up.end(); this.sessions.delete(s); });
    down.on("error", end);
    down.on("cancelled", end);
  }
}

class Session implements ProxiedSession {
  user: string | undefined;
  constructor(private readonly down: ServerDuplexStream<Buffer, Buffer>, private readonly up: ClientDuplexStream<Uint8Array, Buffer>) {}
  toClient(frame: ResponseFrame): void {
    this.down.write(Buffer.from(SessionResponse.encode({ frame }).finish()));
  }
  toRelay(frame: RequestFrame): void {
    this.up.write(Buffer.from(SessionRequest.encode({ frame }).finish()));
  }
  close(): void {
    this.up.cancel();
    this.down.end();
  }
}
