// Application data inside MLS messages (src/protocol/mls/app-data.ts, PROTOCOL-v2.md §8): strict
// codec, kinds per conversation, the sender chain and drop detection, including the last DM message.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  appHash, chainGap, decodeAppData, encodeAppData, unacknowledged, ZERO_APP_HASH, type AppData,
} from "../../src/protocol/mls/app-data.js";
import { isMlsProtocolError } from "../../src/protocol/mls/index.js";
import { parseConversationId } from "../../src/protocol/names.js";
import { groupOf, person } from "./mls-helpers.js";

const dm = parseConversationId("dm:alice:bob")!;
const room = parseConversationId("#ops")!;

function data(over: Partial<AppData> = {}): AppData {
  return { kind: "text", text: "hello ✓", messageId: new Uint8Array(16).fill(1), sentAtMs: 1767225600000, prev: ZERO_APP_HASH, seen: [], ...over };
}

function malformed(f: () => unknown): boolean {
  try {
    f();
    return false;
  } catch (e) {
    return isMlsProtocolError(e, "malformed");
  }
}

describe("application data codec", () => {
  it("round-trips, with a seen list", () => {
    const d = data({ seen: [{ username: "bob", hash: new Uint8Array(32).fill(2) }, { username: "carol", hash: new Uint8Array(32).fill(3) }] });
    const back = decodeAppData(encodeAppData(d, room, "alice"), room, "alice");
    expect(back.text).toBe("hello ✓");
    expect(back.seen.map((s) => s.username)).toEqual(["bob", "carol"]);
    expect(back.sentAtMs).toBe(d.sentAtMs);
  });

  it("refuses kinds outside their conversation, unsorted or self-naming seen lists, bad sizes", () => {
    expect(malformed(() => encodeAppData(data({ kind: "topic" }), dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData(data({ kind: "away" }), room, "alice"))).toBe(true);
    const h = new Uint8Array(32);
    expect(malformed(() => encodeAppData(data({ seen: [{ username: "carol", hash: h }, { username: "bob", hash: h }] }), room, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData(data({ seen: [{ username: "alice", hash: h }] }), room, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData(data({ messageId: new Uint8Array(15) }), room, "alice"))).toBe(true);
    // A topic encoded for a room and delivered as a DM's is refused by the receiver.
    const topic = encodeAppData(data({ kind: "topic" }), room, "alice");
    expect(malformed(() => decodeAppData(topic, dm, "alice"))).toBe(true);
  });

  it("every truncation, an extra byte and invalid UTF-8 are refused", () => {
    const bytes = encodeAppData(data({ seen: [{ username: "bob", hash: randomBytes(32) }] }), room, "alice");
    for (let n = 0; n < bytes.length; n++) expect(malformed(() => decodeAppData(bytes.subarray(0, n), room, "alice"))).toBe(true);
    expect(malformed(() => decodeAppData(new Uint8Array([...bytes, 0]), room, "alice"))).toBe(true);
    const invalidUtf8 = encodeAppData(data({ text: "ab" }), room, "alice");
    const i = Buffer.from(invalidUtf8).indexOf(Buffer.from("ab"));
    invalidUtf8[i] = 0xff;
    expect(malformed(() => decodeAppData(invalidUtf8, room, "alice"))).toBe(true);
  });
});

describe("drop detection", () => {
  it("the chain shows a gap from the next message; a late joiner is not warned", () => {
    const h1 = new Uint8Array(32).fill(9);
    expect(chainGap(undefined, ZERO_APP_HASH, false)).toBe(false);
    expect(chainGap(undefined, h1, false)).toBe(true); // a DM's first message I saw is not the sender's first
    expect(chainGap(undefined, h1, true)).toBe(false);
    expect(chainGap(h1, h1, false)).toBe(false);
    expect(chainGap(ZERO_APP_HASH, h1, false)).toBe(true);
  });

  it("a dropped LAST message of a DM is flagged once the peer has sent two messages without acknowledging it", async () => {
    const [alice, bob] = await Promise.all([person("alice"), person("bob")]);
    const [ga, gb] = await groupOf("dm:alice:bob", alice, [bob]);
    // Alice sends A0 (delivered) and A1 (the relay drops it). Bob answers twice, acknowledging A0.
    const a0 = encodeAppData(data({ messageId: randomBytes(16) }), dm, "alice");
    const a0Hash = appHash(ga!.groupId, "alice", a0);
    const a1 = encodeAppData(data({ messageId: randomBytes(16), prev: a0Hash }), dm, "alice");
    const got = await gb!.process(await ga!.encrypt(a0));
    if (got.kind !== "application") throw new Error("expected a message");
    const seenByBob = appHash(gb!.groupId, got.sender.username, got.plaintext);
    expect(seenByBob.equals(a0Hash)).toBe(true);
    await ga!.encrypt(a1); // dropped: never delivered to Bob
    const sent = [{ peerCountAtAccept: 0 }, { peerCountAtAccept: 0 }];
    // After Bob's first reply (it may have crossed A1): not flagged yet.
    expect(unacknowledged(sent, 0, 1)).toEqual([]);
    // After his second reply still naming A0: A1 is flagged as lost.
    expect(unacknowledged(sent, 0, 2)).toEqual([1]);
    // Had he acknowledged A1, nothing would be flagged.
    expect(unacknowledged(sent, 1, 2)).toEqual([]);
    expect(isMlsProtocolError((() => { try { unacknowledged(sent, 5, 2); } catch (e) { return e; } })())).toBe(true);
  });
});
