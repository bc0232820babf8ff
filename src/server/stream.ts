// The one adapter between grpc-js and the relay: a bidi call becomes an AsyncIterable of raw
// incoming frames, an AbortSignal that fires when the stream is over, and a send() that honours
// backpressure. Nothing else in the relay touches the grpc-js duplex.
//
// Backpressure both ways:
//   - in: at most READ_HIGH_WATER frames wait for the session; beyond that the call is paused,
//     so HTTP/2 flow control pushes back on a client that sends faster than it is served;
//   - out: send() writes at once and, when write() reports a full buffer, resolves only after
//     'drain'. Callers that must not wait (event broadcasts) ignore the promise; if a client
//     stops reading, its buffer grows to MAX_PENDING_FRAMES and it is disconnected. Deliveries
//     (sendFlushed) wait until sent, and first take their bytes from the relay-wide write budget;
//     so do answers to requests (session.ts reply), the small ones without the budget.
import { status as GrpcStatus, type ServerDuplexStream, type StatusObject } from "@grpc/grpc-js";
import { ERROR_CODE_TRAILER, sessionEnd, statusOf } from "./errors.js";
import { receiveLimit, resetIfLeftOpen } from "./grpc-internals.js";
import { MAX_PENDING_FRAMES } from "./limits.js";
import type { WriteBudget, WriteLease } from "./write-budget.js";

/** Incoming frames buffered before the call is paused. */
const READ_HIGH_WATER = 4;
/** How long a stream ended before authentication may stay open from the client's side before it is reset. */
const RESET_ENDED_AFTER_MS = 2000;
/** An authenticated session's ended stream: as long as an answer may wait unread (ANSWER_STALL_MS). */
export const ENDED_SESSION_FLUSH_MS = 30_000;

export interface FrameStream extends AsyncIterable<Buffer> {
  /** Aborted once the stream is over: the client went away, or end() was called. */
  readonly signal: AbortSignal;
  /** The client's address, for logs. */
  readonly peer: string;
  /**
   * Queues one encoded SessionResponse. Resolves true once grpc-js has room for more (at once,
   * or after 'drain'), false when the stream is over. Never rejects.
   */
  send(frame: Uint8Array): Promise<boolean>;
  /**
   * Writes one frame and resolves once grpc-js has handed it to HTTP/2 (which holds it until
   * the client's flow-control window admits it): true, or false when the stream is over. A
   * writer that awaits this keeps at most one frame in the call's buffer, where send() lets
   * up to the buffer's high-water mark (16 frames) pile up; delivery batches use it, since
   * each may be up to max frame bytes. With a relay-wide write budget, the frame first waits
   * for its share of it (write-budget.ts), given back once the frame was sent; unless
   * `budgeted` is false (a small answer to a request, session.ts: it skips the budget's queue).
   */
  sendFlushed(frame: Uint8Array, budgeted?: boolean): Promise<boolean>;
  /** Ends the stream with this status (OK: a clean end). Later calls do nothing. */
  end(status: StatusObject): void;
  /** True after end() or once the client went away. */
  readonly closed: boolean;
  /**
   * Bytes of frames written to this stream that HTTP/2 has not taken yet (its flow-control
   * window is shut when the client does not read): what a slow reader makes the relay hold.
   */
  readonly bufferedBytes: number;
  /**
   * The handshake is over (the proof verified): frames up to max_frame_bytes are accepted from
   * now on, where before only preAuthFrameBytes were (PROTOCOL.md §9).
   */
  authenticated(): void;
}

/** Raw bytes in, raw bytes out: the service definition does no (de)serialisation. */
export type RawDuplex = ServerDuplexStream<Buffer, Uint8Array>;

/** Bytes held in the outgoing buffers of every stream of a relay, ended ones included until grpc-js lets go. */
export interface OutgoingBytes {
  bytes: number;
}

