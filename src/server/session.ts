// One client stream, as a state machine: handshake (Hello -> Challenge -> Proof), binding,
// Welcome, then requests until the stream ends. PROTOCOL.md §8 is the contract.
//
// Frames are handled one at a time, in order; each handler awaits its own reply's write, so a
// client that stops reading also stops being read (no unbounded buffering either way). The one
// exception is a run of SendEnvelopes: each is checked at once, in order, and handed to the
// group commit, and the next frames are read while it waits for its transaction; the answers
// still go out in frame order, and any other frame waits for the answers before it. A client
// that sends a burst (an outbox after a reconnect) thus gets one commit for the burst, not one
// per envelope. Acks have no answer, so they are taken at once and never wait for the sends.
// MAX_SENDS_IN_FLIGHT bounds what one session holds while commits are pending.
import { randomBytes, type KeyObject } from "node:crypto";
import { status as GrpcStatus } from "@grpc/grpc-js";
import {
  ErrorCode, SendStatus, type Ack, type Hello, type LookupKeys, type SendEnvelope, type SendResult, type Welcome,
} from "../gen/securechat/v1/chat.js";
import { verifyEnvelopeSignatureAsync } from "../protocol/envelope.js";
import {
  fingerprint, importPublicIdentity, importSigningKey, NONCE_BYTES, verifyProof, type PublicIdentity,
} from "../protocol/keys.js";
import type { Logger } from "../protocol/log.js";
import { checkUsername } from "../protocol/names.js";
import { completeAdmission, precheckEnvelope } from "./admission.js";
import { DeliveryPump } from "./delivery.js";
import { ownCopy, type Directory, type DirectoryUser } from "./directory.js";
import type { GroupCommitter } from "./group-commit.js";
import type { HandshakeTicket } from "./handshake-budget.js";
import {
  handshakeEndOf, logReasonOf, Refusal, SessionEnd, sessionEnd, statusFor, statusOf,
} from "./errors.js";
import { decodeRequest, encodeResponse, type RequestFrame, type ResponseFrame } from "./frames.js";
import {
  limitsToWire, MAX_ACK_SEQS, MAX_SEND_BYTES_IN_FLIGHT, MAX_SENDS_IN_FLIGHT, PRE_AUTH_MAX_FRAME_BYTES, TokenBucket, type RelayLimits,
} from "./limits.js";
import type { LobbyAudience } from "./lobby-audience.js";
import type { RegistrationLimiter } from "./registrations.js";
import type { SendsInFlight } from "./resends.js";
import type { Rooms } from "./rooms.js";
import type { RoutedSession, Router } from "./router.js";
import type { RelayStore } from "./store.js";
import type { FrameStream } from "./stream.js";

export interface SessionDeps {
  readonly store: RelayStore;
  readonly directory: Directory;
  readonly router: Router;
  readonly rooms: Rooms;
  readonly committer: GroupCommitter;
  /** First copies of (sender, message id) being admitted, relay-wide (resends share their answer). */
  readonly resends: SendsInFlight;
  readonly limits: RelayLimits;
  readonly logger: Logger;
  readonly clock: () => number;
  readonly relayVersion: string;
  readonly handshakeTimeoutMs: number;
  readonly deliveryWindow: number;
  /** New usernames per source address and time (§8). */
  readonly registrations: RegistrationLimiter;
  /** Who lobby envelopes are stored for (§9). */
  readonly lobby: LobbyAudience;
  /**
   * What the client's proof must bind (PROTOCOL.md §8): SHA-256 of this relay's TLS certificate,
   * or empty when the relay serves plaintext.
   */
  readonly channelBinding: Uint8Array;
}

type FrameIterator = AsyncIterator<Buffer>;

/** The stream ended (client gone, or the relay ended it) while we waited for a frame. */
class StreamOver extends Error {
  constructor() {
    super("stream over");
    this.name = "StreamOver";
  }
}

/**
 * A handshake frame: the stream being over (or half-closed by the client) ends the handshake.
 * Frames before the proof are small (§8); grpc-js already refuses a bigger one at its length
 * prefix (stream.ts), this check stands should that ever not be in force.
 */
