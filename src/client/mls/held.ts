// Messages for a future epoch, held until the commit that leads there arrives (PROTOCOL.md
// §12 "reorders commits"): bounded per group by count (1,000) and age (10 minutes). Past a bound
// the engine fetches the missing commits from the relay, and failing that re-joins.
import type { MlsQueued } from "./ds-api.js";

export const HOLD_MAX_MESSAGES = 1_000;
export const HOLD_MAX_MS = 10 * 60_000;

interface Held {
  readonly q: MlsQueued;
  readonly epoch: number;
  readonly atMs: number;
  readonly done: () => void;
}

export class HeldMessages {
  private readonly byConversation = new Map<string, Held[]>();

  constructor(private readonly max = HOLD_MAX_MESSAGES, private readonly maxMs = HOLD_MAX_MS) {}

  /** Holds one message; returns true when the conversation is now past its count bound. */
  hold(conversationId: string, q: MlsQueued, epoch: number, atMs: number, done: () => void): boolean {
    let list = this.byConversation.get(conversationId);
    if (list === undefined) this.byConversation.set(conversationId, (list = []));
    list.push({ q, epoch, atMs, done });
    return list.length >= this.max;
  }

  /** Takes every message held for a conversation (the caller processes or drops each, then calls done). */
  take(conversationId: string): Held[] {
    const list = this.byConversation.get(conversationId) ?? [];
    this.byConversation.delete(conversationId);
    return list;
  }

  count(conversationId: string): number {
    return this.byConversation.get(conversationId)?.length ?? 0;
  }

  /** Conversations whose oldest held message is older than the age bound, or past the count bound. */
  overdue(nowMs: number): string[] {
    const out: string[] = [];
    for (const [c, list] of this.byConversation) {
      if (list.length >= this.max || (list[0] !== undefined && nowMs - list[0].atMs >= this.maxMs)) out.push(c);
    }
    return out;
  }

  /** Drops (and releases) everything held for a conversation; returns how many. */
  drop(conversationId: string): number {
    const list = this.take(conversationId);
    for (const h of list) h.done();
    return list.length;
  }

  conversations(): string[] {
    return [...this.byConversation.keys()];
  }
}
