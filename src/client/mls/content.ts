// The content layer of protocol v2 (proto/PROTOCOL.md §10, §11): what is inside each MLS
// application message, around the text. It implements ContentLayer (content-api.ts) for the
// conversation engine, which owns the MLS groups and hands this layer plaintext bytes.
//
// - seal: v1's kinds and limits, a fresh message id, my clock, `prev` (my per-group chain) and
//   `seen` (the last message I opened from each member: only the entries that changed since my
//   previous message in this group, so a message costs what I heard since, not the room's size),
//   `settled` (my newest message here whose acceptance was recorded: §11.1).
// - open: strict decoding (app-data.ts) bound to the conversation, the group and the sender
//   MLS authenticated; the sender's chain (gap); duplicate ids (redeliveries); the text
//   sanitised for the terminal; what the sender's `seen` says of my messages: confirmed, or lost
//   when their message names as settled one of theirs that reached me after mine was accepted,
//   without naming mine (§11.1, per member): never for a reply sealed before mine could arrive.
// - the update policy of §10, and persistence of all of it in the state db (content-store.ts).
// The member view (the records of each member's devices, their recent messages, and what their
// messages say of mine) is in content-peers.ts.
import { randomBytes } from "node:crypto";
import { DEFAULT_LIMITS } from "../../protocol/limits.js";
import type { Logger } from "../../protocol/log.js";
import {
  APP_SEEN_DEVICES_MAX, APP_TEXT_MAX, APP_VIEWS_MAX, MESSAGE_ID_BYTES, appHash, chainGap, decodeAppData, deviceTag, encodeAppData, ZERO_APP_HASH,
  type AppEpochView, type AppKind, type AppReadRef, type AppSeen,
} from "../../protocol/mls/app-data.js";
import { MlsProtocolError } from "../../protocol/mls/errors.js";
import { conversationOfGroupId } from "../../protocol/mls/group-id.js";
import { dmPeer, isValidUsername, parseConversationId } from "../../protocol/names.js";
import { sanitizeText } from "../../protocol/sanitize.js";
import type { ClientError } from "../errors.js";
import type { ClientStateStore } from "../state-store.js";
import type { ContentLayer, MemberLeaf, OpenedContent, OwnDeliveryChange, SealedContent } from "./content-api.js";
import {
  atBytes, atOf, badArgument, byUserDevice, deliveries, headsOf, keyOf, mineIn, newPeer, NO_CHANGE, NO_DEVICE, peerFor, recentOf, takeMembers,
  type ConvState, type Peer, type PeerContext, type Sent,
} from "./content-peers.js";
import { ContentStore } from "./content-store.js";
import { RoomEpochViews } from "./content-views.js";

/** §10: commit an update after this many application messages sent in a group since my last commit… */
export const UPDATE_AFTER_MESSAGES = 100;
/** …or when my last commit there is older than this (which also covers coming back after more than 24 h offline). */
export const UPDATE_AFTER_MS = 24 * 60 * 60 * 1000;
/** Own messages per conversation watched for acknowledgement; older ones are no longer watched. */
export const CONTENT_SENT_MAX = 256;
/** Message ids remembered per conversation to tell redeliveries (the newest are kept). */
export const CONTENT_IDS_MAX = 4096;
/**
 * A sender's recent messages kept per peer to judge a late one (§11.1 gap): a message the relay
 * delayed by up to this many of the sender's later ones is judged against its real predecessor.
 */
export const CONTENT_RECENT_MAX = 8;

/** Bad input to seal, as the client's error data (the engine returns it to its caller). */
export class ContentInputError extends Error {
  readonly error: ClientError;
  constructor(error: ClientError, message: string) {
    super(message);
    this.name = "ContentInputError";
    this.error = error;
  }
}

export interface ContentLayerOptions {
  /** My username (the sender MLS authenticates for my messages). */
  readonly me: string;
  /** Where the state lives: a ContentStore over the state db's handle (ClientStateStore.database). In memory when omitted. */
  readonly store?: ContentStore;
  /** The time a group is first seen, which starts its update clock (§10); Date.now by default. */
  readonly clock?: () => number;
  /** Largest text in UTF-8 bytes (the relay's limit; v1's 64 KiB by default, never above APP_TEXT_MAX). */
  readonly maxTextBytes?: number;
  readonly log?: Logger;
}

