// §12 of PROTOCOL.md: my views of my rooms' epochs (a hash of each epoch's authenticator),
// carried in DMs and compared with a peer's to find a room the relay forked and kept apart.
// In memory only, bounded: the newest VIEW_EPOCHS_KEPT epochs of each room whose group the
// engine holds. A peer's views are compared, never stored. The content layer (content.ts)
// decides which rooms go to which peer.
import { epochViewHash, type AppEpochView } from "../../protocol/mls/app-data.js";
import { conversationOfGroupId } from "../../protocol/mls/group-id.js";

/** §12: epochs of a room whose view I keep to compare with a peer's (the newest). */
export const VIEW_EPOCHS_KEPT = 8;

interface RoomViews {
  groupId: Buffer;
  /** epoch -> epochViewHash, the newest last. */
  readonly byEpoch: Map<number, Buffer>;
}

export class RoomEpochViews {
  private readonly views = new Map<string, RoomViews>();

  /** Records my view of a room's epoch (the caller checked that the group is the room's). */
  record(room: string, groupId: Uint8Array, epoch: number, authenticator: Uint8Array): void {
    const gid = Buffer.from(groupId);
    let r = this.views.get(room);
    if (r === undefined || !r.groupId.equals(gid)) {
      // A re-created room: the old group's views say nothing about the new one.
      r = { groupId: gid, byEpoch: new Map() };
      this.views.set(room, r);
    }
    if (r.byEpoch.has(epoch)) return;
    r.byEpoch.set(epoch, epochViewHash(groupId, epoch, authenticator));
    while (r.byEpoch.size > VIEW_EPOCHS_KEPT) r.byEpoch.delete(Math.min(...r.byEpoch.keys()));
  }

  /** My newest view of each room, with the room's name. */
  *newest(): Generator<{ readonly room: string; readonly view: AppEpochView }> {
    for (const [room, r] of this.views) {
      const epoch = Math.max(...r.byEpoch.keys());
      yield { room, view: { groupId: r.groupId, epoch, view: r.byEpoch.get(epoch)! } };
    }
  }

  /** The rooms where a peer's view of an epoch differs from mine of the same group and epoch. */
  differing(views: readonly AppEpochView[]): { conversationId: string; epoch: number }[] {
    const out: { conversationId: string; epoch: number }[] = [];
    for (const v of views) {
      const room = conversationOfGroupId(v.groupId).id;
      const r = this.views.get(room);
      if (r === undefined || !r.groupId.equals(Buffer.from(v.groupId))) continue;
      const mine = r.byEpoch.get(v.epoch);
      if (mine !== undefined && !mine.equals(Buffer.from(v.view))) out.push({ conversationId: room, epoch: v.epoch });
    }
    return out;
  }

  forget(room: string): void {
    this.views.delete(room);
  }
}
