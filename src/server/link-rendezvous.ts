// The Link rendezvous (proto/PROTOCOL.md §4.6): the relay pairs a NEW_DEVICE stream with an
// EXISTING_DEVICE stream that name the same 16-byte rendezvous and forwards each payload to the
// other side unchanged. It never looks inside a payload (they are sealed with a key derived from
// a code only the two devices know) and keeps nothing on disk.
//
// What a stranger can make the relay hold, and for how long:
//   - before its first frame, a stream holds a place in the handshake budget (handshake-budget.ts,
//     the same one sessions use: per source address and relay-wide) for at most firstFrameMs;
//   - only a NEW_DEVICE opens a rendezvous; an EXISTING_DEVICE that finds none waiting is told
//     so at once. Open rendezvous (waiting or paired) are capped per source address (4), per
//     network (16: an IPv6 source's /48, networkOf) and in all (256), each for at most 10 minutes;
//   - per payload 64 KiB, per side 16 payloads; frames bigger than a payload are refused by
//     grpc-js at their length prefix (never buffered);
//   - a payload is forwarded with a flushed write (stream.ts sendFlushed): a side's next frame is
//     read only once its last one was sent to the other side, so a side that does not read holds
//     up its sender, and the relay holds at most one payload unsent per direction (two per
//     rendezvous), not all 16 (the relay-wide write budget pays for payloads, as for sessions'
//     answers). One still unsent after stallMs ends the rendezvous: a side that stops reading
//     cannot keep it (and its payload) for the rendezvous' 10 minutes.
// A second stream of a role already present, or a third stream for a paired rendezvous, is
// refused; so is a malformed frame. Every refusal is one sentence in LinkResponse.error, then the
// stream ends; nothing a stream sends can throw out of this file.
import { Metadata, status as GrpcStatus, type StatusObject } from "@grpc/grpc-js";
import { LinkRequest, LinkResponse, LinkRole } from "../gen/securechat/v1/chat.js";
import type { Logger } from "../protocol/log.js";
import { HandshakeBudget, networkOf, sourceOf } from "./handshake-budget.js";
import { ANSWER_STALL_MS, ANSWER_UNBUDGETED_BYTES } from "./limits.js";
import type { FrameStream } from "./stream.js";

export const LINK_RENDEZVOUS_BYTES = 16;
export const LINK_MAX_PAYLOAD_BYTES = 64 * 1024;
/** What grpc-js may receive in one Link frame: a payload and its few bytes of protobuf framing. */
export const LINK_MAX_FRAME_BYTES = LINK_MAX_PAYLOAD_BYTES + 64;

export interface LinkLimits {
  readonly maxPayloadBytes: number;
  readonly maxPayloadsPerSide: number;
  readonly lifetimeMs: number;
  readonly maxPerSource: number;
  /** Open rendezvous per network (an IPv6 source's /48, see networkOf): a host holds many /64s. */
  readonly maxPerNetwork: number;
  readonly maxOpen: number;
  /** How long a stream may take to send its first frame (rendezvous and role). */
  readonly firstFrameMs: number;
  /** How long a forwarded payload may wait unsent (the other side does not read) before the rendezvous ends. */
  readonly stallMs: number;
}

export const DEFAULT_LINK_LIMITS: LinkLimits = {
  maxPayloadBytes: LINK_MAX_PAYLOAD_BYTES,
  maxPayloadsPerSide: 16,
  lifetimeMs: 10 * 60_000,
  maxPerSource: 4,
  maxPerNetwork: 16,
  maxOpen: 256,
  firstFrameMs: 10_000,
  stallMs: ANSWER_STALL_MS,
};

// networkOf (a source's /48) lives with sourceOf; re-exported for this module's users.
export { networkOf };

const OK_STATUS = (): StatusObject => ({ code: GrpcStatus.OK, details: "", metadata: new Metadata() });

