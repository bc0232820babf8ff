// ListRooms' `all` (PROTOCOL.md §8.2), relay-wide: computed by one query over every room's group
// (a GROUP BY over groups and members) and kept, so a ListRooms costs that query only when the
// listing may have changed, not each time (any session may ask 20 times a second). It is
// computed again when a group was created or re-created, or a commit changed a group's
// membership, on this relay (each of those a write that took a token of its device's bucket),
// and otherwise at most every REFRESH_MS (another relay's changes, §18).
import type { RelayStore } from "./store.js";

/** How old a kept listing may be, at most, when nothing on this relay changed it. */
export const ROOM_LISTING_REFRESH_MS = 2_000;

export type RoomSummary = { readonly room: string; readonly memberCount: number };

export class RoomListing {
  private kept: readonly RoomSummary[] | undefined;
  private at = 0;

  constructor(private readonly store: RelayStore, private readonly clock: () => number, private readonly limit: number, private readonly perCreator: number,
    private readonly refreshMs = ROOM_LISTING_REFRESH_MS) {}

  /** The listing: kept, or computed again when it may be stale. Callers must not change it. */
  current(): readonly RoomSummary[] {
    const now = this.clock();
    if (this.kept === undefined || now - this.at >= this.refreshMs || now < this.at) {
      this.kept = this.store.mls.roomSummaries(this.limit, this.perCreator);
      this.at = now;
    }
    return this.kept;
  }

  /** Something on this relay changed the rooms or their members: the next ListRooms computes the listing again. */
  changed(): void {
    this.kept = undefined;
  }
}
