// The chat session over grpc-js, as the UI sees it (the ChatSession interface in types.ts): a
// facade over the parts that keeps none of their logic (client-wiring.ts builds and wires them).
// The parts, one concern each:
//   relay-connection.ts  connect, handshake, reconnect with backoff, requests and their answers
//   inbox.ts             open what arrives (PROTOCOL.md Appendix A.3), hold, release, ack, caught-up
//   outbox.ts            check, seal, keep in the durable outbox, send, settle, retry
//   rooms.ts             the rooms I am in, join, leave, list, members
//   trust-decisions.ts   /verify, /trust, /accept (§6)
//   key-directory.ts     presence, key lookups and pins; history.ts the history at rest
//   client-devices.ts    device lists, /devices, /unlink, /link (§4.5, §4.6)
//   relay-frames.ts      the frames the relay sends unasked, to the part each is for
// No React here.
import type { SessionResponse, Welcome } from "../gen/securechat/v1/chat.js";
import { DEFAULT_LIMITS, type Limits } from "../protocol/limits.js";
import type { DeviceEntry, VerifiedDeviceList } from "../protocol/devices.js";
import type { ClientDevices } from "./client-devices.js";
import { wireClient, type ChatClientOptions } from "./client-wiring.js";
import type { DeviceDirectory } from "./devices-api.js";
import type { LocalIdentity } from "./local-identity.js";
import { OwnDevices, type DeviceView } from "./own-devices.js";
import { nullLogger, type Logger } from "../protocol/log.js";
import { parseConversationId } from "../protocol/names.js";
import { describeNotice, type ReconnectStart } from "./errors.js";
import { relayFrame } from "./relay-frames.js";
import { MessageHistory } from "./history.js";
import { Inbox } from "./inbox.js";
import { KeyDirectory } from "./key-directory.js";
import { MlsSession } from "./mls/session.js";
import { Outbox } from "./outbox.js";
import type { V1OutboxMoved } from "./outbox-upgrade.js";
import { limitsOf, RelayConnection } from "./relay-connection.js";
import type { LinkOutcome } from "./linking.js";
import { Rooms } from "./rooms.js";
import type { ClientStateStore } from "./state-store.js";
import { TrustDecisions } from "./trust-decisions.js";
import type { TrustStore } from "./trust-store.js";
import type {
  BacklogItem, ChatMessage, ChatSession, MessageKind, MessageRef, Outcome, RoomListing, RoomView, SessionEvent, SessionSnapshot, TrustResult, VerifyInfo,
} from "./types.js";

export { backoffDelay, DEFAULT_RECONNECT, type ReconnectPolicy } from "./backoff.js";
export { CLIENT_VERSION } from "./relay-connection.js";
export { describeRefusal } from "./errors.js";

export type { ChatClientOptions } from "./client-wiring.js";

export class ChatClient implements ChatSession {
  readonly me: string;
  /** The status line's single-relay label (a list of relays is named by the one in use). */
  private readonly fixedLabel: string | undefined;

  private readonly trustStore: TrustStore;
  private readonly state: ClientStateStore;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly listeners = new Set<(e: SessionEvent) => void>();
  private closed = false;
  /** The relay's limits, from the last Welcome (defaults until then). */
  private limits: Limits = DEFAULT_LIMITS;
  /** What the screen shows again at the next start (undefined with history off). */
  private readonly history: MessageHistory | undefined;
  /** Unsubscribes the history from the events (when closing starts). */
  private readonly stopRecording: () => void;
  private readonly connection: RelayConnection;
  /** Presence, key tags and key lookups (pinning happens there, in the trust store). */
  private readonly directory: KeyDirectory;
  private readonly rooms: Rooms;
  private readonly inbox: Inbox;
  private readonly outbox: Outbox;
  private readonly decisions: TrustDecisions;
  /** /away: the text of the automatic reply, and who has had it since it was set. */
  private away: { text: string; answered: Set<string> } | undefined;
  /** Protocol v2: conversations are MLS groups (mls/session.ts); undefined in v1. */
  private readonly mls: MlsSession | undefined;
  /** Protocol v2: what was moved from the v1 outbox at start (PROTOCOL.md §14); undefined in v1. */
  readonly upgradedOutbox: V1OutboxMoved | undefined;
  /** v2: my messages shown failed from the history at start (before this run), for /retry. */
  private readonly failedBefore = new Map<string, ChatMessage>();
  /** Protocol v2 only (absent in v1): the room's creator removes a member; every member sees the line. */
  readonly kick?: (room: string, username: string) => Promise<Outcome>;
  /** Protocol v2 only (absent in v1): a member adds someone to a room from one of their KeyPackages. */
  readonly invite?: (room: string, username: string) => Promise<Outcome>;
  /** Protocol v2 only (absent in v1): several users added to a room at once (commits that fit a frame). */
  readonly inviteMany?: (room: string, usernames: readonly string[]) => Promise<Outcome<{ readonly commits: number }>>;
  /** Who this client is: the primary, or a linked device (PROTOCOL.md §4.5). */
  readonly local: LocalIdentity;
  /** Protocol v2: every user's verified, pinned device list (PROTOCOL.md §4.5); the MLS engine listens to it. */
  readonly deviceDirectory: DeviceDirectory | undefined;
  private readonly ownDevices: OwnDevices | undefined;
  /** My devices and linking (client-devices.ts). */
  private readonly devs: ClientDevices;

