// One client stream, as a state machine: handshake (Hello -> Challenge -> Proof), binding,
// Welcome, then requests until the stream ends. PROTOCOL.md §9 is the contract.
//
// Frames are handled one at a time, in order; each handler awaits its own reply until it was
// sent (reply(): flushed, big ones paced by the relay-wide write budget, one stalled past
// ANSWER_STALL_MS ends the session), so a client that stops reading also stops being read, and
// the relay holds at most one answer for it (no unbounded buffering either way). The one
// exception is a run of SendMls (PROTOCOL.md §8.3, answered by SendResults; a SendEnvelope,
// protocol v1's send, is refused in the same pipeline): each is checked at once, in order, and handed to the
// group commit, and the next frames are read while it waits for its transaction; the answers
// still go out in frame order, and any other frame waits for the answers before it. A client
// that sends a burst (an outbox after a reconnect) thus gets one commit for the burst, not one
// per envelope. Acks have no answer, so they are taken at once and never wait for the sends.
// MAX_SENDS_IN_FLIGHT bounds what one session holds while commits are pending.
//
// The handshake (Hello, Challenge, Proof, binding, Welcome) is in handshake.ts; the requests other
// than sends and acks (Ping, LookupKeys, the MLS and device requests, rooms) in session-requests.ts.
import { status as GrpcStatus } from "@grpc/grpc-js";
import { ErrorCode, SendStatus, type Ack, type SendEnvelope, type SendMls, type SendResult } from "../gen/securechat/v1/chat.js";
import { DeliveryPump } from "./delivery.js";
import type { DirectoryUser } from "./directory.js";
import type { GroupCommitter } from "./group-commit.js";
import { authenticate, StreamOver, type FrameIterator, type HandshakeDeps, type StreamAdmission } from "./handshake.js";
import { logReasonOf, Refusal, requestRefusalOf, SessionEnd, sessionEnd, statusFor, statusOf } from "./errors.js";
import { decodeSessionRequest, encodeResponse, encodeSendResult, frameScanBoundsFor, RefusedRequest, type FrameScanBounds, type ResponseFrame } from "./frames.js";
import { ANSWER_STALL_MS, ANSWER_UNBUDGETED_BYTES, MAX_ACK_SEQS, MAX_SEND_BYTES_IN_FLIGHT, MAX_SENDS_IN_FLIGHT, type TokenBucket } from "./limits.js";
import type { DeviceRates } from "./rate-buckets.js";
import type { LobbyAudience } from "./lobby-audience.js";
import { MlsDeliveryService } from "./mls-ds.js";
import { mlsMessageId, type MlsSendContext } from "./mls-send.js";
import type { RoomListing } from "./room-listing.js";
import type { SendsInFlight } from "./resends.js";
import { SendAnswers } from "./send-answers.js";
import { SessionRequests } from "./session-requests.js";
import type { RoutedSession } from "./router.js";
import type { FrameStream } from "./stream.js";
import type { QueueUsage } from "./store.js";

export type { StreamAdmission } from "./handshake.js";

export interface SessionDeps extends HandshakeDeps {
  readonly committer: GroupCommitter;
  /** First copies of (sender, message id) being admitted, relay-wide (resends share their answer). */
  readonly resends: SendsInFlight;
  readonly deliveryWindow: number;
  /** Who lobby envelopes are stored for (§9). */
  readonly lobby: LobbyAudience;
  /** The token buckets of each device, kept across its sessions (PROTOCOL.md §13.2; rate-buckets.ts). */
  readonly rates: DeviceRates;
  /** How long an answer may wait unsent before the session ends as a slow consumer (default ANSWER_STALL_MS). */
  readonly answerStallMs?: number;
  /** ListRooms' relay-wide kept listing (room-listing.ts). */
  readonly roomListing?: RoomListing;
}

