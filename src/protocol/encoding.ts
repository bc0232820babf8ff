// The one unambiguous encoding for everything that is signed, hashed or used as associated
// data (PROTOCOL.md §3). Protobuf or JSON bytes are never signed: the signed bytes
// are rebuilt from parsed fields with this function.
//
//   enc(label, f1, ..., fn) = u32be(len(label)) || label || u32be(len(f1)) || f1 || ... || u32be(len(fn)) || fn
//
// Every label starts with "securechat/v1/" (domain separation). Integers are fields holding
// their 8-byte big-endian form; strings are UTF-8; lists are a u32be count field followed by
// their elements' fields. Because every field carries its length, no two different field
// sequences under one label can encode to the same bytes.
import { createHash, hash } from "node:crypto";
import { u32be, u64be, utf8 } from "./bytes.js";

export type Field = Uint8Array | string | { readonly u64: number } | { readonly u32: number };

export const LABEL_PREFIX = "securechat/v1/";

function fieldBytes(f: Field): Uint8Array {
  if (typeof f === "string") return utf8(f);
  if (f instanceof Uint8Array) return f;
  if ("u64" in f) return u64be(f.u64);
  return u32be(f.u32);
}

/** Encodes a label and fields as described above, into one buffer (this runs for every envelope). */
export function encodeFields(label: string, fields: readonly Field[]): Buffer {
  if (!label.startsWith(LABEL_PREFIX)) throw new Error(`label must start with ${LABEL_PREFIX}: ${label}`);
  const l = utf8(label);
  const bytes = fields.map(fieldBytes);
  let total = 4 + l.length;
  for (const b of bytes) total += 4 + b.length;
  const out = Buffer.allocUnsafe(total);
  let at = out.writeUInt32BE(l.length, 0);
  at += l.copy(out, at);
  for (const b of bytes) {
    at = out.writeUInt32BE(b.length, at);
    out.set(b, at);
    at += b.length;
  }
  return out;
}

export function sha256(...parts: readonly Uint8Array[]): Buffer {
  if (parts.length === 1) return hash("sha256", parts[0]!, "buffer");
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

/** SHA-256 over enc(label, fields). */
export function hashFields(label: string, fields: readonly Field[]): Buffer {
  return sha256(encodeFields(label, fields));
}
