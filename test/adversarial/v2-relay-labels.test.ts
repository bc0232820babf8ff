// The relay chooses a delivery's labels (Delivery.conversation_id, MlsDelivery.sender and
// sender_device): a hostile one puts escape sequences, newlines or bidi controls in them to paint
// on the screen or draw a fake line (a forged "20:41 carol …"). PROTOCOL.md §11.2: such a
// delivery is refused where it enters (ds-transport.ts mlsQueuedOf) — logged escaped, one
// `refused` event that names none of the bad labels, acknowledged — and the honest traffic goes on.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { MlsKind, type Delivery } from "../../src/gen/securechat/v1/chat.js";
import type { SessionEvent } from "../../src/client/types.js";
import { cleanupWorlds, keepTalking, loadIdentities, logs, notices, processed, T, world } from "../helpers/v2-hostile-world.js";
import { waitUntil } from "../helpers/wait.js";

beforeAll(loadIdentities);
afterEach(cleanupWorlds);

/** What no label from the relay may carry into an event: C0/C1 controls (ESC, CR, LF, BEL), DEL, bidi and zero-width controls. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/u;

/** Every string anywhere in these events that carries an unsafe code point. */
function unsafeStrings(events: readonly SessionEvent[]): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === "string") { if (UNSAFE.test(v)) out.push(v); return; }
    if (Array.isArray(v)) { v.forEach(walk); return; }
    if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) for (const x of Object.values(v)) walk(x);
  };
  walk(events);
  return out;
}

const EVIL_CONV = "#ops\u001b]0;owned-title\u0007\u001b[2J\u001b[31m";
const EVIL_SENDER = "bob\u001b]52;c;cGF5bG9hZA==\u0007";
const FAKE_LINE_SENDER = "bob\u001b[8m\n20:41 carol     FAKE LINE";

const mlsDelivery = (conversationId: string, mls: Partial<NonNullable<Delivery["mls"]>>): Delivery => ({
  seq: 0, conversationId, relayTimeMs: 0, envelope: undefined,
  mls: { kind: MlsKind.MLS_KIND_APPLICATION, groupId: Buffer.alloc(0), sender: "bob", mls: Buffer.from([0, 1, 0, 2]), ratchetTree: Buffer.alloc(0), epoch: 0, senderDevice: "", ...mls },
});

describe("relay labels (conversation id, sender, sender device)", () => {
  it("a delivery with a malformed label is refused without echoing it, acked, logged escaped; the others talk on", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob");
    await keepTalking(w, "dm:alice:bob", ["alice", "bob"], "before");
    const alice = w.c.alice!;
    const refusedBefore = alice.events.filter((e) => e.type === "refused").length;
    const dmGroup = Buffer.concat([Buffer.from("dm:alice:bob"), Buffer.from([0]), Buffer.alloc(16, 7)]);

    const injected = w.proxy.inject("alice",
      // A Welcome whose conversation id and sender carry OSC/CSI sequences (its notice named both).
      mlsDelivery(EVIL_CONV, { kind: MlsKind.MLS_KIND_WELCOME, sender: EVIL_SENDER, mls: Buffer.from([0, 1, 0, 3]) }),
      // An application message whose sender draws a fake line (its `refused` event named it as is).
      mlsDelivery("lobby", { groupId: dmGroup, sender: FAKE_LINE_SENDER }),
      // A well-formed conversation and sender, with a device id that is none (a bidi override in it).
      mlsDelivery("dm:alice:bob", { groupId: dmGroup, senderDevice: "phone\u202e" }),
      // A DM of two other users with a malformed sender: not opened as a conversation of mine.
      mlsDelivery("dm:bob:carol", { sender: "carol\r\n" }),
    );
    for (const d of injected) await processed(w, "alice", d.seq); // acked: it can never become valid

    const after = alice.events.filter((e) => e.type === "refused").slice(refusedBefore);
    expect(after).toEqual([
      { type: "refused", conversationId: "lobby", from: "the relay" },
      { type: "refused", conversationId: "lobby", from: "the relay" },
      { type: "refused", conversationId: "dm:alice:bob", from: "bob" },
      { type: "refused", conversationId: "lobby", from: "the relay" },
    ]);
    expect(unsafeStrings(alice.events)).toEqual([]);
    // Nothing reached the engine: no notice of an invitation that did not open.
    expect(notices(alice).filter((t) => t.includes("invitation"))).toEqual([]);
    // The log names each label, escaped (no raw control character in a log line).
    const logged = (logs.get("alice") ?? []).filter((l) => l.event === "mls.deliver.malformed_label");
    expect(logged.map((l) => l.label)).toEqual(["conversation-id", "sender", "sender-device", "sender"]);
    expect(unsafeStrings(logged as never)).toEqual([]);
    expect(String(logged[0]!.conversation)).toContain(String.raw`\u001b]0;owned-title\u0007`);

    // The honest traffic is unaffected.
    await keepTalking(w, "dm:alice:bob", ["alice", "bob"], "after");
    expect(unsafeStrings(w.c.bob!.events)).toEqual([]);
  });

  it("a malformed label does not hold back the well-formed deliveries around it", { timeout: 240_000 }, async () => {
    const w = await world("alice", "bob");
    await keepTalking(w, "dm:alice:bob", ["alice", "bob"], "before");
    // The relay slips a malformed delivery in front of each of bob's messages to alice.
    w.proxy.onDelivery = (user, d) => (user === "alice" && d.mls?.kind === MlsKind.MLS_KIND_APPLICATION
      ? [w.proxy.own(mlsDelivery("dm:alice:bob", { sender: FAKE_LINE_SENDER })), d]
      : undefined);
    const r = w.c.bob!.client.send("dm:alice:bob", "still here");
    expect(r.ok).toBe(true);
    await w.c.alice!.waitForMessage("still here", T);
    await waitUntil(() => w.c.alice!.events.some((e) => e.type === "refused" && e.from === "the relay"), "the refusal", T);
    expect(unsafeStrings(w.c.alice!.events)).toEqual([]);
  });
});