/** Serves one stream from its first frame to its end. Never throws. */
export async function serveSession(stream: FrameStream, deps: SessionDeps, admission: StreamAdmission): Promise<void> {
  const { logger } = deps;
  const openedAt = performance.now();
  const frames = stream[Symbol.asyncIterator]();
  let session: AuthenticatedSession | undefined;
  let claimed: string | undefined;
  let reason = "client-closed";
  try {
    session = await authenticate(stream, frames, deps, admission, (name) => {
      claimed = name;
    }, (s, user, protocolVersion, address) => new AuthenticatedSession(s, user, deps, protocolVersion, address));
    await session.serve(frames);
    if (session.wasReplaced) reason = "replaced";
    else if (session.wasUnlinked) reason = "unlinked";
    else if (stream.signal.aborted) reason = String((stream.signal.reason as Error | undefined)?.message ?? "closed");
    stream.end(statusFor(GrpcStatus.OK, "OK"));
  } catch (e) {
    reason = e instanceof StreamOver ? (stream.signal.reason as Error | undefined)?.message ?? "closed" : logReasonOf(e);
    if (!(e instanceof SessionEnd) && !(e instanceof StreamOver)) {
      // A relay bug: log it (no stack to the client), end the stream with INTERNAL.
      logger.error("session.failed", { user: session?.username ?? claimed, error: e instanceof Error ? e.message : String(e) });
    }
    if (session === undefined) logger.info("handshake.refused", { peer: stream.peer, user: claimed, reason });
    stream.end(statusOf(e));
  } finally {
    admission.ticket.leave();
    if (session !== undefined) {
      deps.router.detach(session);
      // §13.2: the device's buckets outlive the session; forgotten here only once full and unused.
      deps.rates.closed(session.address, deps.clock());
      // The lobby's audience is per device (PROTOCOL.md §13, §4.5).
      if (!deps.router.isAddressOnline(session.address)) deps.lobby.wentOffline(session.address);
      try {
        if (!session.wasUnlinked) deps.store.devices.noteSeen(session.username, deps.devices.deviceIdOf(session.address), deps.clock());
      } catch (e) {
        // Last seen is a courtesy: a database that cannot take it (a shared one gone away) must not fail the session's end.
        logger.warn("session.last_seen_failed", { user: session.username, error: e instanceof Error ? e.message : String(e) });
      }
      logger.info("session.close", { user: session.username, durationMs: Math.round(performance.now() - openedAt), reason });
    }
  }
}

class AuthenticatedSession implements RoutedSession {
  readonly pump: DeliveryPump;
  /** The device's sending bucket (§13.2): per queue address, continued across its sessions. */
  private readonly bucket: TokenBucket;
  wasReplaced = false;
  wasUnlinked = false;
  /** SendResults in frame order (send-answers.ts). */
  private readonly answers: SendAnswers;
  /** What SendMls's checks ask of this session (mls-ds.ts admitMls); made once, not per send. */
  private readonly sendContext: MlsSendContext;
  /** The MLS Delivery Service requests (mls-ds.ts). */
  private readonly mlsDs: MlsDeliveryService;
  /** What one request frame may hold before it is decoded (frame-scan.ts, PROTOCOL.md §13.3). */
  private readonly scanBounds: FrameScanBounds;
  /** The requests other than sends and acks, each answered in turn (session-requests.ts). */
  private readonly requests: SessionRequests;

