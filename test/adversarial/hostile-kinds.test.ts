// A hostile peer and the message kinds of issue 10 (PROTOCOL.md §7.2 step 1, §7.3 check 8):
// a "topic" outside a room and an "away" reply outside a DM are refused by the recipient's
// client (the relay cannot see the kind), and an "away" reply is never answered automatically,
// so mallory cannot make an away user's client send for her without end.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { SendStatus } from "../../src/gen/securechat/v1/chat.js";
import { sealEnvelope, ZERO_HASH } from "../../src/protocol/envelope.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { TestRelay } from "../helpers/relay-harness.js";
import { waitUntil } from "../helpers/wait.js";

let bob: PrivateIdentity;
let mallory: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  [bob, mallory] = await Promise.all([fixtureIdentity("bob"), fixtureIdentity("mallory")]);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function scene() {
  const relay = await TestRelay.start();
  cleanups.push(() => relay.cleanup());
  const dir = mkdtempSync(join(tmpdir(), "sc-kinds-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const b = await TestClient.start(bob, relay.running.port, { dir });
  cleanups.push(() => b.close());
  const m = await relay.connect(mallory);
  return { relay, b, m };
}

const envelope = (conversationId: string, kind: "text" | "topic" | "away", text: string) =>
  sealEnvelope({ sender: mallory, conversationId, recipients: [bob], body: { kind, text }, prev: ZERO_HASH, sentAtMs: Date.now() }).envelope;

describe("hostile message kinds", () => {
  it("a topic in a DM and an away reply in the lobby are refused by bob's client, not shown", async () => {
    const { b, m } = await scene();
    for (const [conversationId, kind] of [["dm:bob:mallory", "topic"], ["lobby", "away"]] as const) {
      const r = await m.send(envelope(conversationId, kind, `${kind} where it does not belong`));
      expect(r.status).toBe(SendStatus.SEND_STATUS_ACCEPTED); // the relay cannot see the kind
    }
    await waitUntil(() => (b.events.filter((e) => e.type === "refused" && e.from === "mallory").length >= 2 ? true : undefined), "bob refuses both");
    expect(b.messages().filter((x) => x.from === "mallory")).toEqual([]);
  });

  it("an away bob answers mallory's DM once, and never answers her away replies", async () => {
    const { b, m } = await scene();
    b.client.setAway("out");
    const own = () => b.events.filter((e) => e.type === "message" && e.message.own);
    for (let i = 0; i < 3; i++) await m.sendAccepted(envelope("dm:bob:mallory", "away", `mallory is away too ${i}`));
    await waitUntil(() => b.messages("dm:bob:mallory").find((x) => x.text === "mallory is away too 2"), "bob shows mallory's away replies");
    expect(own()).toEqual([]);
    await m.sendAccepted(envelope("dm:bob:mallory", "text", "a real question"));
    await m.sendAccepted(envelope("dm:bob:mallory", "text", "and another"));
    await waitUntil(() => b.messages("dm:bob:mallory").find((x) => x.text === "and another"), "bob shows mallory's DMs");
    await waitUntil(() => (own().length >= 1 ? true : undefined), "bob's one automatic reply");
    const replies = own().map((e) => (e.type === "message" ? [e.message.kind, e.message.text] : []));
    expect(replies).toEqual([["away", "out"]]);
  });
});