/** The content layer of `me` over the client's state db (`<user>_state.db`), as chat-client would make it. */
export function contentLayerOver(state: ClientStateStore, me: string, o: Omit<ContentLayerOptions, "me" | "store"> = {}): MlsContentLayer {
  return new MlsContentLayer({ ...o, me, store: new ContentStore(state.database) });
}

const UNBOUND = Buffer.alloc(0);

function checkTime(nowMs: number): void {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw badArgument("the time must be a non-negative integer of milliseconds");
}

export class MlsContentLayer implements ContentLayer {
  private readonly me: string;
  private readonly store: ContentStore;
  private readonly clock: () => number;
  private readonly maxTextBytes: number;
  private readonly log: Logger | undefined;
  private readonly convs = new Map<string, ConvState>();
  /** §12: my views of my rooms (only rooms whose group the engine holds: bounded by my groups). */
  private readonly views = new RoomEpochViews();
  /** deviceTag of this client's MLS signature key (thisDevice); undefined until told. */
  private myTag: Buffer | undefined;

  constructor(o: ContentLayerOptions) {
    if (!isValidUsername(o.me)) throw badArgument("the content layer needs a valid username");
    this.me = o.me;
    this.store = o.store ?? ContentStore.inMemory();
    this.clock = o.clock ?? Date.now;
    this.maxTextBytes = Math.min(o.maxTextBytes ?? DEFAULT_LIMITS.maxTextBytes, APP_TEXT_MAX);
    this.log = o.log;
  }

  /**
   * Runs fn in one transaction of the state db: a caller that keeps its history in the same file
   * opens and stores a message atomically, so a crash in between cannot leave the id seen (a
   * redelivery then flagged as duplicate) with the message missing from the history.
   */
  runAtomically<T>(fn: () => T): T {
    return this.atomically(fn);
  }

  /**
   * This client's MLS signature key (its leaves' key): what tells my own leaf (a reflection, never
   * opened) from my other devices' (opened as mine), and which `seen` entries of peers are about
   * this device's chain (§11, §4.5).
   */
  thisDevice(signatureKey: Uint8Array): void {
    const tag = deviceTag(signatureKey);
    if (this.myTag?.equals(tag) === true) return;
    this.myTag = tag;
  }

