// app4 (PROTOCOL.md §11 with several devices per user, §11.3 read markers): seen entries name the
// device whose chain they acknowledge (a tag of its MLS signature key), the `read` kind names the
// newest message read; the older formats still decode. Known-answer bytes are built by hand here
// (length-prefixed fields, §3), independently of encodeFields.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  APP_LABEL_V3, APP_LABEL_V4, DEVICE_TAG_BYTES, decodeAppData, deviceTag, encodeAppData, ZERO_APP_HASH, type AppData,
} from "../../src/protocol/mls/app-data.js";
import { encodeFields } from "../../src/protocol/encoding.js";
import { isMlsProtocolError } from "../../src/protocol/mls/index.js";
import { parseConversationId } from "../../src/protocol/names.js";

const room = parseConversationId("#ops")!;
const dm = parseConversationId("dm:alice:bob")!;
const lobby = parseConversationId("lobby")!;
const T = 1767225600000;

/** §3 enc by hand: u32 length + bytes of the label, then of each field. */
function enc(label: string, fields: (Buffer | string)[]): Buffer {
  const parts = [label, ...fields].map((f) => (typeof f === "string" ? Buffer.from(f, "utf8") : f));
  return Buffer.concat(parts.flatMap((p) => {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(p.length);
    return [n, p];
  }));
}
const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };
const u64 = (v: number): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); return b; };
const fill = (n: number, v: number): Buffer => Buffer.alloc(n, v);

function malformed(f: () => unknown): boolean {
  try {
    f();
    return false;
  } catch (e) {
    return isMlsProtocolError(e, "malformed");
  }
}

describe("device tags", () => {
  it("are the first 8 bytes of SHA-256(enc(label, key)): known answer", () => {
    const key = fill(32, 7);
    const expected = createHash("sha256").update(enc("securechat/v1/device-tag", [key])).digest().subarray(0, 8);
    expect(deviceTag(key).toString("hex")).toBe(expected.toString("hex"));
    expect(deviceTag(key).toString("hex")).toBe("862d06faf25bc97d");
    expect(deviceTag(key)).toHaveLength(DEVICE_TAG_BYTES);
  });
});