/** The sentences a Link stream may end with. */
export const linkSay = {
  malformed: (why: string) => `the relay could not read this linking frame (${why}): update chat-tui on this device`,
  noFirstFrame: (s: number) => `no rendezvous was named within ${s} seconds`,
  noneWaiting: "no device is waiting with this code: check the code, and that the new device still shows it",
  roleTaken: (role: "new" | "existing") => role === "new"
    ? "another device is already waiting with this code: start the linking again on the new device to get a new code"
    : "another device is already answering this code",
  pairedAlready: "this code is already being used by two devices: start the linking again on the new device to get a new code",
  networkBusy: (n: number) => `too many linkings from your network: ${n} are open, the most this relay keeps for one network; finish or cancel one first`,
  sourceBusy: (n: number) => `too many linkings from your address: ${n} are open, the most this relay keeps for one address; finish or cancel one first`,
  relayBusy: (n: number) => `the relay is busy: ${n} linkings are open, the most it keeps; try again in a moment`,
  tooEarly: "a payload was sent before the other device arrived",
  tooLarge: (max: number) => `a linking message is larger than ${max / 1024} KiB`,
  tooMany: (n: number) => `more than ${n} linking messages were sent: start the linking again`,
  expired: (min: number) => `the linking took longer than ${min} minutes: start it again on the new device`,
  otherLeft: "the other device left before the linking finished",
  otherStalled: (s: number) => `the other device stopped reading the linking messages for ${s} seconds: start the linking again`,
  stalled: (s: number) => `this device did not read the linking messages for ${s} seconds: start the linking again`,
  shuttingDown: "the relay is shutting down: try the linking again in a moment",
} as const;

interface Side {
  readonly stream: FrameStream;
  payloads: number;
  /** It half-closed: it sends nothing more. */
  done: boolean;
}

interface Rendezvous {
  readonly key: string;
  newSide: Side;
  existingSide: Side | undefined;
  readonly release: () => void;
  readonly timer: NodeJS.Timeout;
  over: boolean;
}

export interface LinkRendezvousDeps {
  readonly logger: Logger;
  /** The budget strangers' streams wait in before their first frame (the relay's handshake budget). */
  readonly handshakes: HandshakeBudget;
  readonly limits?: Partial<LinkLimits>;
}

export class LinkRendezvous {
  private readonly limits: LinkLimits;
  private readonly open = new Map<string, Rendezvous>();
  private readonly budget: HandshakeBudget;
  private readonly networks: HandshakeBudget;
  private readonly streams = new Set<FrameStream>();
  private stopping = false;

  constructor(private readonly deps: LinkRendezvousDeps) {
    this.limits = { ...DEFAULT_LINK_LIMITS, ...deps.limits };
    this.budget = new HandshakeBudget(this.limits.maxOpen, this.limits.maxPerSource);
    this.networks = new HandshakeBudget(this.limits.maxOpen, this.limits.maxPerNetwork);
  }

  /** Rendezvous open now (waiting or paired). */
  get size(): number {
    return this.open.size;
  }

  /** Serves one Link stream until it ends. Never rejects. */
  async serve(stream: FrameStream): Promise<void> {
    if (this.stopping) return this.fail(stream, linkSay.shuttingDown);
    this.streams.add(stream);
    try {
      await this.serveStream(stream);
    } catch (e) {
      this.deps.logger.error("link.internal", { error: e instanceof Error ? e.message : String(e) });
      this.fail(stream, "internal relay error");
    } finally {
      this.streams.delete(stream);
    }
  }

  /** Ends every Link stream (relay shutdown). */
  shutdown(): void {
    this.stopping = true;
    for (const r of [...this.open.values()]) this.finish(r, linkSay.shuttingDown);
    for (const s of [...this.streams]) this.fail(s, linkSay.shuttingDown);
  }

