import { describe, expect, test } from "vitest";
import { emptyList, inBatch, listAppend, listDropChunks, listFindLastIndex, listFrom, listGet, listLast, listSet, listToArray } from "../../src/tui/state/chunked-list.js";

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe("chunked list", () => {
  test("appends, reads and replaces across chunk boundaries", () => {
    let list = emptyList<number>();
    for (const i of range(1000)) list = listAppend(list, i);
    expect(list.length).toBe(1000);
    expect(list.chunks.length).toBe(4);
    expect(listToArray(list)).toEqual(range(1000));
    for (const i of [0, 255, 256, 511, 999]) expect(listGet(list, i)).toBe(i);
    expect(listGet(list, -1)).toBeUndefined();
    expect(listGet(list, 1000)).toBeUndefined();
    expect(listLast(list)).toBe(999);
    const changed = listSet(list, 300, -1);
    expect(listGet(changed, 300)).toBe(-1);
    expect(listSet(list, 5000, 1)).toBe(list);
    expect(listFrom(range(600))).toEqual({ length: 600, chunks: [range(256), range(512).slice(256), range(600).slice(512)] });
  });

  test("drops its oldest whole chunks; what is left reads, appends and stays immutable as before", () => {
    const list = listFrom(range(600));
    const dropped = listDropChunks(list, 2);
    expect(dropped.length).toBe(88);
    expect(listToArray(dropped)).toEqual(range(600).slice(512));
    expect(listGet(dropped, 0)).toBe(512);
    expect(listToArray(listAppend(dropped, 600))).toEqual(range(601).slice(512));
    expect(listToArray(list)).toEqual(range(600));
    expect(listDropChunks(list, 0)).toBe(list);
    expect(listDropChunks(list, 3)).toEqual(emptyList());
    // In a batch too: the arrays the batch owns may grow in place, never the original's.
    const batched = inBatch(() => listAppend(listDropChunks(list, 1), 600));
    expect(listToArray(batched)).toEqual(range(601).slice(256));
    expect(listToArray(list)).toEqual(range(600));
  });

  test("is immutable: older lists never change", () => {
    const a = listFrom([1, 2, 3]);
    const b = listAppend(a, 4);
    const c = listSet(b, 0, 9);
    expect(listToArray(a)).toEqual([1, 2, 3]);
    expect(listToArray(b)).toEqual([1, 2, 3, 4]);
    expect(listToArray(c)).toEqual([9, 2, 3, 4]);
  });

  test("a batch appends in place only to arrays it created, with the same result", () => {
    const before = listFrom(range(300));
    const snapshot = listToArray(before);
    const batched = inBatch(() => range(700).reduce((l, i) => listAppend(l, 300 + i), before));
    const plain = range(700).reduce((l, i) => listAppend(l, 300 + i), before);
    expect(listToArray(batched)).toEqual(listToArray(plain));
    expect(listToArray(before)).toEqual(snapshot);
    // Outside the batch, appends copy again.
    const after = listAppend(batched, -1);
    expect(batched.length).toBe(1000);
    expect(listToArray(after).at(-1)).toBe(-1);
    expect(listToArray(batched).at(-1)).toBe(999);
  });

  test("finds from the end, within a limit", () => {
    const list = listFrom(range(1000));
    expect(listFindLastIndex(list, (x) => x % 100 === 0)).toBe(900);
    expect(listFindLastIndex(list, (x) => x === 5)).toBe(5);
    expect(listFindLastIndex(list, (x) => x === 5, 100)).toBe(-1);
    expect(listFindLastIndex(emptyList<number>(), () => true)).toBe(-1);
  });
});
