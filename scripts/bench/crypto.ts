// Crypto: seal for 1, 10 and 100 recipients and open, against the bare primitives they are made
// of, measured in the same run (target: within 1.2x).
//   seal(N) = N+1 RSA-OAEP wraps (the N recipients and the sender) + 1 Ed25519 signature + 1 AES-GCM
//   open    = 1 Ed25519 verify + 1 RSA-OAEP unwrap + 1 AES-GCM
import { randomBytes } from "node:crypto";
import * as env from "../../src/protocol/envelope.js";
import { decodeKeyFile } from "../../src/protocol/keyfile.js";
import * as prim from "../../src/protocol/primitives.js";
import { fixturePem } from "../../test/helpers/identities.js";
import type { Row, RunOptions } from "./_lib.js";

export const name = "crypto";
export const description = "seal/open vs the bare primitives (RSA-OAEP-3072, Ed25519, AES-256-GCM)";

/** Runs fn repeatedly for about `ms` and returns microseconds per call. */
function timePerOp(fn: () => void, ms: number): number {
  for (let i = 0; i < 20; i++) fn(); // warm-up
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    fn();
    n++;
    now = performance.now();
  }
  return ((now - start) * 1000) / n;
}

export async function run({ runs, quick }: RunOptions): Promise<Row[]> {
  const alice = await decodeKeyFile("alice", fixturePem("alice"));
  const others = await Promise.all(["bob", "carol", "dave", "mallory"].map((n) => decodeKeyFile(n, fixturePem(n))));
  // 100 distinct recipients (names); keys reused from the fixtures (the cost per wrap is the same).
  const recipients = Array.from({ length: 100 }, (_, i) => {
    const k = others[i % others.length]!;
    return { username: `u${String(i).padStart(3, "0")}`, encKey: k.encKey, encFpr: k.encFpr };
  });
  const body = { kind: "text", text: "x".repeat(200) } as const;
  const budget = quick ? 150 : 600;
  const rows: Row[] = [];
  const label = randomBytes(100);
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const aad = randomBytes(350);
  const padded = randomBytes(256);
  const signedInput = randomBytes(120);

  for (const n of [1, 10, 100]) {
    const to = recipients.slice(0, n);
    const sealUs: number[] = [];
    const primUs: number[] = [];
    const ratios: number[] = [];
    for (let r = 0; r < runs; r++) {
      const s = timePerOp(() => env.sealEnvelope({ sender: alice, conversationId: "#bench", recipients: to, body, prev: env.ZERO_HASH, sentAtMs: Date.now() }), budget);
      // The same keys seal wraps to: the sender's and each recipient's.
      const wrapKeys = [alice.encKey, ...to.map((t) => t.encKey)];
      const p = timePerOp(() => {
        for (const k of wrapKeys) prim.rsaOaepWrap(k, label, key);
        prim.ed25519Sign(alice.sigPrivate, signedInput);
        prim.aesGcmEncrypt(key, iv, aad, padded);
      }, budget);
      sealUs.push(s);
      primUs.push(p);
      ratios.push(s / p);
    }
    rows.push({ metric: `seal, ${n} recipient${n > 1 ? "s" : ""}`, unit: "µs/op", values: sealUs, better: "lower" });
    rows.push({ metric: `  primitives (${n + 1} wraps + sign + GCM)`, unit: "µs/op", values: primUs, better: "lower" });
    rows.push({ metric: `  seal / primitives`, unit: "ratio", values: ratios, better: "lower", target: 1.2 });
  }

  // Open, by bob, of a 10-recipient room message.
  const bob = others[0]!;
  const room = env.sealEnvelope({ sender: alice, conversationId: "#bench", recipients: [bob, ...recipients.slice(0, 9)], body, prev: env.ZERO_HASH, sentAtMs: Date.now() });
  const ctx = {
    me: bob, deliveredInto: "#bench", nowMs: Date.now(),
    senderKey: () => ({ kind: "pinned", sigKey: alice.sigKey, sigFpr: alice.sigFpr }) as const,
    seen: () => false,
  };
  const myWrap = room.envelope.wraps.find((w) => w.username === "bob")!.wrappedKey;
  const hHash = env.headerHash(room.envelope.header);
  const wrapLabel = env.wrapLabel(hHash, "bob", bob.encFpr);
  const signed = env.signedBytes(room.envelope);
  const aadBytes = env.encodeHeader(room.envelope.header);
  const k = prim.rsaOaepUnwrap(bob.encPrivate, wrapLabel, myWrap);
  const openUs: number[] = [];
  const openPrimUs: number[] = [];
  const openRatios: number[] = [];
  for (let r = 0; r < runs; r++) {
    const o = timePerOp(() => env.openEnvelope(room.envelope, ctx), budget);
    const p = timePerOp(() => {
      prim.ed25519Verify(alice.sigKey, signed, room.envelope.signature);
      prim.rsaOaepUnwrap(bob.encPrivate, wrapLabel, myWrap);
      prim.aesGcmDecrypt(k, room.envelope.header.iv, aadBytes, room.envelope.ciphertext, room.envelope.tag);
    }, budget);
    openUs.push(o);
    openPrimUs.push(p);
    openRatios.push(o / p);
  }
  rows.push({ metric: "open (10-recipient message)", unit: "µs/op", values: openUs, better: "lower" });
  rows.push({ metric: "  primitives (verify + unwrap + GCM)", unit: "µs/op", values: openPrimUs, better: "lower" });
  rows.push({ metric: "  open / primitives", unit: "ratio", values: openRatios, better: "lower", target: 1.2 });
  return rows;
}
