// Which protocol v1 envelopes a v2 client still shows (PROTOCOL.md §14, "Envelopes queued before
// the upgrade"). A v1 envelope is authenticated by its sender's signature only: which
// conversation it speaks in is whatever its signed header names, and v1 took a room's membership
// from the relay. In v2 membership is the MLS group's (§1, §7.3), so a relay that delivers a v1
// envelope signed by an account it registered would otherwise put that account's lines (and a
// topic) into a room whose group it is not in, with no commit and no "joined" line. A v2 client
// therefore shows a v1 envelope only when all of these hold:
//   - it was sent (its signed sent_at_ms) no later than this client's first v2 Welcome (the first
//     time a relay of protocol v2 accepted it: every envelope a v1 relay queued was queued before
//     that relay moved to v2, so before it could welcome a v2 session); the time is kept in the
//     state db, so a restart does not move it;
//   - it is not for a room whose MLS group this client holds (whatever its time);
//   - it is not a topic (a room's topic is set by the members of its group only).
// Refused envelopes are acked like every other refusal: they can never become valid.
import { parseConversationId } from "../protocol/names.js";
import type { ClientStateStore } from "./state-store.js";

/** Why a v1 envelope is refused on a v2 client (the `code` of its `envelope.refused` log line). */
export type V1Refusal = "v1-after-upgrade" | "v1-into-mls-room" | "v1-topic";

/** What the v1 reader of a v2 client asks (wired in client-wiring.ts). */
export interface V1AfterUpgrade {
  /** This client's first v2 Welcome (ms, its clock): recorded then, kept in the state db. */
  readonly upgradedAtMs: () => number;
  /** Whether the v2 engine holds a group for this conversation. */
  readonly holdsGroup: (conversationId: string) => boolean;
}

/** Before opening: refused for its time or its conversation (the header's and the one it was delivered into). */
export function v1RefusalBeforeOpening(p: V1AfterUpgrade, deliveredInto: string, header: { readonly conversationId: string; readonly sentAtMs: number }): V1Refusal | undefined {
  for (const id of new Set([deliveredInto, header.conversationId])) {
    const conv = parseConversationId(id);
    if (conv?.kind === "room" && p.holdsGroup(conv.id)) return "v1-into-mls-room";
  }
  if (!(header.sentAtMs <= p.upgradedAtMs())) return "v1-after-upgrade";
  return undefined;
}

/** After opening: refused for its kind. */
export function v1RefusalOfKind(kind: string): V1Refusal | undefined {
  return kind === "topic" ? "v1-topic" : undefined;
}

/** Settings row holding the time of the first v2 Welcome (not one of the UI's settings). */
const SETTING = "protocol.v2.first-welcome-ms";

/**
 * The time of this client's first v2 Welcome: read from the state db, or recorded now when
 * there is none (the first Welcome). Kept in memory once known; a state db that cannot be
 * written keeps it for this run only.
 */
export function upgradeTimeKeeper(state: ClientStateStore, clock: () => number, onError: (e: unknown) => void): () => number {
  let known: number | undefined;
  return () => {
    if (known !== undefined) return known;
    let kept: number | undefined;
    try {
      const v = state.settingGet(SETTING);
      kept = v === undefined ? undefined : Number(v);
    } catch (e) {
      onError(e);
    }
    if (kept !== undefined && Number.isSafeInteger(kept) && kept > 0) return (known = kept);
    known = clock();
    try {
      state.settingSet(SETTING, String(known));
    } catch (e) {
      onError(e);
    }
    return known;
  };
}
