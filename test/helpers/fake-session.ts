// An in-memory ChatSession for UI tests. It records every call, lets a test emit any
// SessionEvent, and behaves like the real session where the UI can tell: send emits the own
// message as pending (synchronously, before returning) and refuses what the real one refuses
// (unknown users, key-changed peers, rooms I am not in, empty text); rooms, verify and trust
// keep plausible state and emit the same events.
import {
  dmIdFor,
  type ChatMessage,
  type MessageRef,
  type ChatSession,
  type ConnectionStatus,
  type MessageKind,
  type MessageState,
  type Outcome,
  type PeerTrust,
  type PeerView,
  type RoomListing,
  type RoomView,
  type SessionEvent,
  type SessionSnapshot,
  type TrustResult,
  type VerifyInfo,
} from "../../src/client/types.js";
import { refused, type ClientError, type ReconnectStart } from "../../src/client/errors.js";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";

export type FakeCall =
  | { readonly method: "send"; readonly conversationId: string; readonly text: string; readonly kind: MessageKind }
  | { readonly method: "retry"; readonly conversationId: string; readonly id: string }
  | { readonly method: "joinRoom" | "leaveRoom" | "members"; readonly room: string }
  | { readonly method: "listRooms" | "fingerprint" | "snapshot" | "close" }
  | { readonly method: "verifyInfo" | "verify" | "acceptNewKeys"; readonly username: string }
  | { readonly method: "trust"; readonly username: string; readonly groups: readonly string[] }
  | { readonly method: "forgetHistory"; readonly conversationId: string }
  | { readonly method: "reconnectNow" }
  | { readonly method: "olderHistory"; readonly conversationId: string; readonly beforeId: string | undefined; readonly beforeFrom: string | undefined; readonly limit: number }
  | { readonly method: "searchHistory"; readonly text: string }
  | { readonly method: "setAway"; readonly text: string | undefined }
  | { readonly method: "saveSetting"; readonly name: string; readonly value: string };

export interface FakeSessionOptions {
  readonly me?: string;
  readonly serverLabel?: string;
  /** Other users (me is added): names, or full views. */
  readonly peers?: readonly (string | Partial<PeerView> & { readonly username: string })[];
  /** Rooms that exist, with members (I am in those that list me). */
  readonly rooms?: Readonly<Record<string, readonly string[]>>;
  readonly connection?: ConnectionStatus;
  readonly now?: () => number;
}

interface Sent {
  readonly id: string;
  readonly conversationId: string;
  readonly text: string;
  readonly kind: MessageKind;
  state: MessageState;
}

const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
const err = (error: ClientError): Outcome<never> => ({ ok: false, error });

/** A deterministic 60-digit safety number for a pair of names (order-independent). */
export function fakeSafetyNumber(a: string, b: string, salt = ""): string {
  const seed = [a, b].sort().join("|") + salt;
  let digits = "";
  let h = 7;
  for (let i = 0; digits.length < 60; i++) {
    h = (h * 31 + (seed.charCodeAt(i % seed.length) || 1) + i) % 1_000_003;
    digits += String(h % 10);
  }
  return (digits.match(/\d{5}/g) ?? []).join(" ");
}

export class FakeSession implements ChatSession {
  readonly me: string;
  readonly serverLabel: string;
  readonly calls: FakeCall[] = [];
  /** Outgoing messages by id. */
  readonly sent = new Map<string, Sent>();
  closed = false;
  private connection: ConnectionStatus;
  private readonly peers = new Map<string, PeerView>();
  protected readonly rooms = new Map<string, string[]>();
  private readonly listeners = new Set<(event: SessionEvent) => void>();
  protected readonly now: () => number;
  private nextId = 1;
  /** The kept history older pages and /search read (oldest first), as a test sets it. */
  kept: ChatMessage[] = [];
  /** Kept UI settings by name. */
  readonly settings = new Map<string, string>();
  /** /away's text while away. */
  away: string | undefined;
  /** Set to make close() wait until the test resolves it. */
  closeGate: Promise<void> | undefined;

