// The application data inside an MLS application message (proto/PROTOCOL.md §11): v1's
// message kinds, an id for de-duplication, the sender's clock, the sender's chain (`prev`) and
// what the sender has seen from each peer (`seen`), so that a dropped message — the last one of
// a DM included — is shown within one further exchange.
//
//   app = enc("securechat/v1/app", u8 kind, text, message_id[16], u64 sent_at_ms, prev[32],
//             u32 n, peer_1, seen_1[32], ..., peer_n, seen_n[32])
//   app2 = enc("securechat/v1/app2", ...the same fields..., u32 m, group_id_1, u64 epoch_1,
//              view_1[16], ..., group_id_m, u64 epoch_m, view_m[16])     (§12 fork check)
//   app3 = enc("securechat/v1/app3", ...the fields of app2..., settled[32])   (§11.1 drop rule)
//   app4 = enc("securechat/v1/app4", u8 kind, text, message_id[16], u64 sent_at_ms, prev[32],
//              u32 n, peer_1, device_1, seen_1[32], ..., peer_n, device_n, seen_n[32],
//              u32 m, ...the views of app2..., settled[32], read_sender, read_id)
//              (several devices per user: §4.5, §11, §11.1)
//
// app4: chains are per sender DEVICE, so a `seen` entry names the device whose chain it
// acknowledges: `device` = deviceTag(the device's MLS signature key), 8 bytes (or empty: its
// messages were opened without knowing the device, as the older formats did). Entries are sorted
// by (peer, device), unique, and never name any device of the sender's own user. Kind `read`
// (a read marker, §11.3): text empty, prev and settled zeros, no seen, no views, and
// (read_sender, read_id) name the newest message its sender's user read in this conversation;
// every other kind carries both empty.
//
// `settled`: the appHash of the sender's newest message in this group that the relay had
// accepted, with everything the relay delivered to the sender before that acceptance opened,
// when this one was sealed (zeros: none). A reader counts a message as proof that the sender
// should have had the reader's message only through it (§11.1): no false "lost" for a reply that
// was sealed before the reader's message could have arrived.
//
// The views (only in a DM: my epoch of each room I share with the peer) let a peer tell that a
// room was forked by the relay even when the halves never see each other's room messages.
//
// The wrapper (MlsGroup.encrypt) pads it to a multiple of 256 bytes; MLS authenticates the
// sender, so none of this needs a signature of its own.
import { decodeUtf8Strict, utf8 } from "../bytes.js";
import { encodeFields, hashFields, type Field } from "../encoding.js";
import { checkUsername, type Conversation } from "../names.js";
import { MlsProtocolError } from "./errors.js";
import { conversationOfGroupId } from "./group-id.js";

/** Longest group id accepted in a view (a room name's bytes, a separator and the random part, with room to spare). */
const GROUP_ID_MAX = 256;

export const APP_LABEL = "securechat/v1/app";
export const APP_HASH_LABEL = "securechat/v1/app-hash";
/** The format with epoch views (§12); the v1 label is still decoded (no views). */
export const APP_LABEL_V2 = "securechat/v1/app2";
/** The format with `settled` (§11.1); app and app2 are still decoded (no settled: never counted as proof of a loss). */
export const APP_LABEL_V3 = "securechat/v1/app3";
/** The format with seen entries per device and the `read` kind (§11, §11.3); app..app3 still decode (no device, no read). */
export const APP_LABEL_V4 = "securechat/v1/app4";
export const DEVICE_TAG_LABEL = "securechat/v1/device-tag";
/** A device tag's length: 8 bytes tell apart the devices of one user (at most 16). */
export const DEVICE_TAG_BYTES = 8;
/** Most seen entries an app4 message may carry: one per device of each member (APP_SEEN_MAX users x 16 devices). */
export const APP_SEEN_DEVICES_MAX = 16_000;
export const EPOCH_VIEW_LABEL = "securechat/v1/epoch-view";
export const EPOCH_VIEW_BYTES = 16;
/** Most rooms a DM message reports its sender's view of (the newest views are sent). */
export const APP_VIEWS_MAX = 64;
export const MESSAGE_ID_BYTES = 16;
export const APP_HASH_BYTES = 32;
/** Largest text (UTF-8 bytes), as v1's limit. */
export const APP_TEXT_MAX = 64 * 1024;
/** Most peers a `seen` list may name (a room's member cap). */
export const APP_SEEN_MAX = 1000;

