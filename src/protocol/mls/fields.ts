// Strict decoder for the §3 encoding (PROTOCOL.md §3) used by the MLS layer's own
// structures (credential, client state, stored KeyPackages): exactly the label given, exactly
// `count` fields, no trailing bytes. encodeFields (src/protocol/encoding.ts) writes them.
import { utf8 } from "../bytes.js";
import { MlsProtocolError } from "./errors.js";

export function decodeFields(bytes: Uint8Array, label: string, count: number, what: string): Buffer[] {
  if (!(bytes instanceof Uint8Array)) throw new MlsProtocolError("bad-argument", `${what} must be bytes`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Buffer[] = [];
  let at = 0;
  const take = (): Buffer => {
    if (at + 4 > b.length) throw new MlsProtocolError("malformed", `${what} is truncated`);
    const len = b.readUInt32BE(at);
    at += 4;
    if (len > b.length - at) throw new MlsProtocolError("malformed", `${what} is truncated`);
    const f = b.subarray(at, at + len);
    at += len;
    return f;
  };
  const l = take();
  if (!l.equals(utf8(label))) throw new MlsProtocolError("malformed", `${what} does not start with the label ${label}`);
  for (let i = 0; i < count; i++) out.push(take());
  if (at !== b.length) throw new MlsProtocolError("malformed", `${what} has ${b.length - at} trailing bytes`);
  return out;
}