  constructor(options: FakeSessionOptions = {}) {
    this.me = options.me ?? "alice";
    this.serverLabel = options.serverLabel ?? "127.0.0.1:50051";
    this.now = options.now ?? Date.now;
    this.connection = options.connection ?? { state: "connected", sinceMs: this.now() };
    this.peers.set(this.me, { username: this.me, online: true, trust: "verified", you: true });
    for (const p of options.peers ?? []) {
      const view: PeerView = typeof p === "string"
        ? { username: p, online: true, trust: "unverified", you: false }
        : { online: true, trust: "unverified", you: false, ...p };
      this.peers.set(view.username, view);
    }
    for (const [room, members] of Object.entries(options.rooms ?? {})) this.rooms.set(room, [...members]);
  }

  // --- test controls -----------------------------------------------------------------------

  get listenerCount(): number {
    return this.listeners.size;
  }

  emit(event: SessionEvent): void {
    for (const l of [...this.listeners]) l(event);
  }

  callsOf<M extends FakeCall["method"]>(method: M): Extract<FakeCall, { method: M }>[] {
    return this.calls.filter((c): c is Extract<FakeCall, { method: M }> => c.method === method);
  }

  setConnection(status: ConnectionStatus): void {
    this.connection = status;
    this.emit({ type: "connection", status });
  }

  /** Adds or changes a peer and emits the peer event. */
  setPeer(peer: Partial<PeerView> & { readonly username: string }): PeerView {
    const view: PeerView = { online: true, trust: "unverified", you: false, ...this.peers.get(peer.username), ...peer };
    this.peers.set(view.username, view);
    this.emit({ type: "peer", peer: view });
    return view;
  }

  /** An incoming message from `from` (into the DM with them unless a conversation is given). */
  receive(from: string, text: string, extra: Partial<Omit<ChatMessage, "from" | "text" | "own">> = {}): ChatMessage {
    const now = this.now();
    const message: ChatMessage = {
      id: this.newId(),
      conversationId: dmIdFor(this.me, from),
      kind: "text",
      sentAtMs: now,
      receivedAtMs: now,
      ...extra,
      from,
      text,
      own: false,
    };
    this.emit({ type: "message", message });
    return message;
  }

  /** The relay accepted one of my messages. */
  accept(id: string, queuedFor?: readonly string[]): void {
    const sent = this.mustFind(id);
    sent.state = "accepted";
    this.emit({ type: "message-state", conversationId: sent.conversationId, id, state: "accepted", ...(queuedFor ? { queuedFor } : {}) });
  }

  /** One of my messages failed. */
  fail(id: string, failure: string): void {
    const sent = this.mustFind(id);
    sent.state = "failed";
    this.emit({ type: "message-state", conversationId: sent.conversationId, id, state: "failed", failure });
  }

  /** A peer's keys changed: sending to them is blocked until trust(). */
  changeKeys(username: string, held = 1): void {
    this.setPeer({ username, trust: "key-changed" });
    this.emit({ type: "key-change", username, conversationId: dmIdFor(this.me, username), held });
  }

  lastSent(): Sent {
    const all = [...this.sent.values()];
    const last = all.at(-1);
    if (!last) throw new Error("nothing was sent");
    return last;
  }

  // --- ChatSession -------------------------------------------------------------------------