/** The kinds of message people see. */
export type AppKind = "text" | "action" | "topic" | "away";
/** Every kind of application data: a message, or a read marker (§11.3, app4). */
export type AppDataKind = AppKind | "read";
const KIND_CODES: Record<AppDataKind, number> = { text: 1, action: 2, topic: 3, away: 4, read: 5 };
const KIND_NAMES = new Map(Object.entries(KIND_CODES).map(([k, v]) => [v, k as AppDataKind]));

export interface AppSeen {
  readonly username: string;
  /**
   * app4: deviceTag of the device whose chain this acknowledges; absent (or empty) when the
   * writer opened that user's messages without knowing the device (and in the older formats).
   */
  readonly device?: Uint8Array;
  /** appHash of the last message seen from that peer in this group. */
  readonly hash: Uint8Array;
}

/** The sender's view of one room: its group, epoch, and a hash of the epoch authenticator. */
export interface AppEpochView {
  readonly groupId: Uint8Array;
  readonly epoch: number;
  /** epochViewHash(groupId, epoch, epoch_authenticator). */
  readonly view: Uint8Array;
}

/**
 * PROTOCOL.md §12: 16 bytes of SHA-256 over a label, the group, the epoch and the epoch
 * authenticator (RFC 9420 §8.7): equal for all members of one epoch, different across a fork;
 * the authenticator is secret-derived, so its hash tells a non-member nothing.
 */
export function epochViewHash(groupId: Uint8Array, epoch: number, authenticator: Uint8Array): Buffer {
  if (!(groupId instanceof Uint8Array) || !(authenticator instanceof Uint8Array) || authenticator.length === 0) throw new MlsProtocolError("bad-argument", "epochViewHash takes a group id and an authenticator");
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new MlsProtocolError("bad-argument", "the epoch must be a non-negative integer");
  return hashFields(EPOCH_VIEW_LABEL, [groupId, { u64: epoch }, authenticator]).subarray(0, EPOCH_VIEW_BYTES);
}

export interface AppData {
  readonly kind: AppDataKind;
  readonly text: string;
  readonly messageId: Uint8Array;
  readonly sentAtMs: number;
  /** appHash of the sender's previous message in this group; 32 zero bytes at first. */
  readonly prev: Uint8Array;
  /** Sorted by username, unique, never the sender. */
  readonly seen: readonly AppSeen[];
  /** §12 views of rooms (DM only; sorted by group id, unique; at most APP_VIEWS_MAX). Empty when absent. */
  readonly views?: readonly AppEpochView[];
  /**
   * §11.1: appHash of the sender's newest own message here that was accepted, with all that was
   * delivered to the sender before that acceptance opened, when this one was sealed; zeros for
   * none. Absent in the older formats (app, app2).
   */
  readonly settled?: Uint8Array;
  /** Kind `read` only (app4): the newest message read. */
  readonly read?: AppReadRef;
}

export const ZERO_APP_HASH: Uint8Array = new Uint8Array(APP_HASH_BYTES);

/** What a `read` marker names: the newest message its sender's user read in the conversation. */
export interface AppReadRef {
  /** The sender of that message (may be the marker's own user: a message of theirs). */
  readonly from: string;
  readonly messageId: Uint8Array;
}

/**
 * The tag of a device in `seen` (app4): SHA-256(enc("securechat/v1/device-tag", mls_signature_key))
 * truncated to 8 bytes. Every member computes it from the sender's leaf, directory or not.
 */
export function deviceTag(mlsSignatureKey: Uint8Array): Buffer {
  if (!(mlsSignatureKey instanceof Uint8Array) || mlsSignatureKey.length === 0) throw new MlsProtocolError("bad-argument", "a device tag is made from an MLS signature key");
  return hashFields(DEVICE_TAG_LABEL, [mlsSignatureKey]).subarray(0, DEVICE_TAG_BYTES);
}

const seenDevice = (s: AppSeen): Buffer => (s.device === undefined ? Buffer.alloc(0) : Buffer.from(s.device));

function kindAllowed(kind: AppDataKind, conv: Conversation): boolean {
  if (kind === "topic") return conv.kind === "room";
  if (kind === "away") return conv.kind === "dm";
  // §11.3: never in the lobby (every online user would get each one).
  if (kind === "read") return conv.kind !== "lobby";
  return true;
}