async function handshakeFrame(stream: FrameStream, frames: FrameIterator): Promise<RequestFrame> {
  const r = await frames.next();
  if (r.done !== true) {
    if (r.value.length > PRE_AUTH_MAX_FRAME_BYTES) throw sessionEnd.preAuthFrameTooLarge(r.value.length, PRE_AUTH_MAX_FRAME_BYTES);
    return decodeRequest(r.value);
  }
  if (stream.closed) throw new StreamOver();
  throw sessionEnd.outOfOrder("the client closed its side of the stream before the handshake completed");
}

/** Where a stream comes from, and its place in the handshake budget (handshake-budget.ts). */
export interface StreamAdmission {
  /** The source address (IPv4, or an IPv6 /64), as the budgets count it. */
  readonly source: string;
  /** Given back as soon as the handshake is over, whatever its outcome. */
  readonly ticket: HandshakeTicket;
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
    });
    await session.serve(frames);
    if (session.wasReplaced) reason = "replaced";
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
      if (!deps.router.isOnline(session.username)) deps.lobby.wentOffline(session.username);
      logger.info("session.close", { user: session.username, durationMs: Math.round(performance.now() - openedAt), reason });
    }
  }
}

/**
 * The handshake and the binding, in a frame of their own: what the Hello carried is garbage
 * once this returns, instead of living in serveSession's frame for the whole session.
 */
async function authenticate(
  stream: FrameStream, frames: FrameIterator, deps: SessionDeps, admission: StreamAdmission, onClaim: (name: string) => void,
): Promise<AuthenticatedSession> {
  const claim = await handshake(stream, frames, deps, onClaim);
  // Proven: the stream leaves the handshake budget and may send full-size frames.
  admission.ticket.leave();
  stream.authenticated();
  return establish(stream, claim, deps, admission.source);
}

/**
 * What the relay keeps of a Hello until the Proof: the parsed fields it needs, each copied into
 * an allocation of its own (a decoded field is a view into the frame and would keep the whole
 * frame, or the 64 KiB pool slab it was cut from, alive for the handshake).
 */
interface Claim {
  readonly username: string;
  readonly sigSpki: Buffer;
  readonly encSpki: Buffer;
  readonly encKeySig: Buffer;
  /** The Ed25519 key: needed to check the proof, and cheap to parse (unlike the RSA key). */
  readonly sigKey: KeyObject;
}

/** The Hello's cheap checks (§8 step 4): version, username policy, the signing key's type. */
function claimOf(hello: Hello, onClaim: (name: string) => void): Claim {
  onClaim(hello.username.slice(0, 64));
  if (hello.protocolVersion !== 1) throw sessionEnd.badProtocolVersion(hello.protocolVersion);
  const name = checkUsername(hello.username);
  if (!name.ok) throw sessionEnd.usernameInvalid(name.reason);
  let sigKey: KeyObject;
  try {
    sigKey = importSigningKey(hello.sigSpki);
  } catch (e) {
    throw handshakeEndOf(e);
  }
  return {
    username: hello.username, sigSpki: ownCopy(hello.sigSpki), encSpki: ownCopy(hello.encSpki), encKeySig: ownCopy(hello.encKeySig), sigKey,
  };
}

/**
 * Hello -> Challenge -> Proof. Before the proof the relay does only cheap work: frame size and
 * order, username policy, parsing the 32-byte Ed25519 key, one signature check. The RSA key,
 * the key binding and any durable write wait until the peer has proven its signing key
 * (establish). The timer ends the stream after handshakeTimeoutMs.
 */