  private async serveStream(stream: FrameStream): Promise<void> {
    const source = sourceOf(stream.peer);
    const admitted = this.deps.handshakes.enter(source);
    if (admitted.kind !== "admitted") {
      return this.fail(stream, admitted.kind === "source-busy" ? linkSay.sourceBusy(admitted.limit) : linkSay.relayBusy(admitted.limit));
    }
    const frames = stream[Symbol.asyncIterator]();
    let first: IteratorResult<Buffer>;
    const timer = setTimeout(() => this.fail(stream, linkSay.noFirstFrame(this.limits.firstFrameMs / 1000)), this.limits.firstFrameMs);
    try {
      first = await frames.next();
    } finally {
      clearTimeout(timer);
      admitted.ticket.leave();
    }
    if (stream.closed) return;
    if (first.done === true) return this.fail(stream, linkSay.malformed(`the first frame must name a ${LINK_RENDEZVOUS_BYTES}-byte rendezvous`));
    const req = this.decode(stream, first.value);
    if (req === undefined) return;
    if (req.rendezvous.length !== LINK_RENDEZVOUS_BYTES) return this.fail(stream, linkSay.malformed(`the first frame must name a ${LINK_RENDEZVOUS_BYTES}-byte rendezvous`));
    if (req.role !== LinkRole.LINK_ROLE_NEW_DEVICE && req.role !== LinkRole.LINK_ROLE_EXISTING_DEVICE) return this.fail(stream, linkSay.malformed("the first frame must name a role"));
    if (req.payload.length > 0) return this.fail(stream, linkSay.tooEarly);
    const key = Buffer.from(req.rendezvous).toString("hex");
    const found = this.open.get(key);
    let r: Rendezvous;
    let side: Side;
    if (req.role === LinkRole.LINK_ROLE_NEW_DEVICE) {
      if (found !== undefined) return this.fail(stream, found.existingSide === undefined ? linkSay.roleTaken("new") : linkSay.pairedAlready);
      const place = this.budget.enter(source);
      if (place.kind !== "admitted") {
        this.deps.logger.warn("link.shed", { source, reason: place.kind });
        return this.fail(stream, place.kind === "source-busy" ? linkSay.sourceBusy(place.limit) : linkSay.relayBusy(place.limit));
      }
      const net = this.networks.enter(networkOf(source));
      if (net.kind !== "admitted") {
        place.ticket.leave();
        this.deps.logger.warn("link.shed", { source, reason: "network-busy" });
        return this.fail(stream, linkSay.networkBusy(this.limits.maxPerNetwork));
      }
      side = { stream, payloads: 0, done: false };
      r = {
        key, newSide: side, existingSide: undefined, over: false, release: () => { place.ticket.leave(); net.ticket.leave(); },
        timer: setTimeout(() => this.finish(r, linkSay.expired(this.limits.lifetimeMs / 60_000)), this.limits.lifetimeMs),
      };
      r.timer.unref();
      this.open.set(key, r);
      this.deps.logger.info("link.waiting", { open: this.open.size });
    } else {
      if (found === undefined) return this.fail(stream, linkSay.noneWaiting);
      if (found.existingSide !== undefined) return this.fail(stream, linkSay.pairedAlready);
      r = found;
      side = { stream, payloads: 0, done: false };
      r.existingSide = side;
      const paired = encode({ paired: true });
      void r.newSide.stream.send(paired);
      void stream.send(paired);
      this.deps.logger.info("link.paired", { open: this.open.size });
    }
    // The other side going away ends this one too (a stream ended here aborts as well: finish is idempotent).
    stream.signal.addEventListener("abort", () => this.finish(r, linkSay.otherLeft, side), { once: true });
    for (;;) {
      const next = await frames.next();
      if (next.done === true) break;
      if (r.over) return;
      const f = this.decode(stream, next.value);
      if (f === undefined) return;
      if (f.rendezvous.length > 0 || f.role !== LinkRole.LINK_ROLE_UNSPECIFIED) return this.refuseIn(r, side, linkSay.malformed("only the first frame names the rendezvous and role"));
      if (f.payload.length === 0) return this.refuseIn(r, side, linkSay.malformed("a frame after the first must carry a payload"));
      if (f.payload.length > this.limits.maxPayloadBytes) return this.refuseIn(r, side, linkSay.tooLarge(this.limits.maxPayloadBytes));
      const other = side === r.newSide ? r.existingSide : r.newSide;
      if (other === undefined) return this.refuseIn(r, side, linkSay.tooEarly);
      if (++side.payloads > this.limits.maxPayloadsPerSide) return this.refuseIn(r, side, linkSay.tooMany(this.limits.maxPayloadsPerSide));
      // Forwarded as received: the relay never opens it. This side's next frame is read once it was sent.
      if (!await this.forward(r, other, encode({ payload: f.payload }))) return;
    }
    // This side is done sending (half-closed); it may still read. Once both are done, both end
    // cleanly; a side that goes away instead ends the other with a sentence (the abort above).
    side.done = true;
    const other = side === r.newSide ? r.existingSide : r.newSide;
    if (other?.done === true) this.finish(r, undefined);
  }

