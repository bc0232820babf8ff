// Hand-made request frames for the wire pre-scan (src/server/frame-scan.ts): many empty elements
// of one repeated field, as a hostile client would write them, without building them as objects.
import { writeVarint } from "./fuzz-protobuf.js";

/** `n` copies of an empty length-delimited field `fieldNo` (2 bytes each for fields 1-15). */
export function emptyEntries(fieldNo: number, n: number): Buffer {
  const one = Buffer.from([...writeVarint(BigInt((fieldNo << 3) | 2)), 0]);
  return Buffer.alloc(n * one.length, one);
}

/** A length-delimited field `fieldNo` holding `body`. */
export function lenField(fieldNo: number, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(writeVarint(BigInt((fieldNo << 3) | 2))), Buffer.from(writeVarint(BigInt(body.length))), body]);
}

/** A varint field `fieldNo`. */
export function varintField(fieldNo: number, v: number): Buffer {
  return Buffer.from([...writeVarint(BigInt(fieldNo << 3)), ...writeVarint(BigInt(v))]);
}

/** A SessionRequest whose case `caseNo` holds `body` (the request message's bytes). */
export function requestFrame(caseNo: number, ...body: Uint8Array[]): Buffer {
  return lenField(caseNo, Buffer.concat(body));
}

/** A packed run of `n` one-byte varints (Ack.seqs: seq 1, n times). */
export function packedOnes(fieldNo: number, n: number): Buffer {
  return lenField(fieldNo, Buffer.alloc(n, 1));
}
