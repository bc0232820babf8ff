// The client's connection to the relay (PROTOCOL.md §9): the run loop that connects and
// reconnects with backoff, the handshake (hello, challenge, proof bound to the TLS certificate,
// welcome: its steps are in relay-handshake.ts), the connection status the UI shows, and the one
// table of requests waiting for the relay's answers. What the frames mean is the session's
// business: every frame that is not an answer to a request goes to `hooks.frame`.
import type { SessionRequest, SessionResponse, Welcome, DirectoryEntry } from "../gen/securechat/v1/chat.js";
import type { PrivateIdentity } from "../protocol/keys.js";
import { asLocalIdentity, type LocalIdentity } from "./local-identity.js";
import { DEFAULT_LIMITS, writeTokens, type Limits } from "../protocol/limits.js";
import type { Logger } from "../protocol/log.js";
import { backoffDelay, ReconnectBackoff, sleepUntil, type ReconnectPolicy } from "./backoff.js";
import { describeSessionEnd, refused, type ReconnectStart, type SessionEnd } from "./errors.js";
import type { SendPacer } from "./pacer.js";
import { classifySessionError, FatalSessionError, NameTakenError, RateLimitedError, sessionEndOf } from "./session-end.js";
import { PendingRequests, type ResponseFrame, type RoomWait } from "./pending-requests.js";
import type { RelayTransport } from "./relay-transport.js";
import { authenticate, HANDSHAKE_TIMEOUT_MS, handshakeFailure, openRelayChannel } from "./relay-handshake.js";
import { openSessionStream, type KeepalivePolicy, type SessionStream } from "./transport.js";
import type { ConnectionStatus, Outcome, SessionEvent } from "./types.js";
import { PER_ADDRESS, ServerRotation } from "./server-list.js";

/** Ends that say only that an address did not answer (or the client cancelled): any relay's own sentence says more. */
const SILENT: ReadonlySet<SessionEnd["kind"]> = new Set(["unreachable", "cancelled", "relay-closed"]);

export { CLIENT_VERSION } from "./relay-handshake.js";
const REQUEST_TIMEOUT_MS = 10_000;

/** Largest frame the client accepts from the relay (delivery batches carry several envelopes). */
const MAX_RECEIVE_BYTES = 16 * 1024 * 1024;

/** What the session does with a connection's life. */
export interface ConnectionHooks {
  /** The relay welcomed a session: authenticated from here, before the status says connected. */
  readonly welcomed: (welcome: Welcome) => void;
  /** The status says connected: the outbox goes out on this stream. */
  readonly connected: (stream: SessionStream) => void;
  /** A frame from the relay that is not an answer to a request. Frames are handled in order. */
  readonly frame: (frame: NonNullable<SessionResponse["frame"]>) => Promise<void>;
  /** The session ended, however: what belongs to one session is dropped. */
  readonly ended: () => void;
  readonly emit: (event: SessionEvent) => void;
}

export interface RelayConnectionOptions {
  /** Who proves the session: the primary's identity, or a linked device (PROTOCOL.md §4.5). */
  readonly identity: PrivateIdentity | LocalIdentity;
  /** host:port, or the relays of one service in order (server-list.ts): the first that answers is used. */
  readonly server: string | readonly string[];
  readonly transport: RelayTransport;
  readonly keepalive: KeepalivePolicy | undefined;
  readonly reconnect: ReconnectPolicy | false;
  readonly beforeConnect: ((attempt: number) => Promise<void>) | undefined;
  readonly clock: () => number;
  readonly random: () => number;
  readonly log: Logger;
  /** The relay's send bucket, which room requests draw on like sends (§9). */
  readonly pacer: SendPacer;
  readonly hooks: ConnectionHooks;
  /** Hello.protocol_version (default 1): 2 speaks MLS (PROTOCOL.md §8.3, §14). */
  readonly protocolVersion?: 1 | 2;
}

