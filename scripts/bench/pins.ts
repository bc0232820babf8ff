// Pin writes (issue 9 §2): the cost of one change to known_peers when 10,000 users are pinned.
// A write appends one line (one fdatasync) and the file is rewritten with one line per peer only
// once the lines outnumber the peers twice over, so the cost is O(1) amortised; the figure
// below includes those rewrites (it is the mean over more writes than it takes to trigger one).
// Keys: one RSA key shared by every bench user (its cost is not what is measured) and an
// Ed25519 key of their own, so each user has distinct fingerprints and a valid key binding.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TrustStore } from "../../src/client/trust-store.js";
import { identityFromPrivateKeys } from "../../src/protocol/keys.js";
import type { Row, RunOptions } from "./_lib.js";

export const name = "pins";
export const description = "known_peers pin writes at 10,000 known users (append + fdatasync, amortised rewrites)";

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  const { privateKey: rsa } = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 65537 });
  const people = quick ? 2_000 : 10_000;
  const writes = quick ? 300 : 1_500;
  const identity = (username: string) => identityFromPrivateKeys(username, generateKeyPairSync("ed25519").privateKey, rsa);
  const known = Array.from({ length: people }, (_, i) => identity(`u${i}`));
  // Before measuring, every known user's keys change once (in one burst: one append), so the file
  // holds about twice as many lines as peers and the measured writes trigger a rewrite of the
  // whole file early on: the mean carries one full rewrite per run (in steady use there is one
  // per ~10,000 writes, so this overstates the amortised cost).
  const changedOnce = Array.from({ length: people }, (_, i) => identity(`u${i}`));
  // Measured: a tenth are new users; the rest change one known user's pending keys back and forth.
  const changed = [identity("u1"), identity("u1")] as const;
  const fresh = Array.from({ length: writes }, (_, i) => (i % 10 === 0 ? identity(`new${i}`) : changed[i % 2 === 0 ? 0 : 1]));

  const meanMs: number[] = [];
  const p99Ms: number[] = [];
  const openMs: number[] = [];
  for (let r = 0; r < runs; r++) {
    const dir = mkdtempSync(join(tmpdir(), "sc-bench-pins-"));
    try {
      const path = join(dir, "alice_known_peers.json");
      const setup = await TrustStore.open(path);
      for (const id of known) setup.observe(id);
      await setup.flush();
      for (const id of changedOnce) setup.observe(id);
      await setup.flush();
      const t0 = performance.now();
      const store = await TrustStore.open(path);
      openMs.push(performance.now() - t0);
      const each: number[] = [];
      const inode = statSync(path).ino;
      for (const id of fresh) {
        const t = performance.now();
        store.observe(id);
        await store.flush();
        each.push(performance.now() - t);
      }
      each.sort((a, b) => a - b);
      meanMs.push(each.reduce((s, v) => s + v, 0) / each.length);
      p99Ms.push(each[Math.floor(each.length * 0.99)]!);
      const rewritten = statSync(path).ino !== inode;
      if (!rewritten) throw new Error("bench: the measured writes did not include a rewrite of the file");
      log(`run ${r + 1}: ${people} pinned, ${writes} writes (the file was rewritten once), ${(statSync(path).size / 2 ** 20).toFixed(1)} MiB`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return [
    { metric: `pin write at ${people} known users, mean (rewrites included)`, unit: "ms", values: meanMs, better: "lower", target: 10 },
    { metric: `  p99 of those writes`, unit: "ms", values: p99Ms, better: "lower" },
    { metric: `  opening known_peers with ${people} pins`, unit: "ms", values: openMs, better: "lower" },
  ];
}