  seal(conversationId: string, groupId: Uint8Array, kind: AppKind, text: string, nowMs: number, reuseId?: Buffer): SealedContent {
    checkTime(nowMs);
    if (reuseId !== undefined && (!(reuseId instanceof Uint8Array) || reuseId.length !== MESSAGE_ID_BYTES)) throw badArgument(`a message id is ${MESSAGE_ID_BYTES} bytes`);
    const c = this.state(conversationId, groupId);
    if (kind === "topic" && c.conv.kind !== "room") throw new ContentInputError({ kind: "topic-outside-room" }, "a topic can only be set in a room");
    if (kind === "away" && c.conv.kind !== "dm") throw new ContentInputError({ kind: "away-outside-dm" }, "an away answer only goes to a direct conversation");
    if (typeof text !== "string") throw badArgument("the text must be a string");
    const normalized = text.replace(/\r\n?/g, "\n");
    if (normalized.trim().length === 0) throw new ContentInputError({ kind: "empty-message" }, "the message is empty");
    if (!normalized.isWellFormed()) throw new ContentInputError({ kind: "invalid-characters" }, "the message has invalid characters");
    const bytes = Buffer.byteLength(normalized, "utf8");
    if (bytes > this.maxTextBytes) throw new ContentInputError({ kind: "too-large", bytes, max: this.maxTextBytes }, `the message is ${bytes} bytes, more than ${this.maxTextBytes}`);

    const lobby = c.conv.kind === "lobby";
    // §11: the peers whose last message I opened changed since my previous message here.
    // Per device (app4); never my own user's devices (they do not acknowledge each other).
    const told = lobby ? [] : [...c.peers.values()]
      .filter((p) => p.username !== this.me && (p.member || !c.row.membersKnown) && p.lastHash !== undefined && (p.told === undefined || !p.told.equals(p.lastHash)))
      .sort(byUserDevice)
      .slice(0, APP_SEEN_DEVICES_MAX);
    const seen: AppSeen[] = told.map((p) => ({ username: p.username, ...(p.device.length > 0 ? { device: p.device } : {}), hash: p.lastHash! }));
    const messageId = reuseId === undefined ? randomBytes(MESSAGE_ID_BYTES) : Buffer.from(reuseId);
    const views = c.conv.kind === "dm" ? this.viewsFor(dmPeer(c.conv, this.me)!) : [];
    // §11.1: my newest message whose acceptance was recorded: a reader may take this one as sealed
    // after everything the relay had for me before that acceptance reached me.
    const app = encodeAppData({ kind, text: normalized, messageId, sentAtMs: nowMs, prev: c.row.ownHead, seen, views, settled: c.row.settledHead }, c.conv, this.me);
    const hash = appHash(groupId, this.me, app);

    this.atomically(() => {
      c.row.ownHead = hash;
      c.row.sentSeq += 1;
      c.row.sentSinceCommit += 1;
      for (const p of told) {
        p.told = p.lastHash;
        this.store.putPeer(c.conv.id, p);
      }
      if (!lobby) {
        // The lobby reaches only who is online: nobody's silence there says a message was lost.
        const s: Sent = { seq: c.row.sentSeq, messageId, hash, sealSeq: c.row.recvSeq, acceptSeq: undefined, confirmed: false, lost: false };
        c.sent.push(s);
        this.store.putSent(c.conv.id, s);
        while (c.sent.length > CONTENT_SENT_MAX) this.store.deleteSent(c.conv.id, c.sent.shift()!.seq);
      }
      this.store.putConv(c.row);
    });
    return { app, messageId, sentAtMs: nowMs };
  }

  /**
   * §11.3: a read marker for my other devices: names the newest message I read here. Outside
   * every chain (no prev, seen or settled; not watched, not acknowledged): a lost marker only
   * leaves an unread count on another device until the next one. Never in the lobby.
   */
  sealRead(conversationId: string, groupId: Uint8Array, read: AppReadRef, nowMs: number): SealedContent {
    checkTime(nowMs);
    const c = this.state(conversationId, groupId);
    if (c.conv.kind === "lobby") throw badArgument("no read markers in the lobby");
    if (!isValidUsername(read?.from) || !(read.messageId instanceof Uint8Array) || read.messageId.length !== MESSAGE_ID_BYTES) throw badArgument("a read marker names a sender and a 16-byte message id");
    const messageId = randomBytes(MESSAGE_ID_BYTES);
    const app = encodeAppData({ kind: "read", text: "", messageId, sentAtMs: nowMs, prev: ZERO_APP_HASH, seen: [], read: { from: read.from, messageId: Buffer.from(read.messageId) } }, c.conv, this.me);
    this.atomically(() => {
      c.row.sentSinceCommit += 1; // §10: a message sealed with the group's keys all the same
      this.store.putConv(c.row);
    });
    return { app, messageId, sentAtMs: nowMs };
  }

  accepted(conversationId: string, messageId: Buffer): void {
    const c = this.existing(conversationId);
    if (c === undefined || !(messageId instanceof Uint8Array)) return;
    // The newest copy: a message re-sealed with its id is watched from its last sealing.
    const s = c.sent.findLast((e) => e.messageId.equals(messageId));
    if (s === undefined || s.acceptSeq !== undefined) return;
    this.atomically(() => {
      s.acceptSeq = c.row.recvSeq;
      this.store.putSent(c.conv.id, s);
      if (s.seq > c.row.settledSeq) {
        c.row.settledHead = s.hash;
        c.row.settledSeq = s.seq;
        this.store.putConv(c.row);
      }
    });
  }

