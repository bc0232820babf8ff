// Linking a new device (proto/PROTOCOL.md §4.6). Pure: bytes in, bytes out; no files, no network.
//
// The new device draws a random 10-byte CODE, shown as 16 Crockford base32 characters
// (XXXX-XXXX-XXXX-XXXX, 80 bits). The user types it on the primary device. Both derive:
//
//   rendezvous = SHA-256(enc("securechat/v1/link-rendezvous", code))[0..16]   (the relay pairs by it)
//   K          = HKDF-SHA256(ikm = code, salt = "", info = "securechat/v1/link-key", 32)
//
// and exchange three sealed messages through the relay's Link rendezvous, each
//
//   sealed = iv(12) || tag(16) || AES-256-GCM(K, iv, aad = enc("securechat/v1/link-msg", u32(step)), plaintext)
//
// step 1 OFFER  (new → existing)  enc("securechat/v1/link-offer", username, device_id, name, device_spki, mls_signature_key)
// step 2 HELLO  (existing → new)  enc("securechat/v1/link-hello", username, identity_spki, enc_spki, enc_key_sig)
// step 3 BUNDLE (existing → new)  enc("securechat/v1/link-bundle", identity_sig, device_list, u32 n,
//                                     n × (username, sig_spki, enc_spki, enc_key_sig, u32 verified, u64 pinned_at_ms))
//                                 (device_list: the wire DeviceList; then the primary's pins of contacts, §6)
//     or DECLINE (existing → new) enc("securechat/v1/link-decline")
//
// The relay does not know the code (it sees only the rendezvous, a hash of 80 random bits), so it
// can neither read nor forge a message; the step in the AAD stops it replaying one at another
// step. Someone who learnt the code (over a shoulder) and raced the real device is caught by the
// SAS: 6 digits of SHA-256(enc("securechat/v1/link-sas", K, offer, hello)) compared on both
// screens, which differ as soon as either side saw another OFFER or HELLO.
import { hkdfSync, randomBytes } from "node:crypto";
import { DeviceList as WireDeviceList } from "../gen/securechat/v1/chat.js";
import { utf8 } from "./bytes.js";
import { checkDeviceName, fromWireDeviceList, isDeviceId, MLS_SIGNATURE_KEY_BYTES, toWireDeviceList, verifyDeviceList, type SignedDeviceList, type VerifiedDeviceList } from "./devices.js";
import { encodeFields, sha256, type Field } from "./encoding.js";
import { ProtocolError } from "./errors.js";
import { importPublicIdentity, importSigningKey, type PublicIdentity } from "./keys.js";
import { checkUsername } from "./names.js";
import { AES_KEY_BYTES, aesGcmDecrypt, aesGcmEncrypt, GCM_IV_BYTES, GCM_TAG_BYTES } from "./primitives.js";

export const LINK_CODE_BYTES = 10;
export const LINK_CODE_CHARS = 16;
export const RENDEZVOUS_BYTES = 16;
export const LINK_KEY_BYTES = AES_KEY_BYTES;
/** Largest sealed link message (the relay's per-payload limit, PROTOCOL.md §4.6). */
export const LINK_MAX_PAYLOAD_BYTES = 64 * 1024;

export const LINK_RENDEZVOUS_LABEL = "securechat/v1/link-rendezvous";
export const LINK_KEY_INFO = "securechat/v1/link-key";
export const LINK_MSG_LABEL = "securechat/v1/link-msg";
export const LINK_SAS_LABEL = "securechat/v1/link-sas";
export const LINK_OFFER_LABEL = "securechat/v1/link-offer";
export const LINK_HELLO_LABEL = "securechat/v1/link-hello";
export const LINK_BUNDLE_LABEL = "securechat/v1/link-bundle";
export const LINK_DECLINE_LABEL = "securechat/v1/link-decline";

/** The step each message is sealed at (in the AAD). */
export const LinkStep = { offer: 1, hello: 2, bundle: 3 } as const;
export type LinkStepNumber = (typeof LinkStep)[keyof typeof LinkStep];

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ED25519_SIGNATURE_BYTES = 64;

function bad(reason: string): ProtocolError {
  return new ProtocolError("malformed", `link: ${reason}`);
}

// ---------------------------------------------------------------------------------------------
// The code
// ---------------------------------------------------------------------------------------------

/** A fresh code: 10 random bytes. */
export function newLinkCode(): Buffer {
  return randomBytes(LINK_CODE_BYTES);
}

