// The Link stream of device linking (proto/PROTOCOL.md §4.6): one rendezvous stream to the
// relay on the session's channel settings, as a queue of events (paired, a payload, the end),
// with the waits both sides use: for an event (bounded, cancellable), and for the end after the
// last message. The two sides' steps are in linking.ts.
import { connectivityState, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { ChatServiceClient, LinkRole, type LinkRequest, type LinkResponse } from "../gen/securechat/v1/chat.js";
import { LINK_MAX_PAYLOAD_BYTES } from "../protocol/link.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import { prepareChannel, type RelayTransport } from "./relay-transport.js";
import { channelOptions } from "./transport.js";

/** Why a linking did not happen: `message` is the one sentence the user sees. */
export class LinkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LinkError";
  }
}

/** Where the relay is and how to reach it (as the session does: TLS pinned, CA, or plaintext). */
export interface LinkRelay {
  readonly address: string;
  readonly transport: RelayTransport;
}

/** How long the existing device waits, after sending BUNDLE, for the new device to say it is done. */
export const BUNDLE_CONFIRM_MS = 30_000;
/**
 * How long a device waits for an answer the other device sends at once, without the user (the
 * OFFER after pairing, the HELLO after the OFFER): a relay that holds a message back is not waited
 * for until its 10 minutes are over.
 */
export const STEP_TIMEOUT_MS = 30_000;
/** How long opening a Link stream waits for the connection to the relay. */
export const LINK_CONNECT_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// The Link stream
// ---------------------------------------------------------------------------------------------

export type LinkEvent = { readonly kind: "paired" } | { readonly kind: "payload"; readonly payload: Buffer } | { readonly kind: "ended"; readonly sentence: string | undefined };

/** One Link stream, as a queue of events. */
export interface LinkStream {
  next(): Promise<LinkEvent>;
  send(req: Partial<LinkRequest>): void;
  /** Sends and resolves once the frame is handed to the connection (or the stream is closed). */
  sendFlushed(req: Partial<LinkRequest>): Promise<void>;
  /** No more frames from this side. */
  done(): void;
  close(): void;
}

function relaySentence(e: ServiceError, address: string): string {
  if (e.code === 14) return `cannot reach the relay at ${address}: is it running, and is the address right?`;
  if (e.code === 12) return "the relay does not support linking devices: it needs an update";
  if (e.code === 1) return "the linking was cancelled";
  return `the relay ended the linking: ${sanitizeLine(e.details || "no reason given").slice(0, 200)}`;
}

/** Resolves once the channel is connected; rejects at its first failure to connect, or at the deadline. */
async function connected(channel: ReturnType<ChatServiceClient["getChannel"]>, deadlineMs: number): Promise<void> {
  for (;;) {
    const state = channel.getConnectivityState(true);
    if (state === connectivityState.READY) return;
    if (state === connectivityState.TRANSIENT_FAILURE || state === connectivityState.SHUTDOWN) throw new Error("the connection to the relay failed");
    await new Promise<void>((resolve, reject) => channel.watchConnectivityState(state, deadlineMs, (e) => (e ? reject(e) : resolve())));
  }
}

