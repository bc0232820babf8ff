// Safety numbers (PROTOCOL.md §5): Signal's numeric fingerprint algorithm, so two
// users can compare 60 digits out of band and detect a relay that swapped keys.
//
// Per side:  h0 = u16be(version) || keyBytes || stableId
//            h(i+1) = SHA-512(h(i) || keyBytes), 5200 times
//            digits = for each of the first six 5-byte chunks of h: (40-bit big-endian) mod 100000
// The two 30-digit halves are sorted and concatenated, so both users see the same number.
// keyBytes for secure-chat covers both keys: enc("securechat/v1/safety-key", sig_spki, enc_spki);
// stableId is the username.
import { createHash } from "node:crypto";
import { encodeFields } from "./encoding.js";
import { assertUsername } from "./names.js";

export const SAFETY_ITERATIONS = 5200;
export const SAFETY_VERSION = 0;

function half(version: number, keyBytes: Uint8Array, stableId: Uint8Array, iterations: number): string {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(version);
  let hash: Buffer = Buffer.concat([prefix, keyBytes, stableId]);
  for (let i = 0; i < iterations; i++) {
    hash = createHash("sha512").update(hash).update(keyBytes).digest();
  }
  let out = "";
  for (let chunk = 0; chunk < 6; chunk++) {
    // A 5-byte chunk is at most 2^40 - 1: exact in a double.
    const v = hash.readUIntBE(chunk * 5, 5);
    out += String(v % 100000).padStart(5, "0");
  }
  return out;
}

/**
 * Signal's displayable fingerprint: 60 digits, the same for both sides.
 * Exposed with raw key bytes so it can be checked against libsignal's published vectors.
 */
export function displayableFingerprint(
  localKey: Uint8Array, localId: Uint8Array, remoteKey: Uint8Array, remoteId: Uint8Array,
  iterations: number = SAFETY_ITERATIONS, version: number = SAFETY_VERSION,
): string {
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError("iterations must be a positive integer");
  const local = half(version, localKey, localId, iterations);
  const remote = half(version, remoteKey, remoteId, iterations);
  return local <= remote ? local + remote : remote + local;
}

export interface SafetyNumberParty {
  readonly username: string;
  readonly sigSpki: Uint8Array;
  readonly encSpki: Uint8Array;
}

/** The key bytes one side contributes: both public keys, unambiguously encoded. */
export function safetyKeyBytes(p: SafetyNumberParty): Buffer {
  return encodeFields("securechat/v1/safety-key", [p.sigSpki, p.encSpki]);
}

/** The safety number of two users as 60 digits. */
export function safetyNumberDigits(a: SafetyNumberParty, b: SafetyNumberParty): string {
  assertUsername(a.username);
  assertUsername(b.username);
  return displayableFingerprint(
    safetyKeyBytes(a), Buffer.from(a.username, "utf8"),
    safetyKeyBytes(b), Buffer.from(b.username, "utf8"),
  );
}

/** Formats 60 digits as 12 groups of 5: "12345 67890 ...". */
export function formatSafetyNumber(digits: string): string {
  if (!/^\d{60}$/.test(digits)) throw new Error("a safety number has 60 digits");
  return digits.match(/\d{5}/g)!.join(" ");
}

/** The safety number of two users, formatted for display. */
export function safetyNumber(a: SafetyNumberParty, b: SafetyNumberParty): string {
  return formatSafetyNumber(safetyNumberDigits(a, b));
}

/**
 * How many groups `/trust <user> <groups>` needs: the first groups of the peer's half (the 30
 * digits that come from the peer's keys; the other half is the user's own and never changes).
 * Three groups are 15 digits: a relay that wants another key to pass must find one whose half
 * starts with them, about 10^15 tries of 5200 SHA-512 each.
 */
export const TRUST_GROUPS = 3;

/** The 30 digits of one side (the peer's half of the safety number), as 6 groups of 5. */
export function safetyHalfGroups(p: SafetyNumberParty): string[] {
  assertUsername(p.username);
  return half(SAFETY_VERSION, safetyKeyBytes(p), Buffer.from(p.username, "utf8"), SAFETY_ITERATIONS).match(/\d{5}/g)!;
}

/**
 * Whether the digits a user typed name the keys of `peer`: at least TRUST_GROUPS leading groups
 * of the peer's half, or the whole 60-digit safety number of the pair.
 */
export function digitsNameKeys(typed: readonly string[], me: SafetyNumberParty, peer: SafetyNumberParty): boolean {
  const digits = typed.join("");
  if (!/^\d+$/.test(digits)) return false;
  if (digits.length === 60) return digits === safetyNumberDigits(me, peer);
  if (digits.length < TRUST_GROUPS * 5 || digits.length > 30 || digits.length % 5 !== 0) return false;
  return safetyHalfGroups(peer).join("").startsWith(digits);
}
