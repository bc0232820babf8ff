// Structure-aware mutation of protobuf bytes for the fuzz tests. A frame is parsed into a tree
// of wire fields (a length-delimited payload that itself parses as fields becomes children),
// mutated, and written back with every enclosing length recomputed, so a mutation deep inside
// an envelope still yields a frame whose outer layers parse. Byte-level mutations (bit flips,
// truncations, extensions) and wire-level ones (huge length prefixes, over-long varints, wrong
// wire types, group bombs) break the framing on purpose.
import fc from "fast-check";

export const WT_VARINT = 0;
export const WT_I64 = 1;
export const WT_LEN = 2;
export const WT_SGROUP = 3;
export const WT_EGROUP = 4;
export const WT_I32 = 5;

/** One field on the wire. `payload` is what follows the tag (a LEN field's bytes without its length). */
export interface WireNode {
  field: number;
  wireType: number;
  /** VARINT: the value. */
  varint?: bigint;
  /** I64/I32 raw bytes; LEN bytes when they do not parse as fields. */
  bytes?: Uint8Array;
  /** LEN payload that parses as fields. */
  children?: WireNode[];
  /** Write this length instead of the real one (a lying length prefix). */
  lengthOverride?: bigint;
  /** Pad the tag's varint to this many bytes (over-long but valid encoding). */
  tagPad?: number;
}

function readVarint(b: Uint8Array, pos: number): [bigint, number] | undefined {
  let v = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= b.length) return undefined;
    const byte = b[pos + i]!;
    v |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return [v, pos + i + 1];
  }
  return undefined;
}

export function writeVarint(v: bigint, minBytes = 1): number[] {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    const low = Number(x & 0x7fn);
    x >>= 7n;
    out.push(low);
  } while (x > 0n);
  while (out.length < minBytes) out.push(0);
  for (let i = 0; i < out.length - 1; i++) out[i]! |= 0x80;
  return out;
}

/** Parses bytes as a sequence of wire fields; undefined when they do not parse exactly. */
export function parseWire(b: Uint8Array, depth = 0): WireNode[] | undefined {
  const nodes: WireNode[] = [];
  let pos = 0;
  while (pos < b.length) {
    const t = readVarint(b, pos);
    if (t === undefined) return undefined;
    const [tag, afterTag] = t;
    const field = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (field === 0 || field > 0x1fffffff) return undefined;
    pos = afterTag;
    switch (wireType) {
      case WT_VARINT: {
        const v = readVarint(b, pos);
        if (v === undefined) return undefined;
        nodes.push({ field, wireType, varint: v[0] });
        pos = v[1];
        break;
      }
      case WT_I64:
      case WT_I32: {
        const n = wireType === WT_I64 ? 8 : 4;
        if (pos + n > b.length) return undefined;
        nodes.push({ field, wireType, bytes: b.slice(pos, pos + n) });
        pos += n;
        break;
      }
      case WT_LEN: {
        const l = readVarint(b, pos);
        if (l === undefined) return undefined;
        const len = Number(l[0]);
        pos = l[1];
        if (pos + len > b.length) return undefined;
        const payload = b.slice(pos, pos + len);
        pos += len;
        const children = depth < 8 && payload.length > 0 ? parseWire(payload, depth + 1) : undefined;
        nodes.push(children === undefined ? { field, wireType, bytes: payload } : { field, wireType, children });
        break;
      }
      default:
        return undefined; // groups and invalid wire types: not a message we produce
    }
  }
  return nodes;
}

/** Writes nodes back; unmodified trees give back the bytes they were parsed from. */
export function serializeWire(nodes: readonly WireNode[]): Uint8Array {
  const out: number[] = [];
  const put = (bytes: ArrayLike<number>): void => {
    for (let i = 0; i < bytes.length; i++) out.push(bytes[i]!);
  };
  for (const n of nodes) {
    put(writeVarint((BigInt(n.field) << 3n) | BigInt(n.wireType & 7), n.tagPad ?? 1));
    switch (n.wireType) {
      case WT_VARINT:
        put(writeVarint(n.varint ?? 0n));
        break;
      case WT_I64:
      case WT_I32:
        put(n.bytes ?? new Uint8Array(n.wireType === WT_I64 ? 8 : 4));
        break;
      default: {
        const payload = n.children !== undefined ? serializeWire(n.children) : (n.bytes ?? new Uint8Array(0));
        put(writeVarint(n.lengthOverride ?? BigInt(payload.length)));
        put(payload);
      }
    }
  }
  return Uint8Array.from(out);
}

/** Every node of the tree in pre-order, with the array that holds it. */
function flatten(nodes: WireNode[]): Array<{ node: WireNode; parent: WireNode[]; index: number }> {
  const out: Array<{ node: WireNode; parent: WireNode[]; index: number }> = [];
  const walk = (list: WireNode[]): void => {
    list.forEach((node, index) => {
      out.push({ node, parent: list, index });
      if (node.children) walk(node.children);
    });
  };
  walk(nodes);
  return out;
}