/** The code as people see it: 16 Crockford base32 characters in four groups, "XXXX-XXXX-XXXX-XXXX". */
export function formatLinkCode(code: Uint8Array): string {
  if (!(code instanceof Uint8Array) || code.length !== LINK_CODE_BYTES) throw new TypeError(`a link code is ${LINK_CODE_BYTES} bytes`);
  let bits = 0n;
  for (const b of code) bits = (bits << 8n) | BigInt(b);
  let chars = "";
  for (let i = LINK_CODE_CHARS - 1; i >= 0; i--) chars += CROCKFORD[Number((bits >> BigInt(i * 5)) & 31n)];
  return chars.match(/.{4}/g)!.join("-");
}

export type ParsedLinkCode = { readonly ok: true; readonly code: Buffer } | { readonly ok: false; readonly reason: string };

/**
 * Reads a code as a person typed it: any case, spaces and dashes anywhere, and Crockford's
 * look-alikes (I and L read as 1, O as 0). A wrong length or character is one sentence.
 */
export function parseLinkCode(typed: string): ParsedLinkCode {
  if (typeof typed !== "string") return { ok: false, reason: "a link code is needed" };
  const chars = typed.toUpperCase().replace(/[\s-]/g, "").replace(/[IL]/g, "1").replace(/O/g, "0");
  if (chars.length === 0) return { ok: false, reason: "a link code is needed: the 16 characters the new device shows, like ABCD-EFGH-JKMN-PQRS" };
  for (const c of chars) {
    if (!CROCKFORD.includes(c)) {
      const shown = /^[\x21-\x7e]$/.test(c) ? `'${c}'` : "a character";
      return { ok: false, reason: `${shown} cannot be in a link code (it uses 0-9 and A-Z without I, L, O, U): check what the new device shows` };
    }
  }
  if (chars.length !== LINK_CODE_CHARS) {
    return { ok: false, reason: `a link code has ${LINK_CODE_CHARS} characters, this has ${chars.length}: check what the new device shows` };
  }
  let bits = 0n;
  for (const c of chars) bits = (bits << 5n) | BigInt(CROCKFORD.indexOf(c));
  const code = Buffer.alloc(LINK_CODE_BYTES);
  for (let i = LINK_CODE_BYTES - 1; i >= 0; i--) {
    code[i] = Number(bits & 0xffn);
    bits >>= 8n;
  }
  return { ok: true, code };
}

function checkCode(code: Uint8Array): void {
  if (!(code instanceof Uint8Array) || code.length !== LINK_CODE_BYTES) throw new TypeError(`a link code is ${LINK_CODE_BYTES} bytes`);
}

/** Where the relay pairs the two devices: SHA-256(enc(label, code))[0..16]. */
export function rendezvousOf(code: Uint8Array): Buffer {
  checkCode(code);
  return sha256(encodeFields(LINK_RENDEZVOUS_LABEL, [code])).subarray(0, RENDEZVOUS_BYTES);
}

/** K = HKDF-SHA256(ikm = code, salt = "", info = "securechat/v1/link-key", 32). */
export function linkKey(code: Uint8Array): Buffer {
  checkCode(code);
  return Buffer.from(hkdfSync("sha256", code, Buffer.alloc(0), LINK_KEY_INFO, LINK_KEY_BYTES));
}

// ---------------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------------

function stepAad(step: LinkStepNumber): Buffer {
  return encodeFields(LINK_MSG_LABEL, [{ u32: step }]);
}

function checkStep(step: number): asserts step is LinkStepNumber {
  if (step !== LinkStep.offer && step !== LinkStep.hello && step !== LinkStep.bundle) throw new TypeError(`no link step ${String(step)}`);
}

/** Seals one link message under K at its step: iv || tag || ciphertext. */
export function sealLinkMessage(key: Uint8Array, step: LinkStepNumber, plaintext: Uint8Array): Buffer {
  checkStep(step);
  const iv = randomBytes(GCM_IV_BYTES);
  const { ciphertext, tag } = aesGcmEncrypt(key, iv, stepAad(step), plaintext);
  const sealed = Buffer.concat([iv, tag, ciphertext]);
  if (sealed.length > LINK_MAX_PAYLOAD_BYTES) throw bad(`a sealed message is larger than ${LINK_MAX_PAYLOAD_BYTES} bytes`);
  return sealed;
}

/**
 * Opens a link message expected at `step`. Anything that does not open (another code, a
 * tampered byte, a message of another step) is one ProtocolError("decrypt-failed").
 */