  open(conversationId: string, groupId: Uint8Array, sender: string, app: Uint8Array, signatureKey?: Uint8Array): { readonly content: OpenedContent; readonly own: OwnDeliveryChange } {
    if (!isValidUsername(sender)) throw badArgument("the sender must be a valid username");
    if (signatureKey !== undefined && !(signatureKey instanceof Uint8Array)) throw badArgument("the sender's signature key must be bytes");
    const device = signatureKey === undefined ? NO_DEVICE : deviceTag(signatureKey);
    // MLS refuses my own leaf's messages as reflections; another device of mine is opened as mine
    // only when both its leaf and mine are known, and differ (§11, §4.5).
    if (sender === this.me && (device.length === 0 || this.myTag === undefined || device.equals(this.myTag))) throw badArgument("a message from this device itself is not opened");
    const c = this.state(conversationId, groupId);
    if (c.conv.kind === "dm" && sender !== this.me && dmPeer(c.conv, this.me) !== sender) throw badArgument(`${sender} is not the other member of ${c.conv.id}`);
    const d = decodeAppData(app, c.conv, sender);
    const messageId = Buffer.from(d.messageId);
    const forked = this.views.differing(d.views ?? []);
    const content = (gap: boolean, duplicate: boolean): OpenedContent => ({
      messageId, kind: d.kind, text: sanitizeText(d.text), sentAtMs: d.sentAtMs, gap, duplicate,
      ...(forked.length > 0 ? { forked } : {}), ...(d.read === undefined ? {} : { read: { from: d.read.from, messageId: Buffer.from(d.read.messageId) } }),
    });
    // §11.3: a read marker is outside every chain: it moves nothing here (the engine uses one from
    // my own devices and ignores anyone else's).
    if (d.kind === "read") return { content: content(false, false), own: NO_CHANGE };
    // A redelivery (the same id from the same sender): shown once, and it moves nothing.
    if (this.store.hasId(c.conv.id, sender, messageId)) return { content: content(false, true), own: NO_CHANGE };

    const hash = appHash(groupId, sender, app);
    const lobby = c.conv.kind === "lobby";
    return this.atomically(() => {
      c.row.recvSeq += 1;
      c.row.idSeq += 1;
      this.store.addId(c.conv.id, sender, messageId, c.row.idSeq, c.row.idSeq - CONTENT_IDS_MAX);
      const peer = lobby ? undefined : peerFor(this.peers(), c, sender, device);
      // §11 chain: the lobby reaches only who is online, so its chains tell nothing.
      // A message continues the chain when its prev is the head of one of the sender's recent
      // messages (none of them names it as prev): after the relay swapped two, the late one is
      // not a gap, nor is the next one (its prev is the newest, not the last opened). A prev
      // already named by another message (two messages claiming one predecessor) is a gap.
      const recent = peer === undefined ? [] : recentOf(peer.recent);
      const at = peer === undefined ? [] : atOf(peer.recentAt, recent.length);
      // §11.1: when I opened the message the sender names as settled (undefined: not one I know).
      const settledAt = d.settled === undefined || peer === undefined ? undefined : at[recent.findIndex((e) => e.hash.equals(Buffer.from(d.settled!)))];
      const prev = Buffer.from(d.prev);
      const gap = lobby ? false : recent.length === 0 ? chainGap(peer?.lastHash, d.prev, peer === undefined || !peer.fresh) : !headsOf(recent).some((h) => h.equals(prev));
      if (gap) this.log?.warn("mls.content.gap", { conversation: c.conv.id, from: sender });
      let own = NO_CHANGE;
      if (peer !== undefined) {
        recent.push({ hash: Buffer.from(hash), prev });
        at.push(c.row.recvSeq);
        while (recent.length > CONTENT_RECENT_MAX) {
          recent.shift();
          at.shift();
        }
        peer.recent = Buffer.concat(recent.flatMap((e) => [e.hash, e.prev]));
        peer.recentAt = atBytes(at);
        // The newest of their chain: the latest opened head (a late message is not it).
        peer.lastHash = Buffer.from(headsOf(recent).at(-1) ?? hash);
        peer.count += 1;
        peer.prevSeq = peer.lastSeq;
        peer.lastSeq = c.row.recvSeq;
        // The message that acknowledged mine may be the missing one: until they name me again,
        // their silence about my messages proves nothing.
        if (gap) peer.ackUncertain = true;
        // My own other devices do not acknowledge my messages (nor name me in seen).
        const mine = sender === this.me ? { entry: undefined, unclear: true } : mineIn(this.peers(), c, d.seen);
        if (mine.entry !== undefined) {
          peer.acked = Buffer.from(mine.entry.hash);
          peer.ackUncertain = false;
        } else if (mine.unclear && sender !== this.me) {
          // Named in a way this device cannot read (for another of my devices): their silence
          // about my messages proves nothing until they name this device (§11.1).
          peer.ackUncertain = true;
        }
        this.store.putPeer(c.conv.id, peer);
        if (!lobby && sender !== this.me) own = deliveries(this.peers(), c, peer, mine.entry !== undefined, mine.unclear ? undefined : settledAt);
      }
      this.store.putConv(c.row);
      return { content: content(gap, false), own };
    });
  }