/** One mutation; indices are taken modulo what exists, so any value applies to any frame. */
export type Mutation =
  | { readonly kind: "flip"; readonly at: number; readonly bit: number }
  | { readonly kind: "truncate"; readonly at: number }
  | { readonly kind: "extend"; readonly bytes: Uint8Array }
  | { readonly kind: "duplicate"; readonly node: number }
  | { readonly kind: "remove"; readonly node: number }
  | { readonly kind: "wire-type"; readonly node: number; readonly wireType: number }
  | { readonly kind: "field-number"; readonly node: number; readonly field: number }
  | { readonly kind: "huge-length"; readonly node: number; readonly length: bigint }
  | { readonly kind: "long-tag"; readonly node: number; readonly bytes: number }
  | { readonly kind: "varint"; readonly node: number; readonly value: bigint }
  | { readonly kind: "replace-bytes"; readonly node: number; readonly bytes: Uint8Array }
  | { readonly kind: "nest"; readonly node: number; readonly depth: number }
  | { readonly kind: "group-bomb"; readonly at: number; readonly depth: number; readonly field: number };

function describeBytes(b: Uint8Array): string {
  return b.length <= 12 ? `[${Buffer.from(b).toString("hex")}]` : `[${b.length} bytes]`;
}

export function describeMutation(m: Mutation): string {
  switch (m.kind) {
    case "extend":
    case "replace-bytes":
      return `${m.kind}(${"node" in m ? `${m.node}, ` : ""}${describeBytes(m.bytes)})`;
    default:
      return `${m.kind}(${Object.entries(m).filter(([k]) => k !== "kind").map(([k, v]) => `${k}=${String(v)}`).join(", ")})`;
  }
}

/** Applies one mutation. Tree mutations on bytes that no longer parse fall back to a bit flip. */
export function mutate(bytes: Uint8Array, m: Mutation): Uint8Array {
  switch (m.kind) {
    case "flip": {
      if (bytes.length === 0) return Uint8Array.of(1 << m.bit);
      const c = Uint8Array.from(bytes);
      c[m.at % c.length]! ^= 1 << m.bit;
      return c;
    }
    case "truncate":
      return bytes.slice(0, bytes.length === 0 ? 0 : m.at % bytes.length);
    case "extend": {
      const c = new Uint8Array(bytes.length + m.bytes.length);
      c.set(bytes);
      c.set(m.bytes, bytes.length);
      return c;
    }
    case "group-bomb": {
      // `depth` nested start-group tags, closed, spliced in at a field boundary or anywhere.
      const open = writeVarint((BigInt(m.field) << 3n) | BigInt(WT_SGROUP));
      const close = writeVarint((BigInt(m.field) << 3n) | BigInt(WT_EGROUP));
      const bomb: number[] = [];
      for (let i = 0; i < m.depth; i++) bomb.push(...open);
      for (let i = 0; i < m.depth; i++) bomb.push(...close);
      const at = bytes.length === 0 ? 0 : m.at % (bytes.length + 1);
      return Uint8Array.from([...bytes.slice(0, at), ...bomb, ...bytes.slice(at)]);
    }
    default:
      break;
  }
  const tree = parseWire(bytes);
  const all = tree === undefined ? [] : flatten(tree);
  if (tree === undefined || all.length === 0) return mutate(bytes, { kind: "flip", at: m.node, bit: m.node % 8 });
  const { node, parent, index } = all[m.node % all.length]!;
  switch (m.kind) {
    case "duplicate":
      parent.splice(index + 1, 0, structuredClone(node));
      break;
    case "remove":
      parent.splice(index, 1);
      break;
    case "wire-type":
      node.wireType = m.wireType;
      break;
    case "field-number":
      node.field = m.field;
      break;
    case "huge-length":
      if (node.wireType === WT_LEN) node.lengthOverride = m.length;
      else node.varint = m.length;
      break;
    case "long-tag":
      node.tagPad = m.bytes;
      break;
    case "varint":
      if (node.wireType === WT_VARINT) node.varint = m.value;
      else {
        node.wireType = WT_VARINT;
        node.varint = m.value;
        delete node.children;
        delete node.bytes;
      }
      break;
    case "replace-bytes":
      node.wireType = WT_LEN;
      node.bytes = m.bytes;
      delete node.children;
      delete node.varint;
      break;
    case "nest": {
      let wrapped: WireNode = node;
      for (let i = 0; i < m.depth; i++) wrapped = { field: node.field, wireType: WT_LEN, children: [wrapped] };
      parent[index] = wrapped;
      break;
    }
  }
  return serializeWire(tree);
}

export function applyMutations(bytes: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  return ms.reduce(mutate, bytes);
}

