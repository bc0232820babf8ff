// PROTOCOL.md §8.4: a resend of an id the relay already accepted is answered ACCEPTED again,
// before any limit is applied, and is never stored twice. Clients resend their outbox after a
// reconnect with the same ids: when the first copy was stored but its SendResult was lost, the
// resend must not be refused for a limit (rate, queue, storage, timestamp...), or the sender
// would show as failed a message its recipients already have, and a /retry would give them a
// second copy.
//
// A (sender, message_id) is in one of three places while it exists on the relay:
//   - being admitted or committed by some session (this table, relay-wide: the first copy may
//     still be in an old session's pipeline when the client resends on its new session);
//   - stored (the `accepted` table of the database, which outlives restarts);
//   - nowhere (refused, or purged after the retention): a resend is then a new send.
// The first copy enters this table before its first await and leaves it only once its answer is
// known (after its commit), so there is no moment when it is in neither place.
import type { SendResult } from "../gen/securechat/v1/chat.js";

/** One string per (sender, id): the id's bytes as latin1 (one character per byte), read in place. */
const keyOf = (sender: string, messageId: Uint8Array): string =>
  `${sender}\u0000${Buffer.from(messageId.buffer, messageId.byteOffset, messageId.byteLength).toString("latin1")}`;

/** Message ids longer than this are not looked up (the shape check refuses them anyway). */
const MAX_ID_BYTES = 64;

export class SendsInFlight {
  private readonly first = new Map<string, Promise<SendResult>>();

  get size(): number {
    return this.first.size;
  }

  /** The answer the first copy of (sender, messageId) will get, while it is being admitted. */
  lookup(sender: string, messageId: Uint8Array): Promise<SendResult> | undefined {
    if (messageId.length === 0 || messageId.length > MAX_ID_BYTES) return undefined;
    return this.first.get(keyOf(sender, messageId));
  }

  /** Records the first copy's answer to come; forgets it once that answer is known. */
  track(sender: string, messageId: Uint8Array, answer: Promise<SendResult>): void {
    if (messageId.length === 0 || messageId.length > MAX_ID_BYTES) return;
    const key = keyOf(sender, messageId);
    this.first.set(key, answer);
    const forget = (): void => {
      if (this.first.get(key) === answer) this.first.delete(key);
    };
    answer.then(forget, forget);
  }
}
