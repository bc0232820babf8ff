// The protocol v2 durable outbox's table (src/client/mls/outbox-store.ts, PROTOCOL-v2.md §7
// "Client storage"): rows in order, removed when settled, text and application data sealed at
// rest like v1's outbox (PROTOCOL.md §7.5): another key, a swapped row or a changed kind or time
// does not open; a bad message id is refused.
import { beforeAll, describe, expect, it } from "vitest";
import { AtRestCipher } from "../../src/client/at-rest.js";
import { MlsOutboxStore } from "../../src/client/mls/outbox-store.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { fixtureIdentity } from "../helpers/identities.js";

let alice: PrivateIdentity;
let mallory: PrivateIdentity;
beforeAll(async () => {
  [alice, mallory] = await Promise.all([fixtureIdentity("alice"), fixtureIdentity("mallory", "alice")]);
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