export function openLinkMessage(key: Uint8Array, step: LinkStepNumber, sealed: Uint8Array): Buffer {
  checkStep(step);
  if (!(sealed instanceof Uint8Array) || sealed.length < GCM_IV_BYTES + GCM_TAG_BYTES || sealed.length > LINK_MAX_PAYLOAD_BYTES) {
    throw bad("a message from the other device has an impossible size");
  }
  try {
    return aesGcmDecrypt(key, sealed.subarray(0, GCM_IV_BYTES), stepAad(step), sealed.subarray(GCM_IV_BYTES + GCM_TAG_BYTES), sealed.subarray(GCM_IV_BYTES, GCM_IV_BYTES + GCM_TAG_BYTES));
  } catch (e) {
    throw new ProtocolError("decrypt-failed", "link: a message from the other device does not open with this code (another code, or changed on the way)", { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------
// Strict decoding of the §3 encoding
// ---------------------------------------------------------------------------------------------

/** The fields of enc(label, ...) with exactly `count` fields and no trailing bytes. */
/** Fields of one pin in a BUNDLE: username, sig_spki, enc_spki, enc_key_sig, u32 verified, u64 pinned_at_ms. */
const PIN_FIELDS = 6;

/** The fields after the label: exactly `count` of them, or all there are when `count` is undefined. */
export function decodeLinkFields(bytes: Uint8Array, label: string, count: number | undefined, what: string): Buffer[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const take = (): Buffer => {
    if (at + 4 > b.length) throw bad(`${what} is truncated`);
    const len = b.readUInt32BE(at);
    at += 4;
    if (len > b.length - at) throw bad(`${what} is truncated`);
    const f = b.subarray(at, at + len);
    at += len;
    return f;
  };
  if (!take().equals(utf8(label))) throw bad(`expected ${what}, got another message`);
  const out: Buffer[] = [];
  if (count === undefined) while (at < b.length) out.push(take());
  else for (let i = 0; i < count; i++) out.push(take());
  if (at !== b.length) throw bad(`${what} has ${b.length - at} trailing bytes`);
  return out;
}

function utf8Field(f: Buffer, what: string): string {
  const s = f.toString("utf8");
  if (!Buffer.from(s, "utf8").equals(f)) throw bad(`${what} is not UTF-8`);
  return s;
}

// ---------------------------------------------------------------------------------------------
// The messages
// ---------------------------------------------------------------------------------------------

/** Step 1, new → existing: the device to add. */
export interface LinkOffer {
  readonly username: string;
  readonly deviceId: string;
  readonly name: string;
  /** The new device's Ed25519 key (its Hello.device_spki). */
  readonly deviceSpki: Buffer;
  /** The new device's MLS signature public key. */
  readonly mlsSignatureKey: Buffer;
}

/** Step 2, existing → new: whose device it becomes (the user's identity as the relay binds it). */
export interface LinkHello {
  readonly username: string;
  readonly identitySpki: Buffer;
  readonly encSpki: Buffer;
  readonly encKeySig: Buffer;
}

/** Step 3, existing → new: the credential's identity signature and the signed list naming the new device. */
export interface LinkBundle {
  readonly identitySig: Buffer;
  readonly list: SignedDeviceList;
  /**
   * The primary's pins of contacts (§4.6, §6), so the new device starts with the same keys
   * (and "verified" marks) instead of trusting each contact afresh through the relay. May be a
   * part of them: those that fit the payload, verified ones first (fitLinkPins).
   */
  readonly pins: readonly LinkPin[];
}

/** One pinned contact as the BUNDLE carries it (the keys of the trust store's pin, PROTOCOL.md §6). */
export interface LinkPin {
  readonly username: string;
  readonly sigSpki: Buffer;
  readonly encSpki: Buffer;
  readonly encKeySig: Buffer;
  readonly verified: boolean;
  readonly pinnedAtMs: number;
}

/** Room left in a BUNDLE for the pins (the payload limit less the signature, a 16-device list and framing). */
export const LINK_PINS_BUDGET_BYTES = 56 * 1024;

function pinBytes(p: LinkPin): number {
  return 6 * 4 + Buffer.byteLength(p.username) + p.sigSpki.length + p.encSpki.length + p.encKeySig.length + 4 + 8;
}

/** The pins that fit LINK_PINS_BUDGET_BYTES: verified first, then the most recently pinned. */
export function fitLinkPins(pins: readonly LinkPin[]): LinkPin[] {
  const ordered = [...pins].sort((a, b) => Number(b.verified) - Number(a.verified) || b.pinnedAtMs - a.pinnedAtMs || a.username.localeCompare(b.username));
  const out: LinkPin[] = [];
  let used = 4;
  for (const p of ordered) {
    const n = pinBytes(p);
    if (used + n > LINK_PINS_BUDGET_BYTES) continue;
    used += n;
    out.push(p);
  }
  return out;
}

function checkOffer(o: LinkOffer): void {
  const n = checkUsername(o.username);
  if (!n.ok) throw bad(`the offer names an invalid user: ${n.reason}`);
  if (!isDeviceId(o.deviceId)) throw bad("the offer's device id must be 16 lowercase hex characters");
  const dn = checkDeviceName(o.name);
  if (!dn.ok) throw bad(`the offer's device name: ${dn.reason}`);
  try {
    importSigningKey(o.deviceSpki);
  } catch (e) {
    throw new ProtocolError("bad-key", "link: the offer's device key is not an Ed25519 key", { cause: e });
  }
  if (!(o.mlsSignatureKey instanceof Uint8Array) || o.mlsSignatureKey.length !== MLS_SIGNATURE_KEY_BYTES) throw bad(`the offer's MLS signature key must be ${MLS_SIGNATURE_KEY_BYTES} bytes`);
}

export function encodeOffer(o: LinkOffer): Buffer {
  checkOffer(o);
  return encodeFields(LINK_OFFER_LABEL, [o.username, o.deviceId, o.name, o.deviceSpki, o.mlsSignatureKey]);
}

/** Decodes and checks an OFFER's plaintext. */
export function decodeOffer(bytes: Uint8Array): LinkOffer {
  const [u, id, name, spki, mls] = decodeLinkFields(bytes, LINK_OFFER_LABEL, 5, "an offer") as [Buffer, Buffer, Buffer, Buffer, Buffer];
  const o: LinkOffer = {
    username: utf8Field(u, "the offer's user"), deviceId: utf8Field(id, "the offer's device id"), name: utf8Field(name, "the offer's device name"),
    deviceSpki: Buffer.from(spki), mlsSignatureKey: Buffer.from(mls),
  };
  checkOffer(o);
  return o;
}

/** The HELLO fields, checked: the identity key vouches for the encryption key (§4.2). */
function checkHello(h: LinkHello): PublicIdentity {
  try {
    return importPublicIdentity({ username: h.username, sigSpki: h.identitySpki, encSpki: h.encSpki, encKeySig: h.encKeySig });
  } catch (e) {
    throw new ProtocolError((e as ProtocolError).code ?? "malformed", `link: the other device's identity does not check: ${(e as Error).message}`, { cause: e });
  }
}

export function encodeHello(h: LinkHello): Buffer {
  checkHello(h);
  return encodeFields(LINK_HELLO_LABEL, [h.username, h.identitySpki, h.encSpki, h.encKeySig]);
}

export function decodeHello(bytes: Uint8Array): LinkHello {
  const [u, sig, enc, bind] = decodeLinkFields(bytes, LINK_HELLO_LABEL, 4, "a hello") as [Buffer, Buffer, Buffer, Buffer];
  const h: LinkHello = { username: utf8Field(u, "the hello's user"), identitySpki: Buffer.from(sig), encSpki: Buffer.from(enc), encKeySig: Buffer.from(bind) };
  checkHello(h);
  return h;
}

export function encodeBundle(b: LinkBundle): Buffer {
  if (!(b.identitySig instanceof Uint8Array) || b.identitySig.length !== ED25519_SIGNATURE_BYTES) throw bad("the bundle's identity signature must be 64 bytes");
  const list = WireDeviceList.encode(toWireDeviceList(b.list)).finish();
  const fields: Field[] = [b.identitySig, list, { u32: b.pins.length }];
  const names = new Set<string>();
  for (const p of b.pins) {
    if (!checkUsername(p.username).ok || names.has(p.username)) throw bad(`the bundle's pin of '${String(p.username)}' is invalid or repeated`);
    names.add(p.username);
    fields.push(p.username, p.sigSpki, p.encSpki, p.encKeySig, { u32: p.verified ? 1 : 0 }, { u64: p.pinnedAtMs });
  }
  return encodeFields(LINK_BUNDLE_LABEL, fields);
}

export const DECLINE_PLAINTEXT: Buffer = encodeFields(LINK_DECLINE_LABEL, []);

/** What arrives at step 3: the bundle, or the other device's "no". */
export type StepThree = { readonly kind: "bundle"; readonly bundle: LinkBundle } | { readonly kind: "declined" };

/** Decodes step 3's plaintext: a DECLINE, or a BUNDLE (not yet verified: verifyBundle). */
export function decodeStepThree(bytes: Uint8Array): StepThree {
  if (Buffer.from(bytes).equals(DECLINE_PLAINTEXT)) return { kind: "declined" };
  const all = decodeLinkFields(bytes, LINK_BUNDLE_LABEL, undefined, "a bundle");
  if (all.length < 3 || all[2]!.length !== 4) throw bad("a bundle is truncated");
  const count = all[2]!.readUInt32BE(0);
  if (all.length !== 3 + PIN_FIELDS * count) throw bad(`a bundle announces ${count} pins but carries ${Math.max(0, (all.length - 3) / PIN_FIELDS)}`);
  const [sig, listBytes] = all as [Buffer, Buffer];
  const pins: LinkPin[] = [];
  const names = new Set<string>();
  for (let i = 0; i < count; i++) {
    const [u, s, e, k, v, t] = all.slice(3 + i * PIN_FIELDS, 3 + (i + 1) * PIN_FIELDS) as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
    const username = utf8Field(u, "a pin's user");
    if (!checkUsername(username).ok || names.has(username)) throw bad(`the bundle's pin of '${username}' is invalid or repeated`);
    if (v.length !== 4 || v.readUInt32BE(0) > 1 || t.length !== 8) throw bad(`the bundle's pin of '${username}' is malformed`);
    names.add(username);
    pins.push({ username, sigSpki: Buffer.from(s), encSpki: Buffer.from(e), encKeySig: Buffer.from(k), verified: v.readUInt32BE(0) === 1, pinnedAtMs: Number(t.readBigUInt64BE(0)) });
  }
  if (sig.length !== ED25519_SIGNATURE_BYTES) throw bad("the bundle's identity signature must be 64 bytes");
  let wire: WireDeviceList;
  try {
    wire = WireDeviceList.decode(listBytes);
  } catch (e) {
    throw new ProtocolError("malformed", "link: the bundle's device list does not decode", { cause: e });
  }
  return { kind: "bundle", bundle: { identitySig: Buffer.from(sig), list: fromWireDeviceList(wire), pins } };
}

/**
 * The new device's checks of a BUNDLE (§4.6): the list is signed by HELLO's identity key for
 * HELLO's user, and names exactly the device of the OFFER (its id, name, both keys, not primary).
 * The credential's signature is checked by the caller (mlsClientFromCredential) with the same
 * identity key. Throws ProtocolError.
 */
export function verifyBundle(bundle: LinkBundle, offer: LinkOffer, hello: LinkHello): VerifiedDeviceList {
  if (hello.username !== offer.username) throw bad(`the other device is signed in as '${hello.username}', not '${offer.username}'`);
  let list: VerifiedDeviceList;
  try {
    list = verifyDeviceList(bundle.list, hello.username, hello.identitySpki);
  } catch (e) {
    throw new ProtocolError((e as ProtocolError).code ?? "malformed", `link: the device list sent is not ${hello.username}'s: ${(e as Error).message}`, { cause: e });
  }
  const me = list.devices.find((d) => d.deviceId === offer.deviceId);
  if (me === undefined) throw bad("the device list sent does not name this device");
  if (me.primary || !me.authSpki.equals(offer.deviceSpki) || !me.mlsSignatureKey.equals(offer.mlsSignatureKey) || me.name !== offer.name) {
    throw bad("the device list sent names this device with other keys or another name");
  }
  return list;
}

// ---------------------------------------------------------------------------------------------
// The short authentication string
// ---------------------------------------------------------------------------------------------

/**
 * The 6 digits both screens show: SHA-256(enc(label, K, offer, hello)) read as a number mod 10^6
 * (its first 8 bytes: the bias is below 2^-40), as "123 456".
 */
export function linkSas(key: Uint8Array, offerPlaintext: Uint8Array, helloPlaintext: Uint8Array): string {
  if (!(key instanceof Uint8Array) || key.length !== LINK_KEY_BYTES) throw new TypeError(`K is ${LINK_KEY_BYTES} bytes`);
  const h = sha256(encodeFields(LINK_SAS_LABEL, [key, offerPlaintext, helloPlaintext] as Field[]));
  const n = h.readBigUInt64BE(0) % 1_000_000n;
  const s = n.toString().padStart(6, "0");
  return `${s.slice(0, 3)} ${s.slice(3)}`;
}
