// What the raw protocol clients share, whatever carries their bytes: RawSession (grpc-js,
// raw-session.ts), Http2SessionStream (gRPC by hand over node:http2, raw-http2.ts) and the
// benchmarks' BenchClient (scripts/bench/_lib.ts, a RawSession). Frames received go to an
// inbox; next() takes one of a case, waiting for it; the call's end status; the handshake of
// PROTOCOL.md §9 (Hello -> Challenge -> Proof -> Welcome).
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { Hello, SessionRequest, SessionResponse, Welcome } from "../../src/gen/securechat/v1/chat.js";
import { signProof, type PrivateIdentity, type PublicIdentity } from "../../src/protocol/keys.js";

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
  /** The relay's `securechat-retry-after-ms` trailer (a rate refusal, PROTOCOL.md §9.3), when it sent one. */
  readonly retryAfterMs?: number;
}

export const DEFAULT_WAIT_MS = 5000;

/** The Hello of `id` (its keys and their binding as given), with `over` on top. */
export function helloOf(
  id: Pick<PublicIdentity, "username" | "sigSpki" | "encSpki" | "encKeySig">, clientVersion: string, over: Partial<Hello> = {},
): Hello {
  return {
    username: id.username, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, clientVersion, protocolVersion: 2, deviceSpki: Buffer.alloc(0), ...over,
  };
}

export abstract class FrameInbox {
  /** Every frame received and not yet taken by next(), oldest first (see keepFrames). */
  readonly inbox: ResponseFrame[] = [];
  /** Resolves when the call ends, with the status the client saw. */
  readonly ended: Promise<EndStatus>;
  /**
   * True (tests): every frame received stays in the inbox until next() takes it. False
   * (benchmarks): only a frame someone waits for right now is taken; the rest are dropped, so
   * the client's memory does not grow with the load.
   */
  keepFrames = true;
  /** How long next(), handshake() and status() wait by default. */
  waitMs = DEFAULT_WAIT_MS;
  private endStatus: EndStatus | undefined;
  private resolveEnd: (s: EndStatus) => void = () => {};
  private readonly waiters = new Set<() => void>();

  /** What this session's proof binds (PROTOCOL.md §9). */
  abstract readonly channelBinding: Uint8Array;
  /** The Hello's clientVersion. */
  abstract readonly clientVersion: string;
  /** Writes one well-formed frame. */
  abstract write(frame: RequestFrame): void;

  constructor() {
    this.ended = new Promise((resolve) => {
      this.resolveEnd = resolve;
    });
  }

  get isEnded(): boolean {
    return this.endStatus !== undefined;
  }

  /** The call ended (the first end counts). */
  protected markEnded(s: EndStatus): void {
    if (this.endStatus !== undefined) return;
    this.endStatus = s;
    this.resolveEnd(s);
    this.notify();
  }

  /** One frame arrived. */
  protected receive(frame: ResponseFrame): void {
    this.inbox.push(frame);
    this.notify();
    if (!this.keepFrames) this.inbox.length = 0;
  }

  /** Something changed: waiters look again. */
  protected notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Runs `check` now and after every change until `stop` is called. */
  protected watch(check: () => void): () => void {
    this.waiters.add(check);
    return () => this.waiters.delete(check);
  }

  /**
   * Takes the first frame of this case (and matching `pred`) out of the inbox, waiting for one
   * up to timeoutMs. Fails early, with the status, if the call ends first.
   */
  async next<C extends ResponseCase>(c: C, pred: (v: ResponseOf<C>) => boolean = () => true, timeoutMs = this.waitMs): Promise<ResponseOf<C>> {
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
      const stop = this.watch(check);
      const finish = (): void => {
        clearTimeout(timer);
        stop();
      };
      check();
    });
    return value as ResponseOf<C>;
  }

  /** True when a frame of this case (matching pred) is in the inbox now. */
  has<C extends ResponseCase>(c: C, pred: (v: ResponseOf<C>) => boolean = () => true): boolean {
    return this.inbox.some((f) => f.$case === c && pred(f.value as ResponseOf<C>));
  }

  /** Waits for the call to end, up to timeoutMs. */
  async status(timeoutMs = this.waitMs): Promise<EndStatus> {
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
    this.write({ $case: "hello", value: helloOf(id, this.clientVersion, over) });
  }

  /** Hello -> Challenge -> Proof -> Welcome (`over`: Hello fields on top, e.g. protocolVersion). */
  async handshake(id: PrivateIdentity, timeoutMs = this.waitMs, over: Partial<Hello> = {}): Promise<Welcome> {
    this.hello(id, over);
    const challenge = await this.next("challenge", () => true, timeoutMs);
    this.write({ $case: "proof", value: { signature: signProof(id, challenge.relayId, challenge.nonce, this.channelBinding) } });
    return this.next("welcome", () => true, timeoutMs);
  }
}