export interface AdaptStreamOptions {
  readonly maxPendingFrames?: number;
  /** A relay-wide tally this stream adds its buffered bytes to. */
  readonly outgoing?: OutgoingBytes;
  /** The relay-wide budget sendFlushed() frames (deliveries) take their bytes from. */
  readonly writeBudget?: WriteBudget;
  /**
   * The largest frame accepted before authenticated() (default: no lower limit), refused by
   * grpc-js at the frame's length prefix, before it is buffered; then maxFrameBytes.
   */
  readonly preAuthFrameBytes?: number;
  readonly maxFrameBytes?: number;
  /** Called once when grpc-js's internals for preAuthFrameBytes are missing (an upgrade moved them). */
  readonly onReceiveLimitUnavailable?: () => void;
  /**
   * How long an authenticated session's ended stream may go on flushing what was written before
   * its status (a slow reader still reading) before it is reset, its unsent frames dropped
   * (default ENDED_SESSION_FLUSH_MS). A client that stopped reading must not keep them in the
   * relay's memory for as long as its connection lives (HTTP/2 pings keep it alive).
   */
  readonly endedFlushMs?: number;
}

export function adaptStream(call: RawDuplex, options: AdaptStreamOptions = {}): FrameStream {
  const maxPending = options.maxPendingFrames ?? MAX_PENDING_FRAMES;
  const controller = new AbortController();
  const signal = controller.signal;
  const inbox: Buffer[] = [];
  let readEnded = false;
  let ended = false;
  let waiter: ((r: IteratorResult<Buffer>) => void) | undefined;
  const tally = options.outgoing ?? { bytes: 0 };
  let buffered = 0;
  let released = false;
  /** Writes one frame, counting its bytes until grpc-js has handed them to HTTP/2. */
  const write = (frame: Uint8Array, done?: (ok: boolean) => void): boolean => {
    const n = frame.byteLength;
    if (!released) {
      buffered += n;
      tally.bytes += n;
    }
    return call.write(frame, (err: Error | null | undefined) => {
      if (!released) {
        buffered -= n;
        tally.bytes -= n;
      }
      done?.(err == null);
    });
  };
  // A call that was cancelled or closed drops its pending writes (and their callbacks).
  const release = (): void => {
    if (released) return;
    released = true;
    tally.bytes -= buffered;
    buffered = 0;
  };
  // One shared wait for 'drain', however many writers are waiting (a pump, a reply and any
  // number of broadcasts): a listener each would pile up on a slow client's call. One listener
  // for the stream's life, not events.once per wait (its 'error' and abort listeners, added
  // and removed each time, cost more than the write); gone() settles a wait with false.
  let drained: Promise<boolean> | undefined;
  let settleDrain: ((ok: boolean) => void) | undefined;
  const drainedWith = (ok: boolean): void => {
    const settle = settleDrain;
    drained = undefined;
    settleDrain = undefined;
    settle?.(ok);
  };
  call.on("drain", () => drainedWith(true));
  const waitForDrain = (): Promise<boolean> => {
    if (signal.aborted) return Promise.resolve(false);
    drained ??= new Promise((resolve) => {
      settleDrain = resolve;
    });
    return drained;
  };

  // The flushed writes waiting for grpc-js's callback, settled by the one abort listener below:
  // grpc-js drops the write callback of a cancelled call (a listener per write cost more).
  const flushing = new Set<() => void>();
  signal.addEventListener("abort", () => {
    for (const settle of flushing) settle();
    flushing.clear();
  }, { once: true });
  /** Writes one frame holding its lease; resolves once sent (true) or the stream is over (false). */
  const flush = (frame: Uint8Array, lease: WriteLease | undefined): Promise<boolean> => new Promise((resolve) => {
    const onAbort = (): void => {
      lease?.release();
      resolve(false);
    };
    flushing.add(onAbort);
    write(frame, (ok) => {
      flushing.delete(onAbort);
      lease?.release();
      resolve(ok && !signal.aborted);
    });
  });

  const wake = (): void => {
    const w = waiter;
    if (w === undefined) return;
    const value = inbox.shift();
    if (value !== undefined) {
      waiter = undefined;
      w({ value, done: false });
    } else if (readEnded || signal.aborted) {
      waiter = undefined;
      w({ value: undefined, done: true });
    }
  };

  const gone = (reason: string): void => {
    if (!signal.aborted) controller.abort(new Error(reason));
    drainedWith(false); // the stream is over
    wake();
  };

  // Before the proof, frames are small (PROTOCOL.md §9): a bigger one ends the call at its
  // length prefix; grpc-js sends the status (RESOURCE_EXHAUSTED) with this sentence.
  let authenticated = false;
  const limit = options.preAuthFrameBytes === undefined ? undefined : receiveLimit(call, options.preAuthFrameBytes, (declared, max) => {
    if (authenticated) return undefined; // max_frame_bytes: grpc-js's own words, as before
    const err = sessionEnd.preAuthFrameTooLarge(declared, max);
    gone(err.logReason ?? "frame-too-large");
    resetIfLeftOpen(call, RESET_ENDED_AFTER_MS);
    return err.message;
  });
  if (limit !== undefined && !limit.enforced) options.onReceiveLimitUnavailable?.();

  call.on("data", (frame: Buffer) => {
    if (signal.aborted) return;
    inbox.push(frame);
    if (inbox.length >= READ_HIGH_WATER) call.pause();
    wake();
  });
  // The client half-closed: no more frames, but we may still write (and then end with OK).
  call.on("end", () => {
    readEnded = true;
    wake();
  });
  // The client went away (RST_STREAM, connection lost, keepalive timeout, deadline).
  call.on("cancelled", () => {
    release();
    gone("cancelled");
  });
  call.on("close", () => {
    release();
    gone("closed");
  });
  // grpc-js turns an emitted error into the call's status; here it only means "over".
  call.on("error", () => gone("error"));

  const next = (): Promise<IteratorResult<Buffer>> => {
    const value = inbox.shift();
    if (value !== undefined) {
      if (inbox.length < READ_HIGH_WATER && call.isPaused() && !signal.aborted) call.resume();
      return Promise.resolve({ value, done: false });
    }
    if (readEnded || signal.aborted) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      waiter = resolve;
      if (call.isPaused()) call.resume();
    });
  };

  const stream: FrameStream = {
    signal,
    peer: call.getPeer(),
    get closed() {
      return ended || signal.aborted;
    },
    get bufferedBytes() {
      return buffered;
    },
    authenticated(): void {
      authenticated = true;
      if (options.maxFrameBytes !== undefined) limit?.set(options.maxFrameBytes);
    },
    [Symbol.asyncIterator]: () => ({ next }),
    send(frame: Uint8Array): Promise<boolean> {
      if (stream.closed) return Promise.resolve(false);
      if (call.writableLength >= maxPending) {
        stream.end(statusOf(sessionEnd.slowConsumer(`more than ${maxPending} updates were waiting for it`)));
        return Promise.resolve(false);
      }
      if (write(frame)) return Promise.resolve(true);
      return waitForDrain();
    },
    sendFlushed(frame: Uint8Array, budgeted = true): Promise<boolean> {
      if (stream.closed) return Promise.resolve(false);
      const budget = budgeted ? options.writeBudget : undefined;
      if (budget === undefined) return flush(frame, undefined);
      // Room in the budget now (the common case): no wait, no promise for the lease.
      const lease = budget.tryAcquire(frame.byteLength);
      if (lease !== undefined) return flush(frame, lease);
      return budget.acquire(frame.byteLength, signal).then((later) => {
        if (later === undefined) return false; // over while waiting
        if (stream.closed) {
          later.release();
          return false;
        }
        return flush(frame, later);
      });
    },
    end(status: StatusObject): void {
      if (ended) return;
      ended = true;
      const clientGone = signal.aborted;
      // The reason logs show for this stream's end: the ErrorCode when there is one.
      gone(String(status.metadata.get(ERROR_CODE_TRAILER)[0] ?? GrpcStatus[status.code]));
      if (!clientGone && !call.cancelled && !call.destroyed && !call.writableEnded) {
        if (status.code === GrpcStatus.OK) {
          call.end(status.metadata);
        } else {
          // grpc-js's documented way to end a server stream with a status: emit it as an
          // error; the call flushes what was written, then sends the status as trailers.
          call.emit("error", { code: status.code, details: status.details, metadata: status.metadata });
        }
        // A stranger's stream (refused, timed out) must not linger; an authenticated one may
        // still be draining to a slow reader, whose status would be lost to a reset: it gets as
        // long as an answer may wait unread, then it is reset too (its unsent frames dropped).
        resetIfLeftOpen(call, authenticated ? options.endedFlushMs ?? ENDED_SESSION_FLUSH_MS : RESET_ENDED_AFTER_MS);
      }
    },
  };
  return stream;
}
