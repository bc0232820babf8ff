// PROTOCOL.md §11.1: the content layer hears that the relay accepted my message only once every
// MLS delivery that reached me before the relay's answer has been handled. The engine may be busy
// sealing (a backlog after a reconnect) when the answer comes, with deliveries waiting behind it;
// recorded at once, the acceptance (and the `settled` my next message names) would run ahead of
// what I have opened, and a peer's reply that reached me before the answer would count as sent
// after it. The session counts deliveries as they arrive and as the engine finishes each.
import type { Logger } from "../../protocol/log.js";
import type { ContentLayer } from "./content-api.js";

export class AcceptanceOrder {
  private arrivedCount = 0;
  private doneCount = 0;
  private readonly waiting: { at: number; run: () => void }[] = [];

  constructor(private readonly log?: Logger) {}

  /** A delivery reached me (call in the order deliveries are received, before any later answer). */
  arrived(): void {
    this.arrivedCount += 1;
  }

  /** A delivery was handled or given up on: the acceptances waiting for it are recorded. */
  done(): void {
    this.doneCount += 1;
    while (this.waiting.length > 0 && this.waiting[0]!.at <= this.doneCount) {
      try {
        this.waiting.shift()!.run();
      } catch (e) {
        this.log?.warn("mls.content.accepted_failed", { reason: (e as Error).message });
      }
    }
  }

  /** The content layer with `accepted` held back until the deliveries received before it were handled. */
  wrap(content: ContentLayer): ContentLayer {
    const accepted = (conversationId: string, messageId: Buffer): void => {
      const run = (): void => content.accepted(conversationId, messageId);
      if (this.doneCount >= this.arrivedCount) run();
      else this.waiting.push({ at: this.arrivedCount, run });
    };
    return new Proxy(content, {
      get: (t, k) => {
        if (k === "accepted") return accepted;
        const v: unknown = Reflect.get(t, k, t);
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
  }
}
