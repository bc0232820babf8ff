#!/usr/bin/env node
// npm run bench [-- --only <suite,...>] [--runs N] [--json <file>] [--quick]
//
// Runs every suite in scripts/bench/*.mjs against the built code (dist/), each measurement at
// least three times, and prints a table for people: median, min, max and the spread
// ((max - min) / median) so noise is visible, next to the target. --json writes the same
// figures for tools. Claims about speed live here, never in timed tests.
//
// A suite module exports:
//   export const name = "relay";
//   export const description = "...";
//   export async function run({ runs, quick, log }) -> Array<{
//     metric: string, unit: string, values: number[],       // one value per run
//     better: "lower" | "higher", target?: number,          // target met when median is on the right side
//     note?: string,
//   }>
import { readdirSync, writeFileSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { cpus, totalmem } from "node:os";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const runs = Math.max(3, Number(opt("--runs") ?? 3));
const only = opt("--only")?.split(",");
const jsonPath = opt("--json");
const quick = args.includes("--quick");

if (!existsSync(join(root, "dist", "server", "relay.js"))) {
  console.error("bench: dist/ is missing; run npm run build first (npm run bench does)");
  process.exit(1);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

const dir = join(root, "scripts", "bench");
const files = readdirSync(dir).filter((f) => f.endsWith(".mjs") && !f.startsWith("_")).sort();
const report = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? "unknown",
  memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
  runs,
  suites: [],
};

for (const f of files) {
  const suite = await import(pathToFileURL(join(dir, f)).href);
  if (only && !only.includes(suite.name)) continue;
  process.stderr.write(`bench: ${suite.name} — ${suite.description ?? ""}\n`);
  const started = performance.now();
  const rows = await suite.run({ runs, quick, log: (m) => process.stderr.write(`  ${m}\n`) });
  const results = rows.map((r) => {
    const med = median(r.values);
    const spread = med === 0 ? 0 : (Math.max(...r.values) - Math.min(...r.values)) / Math.abs(med);
    const met = r.target === undefined ? undefined : r.better === "lower" ? med <= r.target : med >= r.target;
    return { ...r, median: med, min: Math.min(...r.values), max: Math.max(...r.values), spread, met };
  });
  report.suites.push({ name: suite.name, seconds: +((performance.now() - started) / 1000).toFixed(1), results });
}

const lines = [];
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
  const row = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  ");
  lines.push(row(header));
  for (const b of body) lines.push(row(b));
  for (const r of s.results) if (r.note) lines.push(`  - ${r.metric}: ${r.note}`);
}
console.log(lines.join("\n"));
if (jsonPath) {
  writeFileSync(jsonPath, JSON.stringify(report, null, 2));
  console.log(`\nJSON written to ${jsonPath}`);
}