  /** How the status line names the relay: the one in use, "b:50051 (2 of 2)" for a list. */
  get serverLabel(): string {
    if (this.fixedLabel !== undefined) return this.fixedLabel;
    const r = this.connection.relay;
    return `${r.address} (${r.position} of ${r.of})`;
  }

  constructor(o: ChatClientOptions) {
    this.trustStore = o.trust;
    this.state = o.state;
    this.log = o.logger ?? nullLogger;
    // The parts and their wiring: client-wiring.ts.
    const p = wireClient(o, {
      emit: (e) => this.emit(e),
      limits: () => this.limits,
      subscribe: (listener) => this.subscribe(listener),
      onWelcome: (w) => this.onWelcome(w),
      onFrame: (f) => this.onFrame(f),
      answerWhileAway: (conversationId, sender, kind) => this.answerWhileAway(conversationId, sender, kind),
    });
    this.local = p.local;
    this.me = p.me;
    this.fixedLabel = p.fixedLabel;
    this.clock = p.clock;
    this.history = p.history;
    this.stopRecording = p.stopRecording;
    this.connection = p.connection;
    this.rooms = p.rooms;
    this.directory = p.directory;
    this.inbox = p.inbox;
    this.outbox = p.outbox;
    this.devs = p.devs;
    this.deviceDirectory = this.devs.deviceDirectory;
    this.ownDevices = this.devs.ownDevices;
    this.upgradedOutbox = p.upgradedOutbox;
    this.mls = p.mls;
    if (this.mls !== undefined) {
      const engine = this.mls.engine;
      this.kick = (room, username) => engine.kick(room, username);
      this.invite = (room, username) => engine.invite(room, username);
      this.inviteMany = (room, usernames) => engine.inviteMany(room, usernames);
    }
    this.decisions = p.decisions;
  }

  // --- lifecycle ---------------------------------------------------------------------------

  /** Starts connecting (and reconnecting) in the background. Idempotent. */
  start(): void {
    // A linked device that knows it was unlinked (its kept list) does not connect (PROTOCOL.md §4.5).
    const unlinked = this.ownDevices?.unlinkedAtStart();
    if (unlinked !== undefined) this.connection.stopForGood(unlinked);
    this.connection.start();
  }