/** Strings a hostile peer would put in names: controls, escapes, bidi, astral, long, near-valid. */
/** Room names that pass the policy: what gets past the name check into membership rules. */
export const validRoomName: fc.Arbitrary<string> = fc.stringMatching(/^#[a-z0-9][a-z0-9_-]{0,31}$/);

export const oddString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: fc.constantFrom("#", "a", "Z", "0", "-", "_", ".", "/", "\u0000", "\x1b", "\n", "\u202e", "\u200b", "é", "🔐", " ", ":"), maxLength: 40 }),
  fc.constantFrom("#", "#a", "#ops", "#" + "a".repeat(32), "#" + "a".repeat(33), "ops", "#Ops", "#-x", "lobby", "dm:alice:bob", "#../etc", "#a\u0000b"),
  fc.integer({ min: 1000, max: 70_000 }).map((n) => "#" + "x".repeat(n)),
);

const node = fc.nat({ max: 10_000 });
const hugeLength = fc.constantFrom(0x7fff_ffffn, 0xffff_ffffn, 1n << 35n, (1n << 63n) - 1n, (1n << 64n) - 1n, 1_048_577n);
const oddVarint = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.constantFrom(0n, 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 0xffff_ffffn),
);

/** Any mutation, weighted towards those that keep the outer frame parseable. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("flip" as const), at: node, bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: node }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("extend" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("duplicate" as const), node }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("remove" as const), node }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("wire-type" as const), node, wireType: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("field-number" as const), node, field: fc.oneof(fc.integer({ min: 1, max: 16 }), fc.constant(0x1fff_ffff)) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("huge-length" as const), node, length: hugeLength }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("long-tag" as const), node, bytes: fc.integer({ min: 2, max: 10 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("varint" as const), node, value: oddVarint }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("replace-bytes" as const),
      node,
      bytes: fc.oneof(fc.uint8Array({ maxLength: 64 }), oddString.map((s) => new TextEncoder().encode(s)), fc.constantFrom(new Uint8Array(0), new Uint8Array(300), new Uint8Array(2000).fill(0xff))),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("nest" as const), node, depth: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constantFrom(120, 1000)) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("group-bomb" as const), at: node, depth: fc.constantFrom(2, 99, 150, 5000), field: fc.integer({ min: 1, max: 20 }) }) },
);

/** A frame's fuzz input: random bytes, or a base frame (chosen by index) with 1-4 mutations. */
export type FrameInput =
  | { readonly kind: "random"; readonly bytes: Uint8Array }
  | { readonly kind: "mutated"; readonly base: number; readonly mutations: readonly Mutation[] };

export const frameInputArb: fc.Arbitrary<FrameInput> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("random" as const), bytes: fc.uint8Array({ maxLength: 300 }) }) },
  // Mostly one mutation (most get past the decoder), sometimes a few stacked.
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("mutated" as const), base: fc.nat(), mutations: fc.array(mutationArb, { minLength: 1, maxLength: 1 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("mutated" as const), base: fc.nat(), mutations: fc.array(mutationArb, { minLength: 2, maxLength: 4 }) }) },
);

/** The bytes of a fuzz input against these base frames, and a line saying how they were made. */
export function realise(input: FrameInput, bases: readonly { readonly name: string; readonly bytes: Uint8Array }[]): { bytes: Uint8Array; how: string } {
  if (input.kind === "random") return { bytes: input.bytes, how: `random ${describeBytes(input.bytes)}` };
  const base = bases[input.base % bases.length]!;
  return { bytes: applyMutations(base.bytes, input.mutations), how: `${base.name} + ${input.mutations.map(describeMutation).join(" + ")}` };
}

/** The fuzz seed: FUZZ_SEED when set (to replay a failure), else a fixed one, so runs repeat. */
export function fuzzSeed(fallback: number): number {
  const s = process.env.FUZZ_SEED;
  return s === undefined || s === "" ? fallback : Number(s);
}

/**
 * fast-check parameters for a fuzz property; the failure report names the seed to replay with.
 * FUZZ_SCALE=<k> runs k times as many inputs (a longer hunt than npm test's budget allows).
 */
export function fuzzParams<T>(seed: number, numRuns: number): fc.Parameters<T> {
  const scale = Number(process.env.FUZZ_SCALE ?? 1);
  return { seed, numRuns: Math.max(1, Math.round(numRuns * (Number.isFinite(scale) && scale > 0 ? scale : 1))), verbose: 1 };
}

/**
 * A tally of what fuzz inputs led to, by stage and outcome, so a run can show what it reached
 * (FUZZ_STATS=1 prints it): a fuzzer whose inputs all die in the decoder proves little.
 */
export class FuzzTally {
  private readonly counts = new Map<string, Map<string, number>>();

  add(stage: string, outcome: string): void {
    const m = this.counts.get(stage) ?? new Map<string, number>();
    m.set(outcome, (m.get(outcome) ?? 0) + 1);
    this.counts.set(stage, m);
  }

  of(stage: string): ReadonlyMap<string, number> {
    return this.counts.get(stage) ?? new Map();
  }

  toString(): string {
    return [...this.counts].map(([stage, m]) =>
      `${stage}: ${[...m].sort((a, b) => b[1] - a[1]).map(([o, n]) => `${o} ${n}`).join(", ")}`).join("\n");
  }
}
