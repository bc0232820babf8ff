// Small checks the MLS Delivery Service's parts share (mls-ds.ts, mls-key-packages.ts): the
// BAD_MLS_MESSAGE refusal, an MLS decode whose error becomes one, SHA-256, an epoch as a number.
import { createHash } from "node:crypto";
import { ErrorCode } from "../gen/securechat/v1/chat.js";
import { isMlsProtocolError } from "../protocol/mls/errors.js";
import { Refusal } from "./errors.js";

/** A BAD_MLS_MESSAGE refusal with its sentence. */
export const bad = (detail: string): Refusal => new Refusal(ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail);

export function sha256(b: Uint8Array): Buffer {
  return createHash("sha256").update(b).digest();
}

/** An epoch from the MLS framing as a number the database keeps exactly. */
export function epochNumber(e: bigint, what: string): number {
  if (e > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${what}'s epoch ${e} is larger than this relay keeps`);
  return Number(e);
}

/** Runs an MLS decode; its MlsProtocolError becomes a BAD_MLS_MESSAGE refusal with its sentence. */
export function mls<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isMlsProtocolError(e)) throw bad(e.message);
    throw e;
  }
}
