// The protocol v2 engine's durable outbox (PROTOCOL.md §10.4, like v1's outbox
// of PROTOCOL.md §10.4): each message of mine shown pending and not yet accepted by the relay is a
// row of `mls_outbox` in `<user>_state.db` (ClientStateStore.database), written when it is shown
// and deleted when the relay accepts it or it fails for good; at the next start the engine sends
// them again, in order, with the same message id (send.ts). The text, and the sealed application
// data once made, are encrypted at rest exactly as v1's outbox text is (at-rest.ts, PROTOCOL.md
// §10.4: AES-256-GCM under the key derived from my signing key, place "outbox"), bound to the
// conversation, the message id and the label "mls", the kind and the time (a row cannot be
// swapped with a v1 outbox row or another one undetected).
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { AppKind } from "../../protocol/mls/index.js";
import type { AtRestCipher } from "../at-rest.js";

const KINDS: readonly AppKind[] = ["text", "action", "topic", "away"];

/** One pending message as kept: `sealed` is the content layer's application data for group `groupId` (hex), once sealed. */
export interface MlsOutboxRow {
  readonly conversationId: string;
  /** 16 bytes, hex: the id the pending message was shown with. */
  readonly id: string;
  readonly kind: AppKind;
  readonly text: string;
  readonly atMs: number;
  readonly sealed?: { readonly groupId: string; readonly app: Uint8Array };
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS mls_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL,
    message_id BLOB NOT NULL UNIQUE, kind TEXT NOT NULL, sent_at_ms INTEGER NOT NULL, text BLOB NOT NULL,
    group_id TEXT, app BLOB);
`;

export class MlsOutboxStore {
  private readonly q: Record<string, StatementSync>;

  constructor(db: DatabaseSync, private readonly cipher: AtRestCipher) {
    db.exec(SCHEMA);
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      add: p("INSERT OR IGNORE INTO mls_outbox (conversation_id, message_id, kind, sent_at_ms, text) VALUES (?, ?, ?, ?, ?)"),
      sealed: p("UPDATE mls_outbox SET group_id = ?, app = ? WHERE message_id = ?"),
      remove: p("DELETE FROM mls_outbox WHERE message_id = ?"),
      all: p("SELECT * FROM mls_outbox ORDER BY seq"),
    };
  }

  private bound(kind: AppKind, atMs: number, what: "text" | "app"): [string, string, { u64: number }, string] {
    return ["mls", kind, { u64: atMs }, what];
  }

  /** Keeps a message shown pending (before anything is sent). */
  add(conversationId: string, id: string, kind: AppKind, text: string, atMs: number): void {
    const mid = idBytes(id);
    this.q["add"]!.run(conversationId, mid, kind, atMs, this.cipher.seal("outbox", conversationId, mid, text, this.bound(kind, atMs, "text")));
  }

  /** The message was sealed for a group: the same application data goes again after a restart (no gap in my chain, §8). */
  setSealed(conversationId: string, id: string, kind: AppKind, atMs: number, groupId: string, app: Uint8Array): void {
    const mid = idBytes(id);
    const sealed = this.cipher.seal("outbox", conversationId, mid, Buffer.from(app).toString("base64"), [...this.bound(kind, atMs, "app"), groupId]);
    this.q["sealed"]!.run(groupId, sealed, mid);
  }

  /** Accepted by the relay, or failed for good. */
  remove(id: string): void {
    this.q["remove"]!.run(idBytes(id));
  }

  /** Every kept message, oldest first; `unreadable` counts rows that do not open under this key (left in place). */
  all(): { rows: MlsOutboxRow[]; unreadable: number } {
    const rows: MlsOutboxRow[] = [];
    let unreadable = 0;
    for (const r of this.q["all"]!.all() as Record<string, unknown>[]) {
      const conversationId = String(r["conversation_id"]);
      const mid = Buffer.from(r["message_id"] as Uint8Array);
      const kind = KINDS.find((k) => k === r["kind"]);
      const atMs = Number(r["sent_at_ms"]);
      if (kind === undefined || mid.length !== 16 || !Number.isSafeInteger(atMs)) { unreadable++; continue; }
      const text = this.cipher.open("outbox", conversationId, mid, Buffer.from(r["text"] as Uint8Array), this.bound(kind, atMs, "text"));
      if (text === undefined) { unreadable++; continue; }
      const groupId = r["group_id"] === null ? undefined : String(r["group_id"]);
      const app = groupId === undefined || r["app"] === null ? undefined
        : this.cipher.open("outbox", conversationId, mid, Buffer.from(r["app"] as Uint8Array), [...this.bound(kind, atMs, "app"), groupId]);
      const id = mid.toString("hex");
      rows.push(app === undefined || groupId === undefined
        ? { conversationId, id, kind, text, atMs }
        : { conversationId, id, kind, text, atMs, sealed: { groupId, app: Buffer.from(app, "base64") } });
    }
    return { rows, unreadable };
  }
}

function idBytes(id: string): Buffer {
  if (typeof id !== "string" || !/^[0-9a-f]{32}$/.test(id)) throw new TypeError("a message id is 16 bytes (32 hex digits)");
  return Buffer.from(id, "hex");
}