  /**
   * @param protocolVersion the Hello's: 2 speaks MLS (SendMls); 1 (only where a relay is told to
   *   accept it) may send neither. SendEnvelope is refused on every session. Queued v1
   *   envelopes (from before the cut-over) are still delivered to a v2 session:
   *   its client drops them (it cannot open them; PROTOCOL.md §14), and acks them.
   */
  /**
   * @param address this device's queue address (devices.ts: the bare username for the primary,
   *   `username/device_id` for a linked device): its queue, its KeyPackages, its place in the router.
   */
  constructor(readonly stream: FrameStream, readonly user: DirectoryUser, private readonly deps: SessionDeps, readonly protocolVersion = 1, readonly address: string = user.username) {
    const { limits } = deps;
    this.scanBounds = frameScanBoundsFor(limits);
    this.mlsDs = new MlsDeliveryService({
      store: deps.store, limits, clock: deps.clock, logger: deps.logger, devices: deps.devices, address,
      inLobby: (a) => deps.lobby.includes(a),
      delivered: (rows) => deps.router.delivered(rows),
      queueUsage: (a) => this.queueUsage(a),
      ...(deps.roomListing === undefined ? {} : { roomListing: deps.roomListing }),
    });
    this.answers = new SendAnswers((value) => stream.send(encodeSendResult(value)), (e) => {
      deps.logger.error("send.answer_failed", { user: this.username, reason: logReasonOf(e), error: e instanceof Error ? e.message : String(e) });
    });
    this.sendContext = {
      isOnline: (u) => deps.router.isOnline(u),
      // In memory only: the store's `accepted` was read by sendMls in this same synchronous
      // turn (no I/O can come between), and the commit checks it again in its transaction.
      isResend: (id) => deps.committer.whenCommitted(user.username, id) !== undefined,
      queueUsage: (u) => this.queueUsage(u),
    };
    // PROTOCOL.md §13.2: a reconnect continues the device's buckets; it never gets a fresh burst.
    const buckets = deps.rates.open(address, deps.clock());
    this.bucket = buckets.send;
    this.requests = new SessionRequests(deps, user, protocolVersion, buckets.send, buckets.lookup, this.mlsDs, (frame) => this.reply(frame));
    this.pump = new DeliveryPump({
      username: address, store: deps.store, stream, logger: deps.logger, window: deps.deliveryWindow,
      // Keep a batch within what a client must accept anyway: one maximal frame.
      maxBatchBytes: limits.maxFrameBytes,
      maxOutgoing: limits.maxOutgoing,
      onSlowConsumer: (why) => stream.end(statusOf(sessionEnd.slowConsumer(why))),
    });
  }

  get username(): string {
    return this.user.username;
  }

  replaced(): void {
    this.wasReplaced = true;
    this.endWith(sessionEnd.replaced());
  }

  unlinked(): void {
    this.wasUnlinked = true;
    this.endWith(sessionEnd.unlinked(this.username));
  }

  released(): void {
    this.endWith(sessionEnd.released(this.username));
  }

  private endWith(err: SessionEnd): void {
    void this.stream.send(encodeResponse({ $case: "error", value: { requestId: 0, code: err.code, detail: err.message } }));
    this.stream.end(statusOf(err));
  }

  async serve(frames: FrameIterator): Promise<void> {
    for (;;) {
      const r = await frames.next();
      if (r.done === true) break;
      const frame = decodeSessionRequest(r.value, this.scanBounds);
      if (frame instanceof RefusedRequest) {
        // Counted on the wire over a limit (frame-scan.ts): refused by the request's own handler,
        // after its tokens (§13.2), without decoding it; answered in frame order like any request.
        await this.answers.all();
        await this.requests.handle(frame.frame, frame);
      } else if (frame.$case === "send" || frame.$case === "sendMls") {
        // SendMls is answered by a SendResult too, in the same pipeline (PROTOCOL.md §8.3).
        const answer = frame.$case === "send" ? this.send(frame.value, r.value.length) : this.sendMls(frame.value, r.value.length);
        this.answers.add(answer, r.value.length);
        if (this.answers.count >= MAX_SENDS_IN_FLIGHT || this.answers.bytes >= MAX_SEND_BYTES_IN_FLIGHT) await this.answers.all();
      } else if (frame.$case === "ack") {
        // An ack has no answer to keep in order: taken at once, it does not stall the pipeline
        // of sends (a client that sends and receives acks between its sends all the time).
        this.ack(frame.value);
      } else {
        // Answered after the sends before it: e.g. a Pong follows their SendResults.
        await this.answers.all();
        await this.requests.handle(frame);
      }
    }
    await this.answers.all();
  }