  /** Resolves once a session is authenticated; rejects when it fails for good or times out. */
  waitConnected(timeoutMs = 30_000): Promise<void> {
    return this.connection.waitConnected(timeoutMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopRecording();
    await this.connection.close();
    await this.mls?.close();
    // Messages sent just before closing are sealed into the outbox (sent at the next start).
    await this.outbox.drain();
    this.connection.setConnection({ state: "closed" });
    await this.trustStore.flush();
    // Older history goes at the end of a session, not at the start where it would delay the screen.
    this.history?.trim();
    this.state.close();
  }

  // --- devices (PROTOCOL.md §4.5) -----------------------------------------------------------

  /** My devices (PROTOCOL.md §4.5), refreshed from the relay: name, id, primary, this one, online or last seen, added. */
  async devices(): Promise<Outcome<DeviceView[]>> {
    return this.devs.devices();
  }

  /** Unlinks one of my devices by name or id prefix (primary only); client-devices.ts. */
  async unlink(which: string, o: { readonly check?: boolean } = {}): Promise<Outcome<{ readonly name: string; readonly deviceId: string; readonly version: number }>> {
    return this.devs.unlink(which, o);
  }

  /** Adds a linked device to my list (primary only; the end of linking, PROTOCOL.md §4.6 step 3). */
  async addDevice(entry: DeviceEntry): Promise<Outcome<VerifiedDeviceList>> {
    return this.devs.addDevice(entry);
  }

  /** My newest verified device list, if any. */
  ownDeviceList(): VerifiedDeviceList | undefined {
    return this.devs.ownDeviceList();
  }

  /** Links a new device (PROTOCOL.md §4.6) from this primary; client-devices.ts. Never throws. */
  async linkDevice(code: string, confirm: (sas: string, deviceName: string) => Promise<boolean>, signal?: AbortSignal): Promise<LinkOutcome> {
    return this.devs.linkDevice(code, confirm, signal);
  }

  reconnectNow(): Outcome<ReconnectStart> {
    return this.connection.reconnectNow();
  }

  // --- what the relay says -----------------------------------------------------------------

  private onWelcome(w: Welcome): void {
    if (w.limits) this.limits = limitsOf(w.limits);
    this.directory.reset();
    for (const entry of w.directory) this.directory.observeLight(entry, false);
    // v2: my rooms are the MLS groups I hold (the engine); the relay's list is not taken as membership.
    if (this.mls === undefined) this.rooms.welcome(w.rooms);
    this.state.prune(this.clock());
    this.emit({ type: "directory", peers: this.directory.peerViews() });
    this.emit({ type: "rooms", rooms: this.roomViews() });
    this.log.info("session.welcome", { users: w.directory.length, rooms: w.rooms.length, queued: w.queued });
    this.inbox.welcome(w.queued);
    this.directory.prefetch(this.directory.othersOnline());
  }

  /** Every frame that is not an answer to a request: to the part it is for (relay-frames.ts). */
  private onFrame(frame: NonNullable<SessionResponse["frame"]>): Promise<void> {
    const { mls, local, log, connection, inbox, outbox, directory, devs, rooms } = this;
    return relayFrame({ mls, local, log, connection, inbox, outbox, directory, devs, rooms, emit: (e) => this.emit(e) }, frame);
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
    if (!sent.ok) this.log.info("away.reply-failed", { reason: sent.error.kind });
  }

  // --- ChatSession -------------------------------------------------------------------------

  /** Shows a line from the application itself (e.g. "now hosting the relay"). */
  announce(level: "info" | "warn" | "error", text: string): void {
    this.emit({ type: "notice", level, text });
  }

  subscribe(listener: (event: SessionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  snapshot(): SessionSnapshot {
    return { connection: this.connection.connection, peers: this.directory.peerViews(), rooms: this.roomViews() };
  }

  /** The rooms I am in: v1 the relay's list, v2 the MLS groups I am a member of. */
  private roomViews(): RoomView[] {
    return this.mls?.engine.rooms() ?? [...this.rooms.views()];
  }

  /**
   * What to show at start: the kept history (newest messages of each conversation, my pending
   * ones included), or with history off, my messages still waiting for the relay.
   */
  backlog(): ChatMessage[] {
    return this.backlogLines().filter((m): m is ChatMessage => !("type" in m));
  }

  /** backlog() with the kept membership lines of v2 conversations in place (what chat-tui shows). */
  backlogLines(): BacklogItem[] {
    const pending = [...this.outbox.pendingMessages(), ...(this.mls?.pendingMessages() ?? [])];
    if (this.history === undefined) return pending;
    return this.history.backlog(pending, (id) => this.knownPeerOf(id), (m) => (this.mls === undefined ? this.outbox.rememberFailed(m) : this.failedBefore.set(m.id, m)));
  }

  /** False for a DM whose other member has no pin here; true for every other conversation. */
  private knownPeerOf(conversationId: string): boolean {
    const conv = parseConversationId(conversationId);
    if (conv?.kind !== "dm") return true;
    const peer = conv.members.find((n) => n !== this.me) ?? this.me;
    return peer === this.me || this.trustStore.get(peer) !== undefined;
  }

  /** Messages sealed but not yet accepted (e.g. from before a restart), oldest first; in v2 those the engine keeps pending too. */
  pendingMessages(): ChatMessage[] {
    return [...this.outbox.pendingMessages(), ...(this.mls?.pendingMessages() ?? [])];
  }

  send(conversationId: string, text: string, kind: MessageKind = "text"): Outcome<{ id: string }> {
    if (this.mls !== undefined) return this.sendV2(this.mls, conversationId, text, kind);
    return this.outbox.send(conversationId, text, kind);
  }

  /**
   * Protocol v2: what v1's outbox refuses at once is refused at once here too, before the engine
   * shows anything pending (a text over the relay's limit or not well-formed; a DM to a peer whose
   * key change waits for /trust, PROTOCOL.md §6), and a lobby line nobody else online will read is
   * said so, as in v1.
   */
  private sendV2(mls: MlsSession, conversationId: string, text: string, kind: MessageKind): Outcome<{ id: string }> {
    const conv = parseConversationId(conversationId);
    if (conv !== undefined && typeof text === "string") {
      const normalized = text.replace(/\r\n?/g, "\n");
      if (normalized.trim().length > 0) {
        if (!normalized.isWellFormed()) return { ok: false, error: { kind: "invalid-characters" } };
        const bytes = Buffer.byteLength(normalized, "utf8");
        if (bytes > this.limits.maxTextBytes) return { ok: false, error: { kind: "too-large", bytes, max: this.limits.maxTextBytes } };
      }
      const peer = conv.kind === "dm" && conv.members.includes(this.me) ? (conv.members.find((n) => n !== this.me) ?? this.me) : undefined;
      if (peer !== undefined && this.trustStore.get(peer)?.pending) return { ok: false, error: { kind: "key-changed", username: peer } };
    }
    const sent = mls.engine.send(conversationId, text, kind);
    if (sent.ok && conv?.kind === "lobby" && !this.directory.peerViews().some((p) => p.username !== this.me && p.online)) {
      const about = { kind: "nobody-online", connected: this.connection.isAuthenticated } as const;
      this.emit({ type: "notice", level: "warn", conversationId: conv.id, text: describeNotice(about), about });
    }
    return sent;
  }

  /** §11.3: read up to this message here: a read marker for my other devices (protocol v2 only). */
  markRead(conversationId: string, message: { readonly from: string; readonly id: string }): void {
    this.mls?.engine.markRead(conversationId, message);
  }

  retry(conversationId: string, id: string): Outcome<{ id: string }> {
    if (this.mls !== undefined) {
      const r = this.mls.engine.retry(conversationId, id);
      const before = this.failedBefore.get(id);
      if (r.ok || r.error.kind !== "not-failed" || before === undefined || before.conversationId !== conversationId) return r;
      // Failed before a restart (shown from the history): a new message with the same text, as v1.
      const again = this.sendV2(this.mls, conversationId, before.text, before.kind);
      if (again.ok) {
        this.failedBefore.delete(id);
        this.history?.remove(id);
      }
      return again;
    }
    return this.outbox.retry(conversationId, id);
  }

  joinRoom(room: string): Promise<Outcome<RoomView>> {
    if (this.mls !== undefined) return this.mls.engine.joinRoom(room);
    return this.rooms.join(room);
  }

  leaveRoom(room: string): Promise<Outcome> {
    if (this.mls !== undefined) return this.mls.engine.leaveRoom(room);
    return this.rooms.leave(room);
  }

  /**
   * v1: the relay's room table. v2: `all` is every room's MLS group on the relay with its member
   * count by the relay's record (ListRooms, PROTOCOL.md §8.2); `joined` the rooms whose
   * group I hold (members from the tree), never the relay's word.
   */
  async listRooms(): Promise<Outcome<RoomListing>> {
    if (this.mls === undefined) return this.rooms.list();
    const listed = await this.rooms.list();
    if (!listed.ok) return listed;
    return { ok: true, value: { joined: this.mls.engine.rooms(), all: listed.value.all } };
  }

  members(room: string): Promise<Outcome<readonly string[]>> {
    if (this.mls !== undefined) {
      const m = this.mls.engine.members(room);
      return Promise.resolve(m === undefined ? { ok: false, error: { kind: "not-a-member", room, action: "send" } } : { ok: true, value: m });
    }
    return this.rooms.members(room);
  }

  fingerprint(): string {
    return this.decisions.fingerprint();
  }

  verifyInfo(username: string): Outcome<VerifyInfo> {
    return this.decisions.verifyInfo(username);
  }

  verify(username: string): Promise<Outcome<VerifyInfo>> {
    return this.decisions.verify(username);
  }

  trust(username: string, groups: readonly string[]): Outcome<TrustResult> {
    return this.decisions.trust(username, groups);
  }

  acceptNewKeys(username: string): Outcome<TrustResult> {
    return this.decisions.acceptNewKeys(username);
  }

  olderHistory(conversationId: string, before: MessageRef | undefined, limit: number): readonly ChatMessage[] {
    return this.history?.page(conversationId, before, limit) ?? [];
  }

  searchHistory(text: string): readonly ChatMessage[] {
    return this.history?.search(text) ?? [];
  }

  /** Kept messages the last backlog() could not open (sealed under another key, or damaged). */
  unreadableHistory(): number {
    return this.history?.unreadable ?? 0;
  }

  /** Forgets a conversation's history on this machine (the relay keeps none). */
  forgetHistory(conversationId: string): void {
    this.history?.forget(conversationId);
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

  private emit(e: SessionEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        this.log.error("listener.failed", { event: e.type, reason: (err as Error).message });
      }
    }
  }
}