function checkData(d: AppData, conv: Conversation, sender: string | undefined): void {
  if (d === null || typeof d !== "object") throw new MlsProtocolError("bad-argument", "application data is missing");
  if (!(d.kind in KIND_CODES)) throw new MlsProtocolError("malformed", `unknown message kind ${String(d.kind)}`);
  if (!kindAllowed(d.kind, conv)) throw new MlsProtocolError("malformed", `a ${d.kind} message is not allowed in ${conv.id}`);
  if (typeof d.text !== "string" || utf8(d.text).length > APP_TEXT_MAX) throw new MlsProtocolError("malformed", `text must be a string of at most ${APP_TEXT_MAX} bytes`);
  if (!(d.messageId instanceof Uint8Array) || d.messageId.length !== MESSAGE_ID_BYTES) throw new MlsProtocolError("malformed", `message id must be ${MESSAGE_ID_BYTES} bytes`);
  if (!Number.isSafeInteger(d.sentAtMs) || d.sentAtMs < 0) throw new MlsProtocolError("malformed", "sent_at_ms must be a non-negative integer");
  if (!(d.prev instanceof Uint8Array) || d.prev.length !== APP_HASH_BYTES) throw new MlsProtocolError("malformed", `prev must be ${APP_HASH_BYTES} bytes`);
  const perDevice = d.seen?.some?.((s) => s?.device !== undefined && s.device.length > 0) === true;
  const seenMax = perDevice ? APP_SEEN_DEVICES_MAX : APP_SEEN_MAX;
  if (!Array.isArray(d.seen) || d.seen.length > seenMax) throw new MlsProtocolError("malformed", `seen must list at most ${seenMax} peers`);
  let last = "";
  let lastDevice: Buffer = Buffer.alloc(0);
  for (const s of d.seen) {
    const c = checkUsername(s?.username);
    if (!c.ok) throw new MlsProtocolError("malformed", `seen names an invalid user: ${c.reason}`);
    if (s.device !== undefined && (!(s.device instanceof Uint8Array) || (s.device.length !== 0 && s.device.length !== DEVICE_TAG_BYTES))) throw new MlsProtocolError("malformed", `a seen device tag must be ${DEVICE_TAG_BYTES} bytes or empty`);
    const dev = seenDevice(s);
    // Sorted by (username, device), unique; several devices of one user may be named (app4).
    if (s.username < last || (s.username === last && Buffer.compare(dev, lastDevice) <= 0)) throw new MlsProtocolError("malformed", "seen must be sorted by username and device, without repeats");
    if (s.username === sender) throw new MlsProtocolError("malformed", "seen must not name the sender");
    if (!(s.hash instanceof Uint8Array) || s.hash.length !== APP_HASH_BYTES) throw new MlsProtocolError("malformed", `seen hashes must be ${APP_HASH_BYTES} bytes`);
    last = s.username;
    lastDevice = dev;
  }
  const views = d.views ?? [];
  if (!Array.isArray(views) || views.length > APP_VIEWS_MAX) throw new MlsProtocolError("malformed", `views must list at most ${APP_VIEWS_MAX} rooms`);
  if (views.length > 0 && conv.kind !== "dm") throw new MlsProtocolError("malformed", "room views are only carried in a direct conversation");
  let lastGroup: Buffer | undefined;
  for (const v of views) {
    if (!(v?.groupId instanceof Uint8Array) || v.groupId.length > GROUP_ID_MAX) throw new MlsProtocolError("malformed", "a view's group id is invalid");
    let named: Conversation;
    try {
      named = conversationOfGroupId(v.groupId);
    } catch (e) {
      throw new MlsProtocolError("malformed", "a view's group id is invalid", { cause: e });
    }
    if (named.kind !== "room") throw new MlsProtocolError("malformed", "a view must name a room's group");
    const g = Buffer.from(v.groupId);
    if (lastGroup !== undefined && Buffer.compare(g, lastGroup) <= 0) throw new MlsProtocolError("malformed", "views must be sorted by group id, without repeats");
    if (!Number.isSafeInteger(v.epoch) || v.epoch < 0) throw new MlsProtocolError("malformed", "a view's epoch must be a non-negative integer");
    if (!(v.view instanceof Uint8Array) || v.view.length !== EPOCH_VIEW_BYTES) throw new MlsProtocolError("malformed", `a view hash must be ${EPOCH_VIEW_BYTES} bytes`);
    lastGroup = g;
  }
  if (d.settled !== undefined && (!(d.settled instanceof Uint8Array) || d.settled.length !== APP_HASH_BYTES)) throw new MlsProtocolError("malformed", `settled must be ${APP_HASH_BYTES} bytes`);
  if (d.kind === "read") {
    // §11.3: a marker carries nothing but what it names (no chain, no acknowledgements).
    const zero = (b: Uint8Array | undefined): boolean => b === undefined || Buffer.from(b).equals(Buffer.from(ZERO_APP_HASH));
    if (d.text !== "" || !zero(d.prev) || !zero(d.settled) || d.seen.length > 0 || views.length > 0) throw new MlsProtocolError("malformed", "a read marker carries no text, chain, seen list or views");
    const r = checkUsername(d.read?.from);
    if (!r.ok) throw new MlsProtocolError("malformed", `a read marker names an invalid sender: ${r.reason}`);
    if (!(d.read!.messageId instanceof Uint8Array) || d.read!.messageId.length !== MESSAGE_ID_BYTES) throw new MlsProtocolError("malformed", `a read marker names a message id of ${MESSAGE_ID_BYTES} bytes`);
  } else if (d.read !== undefined) {
    throw new MlsProtocolError("malformed", "only a read marker names a message read");
  }
}

