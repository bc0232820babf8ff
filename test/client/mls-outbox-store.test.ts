// The protocol v2 durable outbox's table (src/client/mls/outbox-store.ts, PROTOCOL.md §10.4
// ): rows in order, removed when settled, text and application data sealed at
// rest like v1's outbox (PROTOCOL.md §10.4): another key, a swapped row or a changed kind or time
// does not open; a bad message id is refused.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AtRestCipher } from "../../src/client/at-rest.js";
import { contentLayerOver } from "../../src/client/mls/content.js";
import { MlsConversations } from "../../src/client/mls/conversations.js";
import type { DsApi } from "../../src/client/mls/ds-api.js";
import { MlsOutboxStore } from "../../src/client/mls/outbox-store.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import type { SessionEvent } from "../../src/client/types.js";
import { nullLogger } from "../../src/protocol/log.js";
import { FakeDs } from "../helpers/fake-ds.js";
import { waitUntil } from "../helpers/wait.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity } from "../helpers/identities.js";

let alice: PrivateIdentity;
let mallory: PrivateIdentity;
let bob: PrivateIdentity;
beforeAll(async () => {
  [alice, mallory, bob] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("mallory", "alice"), fixtureIdentity("bob")]);
});

const ID1 = "11".repeat(16);
const ID2 = "22".repeat(16);

describe("MlsOutboxStore", () => {
  it("keeps pending messages in order, with their sealed application data, until removed", () => {
    const state = ClientStateStore.open(":memory:");
    const store = new MlsOutboxStore(state.database, new AtRestCipher(alice));
    store.add("dm:alice:bob", ID1, "text", "first", 1000);
    store.add("#ops", ID2, "action", "waves", 2000);
    store.setSealed("dm:alice:bob", ID1, "text", 1000, "ab".repeat(16), Buffer.from([1, 2, 3]));
    const { rows, unreadable } = store.all();
    expect(unreadable).toBe(0);
    expect(rows.map((r) => [r.conversationId, r.id, r.kind, r.text, r.atMs])).toEqual([["dm:alice:bob", ID1, "text", "first", 1000], ["#ops", ID2, "action", "waves", 2000]]);
    expect(rows[0]!.sealed?.groupId).toBe("ab".repeat(16));
    expect(Buffer.from(rows[0]!.sealed!.app)).toEqual(Buffer.from([1, 2, 3]));
    expect(rows[1]!.sealed).toBeUndefined();
    // The text is not in the clear in the table.
    const raw = state.database.prepare("SELECT text FROM mls_outbox").all() as { text: Uint8Array }[];
    expect(raw.some((r) => Buffer.from(r.text).includes(Buffer.from("first")))).toBe(false);
    store.remove(ID1);
    expect(store.all().rows.map((r) => r.id)).toEqual([ID2]);
    expect(() => store.add("#ops", "not-hex", "text", "x", 1)).toThrow(/16 bytes/);
  });

  it("a row opens only under my key and in its own place: another key, a swap or an edit leaves it unread", () => {
    const state = ClientStateStore.open(":memory:");
    const store = new MlsOutboxStore(state.database, new AtRestCipher(alice));
    store.add("dm:alice:bob", ID1, "text", "secret one", 1000);
    store.add("dm:alice:bob", ID2, "text", "secret two", 1000);
    expect(new MlsOutboxStore(state.database, new AtRestCipher(mallory)).all()).toEqual({ rows: [], unreadable: 2 });
    // The texts swapped between rows, or a row moved to another conversation or time: refused.
    const db = state.database;
    const texts = db.prepare("SELECT message_id, text FROM mls_outbox ORDER BY seq").all() as { message_id: Uint8Array; text: Uint8Array }[];
    db.prepare("UPDATE mls_outbox SET text = ? WHERE message_id = ?").run(texts[1]!.text, texts[0]!.message_id);
    db.prepare("UPDATE mls_outbox SET sent_at_ms = 999 WHERE message_id = ?").run(texts[1]!.message_id);
    expect(store.all()).toEqual({ rows: [], unreadable: 2 });
    // A v1 outbox text (place "outbox", nothing else bound) does not open as a v2 row.
    const v1 = new AtRestCipher(alice).seal("outbox", "dm:alice:bob", Buffer.from(ID1, "hex"), "v1 text");
    db.prepare("UPDATE mls_outbox SET text = ? WHERE message_id = ?").run(v1, texts[0]!.message_id);
    expect(store.all().unreadable).toBe(2);
  });
});

