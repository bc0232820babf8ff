// The member view of the content layer (content.ts, PROTOCOL.md §11, §4.5): each conversation's
// records of its members, one per device (or per user, as before devices), kept as the group's
// members change (membersChanged) and as their messages are opened (the record of a sender's
// device), and what a member's message says of mine: acknowledged, confirmed by every member
// heard from since, or lost (§11.1); my oldest messages stop being watched once all who could
// read them acknowledged them. The records live in the state db (content-store.ts).
import { toHex } from "../../protocol/bytes.js";
import type { Logger } from "../../protocol/log.js";
import { APP_SEEN_DEVICES_MAX, APP_SEEN_MAX, deviceTag, type AppSeen } from "../../protocol/mls/app-data.js";
import { MlsProtocolError } from "../../protocol/mls/errors.js";
import { dmPeer, isValidUsername, type Conversation } from "../../protocol/names.js";
import type { MemberLeaf, OwnDeliveryChange } from "./content-api.js";
import type { ContentConvRow, ContentPeerRow, ContentSentRow, ContentStore } from "./content-store.js";

/** What the member records are kept for and in: my user, this device's tag (once known), the store, the log. */
export interface PeerContext {
  readonly me: string;
  readonly myTag: Buffer | undefined;
  readonly store: ContentStore;
  readonly log: Logger | undefined;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
export type Peer = Mutable<ContentPeerRow>;
export type Sent = Mutable<ContentSentRow>;

export interface ConvState {
  readonly conv: Conversation;
  readonly row: Mutable<ContentConvRow>;
  readonly peers: Map<string, Peer>;
  /** My messages in the order sealed, the oldest first (a suffix of my chain in this group). */
  readonly sent: Sent[];
}

export const NO_CHANGE: OwnDeliveryChange = Object.freeze({ confirmed: [], lost: [] });
export const NO_DEVICE = Buffer.alloc(0);

const RECENT_ENTRY = 64;
/** A sender's recent (hash, prev) pairs, the oldest first. */
export function recentOf(b: Buffer): { hash: Buffer; prev: Buffer }[] {
  const out: { hash: Buffer; prev: Buffer }[] = [];
  for (let i = 0; i + RECENT_ENTRY <= b.length; i += RECENT_ENTRY) out.push({ hash: b.subarray(i, i + 32), prev: b.subarray(i + 32, i + RECENT_ENTRY) });
  return out;
}

/** The receipt numbers of a sender's recent messages (u64 each); all 0 (unknown) when not kept for each. */
export function atOf(b: Buffer, n: number): number[] {
  if (b.length !== n * 8) return new Array<number>(n).fill(0);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Number(b.readBigUInt64BE(i * 8)));
  return out;
}

export function atBytes(at: readonly number[]): Buffer {
  const b = Buffer.alloc(at.length * 8);
  at.forEach((v, i) => b.writeBigUInt64BE(BigInt(v), i * 8));
  return b;
}

/** The heads among recent messages: those no other recent message names as its prev. */
export function headsOf(recent: readonly { hash: Buffer; prev: Buffer }[]): Buffer[] {
  return recent.filter((e) => !recent.some((o) => o.prev.equals(e.hash))).map((e) => e.hash);
}

/** The key of a peer device's record: the username alone for a record without a device (before devices). */
export function keyOf(username: string, device: Buffer): string {
  return device.length === 0 ? username : `${username}/${device.toString("hex")}`;
}

export function byUserDevice(a: { username: string; device: Buffer }, b: { username: string; device: Buffer }): number {
  return a.username < b.username ? -1 : a.username > b.username ? 1 : Buffer.compare(a.device, b.device);
}

export function badArgument(message: string): MlsProtocolError {
  return new MlsProtocolError("bad-argument", message);
}

/**
 * membersChanged: the group's members: usernames (one record per user, as before devices), or
 * leaves with their MLS signature key (one record per device, §4.5), or both. My own leaf is left
 * out; my other devices are kept (their chains, for gaps), never counted as acknowledging my messages.
 */
