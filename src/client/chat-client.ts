// The chat session over grpc-js: connect, prove, keep the directory and the TOFU pins, seal and
// send through a durable outbox, open what arrives (PROTOCOL.md §7.3), ack, and reconnect with
// backoff. Implements the ChatSession interface the TUI uses; no React here.
import { randomBytes } from "node:crypto";
import {
  Envelope as WireEnvelope, ErrorCode, RoomEventKind, SendStatus,
  type DirectoryEntry, type Delivery, type RoomInfo, type SendResult, type SessionRequest, type SessionResponse,
  type Welcome,
} from "../gen/securechat/v1/chat.js";
import { envelopeFromWire, envelopeToWire } from "../protocol/codec.js";
import {
  chainHasGap, envelopeHash, MESSAGE_ID_BYTES, openEnvelope, sealEnvelope, type MessageBody, type SealRecipient,
  type SenderKeyLookup,
} from "../protocol/envelope.js";
import { isProtocolError } from "../protocol/errors.js";
import { DEFAULT_LIMITS, shapeLimitsOf, type Limits } from "../protocol/limits.js";
import { NONCE_BYTES, RELAY_ID_BYTES, signProof, type PrivateIdentity } from "../protocol/keys.js";
import { KnownRelays } from "./known-relays.js";
import { NotTlsError, prepareChannel, RelayCertificateRefused, type RelayTransport } from "./relay-transport.js";
import { nullLogger, type Logger } from "../protocol/log.js";
import { checkRoomName, isValidUsername, parseConversationId, type Conversation } from "../protocol/names.js";
import { sanitizeLine } from "../protocol/sanitize.js";
import { digitsNameKeys, safetyHalfGroups, safetyNumber, TRUST_GROUPS } from "../protocol/safety-number.js";
import { AtRestCipher } from "./at-rest.js";
import { ReconnectBackoff, sleepUntil } from "./backoff.js";
import { MessageHistory } from "./history.js";
import { KeyDirectory } from "./key-directory.js";
import { describeNotARelay, describeNotARelayByProbe } from "./not-a-relay.js";
import { OutboxPump } from "./outbox-pump.js";
import { SendPacer } from "./pacer.js";
import type { ClientStateStore, OutboxEntry } from "./state-store.js";
import { grpcStatus, isServiceError, openSessionStream, type KeepalivePolicy, type SessionStream } from "./transport.js";
import type { PinnedPeer, TrustStore } from "./trust-store.js";
import {
  dmIdFor, type ChatMessage, type ChatSession, type ConnectionStatus, type MessageKind, type Outcome,
  type RoomListing, type RoomView, type SessionEvent, type SessionSnapshot, type VerifyInfo,
} from "./types.js";

export const CLIENT_VERSION = "secure-chat/0.1.0";
const HANDSHAKE_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 10_000;

/** Largest frame the client accepts from the relay (delivery batches carry several envelopes). */
const MAX_RECEIVE_BYTES = 16 * 1024 * 1024;

export interface ReconnectPolicy {
  /** First delay; doubles per attempt. */
  readonly initialMs: number;
  /** Cap of the delay (PROTOCOL: 30 s). */
  readonly maxMs: number;
}

export const DEFAULT_RECONNECT: ReconnectPolicy = { initialMs: 1_000, maxMs: 30_000 };

export interface ChatClientOptions {
  readonly identity: PrivateIdentity;
  /** host:port of the relay. */
  readonly server: string;
  /** How the status line names the relay (default: `server`). */
  readonly serverLabel?: string;
  readonly trust: TrustStore;
  readonly state: ClientStateStore;
  readonly logger?: Logger;
  readonly clock?: () => number;
  /**
   * How to reach the relay (PROTOCOL.md §8). Default: TLS with the relay's certificate pinned on
   * first use, in memory only; chat-tui passes its known_relays file.
   */
  readonly transport?: RelayTransport;
  /** Keepalive pings (defaults: every 15 s, 10 s to answer); tests shorten them. */
  readonly keepalive?: KeepalivePolicy;
  /** Keep the messages shown in the state database (text encrypted at rest); default true. */
  readonly history?: boolean;
  /** false: do not reconnect (tests of single sessions). */
  readonly reconnect?: ReconnectPolicy | false;
  /** Called before each connection attempt (zero-setup mode hosts a relay when none answers). */
  readonly beforeConnect?: (attempt: number) => Promise<void>;
  readonly random?: () => number;
}

/** After a welcome, the caught-up count is given once deliveries have been quiet this long. */
const CATCH_UP_QUIET_MS = 5_000;

/** A session-ending condition that retrying will not fix. */
class FatalSessionError extends Error {}

/**
 * The relay binds the name to another key (PROTOCOL.md §8 step 4). Not final: after a lost key the
 * relay's operator releases the name, and the client, retrying with backoff, then claims it.
 */
class NameTakenError extends Error {
  constructor(me: string) {
    super(`the name '${me}' is taken on this relay by another key. Lost your key? Ask the relay's operator to run: chat-relay users release ${me} (retrying until then)`);
  }
}

interface PendingRequest {
  readonly resolve: (frame: SessionResponse["frame"]) => void;
  readonly timer: NodeJS.Timeout;
}

/** Backoff with jitter: attempt 1 waits ~initial, doubling, capped, each scaled by 0.5-1.0. */
export function backoffDelay(attempt: number, policy: ReconnectPolicy, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + 0.5 * random()));
}

/** The user-facing sentence for a relay refusal. */
export function describeRefusal(code: ErrorCode, detail: string): string {
  const d = sanitizeLine(detail).slice(0, 300);
  const generic: Partial<Record<ErrorCode, string>> = {
    [ErrorCode.ERROR_CODE_RATE_LIMITED]: "sending too fast; wait a moment and retry",
    [ErrorCode.ERROR_CODE_QUEUE_FULL]: "a recipient's offline queue is full",
    [ErrorCode.ERROR_CODE_TEXT_TOO_LARGE]: "message too large for this relay",
    [ErrorCode.ERROR_CODE_TOO_MANY_RECIPIENTS]: "too many recipients for this relay",
    [ErrorCode.ERROR_CODE_STALE_RECIPIENT_KEY]: "a recipient's key changed on the relay",
    [ErrorCode.ERROR_CODE_UNKNOWN_RECIPIENT]: "unknown recipient",
    [ErrorCode.ERROR_CODE_NOT_A_MEMBER]: "not a member of that room",
    [ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE]: "the relay cannot store messages right now",
  };
  return d.length > 0 ? d : generic[code] ?? "refused by the relay";
}