/** The limits a Welcome advertises (PROTOCOL.md §13.3); a zero field keeps the default. */
export function limitsOf(l: NonNullable<Welcome["limits"]>): Limits {
  return {
    maxFrameBytes: l.maxFrameBytes || DEFAULT_LIMITS.maxFrameBytes,
    maxRecipients: l.maxRecipients || DEFAULT_LIMITS.maxRecipients,
    maxTextBytes: l.maxTextBytes || DEFAULT_LIMITS.maxTextBytes,
    retentionMs: l.retentionMs || DEFAULT_LIMITS.retentionMs,
    messagesPerSecond: l.messagesPerSecond || DEFAULT_LIMITS.messagesPerSecond,
    burst: l.burst || DEFAULT_LIMITS.burst,
  };
}

export class RelayConnection {
  private readonly me: string;
  private status: ConnectionStatus = { state: "connecting", attempt: 0 };
  private stream: SessionStream | undefined;
  private authenticated = false;
  private closed = false;
  private runPromise: Promise<void> | undefined;
  private wakeRetry: (() => void) | undefined;
  /** Why the previous attempt ended (a repeated "name taken" is not said again). */
  private lastEndReason: string | undefined;
  private connectedWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /** Failed attempts since the last session that reached Welcome, and the wait they earn. */
  private readonly backoff: ReconnectBackoff;
  private readonly requests = new PendingRequests();
  /** Which address of the list is in use, and where the next attempt goes. */
  private readonly rotation: ServerRotation;
  /** The address of the last session that reached Welcome (a move is said when it changes). */
  private lastWelcomed: string | undefined;

  constructor(private readonly o: RelayConnectionOptions) {
    this.me = o.identity.username;
    this.rotation = new ServerRotation(typeof o.server === "string" ? [o.server] : o.server);
    const policy = o.reconnect;
    this.backoff = new ReconnectBackoff((n) => (policy === false ? 0 : backoffDelay(n, policy, o.random)));
  }

  get connection(): ConnectionStatus {
    return this.status;
  }

  /** The address in use or being tried, its 1-based place in the list, and the list's length. */
  get relay(): { readonly address: string; readonly position: number; readonly of: number } {
    return { address: this.rotation.current, position: this.rotation.position, of: this.rotation.size };
  }

  /** True while a session is authenticated (between Welcome and its end). */
  get isAuthenticated(): boolean {
    return this.authenticated;
  }

  /** The stream of the authenticated session, if any. */
  get current(): SessionStream | undefined {
    return this.authenticated ? this.stream : undefined;
  }

  /** False once closed or failed for good. */
  alive(): boolean {
    return !this.closed && this.status.state !== "failed";
  }

  /** Starts connecting (and reconnecting) in the background. Idempotent. */
  start(): void {
    if (this.runPromise === undefined) this.runPromise = this.run();
  }