/** Encodes application data after checking it (the sender's side). */
export function encodeAppData(d: AppData, conv: Conversation, sender: string): Uint8Array {
  checkData(d, conv, sender);
  const fields: Field[] = [new Uint8Array([KIND_CODES[d.kind]]), d.text, d.messageId, { u64: d.sentAtMs }, d.prev, { u32: d.seen.length }];
  for (const s of d.seen) fields.push(s.username, seenDevice(s), s.hash);
  const views = d.views ?? [];
  fields.push({ u32: views.length });
  for (const v of views) fields.push(v.groupId, { u64: v.epoch }, v.view);
  fields.push(d.settled ?? ZERO_APP_HASH);
  fields.push(d.read?.from ?? "", d.read?.messageId ?? new Uint8Array(0));
  return new Uint8Array(encodeFields(APP_LABEL_V4, fields));
}

/** Decodes application data strictly (the receiver's side); any deviation is "malformed". */
export function decodeAppData(bytes: Uint8Array, conv: Conversation, sender: string): AppData {
  if (!(bytes instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", "application data must be bytes");
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const take = (): Buffer => {
    if (at + 4 > b.length) throw new MlsProtocolError("malformed", "application data is truncated");
    const len = b.readUInt32BE(at);
    at += 4;
    if (len > b.length - at) throw new MlsProtocolError("malformed", "application data is truncated");
    const f = b.subarray(at, at + len);
    at += len;
    return f;
  };
  const fixed = (n: number, what: string): Buffer => {
    const f = take();
    if (f.length !== n) throw new MlsProtocolError("malformed", `${what} must be ${n} bytes`);
    return f;
  };
  const text = (f: Buffer, what: string): string => {
    try {
      return decodeUtf8Strict(f);
    } catch (e) {
      throw new MlsProtocolError("malformed", `${what} is not valid UTF-8`, { cause: e });
    }
  };
  const label = take();
  const v4 = label.equals(utf8(APP_LABEL_V4));
  const v3 = v4 || label.equals(utf8(APP_LABEL_V3));
  const v2 = v3 || label.equals(utf8(APP_LABEL_V2));
  if (!v2 && !label.equals(utf8(APP_LABEL))) throw new MlsProtocolError("malformed", "application data has the wrong label");
  const kind = KIND_NAMES.get(fixed(1, "kind")[0]!);
  if (kind === undefined) throw new MlsProtocolError("malformed", "unknown message kind");
  const body = text(take(), "text");
  const messageId = new Uint8Array(fixed(MESSAGE_ID_BYTES, "message id"));
  const sentAt = fixed(8, "sent_at_ms").readBigUInt64BE(0);
  if (sentAt > BigInt(Number.MAX_SAFE_INTEGER)) throw new MlsProtocolError("malformed", "sent_at_ms is out of range");
  const prev = new Uint8Array(fixed(APP_HASH_BYTES, "prev"));
  const n = fixed(4, "seen count").readUInt32BE(0);
  const seenMax = v4 ? APP_SEEN_DEVICES_MAX : APP_SEEN_MAX;
  if (n > seenMax) throw new MlsProtocolError("malformed", `seen must list at most ${seenMax} peers`);
  const seen: AppSeen[] = [];
  for (let i = 0; i < n; i++) {
    const username = text(take(), "seen username");
    const device = v4 ? new Uint8Array(take()) : undefined;
    seen.push({ username, ...(device !== undefined && device.length > 0 ? { device } : {}), hash: new Uint8Array(fixed(APP_HASH_BYTES, "seen hash")) });
  }
  const views: AppEpochView[] = [];
  if (v2) {
    const m = fixed(4, "view count").readUInt32BE(0);
    if (m > APP_VIEWS_MAX) throw new MlsProtocolError("malformed", `views must list at most ${APP_VIEWS_MAX} rooms`);
    for (let i = 0; i < m; i++) {
      const groupId = new Uint8Array(take());
      const epoch = fixed(8, "view epoch").readBigUInt64BE(0);
      if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) throw new MlsProtocolError("malformed", "a view's epoch is out of range");
      views.push({ groupId, epoch: Number(epoch), view: new Uint8Array(fixed(EPOCH_VIEW_BYTES, "view hash")) });
    }
  }
  const settled = v3 ? new Uint8Array(fixed(APP_HASH_BYTES, "settled")) : undefined;
  let read: AppReadRef | undefined;
  if (v4) {
    const from = text(take(), "read sender");
    const id = new Uint8Array(take());
    if (from !== "" || id.length > 0) read = { from, messageId: id };
  }
  if (kind === "read" && !v4) throw new MlsProtocolError("malformed", "a read marker needs the app4 format");
  if (at !== b.length) throw new MlsProtocolError("malformed", `application data has ${b.length - at} trailing bytes`);
  const d: AppData = { kind, text: body, messageId, sentAtMs: Number(sentAt), prev, seen, views, ...(settled === undefined ? {} : { settled }), ...(read === undefined ? {} : { read }) };
  checkData(d, conv, sender);
  return d;
}

/**
 * The hash that chains a sender's messages and that `seen` acknowledges: over the group, the
 * sender (as MLS authenticated it) and the encoded application data.
 */
export function appHash(groupId: Uint8Array, sender: string, appBytes: Uint8Array): Buffer {
  if (!(groupId instanceof Uint8Array) || !(appBytes instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", "appHash takes bytes");
  return hashFields(APP_HASH_LABEL, [groupId, sender, appBytes]);
}

/**
 * Gap check of a sender's chain (PROTOCOL.md §11): true when `prev` is not the last hash seen
 * from that sender. In a group I joined after the sender had spoken, nothing seen yet means no
 * gap can be told; in a DM (and a group I was in from its start) zeros are expected first.
 */
export function chainGap(lastSeen: Uint8Array | undefined, prev: Uint8Array, joinedLate: boolean): boolean {
  if (lastSeen === undefined) return joinedLate ? false : !Buffer.from(prev).equals(Buffer.from(ZERO_APP_HASH));
  return !Buffer.from(prev).equals(Buffer.from(lastSeen));
}

/**
 * Which of my sent messages a peer has not acknowledged although it has sent `afterCount`
 * messages since the relay accepted them (§11: two means one full exchange, the first reply may
 * have crossed my message). `sent` is my messages in order with the number of messages I had
 * received from that peer when the relay accepted each; `ackedUpTo` is the index in `sent` of
 * the newest message the peer's latest `seen` names (-1 for none); `peerCount` is how many
 * messages I have received from the peer so far.
 */
export function unacknowledged(sent: readonly { readonly peerCountAtAccept: number }[], ackedUpTo: number, peerCount: number): number[] {
  if (!Number.isInteger(ackedUpTo) || ackedUpTo < -1 || ackedUpTo >= sent.length) throw new MlsProtocolError("bad-argument", "ackedUpTo is out of range");
  const lost: number[] = [];
  for (let i = ackedUpTo + 1; i < sent.length; i++) {
    if (peerCount - sent[i]!.peerCountAtAccept >= 2) lost.push(i);
  }
  return lost;
}
