// Application data inside MLS messages (src/protocol/mls/app-data.ts, PROTOCOL.md §11): strict
// codec, kinds per conversation, the sender chain and drop detection, including the last DM message.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  APP_LABEL, APP_VIEWS_MAX, appHash, chainGap, decodeAppData, encodeAppData, epochViewHash, unacknowledged, ZERO_APP_HASH, type AppData,
} from "../../src/protocol/mls/app-data.js";
import { encodeFields } from "../../src/protocol/encoding.js";
import { makeGroupId } from "../../src/protocol/mls/group-id.js";
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

describe("room epoch views in a DM (§12 fork check)", () => {
  const views = (n: number) => Array.from({ length: n }, (_, i) => makeGroupId(`#r${i}`))
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((groupId, i) => ({ groupId, epoch: i + 1, view: epochViewHash(groupId, i + 1, randomBytes(32)) }));

  it("round-trip, bounded, sorted, rooms only, DMs only; every truncation refused", () => {
    const v = views(3);
    const bytes = encodeAppData(data({ views: v }), dm, "alice");
    const back = decodeAppData(bytes, dm, "alice");
    expect(back.views!.map((x) => [Buffer.from(x.groupId).toString("hex"), x.epoch, Buffer.from(x.view).toString("hex")]))
      .toEqual(v.map((x) => [Buffer.from(x.groupId).toString("hex"), x.epoch, Buffer.from(x.view).toString("hex")]));
    for (let n = 0; n < bytes.length; n++) expect(malformed(() => decodeAppData(bytes.subarray(0, n), dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData(data({ views: v }), room, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData(data({ views: views(APP_VIEWS_MAX + 1) }), dm, "alice"))).toBe(true);
    expect(decodeAppData(encodeAppData(data({ views: views(APP_VIEWS_MAX) }), dm, "alice"), dm, "alice").views).toHaveLength(APP_VIEWS_MAX);
    expect(malformed(() => encodeAppData(data({ views: [v[1]!, v[0]!] }), dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData(data({ views: [v[0]!, v[0]!] }), dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData(data({ views: [{ ...v[0]!, groupId: makeGroupId("dm:alice:bob") }] }), dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData(data({ views: [{ ...v[0]!, view: new Uint8Array(15) }] }), dm, "alice"))).toBe(true);
    expect(malformed(() => encodeAppData(data({ views: [{ ...v[0]!, groupId: new Uint8Array(5) }] }), dm, "alice"))).toBe(true);
  });

  it("a count above the bound is refused before anything is read; the v1 label (no views) still opens", () => {
    const base = [new Uint8Array([1]), "hi", new Uint8Array(16), { u64: 1 }, ZERO_APP_HASH, { u32: 0 }] as const;
    expect(malformed(() => decodeAppData(new Uint8Array(encodeFields("securechat/v1/app2", [...base, { u32: APP_VIEWS_MAX + 1 }])), dm, "alice"))).toBe(true);
    expect(decodeAppData(new Uint8Array(encodeFields(APP_LABEL, [...base])), dm, "alice").views).toEqual([]);
  });

  it("the view hash binds the group, the epoch and the authenticator", () => {
    const g = makeGroupId("#ops"), a = randomBytes(32);
    const h = epochViewHash(g, 3, a);
    expect(h).toHaveLength(16);
    expect(epochViewHash(g, 3, a).equals(h)).toBe(true);
    expect(epochViewHash(g, 4, a).equals(h)).toBe(false);
    expect(epochViewHash(makeGroupId("#ops"), 3, a).equals(h)).toBe(false);
    expect(epochViewHash(g, 3, randomBytes(32)).equals(h)).toBe(false);
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
