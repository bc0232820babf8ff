// What the embedded store's MLS hot path reads of a group, kept in memory: the group's record
// (mls_groups) and its members by the hint (mls_group_members). Every SendMls reads both (is the
// group known, what epoch, is the sender a member, who gets a row); from SQLite that was 12-15%
// of the relay's time. The cache is exact because every write to those tables goes through
// store/mls.ts, which keeps these rules (MlsDeliveryStore):
//   - an entry is filled only outside a transaction, so it only ever holds committed rows;
//   - a write drops the entries it touches before it runs, so reads inside its transaction go to
//     SQLite (which sees the transaction's own writes), and after a rollback the dropped entries
//     are simply reloaded from what is committed. A rollback never leaves a wrong entry behind;
//   - the relay is the file's only writer (its pid lock) but for the operator's commands:
//     `chat-relay users release` runs beside a live relay and drops the name's memberships. A
//     commit by another connection changes SQLite's data_version, and the whole cache goes when
//     it has changed, looked at once per turn of the event loop (and at every read inside a
//     transaction: MlsDeliveryStore.fresh).
// The PostgreSQL store has no such cache: several relays write that database.
//
// Bounded by weight (an estimate of the bytes an entry holds: the GroupInfo, the names), least
// recently used first out; an entry heavier than a quarter of the budget is not kept.
import type { MlsGroupRecord } from "./mls-types.js";

/** The default budget of the cache, in estimated bytes. */
export const MLS_GROUP_CACHE_BYTES = 8 * 1024 * 1024;

/** A group's members by the hint: sorted as groupMembers returns them, and as a set. */
export interface CachedMembers {
  readonly sorted: readonly string[];
  readonly set: ReadonlySet<string>;
}

interface Entry {
  /** Owned by the cache: handed out as copies (MlsDeliveryStore.group). */
  readonly group: MlsGroupRecord;
  members: CachedMembers | undefined;
  weight: number;
}

/** Fixed cost per entry and per member name (Map slots, objects, array and Set slots), estimated. */
const ENTRY_WEIGHT = 256;
const MEMBER_WEIGHT = 64;

const keyOf = (groupId: Uint8Array): string => Buffer.from(groupId.buffer, groupId.byteOffset, groupId.byteLength).toString("latin1");

function groupWeight(g: MlsGroupRecord): number {
  return g.groupId.length + g.groupInfo.length + 2 * (g.conversationId.length + g.creator.length) + 64;
}

function membersWeight(m: CachedMembers): number {
  let w = 0;
  for (const u of m.sorted) w += MEMBER_WEIGHT + 2 * u.length;
  return w;
}

export class MlsGroupCache {
  /** By group id (latin1 of its bytes); Map order is use order, least recent first. */
  private readonly entries = new Map<string, Entry>();
  private weight = 0;

  constructor(readonly budget: number = MLS_GROUP_CACHE_BYTES) {}

  /** How many groups and estimated bytes it holds (tests, logs). */
  get size(): { readonly groups: number; readonly bytes: number } {
    return { groups: this.entries.size, bytes: this.weight };
  }

  /** The cached record of a group (the cache's own: copy before handing out), if any. */
  group(groupId: Uint8Array): MlsGroupRecord | undefined {
    return this.touch(keyOf(groupId))?.group;
  }

  /** The cached members of a group, if its entry has them (no use recorded: group() is read first on the hot path). */
  members(groupId: Uint8Array): CachedMembers | undefined {
    return this.entries.get(keyOf(groupId))?.members;
  }

  /** Keeps a group's committed record (the caller read it outside a transaction), in place of any entry. */
  putGroup(g: MlsGroupRecord): void {
    const key = keyOf(g.groupId);
    this.remove(key);
    this.add(key, { group: g, members: undefined, weight: ENTRY_WEIGHT + groupWeight(g) });
  }

  /** Keeps a group's committed members (sorted) beside its record, when that is kept. */
  putMembers(groupId: Uint8Array, sorted: readonly string[]): CachedMembers {
    const m: CachedMembers = { sorted, set: new Set(sorted) };
    const key = keyOf(groupId);
    const e = this.remove(key);
    if (e !== undefined) this.add(key, { group: e.group, members: m, weight: ENTRY_WEIGHT + groupWeight(e.group) + membersWeight(m) });
    return m;
  }

  /** Everything goes (another connection wrote the database). */
  clear(): void {
    this.entries.clear();
    this.weight = 0;
  }

  /** Before a write to the group's rows: its entry goes. */
  drop(groupId: Uint8Array): void {
    this.remove(keyOf(groupId));
  }

  /** Before the user's memberships are dropped (a released name): every member list naming them goes. */
  dropMembersNaming(username: string): void {
    for (const e of this.entries.values()) {
      if (e.members?.set.has(username) !== true) continue;
      const w = membersWeight(e.members);
      e.members = undefined;
      e.weight -= w;
      this.weight -= w;
    }
  }

  private touch(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    return e;
  }

  private remove(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    this.entries.delete(key);
    this.weight -= e.weight;
    return e;
  }

  /** Adds an entry (not kept when heavier than a quarter of the budget), then drops the least recently used past the budget. */
  private add(key: string, e: Entry): void {
    if (e.weight > this.budget / 4) return;
    this.entries.set(key, e);
    this.weight += e.weight;
    for (const [k, old] of this.entries) {
      if (this.weight <= this.budget) break;
      this.entries.delete(k);
      this.weight -= old.weight;
    }
  }
}
