// What both RelayStore facades (the embedded SQLite one, src/server/store.ts, and the PostgreSQL
// one, store/pg/pg-store.ts) do alike: hand each call about bindings, queues or rooms to the part
// that owns it. The parts are each store's own (the same methods on another database); what
// spans parts runs in each facade's own transaction (PostgreSQL runs it again after a deadlock):
// keeping a new device list is the same steps in both (replaceDeviceListIn); releasing a name is
// not (PostgreSQL drops a user's device queues in one statement), so each facade keeps its own.
import type { DeviceListChange, RelayStore } from "../store.js";
import type { BindOutcome, UserRecord } from "./bindings.js";
import type { AckRequest, EnqueueOutcome, EnqueueRequest, PurgeResult, QueuedItem, QueueUsage } from "./queues.js";
import type { RoomSummaryRecord } from "./rooms.js";

/** The bindings part as the facade hands calls to it. */
export type BindingsPart = Pick<RelayStore, "getUser" | "listUsers" | "bindUser" | "namesOfKey">;
/** The queues part as the facade hands calls to it. */
export type QueuesPart = Pick<RelayStore,
  "wasAccepted" | "enqueueBatch" | "ackBatch" | "enqueue" | "lastSeq" | "queueDepth" | "queueUsage" | "fetchQueue" | "ack" | "purgeOlderThan">;
/** The rooms part as the facade hands calls to it. */
export type RoomsPart = Pick<RelayStore, "joinRoom" | "leaveRoom" | "isMember" | "roomMembers" | "roomsOf" | "allRooms">;

/** The RelayStore calls that belong to one part, handed to it; a store's facade extends this with its parts. */
export abstract class DelegatingStore {
  protected abstract readonly bindings: BindingsPart;
  protected abstract readonly queues: QueuesPart;
  protected abstract readonly rooms: RoomsPart;

  getUser(username: string): UserRecord | undefined {
    return this.bindings.getUser(username);
  }

  listUsers(): UserRecord[] {
    return this.bindings.listUsers();
  }

  bindUser(u: Omit<UserRecord, "createdAtMs">): BindOutcome {
    return this.bindings.bindUser(u);
  }

  namesOfKey(sigFpr: Buffer): string[] {
    return this.bindings.namesOfKey(sigFpr);
  }

  wasAccepted(sender: string, messageId: Buffer): boolean {
    return this.queues.wasAccepted(sender, messageId);
  }

  enqueueBatch(reqs: readonly EnqueueRequest[], acks: readonly AckRequest[] = []): EnqueueOutcome[] {
    return this.queues.enqueueBatch(reqs, acks);
  }

  ackBatch(acks: readonly AckRequest[]): number {
    return this.queues.ackBatch(acks);
  }

  enqueue(req: EnqueueRequest): boolean {
    return this.queues.enqueue(req);
  }

  lastSeq(): number {
    return this.queues.lastSeq();
  }

  queueDepth(recipient: string): number {
    return this.queues.queueDepth(recipient);
  }

  queueUsage(recipient: string, sender: string): QueueUsage {
    return this.queues.queueUsage(recipient, sender);
  }

  fetchQueue(recipient: string, afterSeq: number, limit: number, maxBytes: number): QueuedItem[] {
    return this.queues.fetchQueue(recipient, afterSeq, limit, maxBytes);
  }

  ack(recipient: string, seqs: readonly number[]): number {
    return this.queues.ack(recipient, seqs);
  }

  purgeOlderThan(cutoffMs: number): PurgeResult {
    return this.queues.purgeOlderThan(cutoffMs);
  }

  joinRoom(room: string, username: string): boolean {
    return this.rooms.joinRoom(room, username);
  }

  leaveRoom(room: string, username: string): boolean {
    return this.rooms.leaveRoom(room, username);
  }

  isMember(room: string, username: string): boolean {
    return this.rooms.isMember(room, username);
  }

  roomMembers(room: string): string[] {
    return this.rooms.roomMembers(room);
  }

  roomsOf(username: string): string[] {
    return this.rooms.roomsOf(username);
  }

  allRooms(): RoomSummaryRecord[] {
    return this.rooms.allRooms();
  }
}

/** The parts a new device list changes, with the calls it makes inside its transaction. */
export interface DeviceListParts {
  readonly devices: { putListLocked(username: string, version: number, list: Uint8Array): boolean; dropSeenLocked(username: string, deviceId: string): void };
  readonly queues: { dropQueueLocked(address: string): void; forgetUsage(address: string): void };
  readonly mls: { dropKeyPackagesOfAddressLocked(address: string): void };
}

/**
 * RelayStore.replaceDeviceList over `parts`: keeps a newer list and, in the same transaction
 * (run by `inTransaction`), drops the removed devices' queues, KeyPackages and last seen, and the
 * KeyPackages of the addresses the change names; then forgets the dropped queues' cached usage.
 */
export function replaceDeviceListIn(parts: DeviceListParts, inTransaction: (fn: () => boolean) => boolean, change: DeviceListChange): boolean {
  const kept = inTransaction(() => {
    if (!parts.devices.putListLocked(change.username, change.version, change.list)) return false;
    for (const d of change.dropped) {
      parts.queues.dropQueueLocked(d.address);
      parts.mls.dropKeyPackagesOfAddressLocked(d.address);
      parts.devices.dropSeenLocked(change.username, d.deviceId);
    }
    for (const a of change.keyPackagesOf) parts.mls.dropKeyPackagesOfAddressLocked(a);
    return true;
  });
  if (kept) for (const d of change.dropped) parts.queues.forgetUsage(d.address);
  return kept;
}
