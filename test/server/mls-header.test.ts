// SendMls's header reader (src/server/mls-header.ts) against ts-mls's decode, the relay's
// general decoder before it: on real messages of a real group (application, proposal, commit,
// Welcome, GroupInfo, KeyPackage), on PrivateMessages built by ts-mls's encoder with any field
// (1-, 2- and 4-byte lengths, any epoch), and on their mutations (truncations, trailing bytes,
// flipped bytes, 8-byte lengths, other versions, wire formats and content types). The reader
// may say yes only where ts-mls decodes a PrivateMessage, with the same fields; and
// sendMlsFraming refuses exactly what the general decode refused, in the same words (lists beyond
// mls-shape.ts's bounds aside: none of these messages has one; test/adversarial/relay-mls-decode-*).
import fc from "fast-check";
import { encodeMlsMessage } from "ts-mls";
import { beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { createMlsClient, generateKeyPackage } from "../../src/protocol/mls/index.js";
import { decodeMls } from "../../src/protocol/mls/client.js";
import { isMlsProtocolError } from "../../src/protocol/mls/errors.js";
import { Refusal } from "../../src/server/errors.js";
import { DEFAULT_RELAY_LIMITS } from "../../src/server/limits.js";
import { privateMessageHeader, sendMlsFraming } from "../../src/server/mls-header.js";
import { shapeBoundsFor } from "../../src/server/mls-shape.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { makeMlsRoom, type MlsRoom } from "../helpers/mls-room.js";

/** What ts-mls makes of the bytes: a PrivateMessage's fields, another wire format, or a refusal. */
type Reference =
  | { readonly kind: "private"; readonly groupId: string; readonly epoch: bigint; readonly contentType: string }
  | { readonly kind: "other"; readonly wireformat: string }
  | { readonly kind: "refused"; readonly message: string };

function reference(bytes: Uint8Array): Reference {
  try {
    const msg = decodeMls(bytes, "the MLS message");
    if (msg.wireformat !== "mls_private_message") return { kind: "other", wireformat: msg.wireformat };
    const p = msg.privateMessage;
    return { kind: "private", groupId: Buffer.from(p.groupId).toString("hex"), epoch: p.epoch, contentType: p.contentType };
  } catch (e) {
    if (isMlsProtocolError(e)) return { kind: "refused", message: e.message };
    throw e;
  }
}

/** The relay's SendMls framing before mls-header.ts (mls-ds.ts admitMls's first checks), verbatim: its refusal or fields. */
function before(bytes: Uint8Array): { code: ErrorCode; detail: string } | { groupId: string; epoch: bigint; contentType: string } {
  const bad = (detail: string) => ({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail });
  let msg: ReturnType<typeof decodeMls>;
  try {
    msg = decodeMls(bytes, "the MLS message");
  } catch (e) {
    if (isMlsProtocolError(e)) return bad(e.message);
    throw e;
  }
  if (msg.wireformat === "mls_public_message" && msg.publicMessage.content.contentType === "commit") return bad("the message is a commit: send commits with SendCommit, not SendMls");
  if (msg.wireformat !== "mls_private_message") return bad(`SendMls carries an MLS PrivateMessage (application or proposal), not a ${msg.wireformat}`);
  const f = msg.privateMessage;
  return { groupId: Buffer.from(f.groupId).toString("hex"), epoch: f.epoch, contentType: f.contentType };
}

function after(bytes: Uint8Array): ReturnType<typeof before> {
  try {
    const f = sendMlsFraming(bytes, shapeBoundsFor(DEFAULT_RELAY_LIMITS));
    return { groupId: f.groupId.toString("hex"), epoch: BigInt(f.epoch), contentType: f.contentType };
  } catch (e) {
    if (e instanceof Refusal) return { code: e.code, detail: e.message };
    throw e;
  }
}

/** The reader agrees with ts-mls: yes only for a PrivateMessage ts-mls decodes, with its fields. */
function agrees(bytes: Uint8Array): void {
  const h = privateMessageHeader(bytes);
  const ref = reference(bytes);
  if (h !== undefined) {
    expect(ref).toEqual({ kind: "private", groupId: h.groupId.toString("hex"), epoch: BigInt(h.epoch), contentType: h.contentType });
    expect(typeof h.epoch === "bigint").toBe(BigInt(h.epoch) > BigInt(Number.MAX_SAFE_INTEGER));
  } else {
    expect(ref.kind).not.toBe("private");
  }
  const now = after(bytes);
  const was = before(bytes);
  // A PublicMessage other than an external join's commit (or one of its proposal lists) is
  // refused by the walk before any decode now (review round 5), in its own words: a refusal
  // still, with the same code; everything else as before, word for word.
  if ("code" in now && /PublicMessage|an external join/.test(now.detail)) expect({ code: now.code, refused: "code" in was }).toEqual({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, refused: true });
  else expect(now).toEqual(was);
}

let room: MlsRoom;
/** Real messages by name. */
const real = new Map<string, Buffer>();

beforeAll(async () => {
  const ids = await Promise.all((["alice", "bob", "carol"] as const).map((n) => fixtureIdentity(n)));
  room = await makeMlsRoom(ids.map((id) => ({ username: id.username, sigPrivate: id.sigPrivate })), "#hdr");
  real.set("application", Buffer.from(await room.groups[0]!.encrypt(new TextEncoder().encode("hello"))));
  real.set("application (long)", Buffer.from(await room.groups[1]!.encrypt(new Uint8Array(20_000).fill(0x61))));
  real.set("proposal", Buffer.from(await room.groups[2]!.proposeLeave()));
  real.set("commit", Buffer.from(room.registration.commit));
  real.set("welcome", Buffer.from(room.registration.welcome));
  real.set("group info", Buffer.from(room.registration.groupInfo1));
  const dave = await createMlsClient({ username: "dave", sigPrivate: (await fixtureIdentity("dave")).sigPrivate });
  real.set("key package", Buffer.from((await generateKeyPackage(dave)).keyPackage));
}, 60_000);

/** A PrivateMessage as ts-mls's encoder writes it. */
function privateMessage(p: { groupId: Uint8Array; epoch: bigint; contentType: "application" | "proposal" | "commit"; authenticatedData: Uint8Array; encryptedSenderData: Uint8Array; ciphertext: Uint8Array }): Buffer {
  return Buffer.from(encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: p }));
}

