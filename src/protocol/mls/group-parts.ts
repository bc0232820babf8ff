// The byte-level parts of an MLS group that need none of MlsGroup's own state (group.ts is the
// group): the padding of application data, zeroing used secrets, comparing GroupContext
// extensions, walking a secret tree for its values, and encoding a state's GroupInfo for
// external joins (PROTOCOL.md §8.1), also for the next epoch of a pending commit.
import { createGroupInfoWithExternalPubAndRatchetTree, encodeMlsMessage, type ClientState, type Extension } from "ts-mls";
import { MlsProtocolError } from "./errors.js";
import { paddingFor, suiteImpl } from "./suite.js";

/**
 * The GroupInfo of a state (its epoch), with the external public key and the ratchet tree,
 * signed by this member: what the relay keeps for external joins (PROTOCOL.md §8.1).
 */
export async function encodeGroupInfo(state: ClientState): Promise<Uint8Array> {
  const impl = await suiteImpl();
  const gi = await createGroupInfoWithExternalPubAndRatchetTree(state, [], impl);
  return encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo: gi });
}

/** Pads application data like v1 (§7.2): u32be(len) || data || zeros, to a multiple of 256 bytes. */
export function pad(data: Uint8Array): Uint8Array {
  const total = 4 + data.length;
  const out = Buffer.alloc(total + paddingFor(total));
  out.writeUInt32BE(data.length, 0);
  out.set(data, 4);
  return out;
}

export function unpad(padded: Uint8Array): Buffer {
  const b = Buffer.from(padded.buffer, padded.byteOffset, padded.byteLength);
  if (b.length < 256 || b.length % 256 !== 0) throw new MlsProtocolError("malformed", "application data is not padded to a multiple of 256 bytes");
  const len = b.readUInt32BE(0);
  if (len > b.length - 4) throw new MlsProtocolError("malformed", "application data length is out of range");
  if (b.length !== 4 + len + paddingFor(4 + len)) throw new MlsProtocolError("malformed", "application data has the wrong amount of padding");
  for (let i = 4 + len; i < b.length; i++) if (b[i] !== 0) throw new MlsProtocolError("malformed", "application data padding is not zero");
  return Buffer.from(b.subarray(4, 4 + len));
}

export function zero(secrets: readonly Uint8Array[]): void {
  for (const s of secrets) s.fill(0);
}


/** Same extensions, in the same order, byte for byte. */
export function sameExtensions(a: readonly Extension[], b: readonly Extension[]): boolean {
  return a.length === b.length && a.every((x, i) => {
    const y = b[i]!;
    return x.extensionType === y.extensionType && Buffer.from(x.extensionData).equals(Buffer.from(y.extensionData));
  });
}

export function secretTreeValues(tree: unknown): Uint8Array[] {
  const out: Uint8Array[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth > 8 || v === null || v === undefined) return;
    if (v instanceof Uint8Array) { out.push(v); return; }
    if (v instanceof Map) { for (const x of v.values()) walk(x, depth + 1); return; }
    if (Array.isArray(v)) { for (const x of v) walk(x, depth + 1); return; }
    if (typeof v === "object") for (const x of Object.values(v)) walk(x, depth + 1);
  };
  walk(tree, 0);
  return out;
}