async function handshake(
  stream: FrameStream, frames: FrameIterator, deps: SessionDeps, onClaim: (name: string) => void,
): Promise<Claim> {
  const timeout = sessionEnd.handshakeTimeout(deps.handshakeTimeoutMs);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    stream.end(statusOf(timeout));
  }, deps.handshakeTimeoutMs);
  try {
    const first = await handshakeFrame(stream, frames);
    if (first.$case !== "hello") throw sessionEnd.outOfOrder("the first frame of a session must be Hello");
    const claim = claimOf(first.value, onClaim);

    const nonce = randomBytes(NONCE_BYTES);
    await stream.send(encodeResponse({ $case: "challenge", value: { relayId: deps.store.relayId, nonce } }));

    const second = await handshakeFrame(stream, frames);
    if (second.$case !== "proof") throw sessionEnd.outOfOrder("the second frame of a session must be Proof");
    if (!verifyProof(claim, deps.store.relayId, nonce, deps.channelBinding, second.value.signature)) {
      // Also what a client sees behind a TLS-terminating man in the middle: it signed the
      // certificate it was shown, which is not this relay's.
      throw sessionEnd.proofInvalid("the proof of possession does not verify for this relay's challenge and certificate");
    }
    return claim;
  } catch (e) {
    // The timer ended the stream under a pending read: report the timeout, not "stream over".
    throw timedOut && e instanceof StreamOver ? timeout : e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * After a valid proof: the session cap, then the binding (bindName), announce a new binding to
 * everyone online before this user can send, register the session (replacing an older one),
 * Welcome, then start deliveries.
 */
function establish(stream: FrameStream, claim: Claim, deps: SessionDeps, source: string): AuthenticatedSession {
  const { router, limits } = deps;
  if (stream.closed) throw new StreamOver(); // e.g. the handshake timer fired during the proof check
  // A user replacing their own session takes no new slot.
  if (!router.isOnline(claim.username) && router.onlineCount >= limits.maxSessions) throw sessionEnd.relayFull();
  const user = bindName(claim, deps, source);

  const session = new AuthenticatedSession(stream, user, deps);
  router.attach(session);
  deps.logger.info("session.open", { user: user.username, peer: stream.peer, online: router.onlineCount });
  void stream.send(encodeResponse({ $case: "welcome", value: welcomeFor(user, deps) }));
  session.pump.start();
  return session;
}

/**
 * The binding of the username (§8 step 4), cheapest refusals first: a returning user's keys are
 * compared with the bound ones (checked when they were bound: no RSA work again); a name owned
 * by another key is refused; a new name is refused when this key already owns its share of
 * names, or this source registered too many lately; only then are the RSA key and the key
 * binding checked, and the name bound durably (first key wins). All synchronous: no other
 * handshake can bind between the checks and the write.
 */
function bindName(claim: Claim, deps: SessionDeps, source: string): DirectoryUser {
  const { store, directory, router, limits } = deps;
  const existing = store.getUser(claim.username);
  if (existing !== undefined) {
    if (!existing.sigSpki.equals(claim.sigSpki) || !existing.encSpki.equals(claim.encSpki)) throw sessionEnd.usernameTaken(claim.username);
    return directory.put(existing, claim.sigKey);
  }
  const owned = store.namesOfKey(fingerprint(claim.sigSpki));
  if (owned.length >= limits.maxNamesPerKey) throw sessionEnd.keyNameLimit(owned, limits.maxNamesPerKey);
  const registration = deps.registrations.take(source, deps.clock());
  if (!registration.ok) throw sessionEnd.registrationLimited(registration.retryAfterMs);
  let identity: PublicIdentity;
  try {
    identity = importPublicIdentity(claim);
  } catch (e) {
    throw handshakeEndOf(e);
  }
  const outcome = store.bindUser({
    username: identity.username, sigSpki: identity.sigSpki, encSpki: identity.encSpki,
    encKeySig: identity.encKeySig, sigFpr: identity.sigFpr, encFpr: identity.encFpr,
  });
  if (outcome.kind === "taken") throw sessionEnd.usernameTaken(identity.username);
  const user = directory.put(outcome.user, identity.sigKey);
  if (outcome.kind === "bound") {
    deps.logger.info("user.bound", { user: user.username, source });
    router.announceBinding(user, true);
  }
  return user;
}

/**
 * Welcome lists light entries (no keys) for everyone online and every member of my rooms:
 * O(online) small entries, where full keys for every bound user made a connect storm O(N^2)
 * in bytes. Clients fetch keys with LookupKeys when they need them.
 */
function welcomeFor(user: DirectoryUser, deps: SessionDeps): Welcome {
  const { directory, router, store, limits } = deps;
  const rooms = deps.rooms.infoFor(user.username);
  const names = new Set<string>(router.onlineNames());
  names.add(user.username);
  for (const r of rooms) for (const m of r.members) names.add(m);
  return {
    username: user.username,
    directory: [...names].flatMap((n) => {
      const u = directory.get(n);
      return u === undefined ? [] : [u.toLightWire(router.isOnline(n))];
    }),
    rooms,
    queued: store.queueDepth(user.username),
    limits: limitsToWire(limits),
    serverTimeMs: deps.clock(),
    relayVersion: deps.relayVersion,
  };
}

class AuthenticatedSession implements RoutedSession {
  readonly pump: DeliveryPump;
  private readonly bucket: TokenBucket;
  /** Key lookups have their own bucket: fetching keys must not eat into the sending allowance. */
  private readonly lookupBucket: TokenBucket;
  wasReplaced = false;
  /** SendResults in frame order; rejected only by a relay bug, which ends the session. */
  private answers: Promise<void> = Promise.resolve();
  private sendsInFlight = 0;
  /** The in-order second half of admissions (after each signature check). */
  private admissions: Promise<void> = Promise.resolve();
  private sendBytesInFlight = 0;

  constructor(readonly stream: FrameStream, readonly user: DirectoryUser, private readonly deps: SessionDeps) {
    const { limits } = deps;
    this.bucket = new TokenBucket(limits.messagesPerSecond, limits.burst, deps.clock());
    this.lookupBucket = new TokenBucket(limits.messagesPerSecond, limits.burst, deps.clock());
    this.pump = new DeliveryPump({
      username: user.username, store: deps.store, stream, logger: deps.logger, window: deps.deliveryWindow,
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
    const err = sessionEnd.replaced();
    void this.stream.send(encodeResponse({ $case: "error", value: { requestId: 0, code: err.code, detail: err.message } }));
    this.stream.end(statusOf(err));
  }

  async serve(frames: FrameIterator): Promise<void> {
    for (;;) {
      const r = await frames.next();
      if (r.done === true) break;
      const frame = decodeRequest(r.value);
      if (frame.$case === "send") {
        this.answerInOrder(this.send(frame.value, r.value.length), r.value.length);
        if (this.sendsInFlight >= MAX_SENDS_IN_FLIGHT || this.sendBytesInFlight >= MAX_SEND_BYTES_IN_FLIGHT) await this.answers;
      } else if (frame.$case === "ack") {
        // An ack has no answer to keep in order: taken at once, it does not stall the pipeline
        // of sends (a client that sends and receives acks between its sends all the time).
        this.ack(frame.value);
      } else {
        // Answered after the sends before it: e.g. a Pong follows their SendResults.
        await this.answers;
        await this.handle(frame);
      }
    }
    await this.answers;
  }

  private answerInOrder(result: Promise<SendResult>, frameBytes: number): void {
    this.sendsInFlight++;
    this.sendBytesInFlight += frameBytes;
    const answered = this.answers.then(async () => {
      const value = await result;
      this.sendsInFlight--;
      this.sendBytesInFlight -= frameBytes;
      await this.reply({ $case: "sendResult", value });
    });
    // Whoever awaits `answers` next sees a failure; this only keeps it from counting as unhandled.
    answered.catch(() => {});
    this.answers = answered;
  }

  private async reply(frame: ResponseFrame): Promise<void> {
    await this.stream.send(encodeResponse(frame));
  }

  private async handle(frame: Exclude<RequestFrame, { $case: "send" | "ack" }>): Promise<void> {
    switch (frame.$case) {
      case "hello":
      case "proof":
        throw sessionEnd.outOfOrder(`${frame.$case === "hello" ? "Hello" : "Proof"} is only valid at the start of a session`);
      case "ping":
        return this.reply({ $case: "pong", value: { nonce: frame.value.nonce, serverTimeMs: this.deps.clock() } });
      case "joinRoom":
      case "leaveRoom":
      case "listRooms":
      case "listMembers":
        return this.roomRequest(frame);
      case "lookupKeys":
        return this.lookupKeys(frame.value);
      default: {
        const unreachable: never = frame;
        throw new Error(`unhandled frame ${String(unreachable)}`);
      }
    }
  }

  /**
   * LookupKeys: the full entries of the names asked for that are bound (others are left out).
   * Rate-limited by a bucket of its own (as fast as sends), so it cannot be used to make the
   * relay write keys without bound.
   */
  private async lookupKeys(req: LookupKeys): Promise<void> {
    const { deps } = this;
    const fail = (code: ErrorCode, detail: string) => this.reply({ $case: "error", value: { requestId: req.requestId, code, detail } });
    if (!this.lookupBucket.take(deps.clock())) {
      return fail(ErrorCode.ERROR_CODE_RATE_LIMITED, `looking up keys too fast: this relay allows ${deps.limits.messagesPerSecond} requests per second; wait a moment`);
    }
    if (req.usernames.length > deps.limits.maxRecipients) {
      return fail(ErrorCode.ERROR_CODE_BAD_FRAME, `a key lookup may name at most ${deps.limits.maxRecipients} users, not ${req.usernames.length}`);
    }
    const entries = [...new Set(req.usernames)].flatMap((n) => {
      const u = deps.directory.get(n);
      return u === undefined ? [] : [u.toWire(deps.router.isOnline(n))];
    });
    deps.logger.debug("keys.lookup", { user: this.username, asked: req.usernames.length, found: entries.length });
    await this.reply({ $case: "keyList", value: { requestId: req.requestId, entries } });
  }

  /**
   * SendEnvelope. A resend of an id this user got accepted (stored, or still being admitted by
   * this or an older session) is answered as the first copy, before any limit (PROTOCOL.md §7.4):
   * a limit must never make the sender show as failed a message its recipients have. Anything
   * else is a new send (sendNew).
   */
  private send(req: SendEnvelope, frameBytes: number): Promise<SendResult> {
    const { deps } = this;
    const me = this.username;
    const h = req.envelope?.header;
    if (h === undefined || h.sender !== me) return this.sendNew(req, frameBytes);
    const first = deps.resends.lookup(me, h.messageId);
    if (first !== undefined) {
      deps.logger.info("send.duplicate", { user: me, frameBytes, first: "in-flight" });
      return first.then((r) => ({ ...r, messageId: h.messageId }));
    }
    if (h.messageId.length > 0 && h.messageId.length <= 64 && deps.store.wasAccepted(me, Buffer.from(h.messageId))) {
      deps.logger.info("send.duplicate", { user: me, frameBytes, first: "stored" });
      return Promise.resolve({ messageId: h.messageId, status: SendStatus.SEND_STATUS_ACCEPTED, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", queuedFor: [] });
    }
    const answer = this.sendNew(req, frameBytes);
    deps.resends.track(me, h.messageId, answer);
    return answer;
  }

  /**
   * A new SendEnvelope: the rate, §9's checks (synchronously, in frame order), then the group
   * commit. Resolves with the answer once the envelope is stored for every recipient, or refused.
   */
  private async sendNew(req: SendEnvelope, frameBytes: number): Promise<SendResult> {
    const { deps } = this;
    const me = this.username;
    const rawId = req.envelope?.header?.messageId;
    const messageId = rawId !== undefined && rawId.length <= 64 ? rawId : Buffer.alloc(0);
    try {
      // The token is taken before any check, so refused envelopes count too: otherwise a flood
      // of invalid envelopes would cost the relay a signature verification each, unlimited.
      if (!this.bucket.take(deps.clock())) {
        throw new Refusal(ErrorCode.ERROR_CODE_RATE_LIMITED,
          `sending too fast: this relay accepts ${deps.limits.messagesPerSecond} messages per second (bursts of ${deps.limits.burst}); wait a moment and send again`);
      }
      const pre = precheckEnvelope(req.envelope, { user: this.user, limits: deps.limits });
      // The signature is checked on the thread pool (it was a third of the relay's time on the
      // event loop), overlapping with later frames. What follows runs in frame order, so the
      // group commit, and so each recipient's queue, sees this session's envelopes as sent.
      const verified = verifyEnvelopeSignatureAsync(pre.envelope, this.user.sigKey);
      deps.committer.admissionStarted();
      const turn = this.admissions.then(async () => {
        if (!(await verified)) throw new Refusal(ErrorCode.ERROR_CODE_BAD_ENVELOPE, "the envelope's signature does not verify");
        const admission = completeAdmission(pre, {
          user: this.user, directory: deps.directory, store: deps.store, limits: deps.limits,
          isOnline: (u) => deps.router.isOnline(u),
          inLobby: (u) => deps.lobby.includes(u),
          isResend: (id) => deps.store.wasAccepted(me, id) || deps.committer.whenCommitted(me, id) !== undefined,
          queueUsage: (u) => {
            const stored = deps.store.queueUsage(u, me);
            const pending = deps.committer.pendingUsage(u, me);
            return {
              count: stored.count + pending.count, bytes: stored.bytes + pending.bytes,
              senderCount: stored.senderCount + pending.senderCount, senderBytes: stored.senderBytes + pending.senderBytes,
            };
          },
          nowMs: deps.clock(),
        });
        if (admission.kind === "duplicate") return { admission, committed: undefined };
        const h = admission.envelope.header;
        // Submitted inside the turn (the order); its commit is awaited outside it (the batch).
        const committed = deps.committer.submit({
          sender: me, messageId: h.messageId, conversationId: h.conversationId,
          envelope: admission.bytes, recipients: admission.rows,
        });
        return { admission, committed };
      });
      this.admissions = turn.then(() => {}, () => {});
      void turn.then(() => deps.committer.admissionEnded(), () => deps.committer.admissionEnded());
      const { admission, committed: committing } = await turn;
      if (admission.kind === "duplicate") {
        // A resend of an envelope still waiting for its commit shares that commit's outcome.
        const first = deps.committer.whenCommitted(me, admission.envelope.header.messageId);
        const outcome = first === undefined ? undefined : await first;
        if (outcome !== undefined && !outcome.ok) throw outcome.refusal;
        deps.logger.info("send.duplicate", { user: me, frameBytes });
        return { messageId, status: SendStatus.SEND_STATUS_ACCEPTED, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", queuedFor: [] };
      }
      const h = admission.envelope.header;
      const committed = await committing!;
      if (!committed.ok) throw committed.refusal;
      if (committed.duplicate) {
        deps.logger.info("send.duplicate", { user: me, frameBytes });
        return { messageId, status: SendStatus.SEND_STATUS_ACCEPTED, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", queuedFor: [] };
      }
      deps.logger.info("send.accepted", {
        user: me, conversation: admission.conversation.kind, recipients: h.recipients.length,
        stored: admission.rows.length, queued: admission.queuedFor.length, frameBytes,
      });
      return { messageId, status: SendStatus.SEND_STATUS_ACCEPTED, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: "", queuedFor: [...admission.queuedFor] };
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      deps.logger.info("send.refused", { user: me, code: logReasonOf(e), detail: e.message, frameBytes });
      return { messageId, status: SendStatus.SEND_STATUS_REFUSED, code: e.code, detail: e.message, queuedFor: [] };
    }
  }

  /** Ack: deletes this user's rows (never anyone else's) and opens the delivery window. */
  private ack(req: Ack): void {
    if (req.seqs.length > MAX_ACK_SEQS) throw sessionEnd.tooManyAcks(req.seqs.length, MAX_ACK_SEQS);
    // The rows go with the next group commit (no fsync of their own): a lost ack only means a
    // redelivery, which clients drop by message id. The window opens at once.
    this.deps.committer.ack(this.username, req.seqs);
    this.deps.logger.debug("ack", { user: this.username, seqs: req.seqs.length });
    this.pump.acked(req.seqs);
  }

  private async roomRequest(frame: Extract<RequestFrame, { $case: "joinRoom" | "leaveRoom" | "listRooms" | "listMembers" }>): Promise<void> {
    const { rooms } = this.deps;
    const requestId = frame.value.requestId;
    try {
      if (!this.bucket.take(this.deps.clock())) {
        throw new Refusal(ErrorCode.ERROR_CODE_RATE_LIMITED,
          `too many requests: this relay accepts ${this.deps.limits.messagesPerSecond} per second (bursts of ${this.deps.limits.burst}); wait a moment and try again`);
      }
      switch (frame.$case) {
        case "joinRoom":
          return rooms.join(this.username, frame.value);
        case "leaveRoom":
          return rooms.leave(this.username, frame.value);
        case "listRooms":
          return await this.reply(rooms.list(this.username, frame.value));
        case "listMembers":
          return await this.reply(rooms.members(this.username, frame.value));
      }
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      return this.reply({ $case: "error", value: { requestId, code: e.code, detail: e.message } });
    }
  }
}
