// MurmurHash3's 32-bit finaliser, shared by the in-memory id structures (accepted-filter.ts,
// recent-ids.ts): every input bit reaches every output bit.
export function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