/** Opens a Link stream on the same kind of channel the session uses (transport.ts, relay-transport.ts). */
export async function openLinkStream(relay: LinkRelay): Promise<LinkStream> {
  let prepared;
  try {
    prepared = await prepareChannel(relay.transport, relay.address);
  } catch (e) {
    throw new LinkError(e instanceof Error ? e.message : String(e), { cause: e });
  }
  const client = new ChatServiceClient(relay.address, prepared.credentials, { ...channelOptions(LINK_MAX_PAYLOAD_BYTES + 1024), ...prepared.options });
  // Connected before the stream opens: the new device shows its code once its first frame is on
  // its way over a live connection, not while the connection is still being made (the other
  // device, quick to type, would find no device waiting with that code).
  try {
    await connected(client.getChannel(), Date.now() + LINK_CONNECT_MS);
  } catch (e) {
    client.close();
    throw new LinkError(`cannot reach the relay at ${relay.address}: is it running, and is the address right?`, { cause: e });
  }
  const call: ClientDuplexStream<LinkRequest, LinkResponse> = client.link();
  const queue: LinkEvent[] = [];
  let waiter: ((e: LinkEvent) => void) | undefined;
  let ended = false;
  const push = (e: LinkEvent): void => {
    if (ended) return;
    if (e.kind === "ended") ended = true;
    if (waiter !== undefined) {
      const w = waiter;
      waiter = undefined;
      w(e);
    } else queue.push(e);
  };
  call.on("data", (r: LinkResponse) => {
    if (r.error !== "") push({ kind: "ended", sentence: sanitizeLine(r.error).slice(0, 300) });
    else if (r.paired) push({ kind: "paired" });
    else if (r.payload.length > 0) push({ kind: "payload", payload: Buffer.from(r.payload) });
  });
  call.on("error", (e: ServiceError) => push({ kind: "ended", sentence: relaySentence(e, relay.address) }));
  call.on("end", () => push({ kind: "ended", sentence: undefined }));
  let closed = false;
  return {
    next: () => {
      const e = queue.shift();
      if (e !== undefined) return Promise.resolve(e);
      if (ended && queue.length === 0 && waiter === undefined && closed) return Promise.resolve({ kind: "ended", sentence: "the linking was cancelled" });
      return new Promise((resolve) => {
        waiter = resolve;
      });
    },
    send: (req) => {
      if (!closed) call.write({ rendezvous: Buffer.alloc(0), role: LinkRole.LINK_ROLE_UNSPECIFIED, payload: Buffer.alloc(0), ...req });
    },
    sendFlushed: (req) => new Promise<void>((resolve) => {
      if (closed) return resolve();
      call.write({ rendezvous: Buffer.alloc(0), role: LinkRole.LINK_ROLE_UNSPECIFIED, payload: Buffer.alloc(0), ...req }, () => resolve());
    }),
    done: () => {
      if (!closed) call.end();
    },
    close: () => {
      if (closed) return;
      closed = true;
      call.cancel();
      client.close();
      push({ kind: "ended", sentence: "the linking was cancelled" });
    },
  };
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/** The next event, or the sentence the stream ended with (or the abort's). */
export async function expect<K extends "paired" | "payload">(s: LinkStream, kind: K, signal: AbortSignal | undefined, ended: string, timeout?: { readonly ms: number; readonly sentence: string }): Promise<Extract<LinkEvent, { kind: K }>> {
  if (isAborted(signal)) throw new LinkError("the linking was cancelled: nothing was linked");
  const onAbort = (): void => s.close();
  signal?.addEventListener("abort", onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    const e = await (timeout === undefined ? s.next() : Promise.race([s.next(), new Promise<LinkEvent>((resolve) => {
      timer = setTimeout(() => resolve({ kind: "ended", sentence: timeout.sentence }), timeout.ms);
    })]));
    clearTimeout(timer);
    if (isAborted(signal)) throw new LinkError("the linking was cancelled: nothing was linked");
    if (e.kind === kind) return e as Extract<LinkEvent, { kind: K }>;
    if (e.kind === "ended") throw new LinkError(e.sentence ?? ended);
    throw new LinkError("the relay sent the linking out of order: nothing was linked");
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}


/**
 * Sends the last message and half-closes, then waits (at most BUNDLE_CONFIRM_MS) for the stream's
 * end: cancelling at once could drop the message on its way. Resolves with that end (undefined:
 * none in time).
 */
export async function sendLast(stream: LinkStream, sealed: Buffer): Promise<LinkEvent | undefined> {
  stream.send({ payload: sealed });
  stream.done();
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      const e = await Promise.race([stream.next(), new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), BUNDLE_CONFIRM_MS); })]);
      clearTimeout(timer);
      if (e === undefined || e.kind === "ended") return e;
    }
  } finally {
    clearTimeout(timer);
  }
}

export function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.reject(new LinkError("the linking was cancelled: nothing was linked"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new LinkError("the linking was cancelled: nothing was linked"));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

