// npm run bench [-- --only <suite,...>] [--runs N] [--json <file>] [--quick]
//
// Runs the suites of scripts/bench/ (SUITES below), each measurement at least three times, and
// prints a table for people: median, min, max and the spread ((max - min) / median) so noise is
// visible, next to the target. --json writes the same figures for tools. Claims about speed live
// here, never in timed tests.
//
// The benchmarks are TypeScript, type-checked with the rest (npm run typecheck). npm run bench
// builds dist/ (the bins, which the tui suite runs), then compiles this file with what it imports
// (scripts/bench/, the test helpers it shares, src/) into dist-bench/ (tsconfig.bench.json) and
// runs it there with node.
//
// A suite module (scripts/bench/<suite>.ts) exports name, description and run(): a Suite (_lib.ts),
// whose rows carry one value per run, which side is better, and optionally a target and a note.
import { existsSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { root, type Row, type Suite } from "./bench/_lib.js";
import * as cluster from "./bench/cluster.js";
import * as handshakeFlood from "./bench/handshake-flood.js";
import * as inputLine from "./bench/input-line.js";
import * as keys from "./bench/keys.js";
import * as mls from "./bench/mls.js";
import * as peers from "./bench/peers.js";
import * as pins from "./bench/pins.js";
import * as relayCatchupMls from "./bench/relay-catchup-mls.js";
import * as relayCatchupScreen from "./bench/relay-catchup-screen.js";
import * as relayDurability from "./bench/relay-durability.js";
import * as relayFanout from "./bench/relay-fanout.js";
import * as relayScale from "./bench/relay-scale.js";
import * as tui from "./bench/tui.js";

/** Every suite, in the order they run. */
const SUITES: readonly Suite[] = [cluster, handshakeFlood, inputLine, keys, mls, peers, pins, relayCatchupMls, relayCatchupScreen, relayDurability, relayFanout, relayScale, tui];

/**
 * Suites retired with protocol v1 (the relay speaks only v2), and where their figures went:
 * --only names them with this sentence rather than "no suite".
 */
const RETIRED: Readonly<Record<string, string>> = {
  crypto: "the v1 envelope's seal/open (RSA-OAEP, AES-GCM) is no longer on the wire; the v2 cryptography is the mls suite",
  "relay-fanout-mls": "it is relay-fanout now (protocol v2 is the only one; the v1 fan-out was retired)",
};

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const runs = Math.max(3, Number(opt("--runs") ?? 3));
const only = opt("--only")?.split(",");
const jsonPath = opt("--json");
const quick = args.includes("--quick");

for (const n of only ?? []) {
  if (RETIRED[n] !== undefined) {
    console.error(`bench: the suite ${n} was retired: ${RETIRED[n]}`);
    process.exit(1);
  }
}
const unknown = only?.filter((n) => !SUITES.some((s) => s.name === n)) ?? [];
if (unknown.length > 0) {
  console.error(`bench: no suite named ${unknown.join(", ")}; the suites: ${SUITES.map((s) => s.name).join(", ")}`);
  process.exit(1);
}
if (!existsSync(join(root, "dist", "tui", "main.js"))) {
  console.error("bench: dist/ is missing; run npm run build first (npm run bench does)");
  process.exit(1);
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

interface Result extends Row {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly spread: number;
  readonly met: boolean | undefined;
}

const report = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? "unknown",
  memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
  runs,
  suites: [] as Array<{ name: string; seconds: number; results: Result[] }>,
};

for (const suite of SUITES) {
  if (only && !only.includes(suite.name)) continue;
  process.stderr.write(`bench: ${suite.name} — ${suite.description}\n`);
  const started = performance.now();
  const rows = await suite.run({ runs, quick, log: (m) => process.stderr.write(`  ${m}\n`) });
  const results = rows.map((r): Result => {
    const med = median(r.values);
    const spread = med === 0 ? 0 : (Math.max(...r.values) - Math.min(...r.values)) / Math.abs(med);
    const met = r.target === undefined ? undefined : r.better === "lower" ? med <= r.target : med >= r.target;
    return { ...r, median: med, min: Math.min(...r.values), max: Math.max(...r.values), spread, met };
  });
  report.suites.push({ name: suite.name, seconds: +((performance.now() - started) / 1000).toFixed(1), results });
}

const lines: string[] = [];
lines.push(`secure-chat benchmarks — ${report.date} — node ${report.node}, ${report.cpus} × ${report.cpuModel}, ${report.memoryGiB} GiB; ${runs} runs each, median shown`);
for (const s of report.suites) {
  lines.push("");
  lines.push(`## ${s.name} (${s.seconds} s)`);
  const header = ["metric", "median", "min", "max", "spread", "unit", "target", ""];
  const body = s.results.map((r) => [
    r.metric, fmt(r.median), fmt(r.min), fmt(r.max), `${(r.spread * 100).toFixed(0)}%`, r.unit,
    r.target === undefined ? "" : `${r.better === "lower" ? "≤" : "≥"} ${r.target}`,
    r.met === undefined ? "" : r.met ? "ok" : "MISSED",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => String(b[i]).length)));
  const row = (cells: readonly (string | number)[]): string => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join("  ");
  lines.push(row(header));
  for (const b of body) lines.push(row(b));
  for (const r of s.results) if (r.note) lines.push(`  - ${r.metric}: ${r.note}`);
}
console.log(lines.join("\n"));
if (jsonPath) {
  writeFileSync(jsonPath, JSON.stringify(report, null, 2));
  console.log(`\nJSON written to ${jsonPath}`);
}