const bytes = (max: number) => fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.integer({ min: 0, max }).map((n) => new Uint8Array(n).fill(0x5a)));
const anyPrivate = fc.record({
  groupId: bytes(20_000),
  epoch: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 100n }), fc.constantFrom(2n ** 53n - 1n, 2n ** 53n, 2n ** 32n, 2n ** 32n - 1n)),
  contentType: fc.constantFrom("application" as const, "proposal" as const, "commit" as const),
  authenticatedData: bytes(100),
  encryptedSenderData: bytes(300),
  ciphertext: bytes(70_000),
});

describe("privateMessageHeader", () => {
  it("reads a real application message and proposal as ts-mls does, without copying the group id", () => {
    for (const name of ["application", "application (long)", "proposal"]) {
      const b = real.get(name)!;
      const h = privateMessageHeader(b);
      expect(h, name).toBeDefined();
      expect(h!.groupId.equals(Buffer.from(room.groupId)), name).toBe(true);
      expect(h!.groupId.buffer, name).toBe(b.buffer);
      expect(h!.epoch, name).toBe(1);
      expect(h!.contentType, name).toBe(name === "proposal" ? "proposal" : "application");
      agrees(b);
    }
  });

  it("says no to every other wire format, and sendMlsFraming refuses them as before", () => {
    for (const name of ["commit", "welcome", "group info", "key package"]) {
      const b = real.get(name)!;
      if (reference(b).kind !== "private") expect(privateMessageHeader(b), name).toBeUndefined();
      agrees(b);
    }
    expect(after(real.get("welcome")!)).toEqual({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: "SendMls carries an MLS PrivateMessage (application or proposal), not a mls_welcome" });
  });

  it("agrees with ts-mls on PrivateMessages with any fields (1-, 2- and 4-byte lengths, any epoch)", () => {
    fc.assert(fc.property(anyPrivate, (p) => {
      const b = privateMessage(p);
      const h = privateMessageHeader(b);
      expect(h).toBeDefined();
      expect(BigInt(h!.epoch)).toBe(p.epoch);
      agrees(b);
    }), { numRuns: 200 });
  });

  it("agrees with ts-mls on every truncation and on trailing bytes of a real message", () => {
    const b = real.get("application")!;
    for (let n = 0; n < b.length; n++) {
      expect(privateMessageHeader(b.subarray(0, n)), `first ${n} bytes`).toBeUndefined();
      agrees(b.subarray(0, n));
    }
    for (const tail of [[0], [0, 0, 0], [0xff]]) {
      const longer = Buffer.concat([b, Buffer.from(tail)]);
      expect(privateMessageHeader(longer)).toBeUndefined();
      expect(after(longer)).toEqual({ code: ErrorCode.ERROR_CODE_BAD_MLS_MESSAGE, detail: `the MLS message has ${tail.length} trailing bytes` });
    }
    expect(after(Buffer.alloc(0))).toEqual(before(Buffer.alloc(0)));
  });

  it("agrees with ts-mls on mutated messages (flipped, inserted and removed bytes)", () => {
    const base = fc.oneof(fc.constantFrom(...["application", "proposal", "commit", "welcome"].map((n) => real.get(n)!)), anyPrivate.map(privateMessage));
    fc.assert(fc.property(base, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("set", "insert", "remove")), { minLength: 1, maxLength: 3 }), (b, edits) => {
      let m = Buffer.from(b);
      for (const [pos, value, op] of edits) {
        // Mostly in the header, where the fields are.
        const at = pos % Math.min(m.length + 1, pos % 2 === 0 ? 48 : m.length + 1);
        if (op === "set" && at < m.length) m[at] = value;
        else if (op === "insert") m = Buffer.concat([m.subarray(0, at), Buffer.from([value]), m.subarray(at)]);
        else if (op === "remove" && at < m.length) m = Buffer.concat([m.subarray(0, at), m.subarray(at + 1)]);
      }
      agrees(m);
    }), { numRuns: 2000 });
  });

  it("says no to another version, wire format or content type, and to 8-byte lengths", () => {
    const b = real.get("application")!;
    const groupIdLength = b[4]!; // one-byte length: our group ids are short
    expect(groupIdLength).toBeLessThan(64);
    const contentTypeAt = 4 + 1 + groupIdLength + 8;
    const mutants: Array<[string, Buffer]> = [];
    const set = (name: string, at: number, value: number) => {
      const m = Buffer.from(b);
      m[at] = value;
      mutants.push([name, m]);
    };
    set("version 0", 1, 0);
    set("version 2", 1, 2);
    set("version 0x0101", 0, 1);
    for (const wf of [0, 1, 3, 4, 5, 6, 0xff]) set(`wire format ${wf}`, 3, wf);
    set("wire format 0x0102", 2, 1);
    for (const ct of [0, 4, 0xff]) set(`content type ${ct}`, contentTypeAt, ct);
    set("8-byte group id length", 4, 0xc0 | groupIdLength);
    set("8-byte authenticated data length", contentTypeAt + 1, 0xc0);
    for (const [name, m] of mutants) {
      expect(privateMessageHeader(m), name).toBeUndefined();
      expect(reference(m).kind, name).not.toBe("private");
      agrees(m);
    }
    // A commit as a PrivateMessage is read (the relay refuses it by its content type).
    const commit = Buffer.from(b);
    commit[contentTypeAt] = 3;
    expect(privateMessageHeader(commit)?.contentType).toBe("commit");
    agrees(commit);
  });

  it("takes a length that is not minimally encoded exactly when ts-mls does", () => {
    const p = { groupId: Buffer.from("g1"), epoch: 5n, contentType: "application" as const, authenticatedData: new Uint8Array(0), encryptedSenderData: new Uint8Array(3), ciphertext: new Uint8Array(5) };
    const b = privateMessage(p);
    // group_id<V> with a two-byte length header (0x40 0x02) instead of one.
    const loose = Buffer.concat([b.subarray(0, 4), Buffer.from([0x40, 0x02]), b.subarray(5)]);
    agrees(loose);
    expect(privateMessageHeader(loose)?.groupId.toString()).toBe("g1");
  });

  it("gives an epoch beyond 2^53 - 1 as a bigint, exactly", () => {
    for (const epoch of [2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n]) {
      const h = privateMessageHeader(privateMessage({ groupId: Buffer.from("g"), epoch, contentType: "proposal", authenticatedData: new Uint8Array(0), encryptedSenderData: new Uint8Array(1), ciphertext: new Uint8Array(1) }));
      expect(h?.epoch).toBe(epoch === 2n ** 53n - 1n ? Number(epoch) : epoch);
    }
  });
});