// The engine over the table (src/client/mls/send.ts): the relay took the message but its answer
// never came (NO_ANSWER), the app quit; at the next start the kept message goes again with the
// same id and application data: accepted for me, and one copy only for the reader.
describe("the v2 engine's durable outbox", () => {
  let root: string;
  const closers: (() => void)[] = [];
  beforeEach(() => { root = mkdtempSync(join(tmpdir(), "sc-mls-outbox-")); });
  afterEach(() => { for (const c of closers.splice(0)) c(); rmSync(root, { recursive: true, force: true }); });

  it("a message whose acceptance was withheld is sent again after a restart and read once, in order", { timeout: 120_000 }, async () => {
    const ds = new FakeDs();
    let withhold = false;
    const person = async (name: string, id: PrivateIdentity, withOutbox: boolean) => {
      const store = MlsKeyStore.open(join(root, `${name}_mls.db`), { username: name, sigPrivate: id.sigPrivate });
      const state = ClientStateStore.open(join(root, `${name}_state.db`));
      const events: SessionEvent[] = [];
      const real = ds.api(name);
      const api: DsApi = { ...real, sendMls: async (m) => { const r = await real.sendMls(m); return withhold ? { ok: false, code: "NO_ANSWER", detail: "no answer" } : r; } };
      const engine = new MlsConversations({
        me: name, identity: { username: name, sigPrivate: id.sigPrivate }, store, ds: api, content: contentLayerOver(state, name),
        ...(withOutbox ? { outbox: new MlsOutboxStore(state.database, new AtRestCipher(id)) } : {}),
        clock: () => Date.now(), logger: nullLogger, emit: (e) => events.push(e),
      });
      await engine.start();
      ds.connect(name, engine);
      const close = () => { ds.disconnect(name); engine.close(); store.close(); state.close(); };
      closers.push(close);
      return { engine, events, close: async () => { await engine.idle(); closers.splice(closers.indexOf(close), 1); close(); } };
    };
    const read = (events: SessionEvent[]) => events.flatMap((e) => e.type === "message" && !e.message.own ? [e.message.text] : []);
    const accepted = (events: SessionEvent[], mid: string) => events.some((e) => e.type === "message-state" && e.id === mid && e.state === "accepted");
    const send = (engine: MlsConversations, text: string) => { const r = engine.send("dm:alice:bob", text); if (!r.ok) throw new Error(JSON.stringify(r.error)); return r.value.id; };

    const b = await person("bob", bob, true);
    let a = await person("alice", alice, true);
    const one = send(a.engine, "one");
    await waitUntil(() => accepted(a.events, one) && read(b.events).includes("one"), "one accepted and read", 30_000);
    withhold = true;
    const two = send(a.engine, "two");
    await waitUntil(() => read(b.events).includes("two"), "the relay took two", 30_000);
    await a.engine.idle();
    expect(accepted(a.events, two)).toBe(false);
    await a.close();
    withhold = false;
    a = await person("alice", alice, true);
    await waitUntil(() => accepted(a.events, two), "two accepted after the restart", 30_000);
    const three = send(a.engine, "three");
    await waitUntil(() => accepted(a.events, three) && read(b.events).includes("three"), "three read", 30_000);
    await b.engine.idle();
    expect(read(b.events)).toEqual(["one", "two", "three"]);
  });
});