  /** Resolves once a session is authenticated; rejects when it fails for good or times out. */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this.status.state === "connected") return Promise.resolve();
    if (this.status.state === "failed") return Promise.reject(failedError(this.status));
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

  /** Resolves when a session is authenticated; rejects when the client fails for good or closes. */
  untilConnected(): Promise<void> {
    if (this.authenticated) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error("the session was closed"));
    if (this.status.state === "failed") return Promise.reject(failedError(this.status));
    return new Promise((resolve, reject) => this.connectedWaiters.push({ resolve, reject }));
  }

  /** Stops: ends the stream and the run loop, and answers every waiting request. */
  async close(): Promise<void> {
    this.closed = true;
    this.wakeRetry?.();
    this.stream?.close();
    try {
      await this.runPromise;
    } catch (e) {
      // run() handles its own errors; anything here is a bug worth a line in the log.
      this.o.log.error("session.run-failed", { reason: e instanceof Error ? e.message : String(e) });
    }
    this.requests.failAll("the session was closed");
  }

  /** /reconnect: connect now instead of after the backoff; says what it did. */
  reconnectNow(): Outcome<ReconnectStart> {
    if (this.closed) return { ok: false, error: { kind: "closed" } };
    switch (this.status.state) {
      case "connected":
        return { ok: false, error: { kind: "already-connected" } };
      case "failed":
        // The run loop gave up (e.g. another session took over): the user asks to try again.
        this.runPromise = this.run();
        return { ok: true, value: "connecting-again" };
      case "reconnecting":
        this.wakeRetry?.();
        return { ok: true, value: "reconnecting-now" };
      default:
        return { ok: true, value: "already-connecting" };
    }
  }

  setConnection(status: ConnectionStatus): void {
    this.status = status;
    this.o.hooks.emit({ type: "connection", status });
    if (status.state === "connected") {
      const waiters = this.connectedWaiters;
      this.connectedWaiters = [];
      for (const w of waiters) w.resolve();
    } else if (status.state === "failed" || status.state === "closed") {
      const waiters = this.connectedWaiters;
      this.connectedWaiters = [];
      for (const w of waiters) w.reject(status.state === "failed" ? failedError(status) : new Error("the session was closed"));
    }
  }

  /**
   * Ends the connection for good with this sentence (PROTOCOL.md §4.5: a linked device found
   * itself unlinked): the session closes, the sentence is said, and it never reconnects.
   */
  stopForGood(sentence: string): void {
    this.fatal = new FatalSessionError({ kind: "identity-refused", detail: sentence });
    this.stream?.close();
    this.wakeRetry?.();
  }

  private fatal: FatalSessionError | undefined;
  /** The most telling end of the current round of the list (what the status shows when it waits). */
  private roundCause: SessionEnd | undefined;
  /** The longest retry-after a relay of the current round asked for (0: none). */
  private roundRetryAfterMs = 0;

  private async run(): Promise<void> {
    while (!this.closed) {
      const attempt = this.backoff.attempt;
      this.setConnection({ state: "connecting", attempt });
      let cause: SessionEnd = { kind: "relay-closed" };
      try {
        if (this.fatal !== undefined) throw this.fatal;
        await this.o.beforeConnect?.(attempt);
        await this.runSession();
        if (this.fatal !== undefined) throw this.fatal;
      } catch (caught) {
        const e = this.fatal ?? caught;
        // This address can never work (its certificate changed, it is not a relay): skip it, said
        // once, while another address of the list remains (cluster-design.md §3).
        if (e instanceof FatalSessionError && this.fatal === undefined && PER_ADDRESS.has(e.end.kind) && this.rotation.skipCurrent(e.message)) {
          const skipped = this.rotation.current;
          this.o.log.warn("session.relay-skipped", { address: skipped, reason: e.message });
          // No `about`: the UI would word only the cause, and the line must say the relay is skipped.
          this.o.hooks.emit({ type: "notice", level: "warn", text: `Relay ${skipped} is skipped for this run: ${e.message}` });
          cause = e.end;
          this.lastEndReason = undefined;
        } else if (e instanceof FatalSessionError) {
          this.o.log.warn("session.fatal", { reason: e.message });
          // In the conversation too: the status line may be too narrow for the whole sentence.
          this.o.hooks.emit({ type: "notice", level: "error", text: e.message, about: { kind: "session-ended", cause: e.end } });
          this.setConnection({ state: "failed", reason: e.message, cause: e.end });
          return;
        } else {
          cause = sessionEndOf(e);
          const reason = describeSessionEnd(cause);
          this.o.log.info("session.ended", { reason, address: this.rotation.current });
          // Said once in the conversation too: the status line has little room for what to do.
          // A rate refusal (the relay's retry-after) is waited out before the next round.
          if (e instanceof RateLimitedError && e.retryAfterMs !== undefined) this.roundRetryAfterMs = Math.max(this.roundRetryAfterMs, e.retryAfterMs);
          if ((e instanceof NameTakenError || e instanceof RateLimitedError) && this.lastEndReason !== reason) {
            this.o.hooks.emit({ type: "notice", level: "error", text: e.message, about: { kind: "session-ended", cause } });
          }
          this.lastEndReason = reason;
        }
      } finally {
        this.stream?.close();
        this.stream = undefined;
        this.authenticated = false;
        this.o.hooks.ended();
        this.requests.failAll("the connection to the relay was lost");
      }
      if (this.closed) return;
      if (this.o.reconnect === false) {
        this.setConnection({ state: "failed", reason: describeSessionEnd(cause), cause });
        return;
      }
      // The next address of the list at once; only after a whole round failed is there a wait.
      if (this.roundCause === undefined || !SILENT.has(cause.kind) || SILENT.has(this.roundCause.kind)) this.roundCause = cause;
      const move = this.rotation.advance();
      if (!move.wait) {
        this.o.log.info("session.next-relay", { address: move.address });
        continue;
      }
      // Counted in rounds from the last session that reached Welcome, however it ended (backoff.ts).
      const next = this.backoff.next();
      // Not before the relay said it would take the attempt (PROTOCOL.md §9.3, retry-after).
      const retryAtMs = this.o.clock() + Math.max(next.delayMs, this.roundRetryAfterMs);
      this.roundRetryAfterMs = 0;
      // The round's most telling end: a relay's own answer (its storage is down, it is busy) says
      // more than an address of the list that did not answer at all (a relay that is gone).
      const round = this.roundCause;
      const told = round !== undefined && !SILENT.has(round.kind) && SILENT.has(cause.kind) ? round : cause;
      this.roundCause = undefined;
      this.setConnection({ state: "reconnecting", attempt: next.attempt, retryAtMs, reason: describeSessionEnd(told), cause: told });
      const sleep = sleepUntil(retryAtMs, this.o.clock);
      this.wakeRetry = sleep.wake;
      await sleep.done;
      this.wakeRetry = undefined;
    }
  }

  /** One stream from hello to its end. */
  private async runSession(): Promise<void> {
    const server = this.rotation.current;
    const channel = await openRelayChannel(this.o.transport, server, this.rotation.siblings(server));
    const stream = openSessionStream({
      address: server,
      maxReceiveBytes: MAX_RECEIVE_BYTES,
      credentials: channel.credentials,
      extraOptions: channel.options,
      ...(this.o.keepalive ? { keepalive: this.o.keepalive } : {}),
    });
    this.stream = stream;
    const frames = stream.frames[Symbol.asyncIterator]();
    const id = asLocalIdentity(this.o.identity);
    const handshakeTimer = setTimeout(() => stream.close(), HANDSHAKE_TIMEOUT_MS);
    try {
      const welcome = await authenticate(stream, frames, id, this.o.protocolVersion ?? 1, channel);
      clearTimeout(handshakeTimer);
      // Authenticated from here: my own directory entry shows me online.
      this.authenticated = true;
      this.backoff.welcomed();
      this.rotation.welcomed();
      this.roundCause = undefined;
      this.roundRetryAfterMs = 0;
      this.lastEndReason = undefined;
      // A move between relays of the list is one line, not an error: the session goes on.
      if (this.lastWelcomed !== undefined && this.lastWelcomed !== server) {
        this.o.log.info("session.moved", { address: server });
        this.o.hooks.emit({ type: "notice", level: "info", text: `moved to relay ${server}` });
      }
      this.lastWelcomed = server;
      this.o.hooks.welcomed(welcome);
    } catch (e) {
      clearTimeout(handshakeTimer);
      throw await handshakeFailure(e, channel, server, this.me);
    }
    this.setConnection({ state: "connected", sinceMs: this.o.clock() });
    try {
      this.o.hooks.connected(stream);
      for (;;) {
        const next = await frames.next();
        if (next.done) break;
        await this.onFrame(next.value);
      }
    } catch (e) {
      throw classifySessionError(e, this.me);
    }
  }

  /** Answers go to the request waiting for them; everything else to the session. */
  private async onFrame(f: SessionResponse): Promise<void> {
    const frame = f.frame;
    if (frame === undefined) return;
    switch (frame.$case) {
      case "roomList":
      case "memberList":
      case "keyList":
      // The MLS Delivery Service's answers (PROTOCOL.md §8.2): by request id too.
      case "keyPackageStatus":
      case "keyPackageList":
      case "groupInfoResult":
      case "commitResult":
      case "commitList":
      // Device lists (PROTOCOL.md §4.5): answers to Publish/FetchDeviceLists.
      case "deviceListResult":
      case "error":
        if (this.requests.answer(frame.value.requestId, frame)) return;
        break;
      default:
        break;
    }
    await this.o.hooks.frame(frame);
  }

  /** The room event about me in `room`: settles the join or leave waiting for it. */
  roomEvent(room: string, kind: "joined" | "left"): void {
    this.requests.roomEvent(room, kind);
  }

  /**
   * Sends a request frame and waits for its answer: a frame with its request id, or (join and
   * leave) the room event about me. A RequestError with the id becomes { ok: false }.
   */
  request(build: (requestId: number) => NonNullable<SessionRequest["frame"]>, room?: RoomWait): Promise<Outcome<ResponseFrame>> {
    const requestId = this.requests.newId();
    const frame = build(requestId);
    const stream = this.stream;
    if (!this.authenticated || !stream) return Promise.resolve({ ok: false, error: { kind: "not-connected" } });
    return new Promise((resolve) => {
      const finish = (o: Outcome<ResponseFrame>) => {
        clearTimeout(timer);
        this.requests.delete(requestId);
        resolve(o);
      };
      const timer = setTimeout(() => finish({ ok: false, error: { kind: "no-answer" } }), REQUEST_TIMEOUT_MS);
      const answered = (f: ResponseFrame): void => {
        // The session this request went on ended (failAll): a lost connection, not a refusal, so a
        // caller that retries on a new session (the v2 engine's outbox) keeps its message pending.
        if (f?.$case === "error" && this.stream !== stream) finish({ ok: false, error: { kind: "connection-lost" } });
        else if (f?.$case === "error") finish({ ok: false, error: refused(f.value.code, f.value.detail) });
        else finish({ ok: true, value: f });
      };
      this.requests.add(requestId, answered, timer, room);
      // Room requests draw on the relay's send bucket (§9): they wait for a token like sends do.
      // A PublishKeyPackages takes a token per 10 KeyPackages, a SendCommit, PublishGroupInfo or
      // RecreateRoom one per started 64 KiB of MLS bytes, as the relay counts them (§13.2,
      // writeTokens; the pacer caps them at its bucket's size).
      const tokens = writeTokens(frame, Number.MAX_SAFE_INTEGER);
      const turn = frame.$case === "lookupKeys" ? Promise.resolve() : this.o.pacer.acquire(() => this.stream === stream, tokens);
      turn.then(() => stream.send({ frame })).catch(() => finish({ ok: false, error: { kind: "connection-lost" } }));
    });
  }

  /**
   * Writes a frame that no request id answers (SendMls: its SendResult names the message id) on
   * the current session, after a token of the send bucket like every send. False when no session
   * is authenticated or the stream is lost meanwhile.
   */
  async sendFrame(frame: NonNullable<SessionRequest["frame"]>): Promise<boolean> {
    const stream = this.stream;
    if (!this.authenticated || !stream) return false;
    try {
      await this.o.pacer.acquire(() => this.stream === stream);
      if (this.stream !== stream || !this.authenticated) return false;
      await stream.send({ frame });
      return true;
    } catch {
      return false;
    }
  }

  /** One LookupKeys round trip, waiting for a connection first (KeyDirectory decides when, and retries). */
  async lookupKeys(usernames: string[]): Promise<Outcome<readonly DirectoryEntry[]>> {
    try {
      await this.untilConnected();
    } catch {
      // Closed, or failed for good: the directory stops asking (its alive() says so).
      return { ok: false, error: { kind: this.closed ? "closed" : "not-connected" } };
    }
    const answer = await this.request((requestId) => ({ $case: "lookupKeys", value: { requestId, usernames } }));
    if (!answer.ok) return answer;
    if (answer.value?.$case !== "keyList") return { ok: false, error: { kind: "unexpected-answer" } };
    return { ok: true, value: answer.value.value.entries };
  }
}

/** The rejection of a wait for a connection that failed for good: its cause as data (`end`). */
function failedError(status: Extract<ConnectionStatus, { state: "failed" }>): Error {
  return status.cause === undefined ? new Error(status.reason) : new FatalSessionError(status.cause);
}
