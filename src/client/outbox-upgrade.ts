// The v1 outbox carried over to protocol v2 (PROTOCOL.md §14: "The v1 outbox is sent again as
// v2 messages once each conversation's group exists"). A user who upgrades with messages still
// unsent by a v1 client (table `outbox` of `<user>_state.db`, PROTOCOL.md §8.4) keeps them: at the
// start of a v2 client each one is moved, oldest first, into the v2 outbox (`mls_outbox`,
// mls/outbox-store.ts) with the same conversation, text, kind, time and message id, so the
// history's pending line is the same message (shown once) and the v2 engine sends it when its
// group is ready (a room's once I am in it again). The v1 envelope itself is not sent: relays
// refuse protocol v1. A v1 row is deleted only after the v2 outbox holds it; a crash in between
// leaves both, and the next start keeps the v2 row (same id, added once) and deletes the v1 one.
import type { Logger } from "../protocol/log.js";
import { parseConversationId } from "../protocol/names.js";
import type { AtRestCipher } from "./at-rest.js";
import type { MlsOutboxStore } from "./mls/outbox-store.js";
import type { ClientStateStore } from "./state-store.js";

export interface V1OutboxMoved {
  /** Messages now in the v2 outbox. */
  readonly moved: number;
  /** Of those, how many go to each room (they wait until I am in the room's group again). */
  readonly rooms: ReadonlyMap<string, number>;
  /** Rows left in the v1 outbox: their text does not open under this key file (or the row is damaged). */
  readonly unreadable: number;
}

/** Moves every pending v1 message into the v2 outbox, in order (see the file's comment). */
export function moveV1Outbox(o: { readonly state: ClientStateStore; readonly atRest: AtRestCipher; readonly to: MlsOutboxStore; readonly log: Logger }): V1OutboxMoved {
  let moved = 0;
  let unreadable = 0;
  const rooms = new Map<string, number>();
  for (const e of o.state.outbox()) {
    let text: string | undefined;
    try {
      text = typeof e.text === "string" ? e.text : o.atRest.open("outbox", e.conversationId, e.id, e.text);
    } catch {
      text = undefined;
    }
    const conv = parseConversationId(e.conversationId);
    if (text === undefined || conv === undefined || e.id.length !== 16 || !Number.isSafeInteger(e.sentAtMs)) {
      // Kept as it is (a key file made anew cannot open it; the old one still can).
      unreadable++;
      continue;
    }
    o.to.add(conv.id, e.id.toString("hex"), e.kind, text, e.sentAtMs);
    o.state.outboxRemove(e.id);
    moved++;
    if (conv.kind === "room") rooms.set(conv.id, (rooms.get(conv.id) ?? 0) + 1);
  }
  if (moved > 0 || unreadable > 0) o.log.info("outbox.v1-moved", { moved, unreadable, rooms: rooms.size });
  return { moved, rooms, unreadable };
}