  /**
   * Writes one answer and waits until it was sent (PROTOCOL.md §13.3): the session reads its next
   * request only then, so a client that stops reading holds one answer in the relay, never a pile
   * of them (grpc-js's buffer would take 16 frames: 16 MiB). An answer bigger than
   * ANSWER_UNBUDGETED_BYTES first takes its bytes from the relay-wide write budget, like a
   * delivery. An answer still unsent after the answer stall time ends the session as a slow
   * consumer (its queue is untouched: nothing is lost).
   */
  private async reply(frame: ResponseFrame): Promise<void> {
    const bytes = encodeResponse(frame);
    const stallMs = this.deps.answerStallMs ?? ANSWER_STALL_MS;
    const stalled = setTimeout(() => {
      if (this.stream.closed) return;
      this.deps.logger.warn("answer.slow_consumer", { user: this.username, bytes: bytes.byteLength, stallMs });
      this.stream.end(statusOf(sessionEnd.slowConsumer(`an answer of ${bytes.byteLength} bytes waited unread for more than ${Math.round(stallMs / 1000)} seconds`)));
    }, stallMs);
    stalled.unref();
    try {
      await this.stream.sendFlushed(bytes, bytes.byteLength > ANSWER_UNBUDGETED_BYTES);
    } finally {
      clearTimeout(stalled);
    }
  }

  /** A recipient's queue usage (all, and this session's user's share): stored plus waiting for the group commit. */
  private queueUsage(recipient: string): QueueUsage {
    const me = this.username;
    const stored = this.deps.store.queueUsage(recipient, me);
    const pending = this.deps.committer.pendingUsage(recipient, me);
    return {
      count: stored.count + pending.count, bytes: stored.bytes + pending.bytes,
      senderCount: stored.senderCount + pending.senderCount, senderBytes: stored.senderBytes + pending.senderBytes,
    };
  }

  /**
   * SendEnvelope: protocol v1's send, refused on every session since the cut-over to v2 (issue
   * 12; PROTOCOL.md §14): a v1 client is told to upgrade at its Hello, so no session sends
   * envelopes any more. Answered by a SendResult with BAD_FRAME and one sentence; nothing is
   * stored. (Envelopes queued before the cut-over are still delivered and acked.)
   */
  private send(req: SendEnvelope, frameBytes: number): Promise<SendResult> {
    const h = req.envelope?.header;
    const messageId = h !== undefined && h.messageId.length <= 64 ? h.messageId : Buffer.alloc(0);
    this.deps.logger.info("send.refused", { user: this.username, code: "BAD_FRAME", detail: "v1 envelope", frameBytes });
    return Promise.resolve({ messageId, status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_BAD_FRAME, queuedFor: [],
      detail: "this session speaks protocol v2: send MLS messages with SendMls; SendEnvelope is protocol v1" });
  }