function blockedByKeyChange(name: string): string {
  return `${name}'s key changed: compare safety numbers with /verify ${name} (it shows the /trust command), or /accept ${name} to continue unverified`;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

function groups(h: string, size = 4): string {
  return h.match(new RegExp(`.{1,${size}}`, "g"))?.join(" ") ?? h;
}

export class ChatClient implements ChatSession {
  readonly me: string;
  readonly serverLabel: string;

  private readonly identity: PrivateIdentity;
  private readonly trustStore: TrustStore;
  private readonly state: ClientStateStore;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly random: () => number;
  private readonly reconnectPolicy: ReconnectPolicy | false;
  private readonly opts: ChatClientOptions;
  private readonly transport: RelayTransport;

  private readonly listeners = new Set<(e: SessionEvent) => void>();
  private connection: ConnectionStatus = { state: "connecting", attempt: 0 };
  private stream: SessionStream | undefined;
  private authenticated = false;
  private closed = false;
  private runPromise: Promise<void> | undefined;
  private wakeRetry: (() => void) | undefined;
  /** Why the previous attempt ended (a repeated "name taken" is not said again). */
  private lastEndReason: string | undefined;
  /** Presence, key tags and key lookups (pinning happens there, in the trust store). */
  private readonly directory: KeyDirectory;
  /** Seals the text kept on disk (outbox, history). */
  private readonly atRest: AtRestCipher;
  /** What the screen shows again at the next start (undefined with history off). */
  private readonly history: MessageHistory | undefined;
  /** Senders whose keys were re-fetched this session because an envelope named an unknown key. */
  private readonly refreshedSenders = new Set<string>();
  /** Delivery batches are opened one at a time, in the order they came. */
  private deliveryChain: Promise<void> = Promise.resolve();
  /** Seals run one at a time, in the order send() was called (each needs the previous chain head). */
  private sendChain: Promise<void> = Promise.resolve();
  private readonly rooms = new Map<string, string[]>();
  private limits: Limits = DEFAULT_LIMITS;
  private nextRequestId = 1;
  private readonly requests = new Map<number, PendingRequest>();
  private readonly pendingJoins = new Map<string, PendingRequest>();
  private readonly pendingLeaves = new Map<string, PendingRequest>();
  private connectedWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /** Refused messages by id, so the user can retry them. */
  private readonly failed = new Map<string, { conversationId: string; text: string; kind: MessageKind }>();
  /** Failed attempts since the last session that reached Welcome, and the wait they earn. */
  private readonly backoff: ReconnectBackoff;
  /** The relay's rate and burst, kept by the client (sends and room requests spend its tokens). */
  private readonly pacer: SendPacer;
  /** Writes the outbox at that pace, in order; "too fast" answers go back into it. */
  private readonly pump: OutboxPump;
  /** Counting the queued deliveries after a welcome, for the "caught-up" event. */
  private catchUp: { remaining: number; shown: number; reconnect: boolean; timer?: NodeJS.Timeout } | undefined;
  private welcomedBefore = false;
  /** /away: the text of the automatic reply, and who has had it since it was set. */
  private away: { text: string; answered: Set<string> } | undefined;

  constructor(o: ChatClientOptions) {
    this.opts = o;
    this.identity = o.identity;
    this.me = o.identity.username;
    this.serverLabel = o.serverLabel ?? o.server;
    this.trustStore = o.trust;
    this.state = o.state;
    this.log = o.logger ?? nullLogger;
    this.clock = o.clock ?? Date.now;
    this.random = o.random ?? Math.random;
    this.reconnectPolicy = o.reconnect ?? DEFAULT_RECONNECT;
    this.transport = o.transport ?? { kind: "pinned", pins: KnownRelays.inMemory() };
    if (this.transport.kind === "plaintext") {
      this.log.warn("session.plaintext", { message: "connecting without TLS (--insecure-plaintext): anyone on the path can read metadata and hijack the session" });
    }
    this.atRest = new AtRestCipher(o.identity);
    const policy = this.reconnectPolicy;
    this.backoff = new ReconnectBackoff((n) => (policy === false ? 0 : backoffDelay(n, policy, this.random)));
    this.pacer = new SendPacer(this.clock);
    this.pacer.reset(this.limits.messagesPerSecond, this.limits.burst); // until a Welcome says
    this.pump = new OutboxPump({ pacer: this.pacer, envelopeOf: (id) => this.state.outboxGet(id)?.envelope, log: this.log });
    this.history = o.history === false ? undefined : new MessageHistory(o.state, this.atRest, this.log);
    this.directory = new KeyDirectory({
      me: o.identity,
      trust: o.trust,
      log: this.log,
      lookup: (usernames) => this.lookupKeys(usernames),
      alive: () => !this.closed && this.connection.state !== "failed",
      connected: () => this.authenticated,
      maxPerLookup: () => this.limits.maxRecipients,
      heldCount: (u) => this.state.heldCount(u),
      discardHeld: (u) => {
        const held = this.state.heldFor(u);
        for (const h of held) this.state.releaseHeld(h.rowId);
        if (held.length > 0) this.log.warn("held.discarded", { from: u, count: held.length });
        return held.length;
      },
      roomsWith: (u) => [...this.rooms].filter(([, members]) => members.includes(u)).map(([room]) => room),
      emit: (e) => this.emit(e),
    });
  }

  // ------------------------------------------------------------------------------------------
  // Lifecycle
  // ------------------------------------------------------------------------------------------

  /** Starts connecting (and reconnecting) in the background. Idempotent. */
  start(): void {
    if (this.runPromise === undefined) this.runPromise = this.run();
  }

  /** Resolves once a session is authenticated; rejects when it fails for good or times out. */
  waitConnected(timeoutMs = 30_000): Promise<void> {
    if (this.connection.state === "connected") return Promise.resolve();
    if (this.connection.state === "failed") return Promise.reject(new Error(this.connection.reason));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.connectedWaiters = this.connectedWaiters.filter((w) => w.resolve !== done);
        reject(new Error("timed out connecting to the relay"));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.connectedWaiters.push({ resolve: done, reject: (e) => { clearTimeout(timer); reject(e); } });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeRetry?.();
    this.stream?.close();
    await this.runPromise?.catch(() => {});
    this.failRequests("the session was closed");
    // Messages sent just before closing are sealed into the outbox (sent at the next start).
    await this.sendChain.catch(() => {});
    this.setConnection({ state: "closed" });
    await this.trustStore.flush();
    // Older history goes at the end of a session, not at the start where it would delay the screen.
    this.history?.trim();
    this.state.close();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const attempt = this.backoff.attempt;
      this.setConnection({ state: "connecting", attempt });
      let reason = "the relay closed the connection";
      try {
        await this.opts.beforeConnect?.(attempt);
        await this.runSession();
      } catch (e) {
        if (e instanceof FatalSessionError) {
          this.log.warn("session.fatal", { reason: e.message });
          // In the conversation too: the status line may be too narrow for the whole sentence.
          this.emit({ type: "notice", level: "error", text: e.message });
          this.setConnection({ state: "failed", reason: e.message });
          return;
        }
        reason = this.describeStreamError(e);
        this.log.info("session.ended", { reason });
        // Said once in the conversation too: the status line has little room for what to do.
        if (e instanceof NameTakenError && this.lastEndReason !== reason) {
          this.emit({ type: "notice", level: "error", text: e.message });
        }
        this.lastEndReason = reason;
      } finally {
        this.stream?.close();
        this.stream = undefined;
        this.authenticated = false;
        this.pump.stop();
        this.failRequests("the connection to the relay was lost");
        clearTimeout(this.catchUp?.timer);
        this.catchUp = undefined;
      }
      if (this.closed) return;
      if (this.reconnectPolicy === false) {
        this.setConnection({ state: "failed", reason });
        return;
      }
      // Counted from the last session that reached Welcome, however it ended (backoff.ts).
      const next = this.backoff.next();
      const retryAtMs = this.clock() + next.delayMs;
      this.setConnection({ state: "reconnecting", attempt: next.attempt, retryAtMs, reason });
      const sleep = sleepUntil(retryAtMs, this.clock);
      this.wakeRetry = sleep.wake;
      await sleep.done;
      this.wakeRetry = undefined;
    }
  }

  /** Errors after the handshake that retrying would only repeat. */
  private classifySessionError(e: unknown): unknown {
    if (isServiceError(e) && e.code === grpcStatus.ABORTED) {
      // Another session of the same user took over (SESSION_REPLACED). Reconnecting would take
      // it back, and the two would replace each other forever.
      return new FatalSessionError(`another session of ${this.me} replaced this one (did you start chat-tui ${this.me} twice?)`);
    }
    return e;
  }

  private describeStreamError(e: unknown): string {
    if (isServiceError(e)) {
      if (e.code === grpcStatus.UNAVAILABLE) return "relay unreachable";
      if (e.code === grpcStatus.CANCELLED) return "connection cancelled";
      return sanitizeLine(e.details || e.message).slice(0, 200);
    }
    return sanitizeLine(e instanceof Error ? e.message : String(e)).slice(0, 300);
  }

  /** One stream from hello to its end. Returns whether it got authenticated. */
  private async runSession(): Promise<boolean> {
    let channel;
    try {
      channel = await prepareChannel(this.transport, this.opts.server);
    } catch (e) {
      // A changed certificate is refused for good (the sentence says how to accept it).
      if (e instanceof RelayCertificateRefused) throw new FatalSessionError(e.message);
      // The TLS first contact met something: name it when it is not a relay, and stop retrying.
      if (e instanceof NotTlsError) {
        throw new FatalSessionError((await describeNotARelayByProbe(this.opts.server)) ?? e.message);
      }
      throw e;
    }
    const stream = openSessionStream({
      address: this.opts.server,
      maxReceiveBytes: MAX_RECEIVE_BYTES,
      credentials: channel.credentials,
      extraOptions: channel.options,
      ...(this.opts.keepalive ? { keepalive: this.opts.keepalive } : {}),
    });
    this.stream = stream;
    const frames = stream.frames[Symbol.asyncIterator]();
    const id = this.identity;
    const handshakeTimer = setTimeout(() => stream.close(), HANDSHAKE_TIMEOUT_MS);
    try {
      await stream.send({
        frame: {
          $case: "hello",
          value: { username: id.username, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, clientVersion: CLIENT_VERSION, protocolVersion: 1 },
        },
      });
      const challenge = await this.nextFrame(frames);
      if (challenge?.$case !== "challenge") throw new Error("the relay did not send a challenge");
      const { relayId, nonce } = challenge.value;
      if (relayId.length !== RELAY_ID_BYTES || nonce.length !== NONCE_BYTES) throw new Error("the relay sent a malformed challenge");
      // The proof binds the certificate this connection presented (§8): a man in the middle
      // with another certificate cannot pass it on to the relay.
      const binding = channel.binding();
      if (binding === undefined) throw new Error("the TLS connection to the relay presented no certificate");
      await stream.send({ frame: { $case: "proof", value: { signature: signProof(id, relayId, nonce, binding) } } });
      const welcome = await this.nextFrame(frames);
      if (welcome?.$case !== "welcome") throw new Error("the relay did not welcome the session");
      clearTimeout(handshakeTimer);
      // Authenticated from here: my own directory entry shows me online.
      this.authenticated = true;
      this.backoff.welcomed();
      this.lastEndReason = undefined;
      this.refreshedSenders.clear();
      this.onWelcome(welcome.value);
    } catch (e) {
      clearTimeout(handshakeTimer);
      // A pinned relay that now shows another certificate fails here (TLS): say so, for good.
      if (isServiceError(e) && e.code === grpcStatus.UNAVAILABLE) {
        const refusal = await channel.refusal();
        if (refusal !== undefined) throw new FatalSessionError(refusal);
      }
      // Something else on the port (an HTTP or SSH server, an echo): say so, and stop retrying.
      const foreign = await describeNotARelay(e, this.opts.server);
      if (foreign !== undefined) throw new FatalSessionError(foreign);
      throw this.classifyHandshakeError(e);
    }
    this.setConnection({ state: "connected", sinceMs: this.clock() });
    try {
      await this.resendOutbox();
      for (;;) {
        const next = await frames.next();
        if (next.done) break;
        await this.onFrame(next.value);
      }
    } catch (e) {
      throw this.classifySessionError(e);
    }
    return true;
  }

  private async nextFrame(frames: AsyncIterator<SessionResponse>): Promise<SessionResponse["frame"]> {
    const r = await frames.next();
    if (r.done) throw new Error("the relay ended the session during the handshake");
    return r.value.frame;
  }

  private classifyHandshakeError(e: unknown): Error {
    if (isServiceError(e)) {
      const details = sanitizeLine(e.details || "").slice(0, 200);
      switch (e.code) {
        case grpcStatus.ALREADY_EXISTS:
          return new NameTakenError(this.me);
        case grpcStatus.UNAUTHENTICATED:
        case grpcStatus.INVALID_ARGUMENT:
        case grpcStatus.PERMISSION_DENIED:
          return new FatalSessionError(details || "the relay refused this identity");
        default:
          return e;
      }
    }
    return e instanceof Error ? e : new Error(String(e));
  }

  // ------------------------------------------------------------------------------------------
  // Incoming frames
  // ------------------------------------------------------------------------------------------

  private onWelcome(w: Welcome): void {
    if (w.limits) {
      this.limits = {
        maxFrameBytes: w.limits.maxFrameBytes || DEFAULT_LIMITS.maxFrameBytes,
        maxRecipients: w.limits.maxRecipients || DEFAULT_LIMITS.maxRecipients,
        maxTextBytes: w.limits.maxTextBytes || DEFAULT_LIMITS.maxTextBytes,
        retentionMs: w.limits.retentionMs || DEFAULT_LIMITS.retentionMs,
        messagesPerSecond: w.limits.messagesPerSecond || DEFAULT_LIMITS.messagesPerSecond,
        burst: w.limits.burst || DEFAULT_LIMITS.burst,
      };
    }
    this.directory.reset();
    for (const entry of w.directory) this.directory.observeLight(entry, false);
    this.rooms.clear();
    for (const r of w.rooms) this.rooms.set(r.room, [...r.members]);
    this.state.prune(this.clock());
    this.emit({ type: "directory", peers: this.directory.peerViews() });
    this.emit({ type: "rooms", rooms: this.roomViews() });
    this.log.info("session.welcome", { users: w.directory.length, rooms: w.rooms.length, queued: w.queued });
    this.catchUp = { remaining: w.queued, shown: 0, reconnect: this.welcomedBefore };
    this.welcomedBefore = true;
    this.settleCatchUp();
    this.directory.prefetch(this.directory.othersOnline());
  }

  private async onFrame(f: SessionResponse): Promise<void> {
    const frame = f.frame;
    if (frame === undefined) return;
    switch (frame.$case) {
      case "deliver": {
        // Deliveries are processed one batch at a time, in order, on their own chain: opening one
        // may wait for a sender's keys (a LookupKeys answer), which this frame loop must stay free
        // to read. The relay's window of unacked deliveries bounds how many can queue up here.
        const items = frame.value.items;
        this.deliveryChain = this.deliveryChain.then(() => this.onDeliveries(items)).catch((e: unknown) => {
          this.log.error("deliver.failed", { reason: e instanceof Error ? e.message : String(e) });
        });
        return;
      }
      case "sendResult":
        this.onSendResult(frame.value);
        return;
      case "directoryUpdate": {
        const joined: string[] = [];
        for (const entry of frame.value.entries) {
          if (entry.online && !this.directory.isOnline(entry.username)) joined.push(entry.username);
          this.directory.observeLight(entry, true);
        }
        this.directory.prefetch(joined);
        return;
      }
      case "roomEvent":
        this.onRoomEvent(frame.value);
        return;
      case "roomList":
      case "memberList":
      case "keyList":
      case "error": {
        const pending = this.requests.get(frame.value.requestId);
        if (pending) {
          this.requests.delete(frame.value.requestId);
          clearTimeout(pending.timer);
          pending.resolve(frame);
        } else if (frame.$case === "error") {
          this.emit({ type: "notice", level: "warn", text: `relay: ${describeRefusal(frame.value.code, frame.value.detail)}` });
        }
        return;
      }
      case "notice":
        this.emit({ type: "notice", level: "info", text: `relay: ${sanitizeLine(frame.value.text).slice(0, 300)}` });
        return;
      case "pong":
      case "challenge":
      case "welcome":
        return;
      default: {
        const never: never = frame;
        return never;
      }
    }
  }

  /** One LookupKeys round trip (KeyDirectory decides when, and retries). */
  private async lookupKeys(usernames: string[]): Promise<Outcome<readonly DirectoryEntry[]>> {
    try {
      await this.untilConnected();
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
    const requestId = this.nextRequestId++;
    const answer = await this.request(requestId, { $case: "lookupKeys", value: { requestId, usernames } });
    if (!answer.ok) return answer;
    if (answer.value?.$case !== "keyList") return { ok: false, error: "unexpected answer from the relay" };
    return { ok: true, value: answer.value.value.entries };
  }

  /** Resolves when a session is authenticated; rejects when the client fails for good or closes. */
  private untilConnected(): Promise<void> {
    if (this.authenticated) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error("the session was closed"));
    if (this.connection.state === "failed") return Promise.reject(new Error(this.connection.reason));
    return new Promise((resolve, reject) => this.connectedWaiters.push({ resolve, reject }));
  }

  private onRoomEvent(ev: { room: string; kind: RoomEventKind; username: string; members: string[]; atMs: number }): void {
    if (checkRoomName(ev.room).ok !== true || !isValidUsername(ev.username)) return;
    const members = ev.members.filter(isValidUsername);
    const kind = ev.kind === RoomEventKind.ROOM_EVENT_KIND_JOINED ? "joined" : ev.kind === RoomEventKind.ROOM_EVENT_KIND_LEFT ? "left" : undefined;
    if (kind === undefined) return;
    if (kind === "left" && ev.username === this.me) this.rooms.delete(ev.room);
    else this.rooms.set(ev.room, members);
    this.emit({ type: "room-event", room: ev.room, kind, username: ev.username, members, atMs: ev.atMs || this.clock() });
    this.emit({ type: "rooms", rooms: this.roomViews() });
    if (ev.username === this.me) {
      const waiting = kind === "joined" ? this.pendingJoins.get(ev.room) : this.pendingLeaves.get(ev.room);
      if (waiting) {
        clearTimeout(waiting.timer);
        (kind === "joined" ? this.pendingJoins : this.pendingLeaves).delete(ev.room);
        waiting.resolve(undefined);
      }
    }
  }

  private async onDeliveries(items: Delivery[]): Promise<void> {
    const acks: number[] = [];
    for (const item of items) {
      await this.prepareSender(item.envelope);
      const outcome = this.processDelivery(item.conversationId, item.envelope, false, item.relayTimeMs);
      acks.push(item.seq);
      if (this.catchUp !== undefined) {
        this.catchUp.remaining--;
        if (outcome === "shown") this.catchUp.shown++;
        this.settleCatchUp();
      }
    }
    if (acks.length > 0 && this.stream) {
      await this.stream.send({ frame: { $case: "ack", value: { seqs: acks } } }).catch(() => {});
    }
  }

  /**
   * Before opening: fetch the sender's keys when none are pinned, or when the envelope names a
   * signing key that is neither the pinned one nor a known pending change (a key change the
   * directory has not shown us, e.g. from a user who is offline now). At most once per sender
   * per session, so forged envelopes cannot make the client look keys up without end.
   */
  private async prepareSender(wire: WireEnvelope | undefined): Promise<void> {
    const h = wire?.header;
    if (h === undefined || !isValidUsername(h.sender) || h.sender === this.me) return;
    const pin = this.trustStore.get(h.sender);
    if (pin !== undefined && (pin.identity.sigFpr.equals(h.senderSigFpr) || pin.pending?.sigFpr.equals(h.senderSigFpr) === true)) return;
    if (pin !== undefined && this.refreshedSenders.has(h.sender)) return;
    this.refreshedSenders.add(h.sender);
    await this.directory.ensure([h.sender], true).catch(() => {});
  }

  private senderKey = (username: string): SenderKeyLookup => {
    const pin = this.trustStore.get(username);
    return pin ? { kind: "pinned", sigKey: pin.identity.sigKey, sigFpr: pin.identity.sigFpr } : { kind: "unknown" };
  };

  /** Opens one delivered envelope; every outcome is handled here (shown, held or refused). */
  private processDelivery(deliveredInto: string, wire: WireEnvelope | undefined, fromHold = false, relayTimeMs = 0): "shown" | "held" | "replay" | "dropped" {
    let envelope;
    try {
      envelope = envelopeFromWire(wire);
    } catch (e) {
      this.log.warn("envelope.refused", { code: "malformed", into: sanitizeLine(deliveredInto).slice(0, 80) });
      if (fromHold) return "dropped";
      this.emit({ type: "refused", conversationId: this.displayConversation(deliveredInto, undefined), from: "unknown sender" });
      return "dropped";
    }
    const sender = isValidUsername(envelope.header.sender) ? envelope.header.sender : "unknown sender";
    try {
      const opened = openEnvelope(envelope, {
        me: this.identity,
        deliveredInto,
        nowMs: this.clock(),
        maxAgeMs: this.limits.retentionMs,
        senderKey: this.senderKey,
        seen: (id, sender) => this.state.hasSeen(id, sender),
        limits: shapeLimitsOf(this.limits),
      });
      const h = opened.header;
      // Open step 9: record the id and the chain; flag a gap.
      const gap = chainHasGap(opened.conversation, h.prev, this.state.lastHash(h.conversationId, h.sender));
      this.state.recordOpened(h.messageId, h.sentAtMs, h.conversationId, h.sender, opened.hash);
      let message: ChatMessage = {
        id: hex(h.messageId),
        conversationId: h.conversationId,
        from: h.sender,
        kind: opened.body.kind,
        text: opened.body.text,
        sentAtMs: h.sentAtMs,
        receivedAtMs: this.clock(),
        ...(Number.isSafeInteger(relayTimeMs) && relayTimeMs > 0 ? { relayAtMs: relayTimeMs } : {}),
        own: false,
        ...(gap ? { gap: true } : {}),
      };
      if (gap) this.log.warn("envelope.gap", { conversation: h.conversationId, from: h.sender });
      // A room message may leave members out (§9): say who, so nobody assumes they read it.
      if (opened.conversation.kind === "room") {
        const named = new Set(h.recipients.map((r) => r.username));
        const notFor = (this.rooms.get(opened.conversation.room) ?? []).filter((m) => !named.has(m));
        if (notFor.length > 0) message = { ...message, notFor };
      }
      this.emit({ type: "message", message });
      this.answerWhileAway(h.conversationId, h.sender, opened.body.kind);
      return "shown";
    } catch (e) {
      const code = isProtocolError(e) ? e.code : "internal";
      if (code === "replay") {
        // At-least-once delivery: a redelivered envelope we already showed. Nothing to show.
        this.log.debug("envelope.duplicate", { from: sender });
        return "replay";
      }
      if (code === "key-changed" && !fromHold) {
        const pin = this.trustStore.get(sender);
        if (pin?.pending && pin.pending.sigFpr.equals(envelope.header.senderSigFpr)) {
          this.state.hold(sender, deliveredInto, Buffer.from(WireEnvelope.encode(envelopeToWire(envelope)).finish()), this.clock(), relayTimeMs);
          this.log.warn("envelope.held", { from: sender });
          this.emit({ type: "key-change", username: sender, conversationId: this.displayConversation(deliveredInto, sender), held: this.state.heldCount(sender) });
          return "held";
        }
      }
      this.log.warn("envelope.refused", { code, from: sender, held: fromHold, reason: e instanceof Error ? e.message : String(e) });
      // Released held envelopes that fail are counted in one sentence by releaseHeld.
      if (!fromHold) this.emit({ type: "refused", conversationId: this.displayConversation(deliveredInto, sender), from: sender });
      return "dropped";
    }
  }

  /** Once the deliveries the welcome announced are all opened: one "caught-up" event. */
  private settleCatchUp(force = false): void {
    const c = this.catchUp;
    if (c === undefined) return;
    clearTimeout(c.timer);
    if (c.remaining > 0 && !force) {
      // The count is the relay's queue depth at the welcome: should fewer come (one expired in
      // between), the line still comes once deliveries have been quiet for a while.
      c.timer = setTimeout(() => this.settleCatchUp(true), CATCH_UP_QUIET_MS);
      c.timer.unref();
      return;
    }
    this.catchUp = undefined;
    this.emit({ type: "caught-up", count: c.shown, reconnect: c.reconnect });
  }

  /**
   * While away, the first DM from each person gets one automatic reply of kind "away" (sealed
   * like any message). Replies to "away" messages are never sent, so two away users cannot
   * answer each other without end.
   */
  private answerWhileAway(conversationId: string, sender: string, kind: MessageKind): void {
    const away = this.away;
    if (away === undefined || (kind !== "text" && kind !== "action") || away.answered.has(sender)) return;
    if (parseConversationId(conversationId)?.kind !== "dm") return;
    away.answered.add(sender);
    const sent = this.send(conversationId, away.text, "away");
    if (!sent.ok) this.log.info("away.reply-failed", { reason: sent.error });
  }

  /** Where to show a line about an envelope: its conversation if valid and mine, else the lobby. */
  private displayConversation(deliveredInto: string, sender: string | undefined): string {
    const conv = parseConversationId(deliveredInto);
    if (conv === undefined) return sender && sender !== "unknown sender" && sender !== this.me ? dmIdFor(this.me, sender) : "lobby";
    if (conv.kind === "dm" && !conv.members.includes(this.me)) return "lobby";
    return conv.id;
  }

  private onSendResult(r: SendResult): void {
    const id = hex(r.messageId);
    const entry = this.state.outboxGet(r.messageId);
    if (entry === undefined) return; // already settled (a duplicate answer after a resend)
    if (r.status === SendStatus.SEND_STATUS_REFUSED && r.code === ErrorCode.ERROR_CODE_RATE_LIMITED) {
      // Not a failure: the relay will take it a moment later. It stays pending in the outbox and
      // goes back to its place in the queue (outbox-pump.ts).
      const pauseMs = this.pump.tooFast(r.messageId);
      this.log.info("send.too-fast", { conversation: entry.conversationId, pauseMs });
      return;
    }
    this.pump.settled(r.messageId, r.status === SendStatus.SEND_STATUS_ACCEPTED);
    this.state.outboxRemove(r.messageId);
    if (r.status === SendStatus.SEND_STATUS_ACCEPTED) {
      const queuedFor = r.queuedFor.filter(isValidUsername);
      this.emit({ type: "message-state", conversationId: entry.conversationId, id, state: "accepted", ...(queuedFor.length ? { queuedFor } : {}) });
      return;
    }
    // Refused: roll my chain head back if this envelope was the head, so the next message does
    // not point at one nobody received. A stale recipient key means someone's keys changed on the
    // relay: fetch them, so the key change shows.
    try {
      const env = envelopeFromWire(WireEnvelope.decode(entry.envelope));
      if (this.state.ownHead(entry.conversationId).equals(envelopeHash(env))) this.state.setOwnHead(entry.conversationId, env.header.prev);
      if (r.code === ErrorCode.ERROR_CODE_STALE_RECIPIENT_KEY) {
        void this.directory.ensure(env.header.recipients.map((x) => x.username), true).catch(() => {});
      }
    } catch {
      // Our own bytes always decode; nothing to roll back otherwise.
    }
    const failure = describeRefusal(r.code, r.detail);
    this.failed.set(id, { conversationId: entry.conversationId, text: this.outboxText(entry), kind: entry.kind });
    this.log.info("send.refused", { code: ErrorCode[r.code] ?? r.code, conversation: entry.conversationId });
    this.emit({ type: "message-state", conversationId: entry.conversationId, id, state: "failed", failure });
  }

  /** After Welcome: every unsent message, oldest first, at the pace the relay allows. */
  private async resendOutbox(): Promise<void> {
    if (!this.stream) return;
    this.pump.start(this.stream, this.state.outbox().map((e) => e.id), this.limits);
  }

  // ------------------------------------------------------------------------------------------
  // ChatSession
  // ------------------------------------------------------------------------------------------

  /** Shows a line from the application itself (e.g. "now hosting the relay"). */
  announce(level: "info" | "warn" | "error", text: string): void {
    this.emit({ type: "notice", level, text });
  }

  subscribe(listener: (event: SessionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  snapshot(): SessionSnapshot {
    return { connection: this.connection, peers: this.directory.peerViews(), rooms: this.roomViews() };
  }

  /**
   * What to show at start: the kept history (newest messages of each conversation, my pending
   * ones included), or with history off, my messages still waiting for the relay.
   */
  backlog(): ChatMessage[] {
    const pending = this.pendingMessages();
    if (this.history === undefined) return pending;
    const kept = this.history.recent();
    // The outbox is the truth about what is unsent: a kept "pending" that is no longer there was
    // settled while its state change could not be written; unsent ones the history lacks are added.
    const unsent = new Set(pending.map((m) => m.id));
    const settled = kept.map((m): ChatMessage => (m.own && m.state === "pending" && !unsent.has(m.id)
      ? { ...m, state: "failed", failure: "its delivery was not confirmed before the app closed" } : m));
    // Failed ones can be retried (/retry) after the restart too.
    for (const m of settled) {
      if (m.own && m.state === "failed") this.failed.set(m.id, { conversationId: m.conversationId, text: m.text, kind: m.kind });
    }
    const ids = new Set(kept.map((m) => m.id));
    // A DM with someone this client never pinned (a typo in /msg, a user who never connected)
    // does not come back at start, unless a message of mine still waits in it.
    const known = settled.filter((m) => unsent.has(m.id) || this.knownPeerOf(m.conversationId));
    return [...known, ...pending.filter((m) => !ids.has(m.id))];
  }

  /** False for a DM whose other member has no pin here; true for every other conversation. */
  private knownPeerOf(conversationId: string): boolean {
    const conv = parseConversationId(conversationId);
    if (conv?.kind !== "dm") return true;
    const peer = conv.members.find((n) => n !== this.me) ?? this.me;
    return peer === this.me || this.trustStore.get(peer) !== undefined;
  }

  reconnectNow(): Outcome<string> {
    if (this.closed) return { ok: false, error: "the session is closed" };
    switch (this.connection.state) {
      case "connected":
        return { ok: false, error: "already connected to the relay" };
      case "failed":
        // The run loop gave up (e.g. another session took over): the user asks to try again.
        this.runPromise = this.run();
        return { ok: true, value: "connecting to the relay again" };
      case "reconnecting":
        this.wakeRetry?.();
        return { ok: true, value: "reconnecting now instead of waiting" };
      default:
        return { ok: true, value: "already connecting to the relay" };
    }
  }

  olderHistory(conversationId: string, beforeId: string | undefined, limit: number): readonly ChatMessage[] {
    return this.history?.page(conversationId, beforeId, limit) ?? [];
  }

  searchHistory(text: string): readonly ChatMessage[] {
    return this.history?.search(text) ?? [];
  }

  setAway(text: string | undefined): void {
    this.away = text === undefined ? undefined : { text, answered: new Set() };
  }

  loadSetting(name: string): string | undefined {
    try {
      return this.state.settingGet(name);
    } catch (e) {
      this.log.warn("settings.read-failed", { reason: e instanceof Error ? e.message : String(e) });
      return undefined;
    }
  }

  saveSetting(name: string, value: string): void {
    try {
      this.state.settingSet(name, value);
    } catch (e) {
      // A full disk: the setting holds for this run, only not kept.
      this.log.warn("settings.write-failed", { reason: e instanceof Error ? e.message : String(e) });
    }
  }

  /** Kept messages the last backlog() could not open (sealed under another key, or damaged). */
  unreadableHistory(): number {
    return this.history?.unreadable ?? 0;
  }

  /** Forgets a conversation's history on this machine (the relay keeps none). */
  forgetHistory(conversationId: string): void {
    this.history?.forget(conversationId);
  }

  /** Messages sealed but not yet accepted (e.g. from before a restart), oldest first. */
  pendingMessages(): ChatMessage[] {
    return this.state.outbox().map((e) => ({
      id: hex(e.id), conversationId: e.conversationId, from: this.me, kind: e.kind, text: this.outboxText(e),
      sentAtMs: e.sentAtMs, receivedAtMs: e.createdAtMs, own: true, state: "pending" as const,
    }));
  }

  send(conversationId: string, text: string, kind: MessageKind = "text"): Outcome<{ id: string }> {
    const conv = parseConversationId(conversationId);
    if (conv === undefined) return { ok: false, error: `unknown conversation '${sanitizeLine(conversationId).slice(0, 40)}'` };
    const normalized = text.replace(/\r\n?/g, "\n");
    if (normalized.trim().length === 0) return { ok: false, error: "nothing to send" };
    if (!normalized.isWellFormed()) return { ok: false, error: "the message contains invalid characters" };
    const bytes = Buffer.byteLength(normalized, "utf8");
    if (bytes > this.limits.maxTextBytes) {
      return { ok: false, error: `the message is ${bytes} bytes; this relay accepts at most ${this.limits.maxTextBytes}` };
    }
    const early = this.checkAddressable(conv);
    if (!early.ok) return early;
    if (kind === "topic" && conv.kind !== "room") return { ok: false, error: "a topic belongs to a room: /topic works inside a room" };
    if (kind === "away" && conv.kind !== "dm") return { ok: false, error: "an away reply goes to one person" };
    // The id is fixed now, so the pending line and the sealed envelope are the same message.
    const messageId = randomBytes(MESSAGE_ID_BYTES);
    const id = hex(messageId);
    const now = this.clock();
    this.emit({
      type: "message",
      message: { id, conversationId: conv.id, from: this.me, kind, text: normalized, sentAtMs: now, receivedAtMs: now, own: true, state: "pending" },
    });
    const body: MessageBody = { kind, text: normalized };
    // One event-loop turn between seals: a burst of sends (a paste, a script) must not starve
    // the stream's keepalive answers and incoming frames while it is sealed.
    this.sendChain = this.sendChain.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(() => this.sealAndQueue(conv, body, messageId, now));
    return { ok: true, value: { id } };
  }

  /** What send() can refuse at once, without the relay. */
  private checkAddressable(conv: Conversation): Outcome {
    switch (conv.kind) {
      case "dm": {
        if (!conv.members.includes(this.me)) return { ok: false, error: "that is not one of your conversations" };
        const peer = conv.members[0] === this.me ? conv.members[1] : conv.members[0];
        if (this.trustStore.get(peer)?.pending) return { ok: false, error: blockedByKeyChange(peer) };
        return { ok: true, value: undefined };
      }
      case "room":
        if (!this.rooms.has(conv.room)) return { ok: false, error: `you are not in ${conv.room}: /join ${conv.room} first` };
        return { ok: true, value: undefined };
      case "lobby":
        return { ok: true, value: undefined };
      default: {
        const never: never = conv;
        return never;
      }
    }
  }

  /**
   * The second half of send(), one message at a time in send order: fetch missing keys, seal,
   * store in the outbox (it survives a crash), then write if connected. A failure becomes the
   * message's "failed" state with a sentence, and the message can be retried.
   */
  private async sealAndQueue(conv: Conversation, body: MessageBody, messageId: Buffer, now: number): Promise<void> {
    const id = hex(messageId);
    try {
      const names = this.recipientNames(conv);
      // The lobby reaches whom we can reach now: while disconnected it is sealed to the known
      // online users (it must not wait unsealed: quitting would lose it).
      if (conv.kind !== "lobby" || this.authenticated) await this.directory.ensure(names);
      const recipients = this.recipientsFor(conv);
      if (!recipients.ok) throw new Error(recipients.error);
      if (recipients.value.list.length + 1 > this.limits.maxRecipients) {
        throw new Error(`${recipients.value.list.length + 1} recipients; this relay allows at most ${this.limits.maxRecipients}`);
      }
      const sealed = sealEnvelope({
        sender: this.identity,
        conversationId: conv.id,
        recipients: recipients.value.list,
        body,
        prev: this.state.ownHead(conv.id),
        sentAtMs: now,
        messageId,
        limits: shapeLimitsOf(this.limits),
      });
      const wire = envelopeToWire(sealed.envelope);
      this.state.addOutgoing(
        { id: messageId, conversationId: conv.id, envelope: Buffer.from(WireEnvelope.encode(wire).finish()), kind: body.kind,
          text: this.atRest.seal("outbox", conv.id, messageId, body.text), createdAtMs: now, sentAtMs: now },
        sealed.hash,
        this.me,
      );
      if (conv.kind === "lobby" && recipients.value.list.length === 0 && recipients.value.skipped.length === 0) {
        this.emit({
          type: "notice", level: "warn", conversationId: conv.id,
          text: this.authenticated
            ? "nobody else is online, so nobody will read that: the lobby reaches people online when you send; use /msg or a room for people who are away"
            : "not connected, and nobody was known to be online, so nobody will read that: use /msg or a room for messages that should wait",
        });
      }
      if (recipients.value.skipped.length > 0) {
        this.emit({
          type: "notice", level: "warn", conversationId: conv.id,
          text: `not sent to ${recipients.value.skipped.join(", ")}: ${recipients.value.skipped.length === 1 ? "their keys" : "each one's keys"} changed and you have not decided yet (/verify ${recipients.value.skipped[0]}, then /trust or /accept)`,
        });
      }
      // Written at the relay's pace after those before it; offline, it waits in the outbox and
      // the next Welcome sends it with the same id.
      if (this.authenticated) this.pump.push(messageId);
    } catch (e) {
      const failure = sanitizeLine(e instanceof Error ? e.message : String(e)).slice(0, 300);
      this.failed.set(id, { conversationId: conv.id, text: body.text, kind: body.kind });
      this.log.info("send.failed-locally", { conversation: conv.kind, reason: failure });
      this.emit({ type: "message-state", conversationId: conv.id, id, state: "failed", failure });
    }
  }

  /** Who a message to this conversation goes to (besides me). */
  private recipientNames(conv: Conversation): string[] {
    switch (conv.kind) {
      case "dm":
        return conv.members.filter((m) => m !== this.me);
      case "room":
        return (this.rooms.get(conv.room) ?? []).filter((m) => m !== this.me);
      case "lobby":
        return this.directory.othersOnline();
      default: {
        const never: never = conv;
        return never;
      }
    }
  }

  /** Sends a failed message's text again, as a new message (new id, current keys and chain). */
  retry(conversationId: string, id: string): Outcome<{ id: string }> {
    const failed = this.failed.get(id);
    if (failed === undefined || failed.conversationId !== conversationId) return { ok: false, error: "that message has not failed (or is too old to retry)" };
    const outcome = this.send(conversationId, failed.text, failed.kind);
    if (outcome.ok) {
      this.failed.delete(id);
      // The new message carries the text from now on; the failed one is not kept to be retried again.
      this.history?.remove(id);
    }
    return outcome;
  }

  /** The recipients' pinned keys; a pending key change blocks a DM and skips that member in rooms and the lobby. */
  private recipientsFor(conv: Conversation): Outcome<{ list: SealRecipient[]; skipped: string[] }> {
    const toRecipient = (pin: PinnedPeer): SealRecipient => ({ username: pin.identity.username, encKey: pin.identity.encKey, encFpr: pin.identity.encFpr });
    const list: SealRecipient[] = [];
    const skipped: string[] = [];
    for (const name of this.recipientNames(conv)) {
      const pin = this.trustStore.get(name);
      // A room goes on when one member's keys changed: sealed to the others, and that member
      // does not receive it until the user decides (the relay takes a subset of members, §9).
      if (conv.kind === "room" && pin?.pending) {
        skipped.push(name);
        continue;
      }
      if (conv.kind === "lobby") {
        if (pin === undefined) continue; // keys not known yet: cannot be reached
        if (pin.pending) skipped.push(name);
        else list.push(toRecipient(pin));
        continue;
      }
      if (pin === undefined) {
        if (this.directory.hasInvalidKeys(name)) return { ok: false, error: `the relay sent invalid keys for ${name}: not sending (it may be attacking you)` };
        return { ok: false, error: conv.kind === "dm" ? `no user '${name}' on this relay` : `no keys known for ${name}; try again in a moment` };
      }
      if (pin.pending) return { ok: false, error: blockedByKeyChange(name) };
      list.push(toRecipient(pin));
    }
    return { ok: true, value: { list, skipped: skipped.sort() } };
  }

  async joinRoom(room: string): Promise<Outcome<RoomView>> {
    const check = checkRoomName(room);
    if (!check.ok) return { ok: false, error: check.reason };
    if (this.rooms.has(room)) return { ok: true, value: { room, members: this.rooms.get(room) ?? [] } };
    const requestId = this.nextRequestId++;
    const answer = await this.request(requestId, { $case: "joinRoom", value: { requestId, room } }, this.pendingJoins, room);
    if (!answer.ok) return answer;
    return { ok: true, value: { room, members: this.rooms.get(room) ?? [] } };
  }

  async leaveRoom(room: string): Promise<Outcome> {
    const check = checkRoomName(room);
    if (!check.ok) return { ok: false, error: check.reason };
    if (!this.rooms.has(room)) return { ok: false, error: `you are not in ${room}` };
    const requestId = this.nextRequestId++;
    const answer = await this.request(requestId, { $case: "leaveRoom", value: { requestId, room } }, this.pendingLeaves, room);
    return answer.ok ? { ok: true, value: undefined } : answer;
  }

  async listRooms(): Promise<Outcome<RoomListing>> {
    const requestId = this.nextRequestId++;
    const answer = await this.request(requestId, { $case: "listRooms", value: { requestId } });
    if (!answer.ok) return answer;
    const f = answer.value;
    if (f?.$case !== "roomList") return { ok: false, error: "unexpected answer from the relay" };
    const roomOk = (r: RoomInfo) => checkRoomName(r.room).ok;
    return {
      ok: true,
      value: {
        joined: f.value.joined.filter(roomOk).map((r) => ({ room: r.room, members: r.members.filter(isValidUsername) })),
        all: f.value.all.filter((r) => checkRoomName(r.room).ok).map((r) => ({ room: r.room, memberCount: r.memberCount })),
      },
    };
  }

  async members(room: string): Promise<Outcome<readonly string[]>> {
    const check = checkRoomName(room);
    if (!check.ok) return { ok: false, error: check.reason };
    const requestId = this.nextRequestId++;
    const answer = await this.request(requestId, { $case: "listMembers", value: { requestId, room } });
    if (!answer.ok) return answer;
    const f = answer.value;
    if (f?.$case !== "memberList") return { ok: false, error: "unexpected answer from the relay" };
    return { ok: true, value: f.value.members.filter(isValidUsername) };
  }

  /**
   * Sends a request frame and waits for its answer: a frame with its request id, or (join and
   * leave) the room event about me. A RequestError with the id becomes { ok: false }.
   */
  private request(
    requestId: number,
    frame: NonNullable<SessionRequest["frame"]>,
    byRoom?: Map<string, PendingRequest>,
    room?: string,
  ): Promise<Outcome<SessionResponse["frame"]>> {
    if (!this.authenticated || !this.stream) return Promise.resolve({ ok: false, error: "not connected to the relay" });
    const stream = this.stream;
    return new Promise((resolve) => {
      const finish = (o: Outcome<SessionResponse["frame"]>) => {
        clearTimeout(timer);
        this.requests.delete(requestId);
        if (byRoom && room !== undefined) byRoom.delete(room);
        resolve(o);
      };
      const timer = setTimeout(() => finish({ ok: false, error: "the relay did not answer in time" }), REQUEST_TIMEOUT_MS);
      const pending: PendingRequest = {
        timer,
        resolve: (f) => {
          if (f?.$case === "error") finish({ ok: false, error: describeRefusal(f.value.code, f.value.detail) });
          else finish({ ok: true, value: f });
        },
      };
      this.requests.set(requestId, pending);
      if (byRoom && room !== undefined) byRoom.set(room, pending);
      // Room requests draw on the relay's send bucket (§9): they wait for a token like sends do.
      const turn = frame.$case === "lookupKeys" ? Promise.resolve() : this.pacer.acquire(() => this.stream === stream);
      turn.then(() => stream.send({ frame })).catch(() => finish({ ok: false, error: "the connection to the relay was lost" }));
    });
  }

  private failRequests(reason: string): void {
    const all = new Set<PendingRequest>([...this.requests.values(), ...this.pendingJoins.values(), ...this.pendingLeaves.values()]);
    this.requests.clear();
    this.pendingJoins.clear();
    this.pendingLeaves.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.resolve({ $case: "error", value: { requestId: 0, code: ErrorCode.ERROR_CODE_UNSPECIFIED, detail: reason } });
    }
  }

  fingerprint(): string {
    return `signing key ${groups(hex(this.identity.sigFpr).slice(0, 32))} · encryption key ${groups(hex(this.identity.encFpr).slice(0, 32))}`;
  }

  verifyInfo(username: string): Outcome<VerifyInfo> {
    if (username === this.me) return { ok: false, error: "that is you: use /fingerprint to see your own keys" };
    if (!isValidUsername(username)) return { ok: false, error: `'${sanitizeLine(username).slice(0, 40)}' is not a valid username` };
    const pin = this.trustStore.get(username);
    if (pin === undefined) {
      if (this.directory.isUnknown(username)) return { ok: false, error: `no user '${username}' on this relay` };
      void this.directory.ensure([username]).catch(() => {});
      return { ok: false, error: `fetching ${username}'s keys from the relay; run /verify ${username} again in a moment` };
    }
    return {
      ok: true,
      value: {
        username,
        trust: this.directory.trustOf(pin),
        safetyNumber: safetyNumber(this.identity, pin.identity),
        ...(pin.pending ? { pendingSafetyNumber: safetyNumber(this.identity, pin.pending) } : {}),
        confirmGroups: safetyHalfGroups(pin.pending ?? pin.identity).slice(0, TRUST_GROUPS),
      },
    };
  }

  async verify(username: string): Promise<Outcome<VerifyInfo>> {
    // Someone real whose keys are not pinned yet: look them up (before, and again after, the lookup).
    const unfetched = (): boolean =>
      isValidUsername(username) && username !== this.me && this.trustStore.get(username) === undefined && !this.directory.isUnknown(username);
    if (unfetched()) {
      try {
        await this.directory.ensure([username]);
      } catch (err) {
        this.log.info("verify.fetch-failed", { reason: err instanceof Error ? err.message : String(err) });
      }
    }
    // Still nothing pinned (offline relay, or the lookup failed): say why instead of "run again".
    if (unfetched()) {
      return { ok: false, error: `${username}'s keys could not be fetched from the relay (${this.authenticated ? "no answer" : "not connected"}); try /verify ${username} again later` };
    }
    return this.verifyInfo(username);
  }


  /**
   * /trust <user> <groups>: the user compared safety numbers and names what they compared, so
   * a key that changed since /verify (or was never shown) is refused, not accepted (§6).
   */
  trust(username: string, groups: readonly string[]): Outcome<string> {
    if (username === this.me) return { ok: false, error: "you cannot trust yourself" };
    if (!isValidUsername(username)) return { ok: false, error: `'${sanitizeLine(username).slice(0, 40)}' is not a valid username` };
    const before = this.trustStore.get(username);
    if (before === undefined) return { ok: false, error: `no keys known for ${username}: run /verify ${username} first` };
    const keys = before.pending ?? before.identity;
    if (groups.length === 0) {
      return { ok: false, error: `/trust needs the digits you compared: /verify ${username} shows the exact command (/trust ${username} followed by ${TRUST_GROUPS} groups of digits)` };
    }
    if (!digitsNameKeys(groups, this.identity, keys)) {
      return {
        ok: false,
        error: `those digits do not match ${username}'s ${before.pending ? "new " : ""}keys as they are now (they may have changed since you ran /verify): nothing was trusted; run /verify ${username} again and compare`,
      };
    }
    const hadChange = before.pending !== undefined;
    if (this.trustStore.trust(username, keys) === undefined) return { ok: false, error: `${username}'s keys changed meanwhile: run /verify ${username} again` };
    const released = hadChange ? this.releaseHeld(username) : "";
    this.directory.emitPeer(username);
    this.log.info("peer.trusted", { user: username, keyChange: hadChange });
    if (hadChange) return { ok: true, value: `${username}'s new key is now trusted and marked verified ✓${released}` };
    return { ok: true, value: `${username} is now marked verified ✓` };
  }

  /** /accept <user>: continue with a peer's new keys without comparing them (not verified). */
  acceptNewKeys(username: string): Outcome<string> {
    if (username === this.me) return { ok: false, error: "that is you: your own keys need no accepting" };
    if (!isValidUsername(username)) return { ok: false, error: `'${sanitizeLine(username).slice(0, 40)}' is not a valid username` };
    const before = this.trustStore.get(username);
    if (before?.pending === undefined) {
      return { ok: false, error: `${username}'s keys have not changed: nothing to accept (/verify ${username} to compare safety numbers)` };
    }
    if (this.trustStore.accept(username, before.pending) === undefined) return { ok: false, error: `${username}'s keys changed meanwhile: nothing was accepted` };
    const released = this.releaseHeld(username);
    this.directory.emitPeer(username);
    this.log.info("peer.accepted", { user: username });
    return { ok: true, value: `continuing with ${username}'s new key, NOT verified (compare with /verify ${username} when you can)${released}` };
  }

  /**
   * After a key change was accepted: the peer's chains start again (a new key is usually a new
   * device, whose chains start from zeros: not a gap, §6), and the held envelopes are opened in
   * the order they were sent. Returns the sentence part saying what was shown and discarded.
   */
  private releaseHeld(username: string): string {
    this.state.forgetChains(username);
    const held = this.state.heldFor(username).map((h) => {
      let wire: WireEnvelope | undefined;
      try {
        wire = WireEnvelope.decode(h.envelope);
      } catch {
        wire = undefined;
      }
      return { h, wire, sentAtMs: Number(wire?.header?.sentAtMs ?? 0) };
    });
    held.sort((a, b) => a.sentAtMs - b.sentAtMs || a.h.rowId - b.h.rowId);
    let shown = 0;
    let discarded = 0;
    for (const { h, wire } of held) {
      this.state.releaseHeld(h.rowId);
      const outcome = this.processDelivery(h.deliveredInto, wire, true, h.relayTimeMs);
      if (outcome === "shown") shown++;
      else if (outcome !== "replay") discarded++; // a replay is a redelivered copy of one shown
    }
    if (discarded > 0) this.log.warn("held.discarded", { from: username, count: discarded });
    const parts: string[] = [];
    if (shown > 0) parts.push(`${shown} held message${shown === 1 ? "" : "s"} shown, in the order sent`);
    if (discarded > 0) {
      parts.push(`${discarded} held message${discarded === 1 ? " was" : "s were"} discarded: not signed by the key you accepted, or no longer valid`);
    }
    return parts.length > 0 ? `; ${parts.join("; ")}` : "";
  }

  // ------------------------------------------------------------------------------------------
  // Views
  // ------------------------------------------------------------------------------------------

  private roomViews(): RoomView[] {
    return [...this.rooms].sort(([a], [b]) => (a < b ? -1 : 1)).map(([room, members]) => ({ room, members }));
  }

  /** An unsent message's text, opened from the outbox. */
  private outboxText(e: OutboxEntry): string {
    if (typeof e.text === "string") return e.text;
    try {
      return this.atRest.open("outbox", e.conversationId, e.id, e.text) ?? "[text unreadable: sealed under another key]";
    } catch {
      return "[text unreadable: the stored row is damaged]";
    }
  }

  /** Every message shown, and every change of my messages' state, goes to the history. */
  private remember(e: SessionEvent): void {
    if (this.history === undefined || this.closed) return;
    if (e.type === "message") this.history.record(e.message);
    else if (e.type === "message-state") this.history.setState(e.id, e.state, e.failure, e.queuedFor);
  }

  private setConnection(status: ConnectionStatus): void {
    this.connection = status;
    this.emit({ type: "connection", status });
    if (status.state === "connected") {
      const waiters = this.connectedWaiters;
      this.connectedWaiters = [];
      for (const w of waiters) w.resolve();
    } else if (status.state === "failed" || status.state === "closed") {
      const waiters = this.connectedWaiters;
      this.connectedWaiters = [];
      for (const w of waiters) w.reject(new Error(status.state === "failed" ? status.reason : "the session was closed"));
    }
  }

  private emit(e: SessionEvent): void {
    this.remember(e);
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        this.log.error("listener.failed", { event: e.type, reason: (err as Error).message });
      }
    }
  }
}
