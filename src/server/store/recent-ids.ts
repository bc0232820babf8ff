// The accepted (sender, message_id) pairs of the recent past, exactly, in memory (accepted-ids.ts): the
// embedded store's check for a resend of one of them, and the record of a new one, touch no
// B-tree at a random place. Their rows are appended to `accepted_recent` (one leaf page per
// commit, whatever the batch), instead of going into `accepted`'s primary key at random: with
// random ids (an MLS message's id is a hash of its bytes) that was one 4 KiB WAL frame per
// message, three quarters of the store's cost per message at K=10 (issue 15's profile).
//
// An open-addressing hash set (linear probing, backward-shift deletion) in one Int32Array: per
// slot the sender's number (interned; 0 = empty slot) and the id's 16 bytes as four words, 20
// bytes a slot, at most 3/4 full. Equality is exact (sender and every byte of the id), so "yes"
// and "no" are both exact; the hash only picks where to look. It is keyed with a random seed of
// this process, so a client cannot choose ids (version 1's are the client's choice) that pile
// up in one run of slots.
import { randomInt } from "node:crypto";
import { fmix } from "./mix.js";

/** The only id length kept here (PROTOCOL.md: 16 bytes, v1 and MLS alike); other ids are the caller's to keep elsewhere. */
export const RECENT_ID_BYTES = 16;

const WORDS = 5;
const MIN_SLOTS = 1 << 10;

export class RecentIds {
  private slots = new Int32Array(MIN_SLOTS * WORDS);
  private mask = MIN_SLOTS - 1;
  private count = 0;
  /** Each sender's number (from 1). Kept while the set lives: senders are users, few. */
  private readonly senders = new Map<string, number>();
  private readonly seed = randomInt(2 ** 31);
  /** The words of the last pair looked at (load sets them: no array per call). */
  private s = 0;
  private w0 = 0;
  private w1 = 0;
  private w2 = 0;
  private w3 = 0;

  get size(): number {
    return this.count;
  }

  /** Bytes its table takes now. */
  get bytes(): number {
    return this.slots.byteLength;
  }

  has(sender: string, id: Uint8Array): boolean {
    const n = this.senders.get(sender);
    if (n === undefined) return false;
    this.load(n, id);
    return this.find() >= 0;
  }

  /** Adds the pair; false when it was there already. */
  add(sender: string, id: Uint8Array): boolean {
    checkId(id);
    let n = this.senders.get(sender);
    if (n === undefined) {
      n = this.senders.size + 1;
      this.senders.set(sender, n);
    }
    this.load(n, id);
    if (this.find() >= 0) return false;
    if ((this.count + 1) * 4 > (this.mask + 1) * 3) {
      this.grow();
      this.load(n, id); // grow() moved every entry through the loaded pair
    }
    this.put();
    this.count++;
    return true;
  }

  /** Removes the pair; false when it was not there. */
  delete(sender: string, id: Uint8Array): boolean {
    const n = this.senders.get(sender);
    if (n === undefined) return false;
    this.load(n, id);
    const at = this.find();
    if (at < 0) return false;
    this.remove(at);
    this.count--;
    return true;
  }

  clear(): void {
    this.slots = new Int32Array(MIN_SLOTS * WORDS);
    this.mask = MIN_SLOTS - 1;
    this.count = 0;
    this.senders.clear();
  }

  private load(sender: number, id: Uint8Array): void {
    checkId(id);
    this.s = sender;
    this.w0 = word(id, 0);
    this.w1 = word(id, 4);
    this.w2 = word(id, 8);
    this.w3 = word(id, 12);
  }

  /** The home slot of the loaded pair. */
  private home(): number {
    let h = this.seed ^ Math.imul(this.s, 0x9e3779b1);
    h = fmix(h ^ this.w0);
    h = fmix(h ^ this.w1);
    h = fmix(h ^ this.w2);
    h = fmix(h ^ this.w3);
    return h & this.mask;
  }

  /** The slot holding the loaded pair, or -1. */
  private find(): number {
    const t = this.slots;
    for (let i = this.home(); ; i = (i + 1) & this.mask) {
      const o = i * WORDS;
      const s = t[o]!;
      if (s === 0) return -1;
      if (s === this.s && t[o + 1] === this.w0 && t[o + 2] === this.w1 && t[o + 3] === this.w2 && t[o + 4] === this.w3) return i;
    }
  }

  /** Puts the loaded pair in the first free slot from its home (it is not in the table). */
  private put(): void {
    const t = this.slots;
    let i = this.home();
    while (t[i * WORDS] !== 0) i = (i + 1) & this.mask;
    const o = i * WORDS;
    t[o] = this.s;
    t[o + 1] = this.w0;
    t[o + 2] = this.w1;
    t[o + 3] = this.w2;
    t[o + 4] = this.w3;
  }

  /** Empties slot `at`, moving back the entries after it that could not sit in their home (linear probing's deletion without tombstones). */
  private remove(at: number): void {
    const t = this.slots;
    let gap = at;
    for (let i = (at + 1) & this.mask; t[i * WORDS] !== 0; i = (i + 1) & this.mask) {
      const o = i * WORDS;
      this.s = t[o]!;
      this.w0 = t[o + 1]!;
      this.w1 = t[o + 2]!;
      this.w2 = t[o + 3]!;
      this.w3 = t[o + 4]!;
      const home = this.home();
      // The entry at i may move to the gap when its home is not cyclically within (gap, i].
      const distToI = (i - home) & this.mask;
      const distToGap = (gap - home) & this.mask;
      if (distToGap < distToI) {
        t.copyWithin(gap * WORDS, o, o + WORDS);
        gap = i;
      }
    }
    t.fill(0, gap * WORDS, gap * WORDS + WORDS);
  }

  private grow(): void {
    const old = this.slots;
    const oldSlots = this.mask + 1;
    this.slots = new Int32Array(oldSlots * 2 * WORDS);
    this.mask = oldSlots * 2 - 1;
    for (let i = 0; i < oldSlots; i++) {
      const o = i * WORDS;
      if (old[o] === 0) continue;
      this.s = old[o]!;
      this.w0 = old[o + 1]!;
      this.w1 = old[o + 2]!;
      this.w2 = old[o + 3]!;
      this.w3 = old[o + 4]!;
      this.put();
    }
  }
}

function checkId(id: Uint8Array): void {
  if (!(id instanceof Uint8Array) || id.length !== RECENT_ID_BYTES) throw new Error(`a recent id is ${RECENT_ID_BYTES} bytes`);
}

function word(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24);
}
