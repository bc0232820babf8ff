// Small byte helpers shared by the protocol core. Pure: no IO.
import { timingSafeEqual } from "node:crypto";

/** Concatenates byte arrays into one Buffer. */
export function concatBytes(parts: readonly Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

/** 4-byte big-endian unsigned integer. Throws when n is not an integer in [0, 2^32). */
export function u32be(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new RangeError(`u32 out of range: ${n}`);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** 8-byte big-endian unsigned integer. Throws when n is not a safe non-negative integer. */
export function u64be(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`u64 out of range: ${n}`);
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** Constant-time equality; false (never a throw) when the lengths differ. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes UTF-8 strictly: invalid sequences throw instead of becoming U+FFFD. */
export function decodeUtf8Strict(bytes: Uint8Array): string {
  return strictUtf8.decode(bytes);
}

export function utf8(s: string): Buffer {
  return Buffer.from(s, "utf8");
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}