export function takeMembers(ctx: PeerContext, c: ConvState, members: readonly (string | MemberLeaf)[], atomically: <T>(fn: () => T) => T): void {
  // The lobby keeps no per-member state (no chains judged, no seen lists): its size is the
  // relay's setting, not this layer's bound.
  const lobby = c.conv.kind === "lobby";
  if (!lobby && members.length > APP_SEEN_DEVICES_MAX + 16) throw badArgument(`a group has at most ${APP_SEEN_DEVICES_MAX} member devices besides mine`);
  const names = new Set<string>();
  const devices = new Map<string, { username: string; device: Buffer }>();
  const byDevice = new Set<string>();
  for (const m of members) {
    const username = typeof m === "string" ? m : m?.username;
    if (!isValidUsername(username)) throw badArgument("every member must be a valid username");
    if (typeof m === "string") {
      if (m !== ctx.me) names.add(m);
      continue;
    }
    if (!(m.signatureKey instanceof Uint8Array)) throw badArgument("a member leaf needs its signature key");
    const device = deviceTag(m.signatureKey);
    byDevice.add(username);
    // My own leaf; while this device is not known, none of mine can be told from it.
    if (username === ctx.me && (ctx.myTag === undefined || device.equals(ctx.myTag))) continue;
    devices.set(keyOf(username, device), { username, device });
    if (username !== ctx.me) names.add(username);
  }
  if (lobby) return;
  if (names.size > APP_SEEN_MAX) throw badArgument(`a group has at most ${APP_SEEN_MAX} members besides me`);
  if (c.conv.kind === "dm") {
    for (const n of names) if (!c.conv.members.includes(n)) throw badArgument(`${n} cannot be a member of ${c.conv.id}`);
    // The other member of a DM is its member by the conversation's name, whether or not their
    // leaf is in the tree yet (a group just created, their Welcome on its way): their chain is kept.
    names.add(dmPeer(c.conv, ctx.me)!);
  }
  const keeps = (p: Peer): boolean => {
    if (p.device.length > 0) {
      if (devices.has(keyOf(p.username, p.device))) return true;
      // Told by username only: a user's devices are members while the user is (mine: unknown).
      return !byDevice.has(p.username) && (p.username === ctx.me ? byDevice.size === 0 || !byDevice.has(ctx.me) : names.has(p.username));
    }
    // A record from before devices: kept while its user is a member, until one of their devices
    // speaks and takes it over (peerFor); one that never heard anything makes way for the devices.
    return names.has(p.username) && !(byDevice.has(p.username) && p.count === 0);
  };
  atomically(() => {
    for (const [key, p] of c.peers) {
      if (keeps(p)) continue;
      // A departed member's (or device's) chain is forgotten: if they come back, they start afresh.
      c.peers.delete(key);
      ctx.store.deletePeer(c.conv.id, p.username, p.device);
    }
    const add = (username: string, device: Buffer): void => {
      const key = keyOf(username, device);
      const p = c.peers.get(key);
      if (p !== undefined && p.member) return;
      // Someone who joins after I knew the list starts their chain in front of me; my messages
      // from now on are theirs to read and acknowledge (one heard from before keeps that time).
      const q: Peer = p ?? newPeer(username, device, c.row.membersKnown, c.row.sentSeq);
      q.member = true;
      c.peers.set(key, q);
      ctx.store.putPeer(c.conv.id, q);
    };
    for (const { username, device } of devices.values()) add(username, device);
    for (const name of names) {
      if (byDevice.has(name)) continue;
      // By username: their device records (if any) are members; else one record for the user.
      const recs = [...c.peers.values()].filter((p) => p.username === name);
      if (recs.length === 0) add(name, NO_DEVICE);
      for (const p of recs) if (!p.member) add(p.username, p.device);
    }
    c.row.membersKnown = true;
    trim(ctx, c, ackIndex(c));
    ctx.store.putConv(c.row);
  });
}

export function newPeer(username: string, device: Buffer, fresh: boolean, memberSince: number): Peer {
  return { username, device, member: false, fresh, memberSince, lastHash: undefined, recent: Buffer.alloc(0), recentAt: Buffer.alloc(0), count: 0, lastSeq: 0, prevSeq: 0, acked: undefined, told: undefined, ackUncertain: false };
}

/**
 * The sender device's record. A record from before devices (no device) is taken over by the
 * first device of that user heard from (it continues that chain: the user's only device then).
 * A sender not in the member list (a message of the retained past epoch from someone who just
 * left, or before any list came) gets one while there is room (at most APP_SEEN_MAX records, the
 * oldest non-member making way), else none: opened without a chain.
 */
export function peerFor(ctx: PeerContext, c: ConvState, sender: string, device: Buffer): Peer | undefined {
  const key = keyOf(sender, device);
  const known = c.peers.get(key);
  const legacy = device.length > 0 ? c.peers.get(sender) : undefined;
  if (legacy !== undefined && (known === undefined || (known.count === 0 && legacy.count > 0))) {
    c.peers.delete(sender);
    ctx.store.deletePeer(c.conv.id, sender, NO_DEVICE);
    const taken: Peer = { ...legacy, device, member: legacy.member || known?.member === true };
    c.peers.set(key, taken);
    return taken;
  }
  if (known !== undefined) return known;
  // Members are bounded by membersChanged; past APP_SEEN_MAX records a non-member makes way.
  if (c.peers.size >= APP_SEEN_MAX) {
    let oldest: [string, Peer] | undefined;
    for (const e of c.peers) if (!e[1].member && (oldest === undefined || e[1].lastSeq < oldest[1].lastSeq)) oldest = e;
    if (oldest === undefined) return undefined;
    c.peers.delete(oldest[0]);
    ctx.store.deletePeer(c.conv.id, oldest[1].username, oldest[1].device);
  }
  // Whether my earlier messages reached them is unknown: only my later ones are theirs to acknowledge.
  const p = newPeer(sender, device, false, c.row.sentSeq);
  c.peers.set(key, p);
  return p;
}