  /**
   * The group's members: usernames (one record per user, as before devices), or leaves with their
   * MLS signature key (one record per device, §4.5), or both (content-peers.ts keeps them).
   */
  membersChanged(conversationId: string, members: readonly (string | MemberLeaf)[]): void {
    if (!Array.isArray(members)) throw badArgument("the members must be a list of usernames or leaves");
    const c = this.state(conversationId, undefined);
    takeMembers(this.peers(), c, members, (fn) => this.atomically(fn));
  }

  /**
   * This device joined a group that had a history before it (another device of mine added it,
   * §4.5 self-heal): every member's chain began before me, so none of the records I hold yet is
   * fresh — the first message I get from each is not a gap (§11). Call after membersChanged.
   */
  joinedLate(conversationId: string): void {
    const c = this.state(conversationId, undefined);
    if (c.conv.kind === "lobby") return;
    this.atomically(() => {
      for (const [key, p] of c.peers) {
        if (!p.fresh || p.count > 0) continue;
        const q: Peer = { ...p, fresh: false };
        c.peers.set(key, q);
        this.store.putPeer(c.conv.id, q);
      }
    });
  }

  shouldUpdate(conversationId: string, nowMs: number): boolean {
    checkTime(nowMs);
    const c = this.existing(conversationId);
    if (c === undefined) return false;
    return c.row.sentSinceCommit >= UPDATE_AFTER_MESSAGES || nowMs - c.row.lastCommitMs > UPDATE_AFTER_MS;
  }

  committed(conversationId: string, nowMs: number): void {
    checkTime(nowMs);
    const c = this.state(conversationId, undefined);
    this.atomically(() => {
      c.row.sentSinceCommit = 0;
      c.row.lastCommitMs = nowMs;
      this.store.putConv(c.row);
    });
  }

  epochView(conversationId: string, groupId: Uint8Array, epoch: number, authenticator: Uint8Array): void {
    const conv = parseConversationId(conversationId);
    if (conv === undefined || conv.kind !== "room") throw badArgument("epoch views are kept for rooms only");
    if (!(groupId instanceof Uint8Array) || conversationOfGroupId(groupId).id !== conv.id) throw new MlsProtocolError("wrong-group", `the group is not the group of ${conv.id}`);
    this.views.record(conv.id, groupId, epoch, authenticator);
  }

  /** My newest view of each room the peer is a member of (as membersChanged told me), sorted by group id. */
  private viewsFor(peer: string): AppEpochView[] {
    const out: AppEpochView[] = [];
    for (const { room, view } of this.views.newest()) {
      const c = this.existing(room);
      // The member list is of this group (or of one not yet bound: no message sealed or opened there yet).
      if (c === undefined || ![...c.peers.values()].some((p) => p.username === peer && p.member) || (c.row.groupId.length > 0 && !c.row.groupId.equals(Buffer.from(view.groupId)))) continue;
      out.push(view);
    }
    return out.sort((a, b) => Buffer.compare(Buffer.from(a.groupId), Buffer.from(b.groupId))).slice(-APP_VIEWS_MAX);
  }