  /**
   * SendMls (PROTOCOL.md §8.3): a v2 session only. Its id is SHA-256(mls)[0..16]; a resend of
   * bytes this user got accepted (stored, or still being admitted) is answered as the first copy,
   * before any limit, like a v1 resend. Anything else is a new send (sendMlsNew).
   */
  private sendMls(req: SendMls, frameBytes: number): Promise<SendResult> {
    const { deps } = this;
    const me = this.username;
    const messageId = mlsMessageId(req.mls);
    if (this.protocolVersion !== 2) {
      deps.logger.info("send.refused", { user: me, code: "BAD_FRAME", detail: "SendMls on a v1 session", frameBytes });
      return Promise.resolve({ messageId, status: SendStatus.SEND_STATUS_REFUSED, code: ErrorCode.ERROR_CODE_BAD_FRAME, queuedFor: [],
        detail: "this session speaks protocol v1: SendMls needs a session that says protocol_version 2 in its Hello" });
    }
    const first = deps.resends.lookup(me, messageId);
    if (first !== undefined) {
      deps.logger.debug("send.duplicate", { user: me, frameBytes, first: "in-flight", mls: true });
      return first.then((r) => ({ ...r, messageId }));
    }
    let stored: boolean;
    try {
      stored = deps.store.wasAccepted(me, messageId);
    } catch (thrown) {
      // A storage failure refuses this send (§13.2); the session goes on.
      const e = requestRefusalOf(thrown);
      deps.logger.info("send.refused", { user: me, code: logReasonOf(e), detail: e.message, frameBytes, mls: true });
      return Promise.resolve({ messageId, status: SendStatus.SEND_STATUS_REFUSED, code: e.code, detail: e.message, queuedFor: [] });
    }
    if (stored) {
      deps.logger.debug("send.duplicate", { user: me, frameBytes, first: "stored", mls: true });
      return Promise.resolve({ messageId, status: SendStatus.SEND_STATUS_ACCEPTED, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", queuedFor: [] });
    }
    const answer = this.sendMlsNew(req, messageId, frameBytes);
    deps.resends.track(me, messageId, answer);
    return answer;
  }

  /**
   * A new SendMls: the rate (the sending bucket, as SendEnvelope), then the checks in frame order
   * (mls-ds.ts admitMls), then the group commit: answered ACCEPTED only once stored for every
   * recipient, with queued_for = the recipients offline now.
   */
  private async sendMlsNew(req: SendMls, messageId: Buffer, frameBytes: number): Promise<SendResult> {
    const { deps } = this;
    const me = this.username;
    try {
      if (!this.bucket.take(deps.clock())) {
        throw new Refusal(ErrorCode.ERROR_CODE_RATE_LIMITED,
          `sending too fast: this relay accepts ${deps.limits.messagesPerSecond} messages per second (bursts of ${deps.limits.burst}); wait a moment and send again`);
      }
      // Checked and handed to the group commit now, before this returns: frames are taken one
      // at a time, so the queues get the sends in frame order.
      const admission = this.mlsDs.admitMls(this.user, req.mls, this.sendContext, messageId);
      const committing = admission.kind === "accept" ? deps.committer.submit(admission.request) : deps.committer.whenCommitted(me, messageId);
      const committed = committing === undefined ? undefined : await committing;
      if (committed !== undefined && !committed.ok) throw committed.refusal;
      if (admission.kind === "duplicate" || committed?.ok === true && committed.duplicate) {
        deps.logger.debug("send.duplicate", { user: me, frameBytes, mls: true });
        return acceptedResult(messageId, []);
      }
      // One line per message at debug only: at info the log would be a record of who sent when,
      // to which group, metadata the relay need not keep (and a JSON line per message).
      deps.logger.debug("send.accepted", { user: me, mls: admission.contentType, stored: admission.request.recipients.length, queued: admission.queuedFor.length, frameBytes });
      return acceptedResult(messageId, admission.queuedFor);
    } catch (thrown) {
      const e = requestRefusalOf(thrown);
      deps.logger.info("send.refused", { user: me, code: logReasonOf(e), detail: e.message, frameBytes, mls: true });
      return { messageId, status: SendStatus.SEND_STATUS_REFUSED, code: e.code, detail: e.message, queuedFor: [] };
    }
  }

  /** Ack: deletes this user's rows (never anyone else's) and opens the delivery window. */
  private ack(req: Ack): void {
    if (req.seqs.length > MAX_ACK_SEQS) throw sessionEnd.tooManyAcks(req.seqs.length, MAX_ACK_SEQS);
    // The rows go with the next group commit (no fsync of their own): a lost ack only means a
    // redelivery, which clients drop by message id. The window opens at once.
    // This device's queue only (PROTOCOL.md §4.5).
    this.deps.committer.ack(this.address, req.seqs);
    this.deps.logger.debug("ack", { user: this.address, seqs: req.seqs.length });
    this.pump.acked(req.seqs);
  }
}

function acceptedResult(messageId: Buffer, queuedFor: string[]): SendResult {
  return { messageId, status: SendStatus.SEND_STATUS_ACCEPTED, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", queuedFor };
}
