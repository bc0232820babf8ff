// An immutable list that stays cheap to append to when it is long: items live in chunks of 256,
// so appending or replacing one item copies one chunk and the chunk index (a 100,000-entry
// conversation has ~400 chunks), never the whole list. Every chunk but the last is full, so
// reading item i is two array lookups.

const SHIFT = 8;
/** Items per chunk (every chunk but the last is full). */
export const LIST_CHUNK = 1 << SHIFT;
const CHUNK = LIST_CHUNK;
const MASK = CHUNK - 1;

export interface ChunkedList<T> {
  readonly length: number;
  readonly chunks: readonly (readonly T[])[];
}

const EMPTY: ChunkedList<never> = { length: 0, chunks: [] };

/**
 * Arrays created during the current batch (see inBatch): nothing outside the batch has seen
 * them yet, so appending may grow them in place instead of copying. Outside a batch it is
 * undefined and every change copies.
 */
let fresh: WeakSet<readonly unknown[]> | undefined;

/**
 * Runs `build` with in-place appends for arrays it creates itself. A burst of 100,000 messages
 * folded in one reducer call then copies each chunk once instead of once per message. Safe
 * because only the value `build` returns escapes, and it is never changed afterwards.
 */
export function inBatch<R>(build: () => R): R {
  if (fresh !== undefined) return build();
  fresh = new WeakSet();
  try {
    return build();
  } finally {
    fresh = undefined;
  }
}

function owned<T>(array: T[]): T[] {
  fresh?.add(array);
  return array;
}

export function emptyList<T>(): ChunkedList<T> {
  return EMPTY;
}

export function listGet<T>(list: ChunkedList<T>, index: number): T | undefined {
  if (index < 0 || index >= list.length) return undefined;
  return list.chunks[index >>> SHIFT]?.[index & MASK];
}

export function listLast<T>(list: ChunkedList<T>): T | undefined {
  return listGet(list, list.length - 1);
}

export function listAppend<T>(list: ChunkedList<T>, item: T): ChunkedList<T> {
  const last = list.chunks[list.chunks.length - 1];
  const chunks = fresh?.has(list.chunks) ? (list.chunks as (readonly T[])[]) : owned(list.chunks.slice());
  if (last === undefined || last.length === CHUNK) {
    chunks.push(owned([item]));
  } else if (fresh?.has(last)) {
    (last as T[]).push(item);
  } else {
    chunks[chunks.length - 1] = owned([...last, item]);
  }
  return { length: list.length + 1, chunks };
}

export function listFrom<T>(items: readonly T[]): ChunkedList<T> {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) chunks.push(items.slice(i, i + CHUNK));
  return chunks.length === 0 ? EMPTY : { length: items.length, chunks };
}

/** The list with item `index` replaced (the same list when the index is out of range). */
export function listSet<T>(list: ChunkedList<T>, index: number, item: T): ChunkedList<T> {
  const c = index >>> SHIFT;
  const chunk = list.chunks[c];
  if (index < 0 || index >= list.length || chunk === undefined) return list;
  const copy = chunk.slice();
  copy[index & MASK] = item;
  const chunks = list.chunks.slice();
  chunks[c] = copy;
  return { length: list.length, chunks };
}

/**
 * The list without its first `count` chunks (`count * LIST_CHUNK` items, the oldest): dropping
 * whole chunks keeps every chunk but the last full, and copies only the chunk index.
 */
export function listDropChunks<T>(list: ChunkedList<T>, count: number): ChunkedList<T> {
  if (count <= 0) return list;
  if (count >= list.chunks.length) return EMPTY;
  const chunks = owned(list.chunks.slice(count));
  return { length: list.length - count * CHUNK, chunks };
}

/** Searches from the end; `limit` bounds how many items are looked at (newest first). */
export function listFindLastIndex<T>(list: ChunkedList<T>, test: (item: T) => boolean, limit = Number.POSITIVE_INFINITY): number {
  const stop = Math.max(0, list.length - limit);
  for (let i = list.length - 1; i >= stop; i--) {
    const item = listGet(list, i);
    if (item !== undefined && test(item)) return i;
  }
  return -1;
}

export function listToArray<T>(list: ChunkedList<T>): T[] {
  return list.chunks.flat() as T[];
}