/**
 * The entry of a peer's seen list about this device's chain. `unclear`: the list names my user
 * without naming this device in a way I can tell (an entry without a device whose hash is not
 * one of mine: written for another of my devices by a client that does not tell them apart, or
 * entries for my devices while I do not know which is this one): no proof of a loss.
 */
export function mineIn(ctx: PeerContext, c: ConvState, seen: readonly AppSeen[]): { entry: AppSeen | undefined; unclear: boolean } {
  const about = seen.filter((s) => s.username === ctx.me);
  if (about.length === 0) return { entry: undefined, unclear: false };
  const tagged = ctx.myTag === undefined ? undefined : about.find((s) => s.device !== undefined && s.device.length > 0 && ctx.myTag!.equals(Buffer.from(s.device)));
  if (tagged !== undefined) return { entry: tagged, unclear: false };
  const bare = about.find((s) => s.device === undefined || s.device.length === 0);
  if (bare !== undefined && (ctx.myTag === undefined || c.sent.some((m) => m.hash.equals(Buffer.from(bare.hash))))) return { entry: bare, unclear: false };
  return { entry: undefined, unclear: true };
}

/** Index in c.sent of the newest own message each peer acknowledged (-1: none of those kept). */
export function ackIndex(c: ConvState): (p: Peer) => number {
  const byHash = new Map(c.sent.map((s, i) => [s.hash.toString("hex"), i]));
  return (p) => (p.acked === undefined ? -1 : byHash.get(p.acked.toString("hex")) ?? -1);
}

/**
 * §11.1: what the peer's latest message says of my messages (`named`: it names me;
 * `settledAt`: when I opened the message of theirs it names as settled), for the whole group.
 *
 * Lost (reported once): my message M, accepted, not acknowledged by this message although it
 * names as settled a message of theirs that I opened after M's acceptance was recorded. Their
 * client sealed it after the relay had accepted that one and after opening all the relay had
 * delivered to them before: the relay queues in the order it accepts, and M was accepted before
 * (I had M's answer before that message of theirs reached me), so M was theirs to have opened.
 * A reply sealed before M could reach them (typed at the same time, a backlog sealed at once
 * after a reconnect) names an older settled message, or none: it proves nothing.
 */
export function deliveries(ctx: PeerContext, c: ConvState, peer: Peer, named: boolean, settledAt: number | undefined): OwnDeliveryChange {
  const idx = ackIndex(c);
  const lost: string[] = [];
  const confirmed: string[] = [];
  // A gap in their chain: the message that acknowledged mine may be the missing one.
  if (!peer.ackUncertain && settledAt !== undefined && settledAt > 0) {
    const acked = idx(peer);
    c.sent.forEach((s, i) => {
      // A message sealed before they became a member was never theirs to read.
      if (i <= acked || s.lost || s.acceptSeq === undefined || s.seq <= peer.memberSince || settledAt <= s.acceptSeq) return;
      s.lost = true;
      lost.push(toHex(s.messageId));
      ctx.store.putSent(c.conv.id, s);
      ctx.log?.warn("mls.content.lost", { conversation: c.conv.id, by: peer.username });
    });
  }
  // Confirmed: acknowledged by someone, and by every member heard from since it was sealed.
  // Only a new acknowledgement can confirm (a peer whose old one covers a message was already
  // heard from since it), and only it lets the watched list shrink.
  if (!named) return lost.length === 0 ? NO_CHANGE : { confirmed, lost };
  const open = c.sent.filter((s) => !s.confirmed && !s.lost);
  if (open.length > 0) {
    const from = Math.min(...open.map((s) => s.sealSeq));
    const speakers = [...c.peers.values()].filter((p) => p.username !== ctx.me && (p.member || !c.row.membersKnown) && p.lastSeq > from);
    c.sent.forEach((s, i) => {
      if (s.confirmed || s.lost) return;
      const heard = speakers.filter((p) => p.lastSeq > s.sealSeq && p.memberSince < s.seq);
      if (heard.length === 0 || heard.some((p) => idx(p) < i)) return;
      s.confirmed = true;
      confirmed.push(toHex(s.messageId));
      ctx.store.putSent(c.conv.id, s);
    });
  }
  trim(ctx, c, idx);
  return lost.length === 0 && confirmed.length === 0 ? NO_CHANGE : { confirmed, lost };
}

/**
 * Stops watching my oldest messages once every member who could read them (a member when each
 * was sealed) acknowledged them or a newer one.
 */
export function trim(ctx: PeerContext, c: ConvState, idx: (p: Peer) => number): void {
  // My own other devices do not acknowledge my messages: not waited for.
  const members = [...c.peers.values()].filter((p) => p.username !== ctx.me && (p.member || !c.row.membersKnown));
  let done = 0;
  while (done < c.sent.length && members.every((p) => p.memberSince >= c.sent[done]!.seq || idx(p) >= done)) done += 1;
  for (const s of c.sent.splice(0, done)) ctx.store.deleteSent(c.conv.id, s.seq);
}