describe("app4 encoding", () => {
  const t1 = deviceTag(fill(32, 7));
  const t2 = deviceTag(fill(32, 8));
  const [lo, hi] = Buffer.compare(t1, t2) < 0 ? [t1, t2] : [t2, t1];
  const msg: AppData = {
    kind: "text", text: "hi", messageId: fill(16, 1), sentAtMs: T, prev: fill(32, 2),
    seen: [{ username: "bob", device: lo, hash: fill(32, 3) }, { username: "bob", device: hi, hash: fill(32, 4) }, { username: "carol", hash: fill(32, 6) }],
    settled: fill(32, 5),
  };

  it("a message: the fields of app3 with a device per seen entry, then an empty read reference (known answer)", () => {
    const want = enc(APP_LABEL_V4, [Buffer.from([1]), "hi", fill(16, 1), u64(T), fill(32, 2), u32(3),
      "bob", lo, fill(32, 3), "bob", hi, fill(32, 4), "carol", Buffer.alloc(0), fill(32, 6),
      u32(0), fill(32, 5), "", Buffer.alloc(0)]);
    const got = Buffer.from(encodeAppData(msg, room, "alice"));
    expect(got.toString("hex")).toBe(want.toString("hex"));
    expect(createHash("sha256").update(got).digest("hex").slice(0, 16)).toBe("07dac1444f37b4d1");
    const back = decodeAppData(got, room, "alice");
    expect(back.seen.map((s) => [s.username, s.device === undefined ? "" : Buffer.from(s.device).toString("hex")])).toEqual([["bob", lo.toString("hex")], ["bob", hi.toString("hex")], ["carol", ""]]);
    expect(back.read).toBeUndefined();
  });

  it("a read marker: kind 5, no text, chain or seen; names the message read (known answer)", () => {
    const d: AppData = { kind: "read", text: "", messageId: fill(16, 9), sentAtMs: T, prev: ZERO_APP_HASH, seen: [], read: { from: "bob", messageId: fill(16, 10) } };
    const want = enc(APP_LABEL_V4, [Buffer.from([5]), "", fill(16, 9), u64(T), Buffer.alloc(32), u32(0), u32(0), Buffer.alloc(32), "bob", fill(16, 10)]);
    const got = Buffer.from(encodeAppData(d, dm, "alice"));
    expect(got.toString("hex")).toBe(want.toString("hex"));
    expect(createHash("sha256").update(got).digest("hex").slice(0, 16)).toBe("0368480ccaa91346");
    const back = decodeAppData(got, dm, "alice");
    expect(back.kind).toBe("read");
    expect(back.read!.from).toBe("bob");
    expect(Buffer.from(back.read!.messageId)).toEqual(fill(16, 10));
  });

  it("refuses: a seen entry for any device of the sender's user, unsorted devices, repeats, bad tags", () => {
    const h = fill(32, 1);
    expect(malformed(() => encodeAppData({ ...msg, seen: [{ username: "alice", device: t1, hash: h }] }, room, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData({ ...msg, seen: [{ username: "bob", device: hi, hash: h }, { username: "bob", device: lo, hash: h }] }, room, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData({ ...msg, seen: [{ username: "bob", device: lo, hash: h }, { username: "bob", device: lo, hash: h }] }, room, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData({ ...msg, seen: [{ username: "bob", device: fill(7, 1), hash: h }] }, room, "alice"))).toBe(true);
    // Decoding checks the same: a hand-made app4 naming the sender's own device.
    const own = enc(APP_LABEL_V4, [Buffer.from([1]), "hi", fill(16, 1), u64(T), fill(32, 2), u32(1), "alice", lo, h, u32(0), fill(32, 5), "", Buffer.alloc(0)]);
    expect(malformed(() => decodeAppData(own, room, "alice"))).toBe(true);
  });

  it("refuses read markers in the lobby, with text, a chain, seen entries or no reference; and a reference on a text", () => {
    const r: AppData = { kind: "read", text: "", messageId: fill(16, 9), sentAtMs: T, prev: ZERO_APP_HASH, seen: [], read: { from: "bob", messageId: fill(16, 10) } };
    expect(malformed(() => encodeAppData(r, lobby, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData({ ...r, text: "x" }, dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData({ ...r, prev: fill(32, 1) }, dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData({ ...r, settled: fill(32, 1) }, dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData({ ...r, seen: [{ username: "bob", hash: fill(32, 1) }] }, dm, "alice"))).toBe(true);
    const { read: _r, ...bare } = r;
    expect(malformed(() => encodeAppData(bare, dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData({ ...r, read: { from: "bob", messageId: fill(15, 1) } }, dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData({ ...msg, read: { from: "bob", messageId: fill(16, 1) } }, room, "alice"))).toBe(true);
    // A read kind in the older formats (no reference field) does not decode.
    const old = encodeFields(APP_LABEL_V3, [new Uint8Array([5]), "", fill(16, 1), { u64: T }, ZERO_APP_HASH, { u32: 0 }, { u32: 0 }, ZERO_APP_HASH]);
    expect(malformed(() => decodeAppData(old, dm, "alice"))).toBe(true);
  });

  it("every truncation and an extra byte are refused; app3 still decodes (no devices)", () => {
    const bytes = encodeAppData(msg, room, "alice");
    for (let n = 0; n < bytes.length; n++) expect(malformed(() => decodeAppData(bytes.subarray(0, n), room, "alice"))).toBe(true);
    expect(malformed(() => decodeAppData(new Uint8Array([...bytes, 0]), room, "alice"))).toBe(true);
    const v3 = encodeFields(APP_LABEL_V3, [new Uint8Array([1]), "hi", fill(16, 1), { u64: T }, fill(32, 2), { u32: 1 }, "bob", fill(32, 3), { u32: 0 }, fill(32, 5)]);
    const back = decodeAppData(v3, room, "alice");
    expect(back.seen).toEqual([{ username: "bob", hash: new Uint8Array(fill(32, 3)) }]);
    expect(back.read).toBeUndefined();
  });
});
