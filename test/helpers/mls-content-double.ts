// A trivial ContentLayer (src/client/mls/content-api.ts) for tests of the conversation engine:
// the application data is JSON {id, kind, text, sentAt}; duplicates are found by id; the update
// policy is a flag that holds until this client's next accepted commit. The real layer, with the
// per-sender chains and drop detection of PROTOCOL.md §11, is src/client/mls/content.ts.
import { randomBytes } from "node:crypto";
import type { ContentLayer, OpenedContent } from "../../src/client/mls/content-api.js";
import type { AppKind } from "../../src/protocol/mls/index.js";

/**
 * A trivial content layer: the app data is JSON {id, kind, text, sentAt}; duplicates by id; a
 * configurable update policy. (The real one, with chains and drop detection, is content.ts.)
 */
export class TestContent implements ContentLayer {
  readonly seen = new Set<string>();
  update = false;
  committedCount = 0;
  readonly forgotten: string[] = [];
  seal(_c: string, _g: Uint8Array, kind: AppKind, text: string, nowMs: number) {
    const messageId = randomBytes(16);
    return { app: new TextEncoder().encode(JSON.stringify({ id: messageId.toString("hex"), kind, text, sentAt: nowMs })), messageId, sentAtMs: nowMs };
  }
  accepted(): void {}
  open(_c: string, _g: Uint8Array, _sender: string, app: Uint8Array): { content: OpenedContent; own: { confirmed: string[]; lost: string[] } } {
    const j = JSON.parse(new TextDecoder().decode(app)) as { id: string; kind: AppKind; text: string; sentAt: number };
    const duplicate = this.seen.has(j.id);
    this.seen.add(j.id);
    return { content: { messageId: Buffer.from(j.id, "hex"), kind: j.kind, text: j.text, sentAtMs: j.sentAt, gap: false, duplicate }, own: { confirmed: [], lost: [] } };
  }
  membersChanged(): void {}
  shouldUpdate(): boolean { return this.update; }
  /** An update is due until this client's next commit is accepted (as the real policy). */
  committed(): void { this.committedCount++; this.update = false; }
  forget(c: string): void { this.forgotten.push(c); }
  /** §12 epoch views the engine handed over: room → the newest epoch recorded. */
  readonly views = new Map<string, number>();
  epochView(c: string, _g: Uint8Array, epoch: number, authenticator: Uint8Array): void {
    if (authenticator.length === 0) throw new Error("an epoch view needs the epoch authenticator");
    this.views.set(c, Math.max(epoch, this.views.get(c) ?? -1));
  }
}

