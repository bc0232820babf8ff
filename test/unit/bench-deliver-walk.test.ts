// The peers benchmark's walk of DeliverBatch bytes (scripts/bench/_deliver-walk.ts) against
// ts-proto's decoder of the same frames, as the relay writes them (src/server/frames.ts): it must
// see every item's seq, and of an MLS item the kind, sender and tag, exactly as the decoder does,
// and refuse bytes that are not a well-formed DeliverBatch.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { walkDeliverBatch, type WalkedItem } from "../../scripts/bench/_deliver-walk.js";
import { MlsKind, Pong, SessionResponse } from "../../src/gen/securechat/v1/chat.js";
import { encodeDeliverBatch, encodeMlsDelivery } from "../../src/server/frames.js";
import type { QueuedItem } from "../../src/server/store.js";

function walk(bytes: Buffer): WalkedItem[] | undefined {
  const out: WalkedItem[] = [];
  return walkDeliverBatch(bytes, (i) => out.push({ ...i })) ? out : undefined;
}

describe("walkDeliverBatch", () => {
  it("sees what ts-proto decodes: seqs, and the kind, sender and tag of MLS items; envelopes and relay times skipped", () => {
    const items: QueuedItem[] = [
      { seq: 1, conversationId: "#ops", payload: "mls", relayTimeMs: 1_700_000_000_000, envelope: encodeMlsDelivery({ kind: MlsKind.MLS_KIND_APPLICATION, groupId: randomBytes(32), sender: "alice", mls: randomBytes(700), epoch: 3, senderDevice: "phone" }) },
      { seq: 2 ** 40, conversationId: "dm:bob:carol", payload: "mls", envelope: encodeMlsDelivery({ kind: MlsKind.MLS_KIND_WELCOME, groupId: randomBytes(16), sender: "bøb", mls: randomBytes(40), ratchetTree: randomBytes(300) }) },
      { seq: 7, conversationId: "lobby", envelope: Buffer.alloc(0) }, // a version-1 item (an empty Envelope)
    ];
    const bytes = encodeDeliverBatch(items);
    const decoded = SessionResponse.decode(bytes).frame;
    if (decoded?.$case !== "deliver") throw new Error("not a DeliverBatch");
    const expected = decoded.value.items.map((d) => ({
      seq: d.seq, kind: d.mls?.kind ?? 0, sender: d.mls?.sender ?? "", mls: d.mls !== undefined,
      tag: d.mls === undefined ? "" : Buffer.from(d.mls.mls.subarray(-16)).toString("hex"),
    }));
    expect(walk(bytes)).toEqual(expected);
    expect(expected.map((e) => e.seq)).toEqual([1, 2 ** 40, 7]);
  });

  it("leaves other frames to the decoder, and refuses every truncation of a DeliverBatch", () => {
    expect(walk(Buffer.from(SessionResponse.encode({ frame: { $case: "pong", value: Pong.fromPartial({}) } }).finish()))).toBeUndefined();
    expect(walk(Buffer.alloc(0))).toBeUndefined();
    const bytes = encodeDeliverBatch([
      { seq: 300, conversationId: "#ops", payload: "mls", envelope: encodeMlsDelivery({ kind: MlsKind.MLS_KIND_APPLICATION, groupId: randomBytes(32), sender: "alice", mls: randomBytes(200) }) },
    ]);
    for (let n = 1; n < bytes.length; n++) expect(() => walk(bytes.subarray(0, n)), `cut at ${n}`).toThrow();
    // An MLS message shorter than a tag, and a field of an unknown wire type.
    expect(() => walk(encodeDeliverBatch([{ seq: 1, conversationId: "c", payload: "mls", envelope: encodeMlsDelivery({ kind: 1, groupId: Buffer.alloc(1), sender: "a", mls: Buffer.alloc(8) }) }])))
      .toThrow("shorter than its tag");
    expect(() => walk(Buffer.from([0x1a, 0x02, 0x0f, 0x00]))).toThrow("wire type 7");
  });
});
