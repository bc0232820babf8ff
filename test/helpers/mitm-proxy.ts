// A man in the middle between a client and the real relay. Towards the client it serves TLS
// with a certificate of its own (or plaintext, as an on-path injector without TLS would);
// towards the relay it is an honest TLS client that pinned the relay's certificate. It relays
// every frame both ways, and injects what an attacker on the path wants: as soon as the relay
// delivers anything, an Ack of those seqs (deleting the victim's queued messages) and a
// LeaveRoom of the victim's room (acting as the victim).
import { randomBytes } from "node:crypto";
import { Client, Metadata, Server, ServerCredentials, type ClientDuplexStream, type ServerDuplexStream } from "@grpc/grpc-js";
import { SessionRequest, SessionResponse } from "../../src/gen/securechat/v1/chat.js";
import type { RawTransport } from "./raw-session.js";
import { RAW_SESSION_SERVICE } from "./raw-service.js";

export interface MitmProxy {
  readonly port: number;
  /** Frames the relay sent through the proxy, by case. */
  readonly fromRelay: string[];
  /** Frames the proxy injected towards the relay. */
  readonly injected: string[];
  /** How the relay ended the relayed call (its status details), once it did. */
  readonly upstreamEnds: string[];
  close(): Promise<void>;
}

export interface MitmOptions {
  /** The relay's address and how an honest client reaches it. */
  readonly relayAddress: string;
  readonly relayTransport: RawTransport;
  /** What the proxy serves to the victim: its own certificate, or plaintext. */
  readonly serve: { readonly cert: Buffer; readonly key: Buffer } | "plaintext";
  /** The room to leave in the victim's name. */
  readonly room: string;
}

export async function startMitmProxy(o: MitmOptions): Promise<MitmProxy> {
  const fromRelay: string[] = [];
  const injected: string[] = [];
  const upstreamEnds: string[] = [];
  const upstreams: Client[] = [];
  const server = new Server();
  server.addService(RAW_SESSION_SERVICE, {
    session: (down: ServerDuplexStream<Buffer, Buffer>) => {
      const client = new Client(o.relayAddress, o.relayTransport.creds, { "grpc.use_local_subchannel_pool": 1, ...o.relayTransport.options });
      upstreams.push(client);
      const raw = RAW_SESSION_SERVICE.session;
      const up: ClientDuplexStream<Uint8Array, Buffer> = client.makeBidiStreamRequest(raw.path, raw.requestSerialize, raw.responseDeserialize, new Metadata());
      let hijacked = false;
      up.on("data", (b: Buffer) => {
        const frame = SessionResponse.decode(b).frame;
        if (frame !== undefined) fromRelay.push(frame.$case);
        down.write(b);
        if (frame?.$case === "deliver" && !hijacked) {
          hijacked = true;
          const inject = (f: NonNullable<SessionRequest["frame"]>): void => {
            injected.push(f.$case);
            up.write(Buffer.from(SessionRequest.encode({ frame: f }).finish()));
          };
          inject({ $case: "ack", value: { seqs: frame.value.items.map((i) => i.seq) } });
          inject({ $case: "leaveRoom", value: { requestId: 9_000 + randomBytes(1)[0]!, room: o.room } });
        }
      });
      up.on("status", (s: { code: number; details: string; metadata: Metadata }) => {
        upstreamEnds.push(s.details);
        // Passed on as the relay said it, so the victim sees the relay's own refusal.
        if (s.code === 0) down.end();
        else down.emit("error", { code: s.code, details: s.details, metadata: s.metadata });
      });
      up.on("error", () => {});
      down.on("data", (b: Buffer) => up.write(b));
      down.on("end", () => up.end());
      down.on("error", () => up.cancel());
      down.on("cancelled", () => up.cancel());
    },
  });
  const creds = o.serve === "plaintext"
    ? ServerCredentials.createInsecure()
    : ServerCredentials.createSsl(null, [{ cert_chain: o.serve.cert, private_key: o.serve.key }], false);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", creds, (e, p) => (e ? reject(e) : resolve(p))));
  return {
    port, fromRelay, injected, upstreamEnds,
    async close() {
      for (const c of upstreams) c.close();
      server.forceShutdown();
    },
  };
}