  forget(conversationId: string): void {
    this.views.forget(conversationId);
    this.convs.delete(conversationId);
    this.store.forget(conversationId);
  }

  // ---- state ----

  /** What content-peers.ts keeps the member records with. */
  private peers(): PeerContext {
    return { me: this.me, myTag: this.myTag, store: this.store, log: this.log };
  }

  /** A transaction of the store; when it fails, what memory holds is dropped and reloaded from disk. */
  private atomically<T>(fn: () => T): T {
    try {
      return this.store.transaction(fn);
    } catch (e) {
      this.convs.clear();
      throw e;
    }
  }

  private existing(conversationId: string): ConvState | undefined {
    const cached = this.convs.get(conversationId);
    if (cached !== undefined) return cached;
    const conv = parseConversationId(conversationId);
    if (conv === undefined) throw badArgument(`'${String(conversationId).slice(0, 80)}' is not a conversation id`);
    const snap = this.store.load(conv.id);
    if (snap === undefined) return undefined;
    const c: ConvState = {
      conv, row: { ...snap.conv },
      peers: new Map(snap.peers.map((p) => [keyOf(p.username, p.device), { ...p }])),
      sent: snap.sent.map((s) => ({ ...s })),
    };
    this.convs.set(conv.id, c);
    return c;
  }

  /**
   * The conversation's state, bound to groupId when given: a conversation id and group id that do
   * not belong together are refused; another group of the same conversation (a re-created room,
   * the DM group the relay kept) starts a fresh state, chains included.
   */
  private state(conversationId: string, groupId: Uint8Array | undefined): ConvState {
    const conv = parseConversationId(conversationId);
    if (conv === undefined) throw badArgument(`'${String(conversationId).slice(0, 80)}' is not a conversation id`);
    if (conv.kind === "dm" && dmPeer(conv, this.me) === undefined) throw badArgument(`${this.me} is not a member of ${conv.id}`);
    let gid: Buffer | undefined;
    if (groupId !== undefined) {
      if (!(groupId instanceof Uint8Array)) throw badArgument("the group id must be bytes");
      if (conversationOfGroupId(groupId).id !== conv.id) throw new MlsProtocolError("wrong-group", `the group is not the group of ${conv.id}`);
      gid = Buffer.from(groupId);
    }
    const c = this.existing(conv.id);
    if (c !== undefined) {
      if (gid === undefined || c.row.groupId.equals(gid)) return c;
      if (c.row.groupId.length === 0) {
        // Created before the group id was known (membersChanged or committed came first).
        c.row.groupId = gid;
        this.store.putConv(c.row);
        return c;
      }
      this.forget(conv.id);
    }
    const fresh: ConvState = {
      conv,
      row: {
        conversationId: conv.id, groupId: gid ?? UNBOUND, ownHead: Buffer.from(ZERO_APP_HASH), recvSeq: 0, sentSeq: 0, idSeq: 0,
        // §10: for a group just joined (or created), "my last commit" starts now: the leaf I joined
        // with is fresh (a new KeyPackage, or the path of my external commit).
        sentSinceCommit: 0, lastCommitMs: this.clock(), membersKnown: conv.kind === "dm",
        settledHead: Buffer.from(ZERO_APP_HASH), settledSeq: 0,
      },
      peers: new Map(),
      sent: [],
    };
    this.atomically(() => {
      if (conv.kind === "dm") {
        // Both members are there from the group's start: the peer's first message starts a chain.
        const p = newPeer(dmPeer(conv, this.me)!, NO_DEVICE, true, 0);
        p.member = true;
        fresh.peers.set(p.username, p);
        this.store.putPeer(conv.id, p);
      }
      this.store.putConv(fresh.row);
    });
    this.convs.set(conv.id, fresh);
    return fresh;
  }
}