  /**
   * Writes one payload to `to` and resolves once it was sent (true) or the rendezvous is over
   * (false). A payload bigger than a small answer first takes its bytes from the relay-wide write
   * budget (as a session's answer, session.ts reply). One still unsent after stallMs ends the
   * rendezvous: `to` is told it did not read, the other side that `to` stopped reading.
   */
  private async forward(r: Rendezvous, to: Side, frame: Buffer): Promise<boolean> {
    const stallMs = this.limits.stallMs;
    const stalled = setTimeout(() => {
      if (r.over) return;
      this.deps.logger.warn("link.stalled", { bytes: frame.byteLength, stallMs, open: this.open.size });
      // The other side first: ending `to` first would tell it "the other device left".
      this.finish(r, linkSay.otherStalled(Math.round(stallMs / 1000)), to);
      this.fail(to.stream, linkSay.stalled(Math.round(stallMs / 1000)));
    }, stallMs);
    stalled.unref();
    try {
      return await to.stream.sendFlushed(frame, frame.byteLength > ANSWER_UNBUDGETED_BYTES) && !r.over;
    } finally {
      clearTimeout(stalled);
    }
  }

  /** A frame as a LinkRequest; a malformed one ends the stream with one sentence. */
  private decode(stream: FrameStream, bytes: Buffer): LinkRequest | undefined {
    try {
      return LinkRequest.decode(bytes);
    } catch (e) {
      this.fail(stream, linkSay.malformed(((e instanceof Error ? e.message : "undecodable bytes").slice(0, 120))));
      return undefined;
    }
  }

  /** One side broke a rule: it is told why, the other side that the linking ended. */
  private refuseIn(r: Rendezvous, side: Side, sentence: string): void {
    this.fail(side.stream, sentence);
    this.finish(r, linkSay.otherLeft);
  }

  /**
   * Ends a rendezvous once: `sentence` to every side still open (undefined: a clean end, OK),
   * except `from` when it ended itself.
   */
  private finish(r: Rendezvous, sentence: string | undefined, from?: Side): void {
    if (r.over) return;
    r.over = true;
    clearTimeout(r.timer);
    r.release();
    if (this.open.get(r.key) === r) this.open.delete(r.key);
    for (const s of [r.newSide, r.existingSide]) {
      if (s === undefined || s === from) continue;
      if (sentence === undefined) s.stream.end(OK_STATUS());
      else this.fail(s.stream, sentence);
    }
    if (from !== undefined && sentence === undefined) from.stream.end(OK_STATUS());
    this.deps.logger.info("link.ended", { open: this.open.size, clean: sentence === undefined });
  }

  private fail(stream: FrameStream, sentence: string): void {
    if (stream.closed) return;
    void stream.send(encode({ error: sentence }));
    stream.end(OK_STATUS());
  }
}

function encode(r: Partial<LinkResponse>): Buffer {
  const bytes = LinkResponse.encode({ payload: Buffer.alloc(0), paired: false, error: "", ...r }).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