  subscribe(listener: (event: SessionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  snapshot(): SessionSnapshot {
    this.calls.push({ method: "snapshot" });
    return { connection: this.connection, peers: [...this.peers.values()], rooms: this.myRooms() };
  }

  send(conversationId: string, text: string, kind: MessageKind = "text"): Outcome<{ readonly id: string }> {
    this.calls.push({ method: "send", conversationId, text, kind });
    if (this.closed) return err({ kind: "closed" });
    if (text.trim() === "") return err({ kind: "empty-message" });
    if (conversationId.startsWith("dm:")) {
      const peer = conversationId.split(":").find((n, i) => i > 0 && n !== this.me);
      const view = peer === undefined ? undefined : this.peers.get(peer);
      if (peer === undefined || view === undefined) return err({ kind: "unknown-user", username: peer ?? "that user" });
      if (view.trust === "key-changed") return err({ kind: "key-changed", username: peer });
    } else if (conversationId.startsWith("#")) {
      if (!this.rooms.get(conversationId)?.includes(this.me)) return err({ kind: "not-a-member", room: conversationId, action: "send" });
    } else if (conversationId !== "lobby") {
      return err({ kind: "unknown-conversation", conversationId });
    }
    const id = this.newId();
    this.sent.set(id, { id, conversationId, text, kind, state: "pending" });
    const now = this.now();
    this.emit({
      type: "message",
      message: { id, conversationId, from: this.me, kind, text, sentAtMs: now, receivedAtMs: now, own: true, state: "pending" },
    });
    return ok({ id });
  }

  retry(conversationId: string, id: string): Outcome<{ readonly id: string }> {
    this.calls.push({ method: "retry", conversationId, id });
    const failed = this.sent.get(id);
    if (failed === undefined || failed.state !== "failed" || failed.conversationId !== conversationId) {
      return err({ kind: "not-failed" });
    }
    return this.send(conversationId, failed.text, failed.kind);
  }

  async joinRoom(room: string): Promise<Outcome<RoomView>> {
    this.calls.push({ method: "joinRoom", room });
    const members = this.rooms.get(room) ?? [];
    if (!members.includes(this.me)) members.push(this.me);
    members.sort();
    this.rooms.set(room, members);
    this.emit({ type: "room-event", room, kind: "joined", username: this.me, members: [...members], atMs: this.now() });
    this.emit({ type: "rooms", rooms: this.myRooms() });
    return ok({ room, members: [...members] });
  }

  async leaveRoom(room: string): Promise<Outcome> {
    this.calls.push({ method: "leaveRoom", room });
    const members = this.rooms.get(room);
    if (!members?.includes(this.me)) return err({ kind: "not-a-member", room, action: "leave" });
    const rest = members.filter((m) => m !== this.me);
    this.rooms.set(room, rest);
    this.emit({ type: "room-event", room, kind: "left", username: this.me, members: rest, atMs: this.now() });
    this.emit({ type: "rooms", rooms: this.myRooms() });
    return ok(undefined);
  }

  async listRooms(): Promise<Outcome<RoomListing>> {
    this.calls.push({ method: "listRooms" });
    const all = [...this.rooms.entries()].filter(([, m]) => m.length > 0).map(([room, m]) => ({ room, memberCount: m.length }));
    return ok({ joined: this.myRooms(), all });
  }

  async members(room: string): Promise<Outcome<readonly string[]>> {
    this.calls.push({ method: "members", room });
    const members = this.rooms.get(room);
    return members && members.length > 0 ? ok([...members]) : err(refused(ErrorCode.ERROR_CODE_NOT_A_MEMBER, `no room named ${room}`));
  }

  fingerprint(): string {
    this.calls.push({ method: "fingerprint" });
    return "signing key 1a2b 3c4d 5e6f 7a8b · encryption key 9c0d 1e2f 3a4b 5c6d";
  }

  verifyInfo(username: string): Outcome<VerifyInfo> {
    this.calls.push({ method: "verifyInfo", username });
    if (username === this.me) return err({ kind: "self", action: "verify" });
    const peer = this.peers.get(username);
    if (peer === undefined) return err({ kind: "keys-not-fetched", username, why: "not-pinned" });
    const info: VerifyInfo = { username, trust: peer.trust, safetyNumber: fakeSafetyNumber(this.me, username), confirmGroups: fakeConfirmGroups(username, peer.trust) };
    return ok(peer.trust === "key-changed" ? { ...info, pendingSafetyNumber: fakeSafetyNumber(this.me, username, "new") } : info);
  }

  async verify(username: string): Promise<Outcome<VerifyInfo>> {
    this.calls.push({ method: "verify", username });
    return this.verifyInfo(username);
  }

  /** Like the real one: the groups must be the ones verifyInfo names for the keys now. */
  trust(username: string, groups: readonly string[]): Outcome<TrustResult> {
    this.calls.push({ method: "trust", username, groups });
    if (username === this.me) return err({ kind: "self", action: "trust" });
    const peer = this.peers.get(username);
    if (peer === undefined) return err({ kind: "keys-not-fetched", username, why: "not-pinned" });
    if (groups.join(" ") !== fakeConfirmGroups(username, peer.trust).join(" ")) {
      return err({ kind: "digits-mismatch", username, newKeys: false });
    }
    const hadChange = peer.trust === "key-changed";
    this.setPeer({ username, trust: "verified" satisfies PeerTrust });
    return ok({ username, verified: true, keyChange: hadChange, shown: 0, discarded: 0 });
  }

  acceptNewKeys(username: string): Outcome<TrustResult> {
    this.calls.push({ method: "acceptNewKeys", username });
    const peer = this.peers.get(username);
    if (peer?.trust !== "key-changed") return err({ kind: "no-key-change", username });
    this.setPeer({ username, trust: "unverified" satisfies PeerTrust });
    return ok({ username, verified: false, keyChange: true, shown: 0, discarded: 0 });
  }

  forgetHistory(conversationId: string): void {
    this.calls.push({ method: "forgetHistory", conversationId });
  }

  reconnectNow(): Outcome<ReconnectStart> {
    this.calls.push({ method: "reconnectNow" });
    return this.connection.state === "connected" ? err({ kind: "already-connected" }) : ok("reconnecting-now");
  }

  olderHistory(conversationId: string, before: MessageRef | undefined, limit: number): readonly ChatMessage[] {
    const beforeId = before?.id;
    this.calls.push({ method: "olderHistory", conversationId, beforeId, beforeFrom: before?.from, limit });
    const mine = this.kept.filter((m) => m.conversationId === conversationId);
    const at = (m: ChatMessage) => m.id === beforeId && m.from === before?.from;
    const end = before === undefined ? mine.length : Math.max(0, mine.findIndex(at));
    const stop = before !== undefined && !mine.some(at) ? mine.length : end;
    return mine.slice(Math.max(0, stop - limit), stop);
  }

  searchHistory(text: string): readonly ChatMessage[] {
    this.calls.push({ method: "searchHistory", text });
    return this.kept.filter((m) => m.text.toLowerCase().includes(text.toLowerCase()));
  }

  setAway(text: string | undefined): void {
    this.calls.push({ method: "setAway", text });
    this.away = text;
  }

  loadSetting(name: string): string | undefined {
    return this.settings.get(name);
  }

  saveSetting(name: string, value: string): void {
    this.calls.push({ method: "saveSetting", name, value });
    this.settings.set(name, value);
  }

  async close(): Promise<void> {
    this.calls.push({ method: "close" });
    if (this.closed) return;
    this.closed = true;
    await this.closeGate;
    this.setConnection({ state: "closed" });
  }

  // --- internals ---------------------------------------------------------------------------

  private myRooms(): RoomView[] {
    return [...this.rooms.entries()]
      .filter(([, members]) => members.includes(this.me))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([room, members]) => ({ room, members: [...members] }));
  }

  private newId(): string {
    return (this.nextId++).toString(16).padStart(32, "0");
  }

  private mustFind(id: string): Sent {
    const sent = this.sent.get(id);
    if (!sent) throw new Error(`no sent message ${id}`);
    return sent;
  }
}

/** The groups the fake's /verify names: different for a changed key. */
export function fakeConfirmGroups(username: string, trust: PeerTrust): string[] {
  const seed = [...`${username}${trust === "key-changed" ? "/new" : ""}`].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 100000, 7);
  return [0, 1, 2].map((i) => String((seed * (i + 3) + 12345 * i) % 100000).padStart(5, "0"));
}
