#!/usr/bin/env node
// Regenerates src/gen from proto/ with ts-proto through buf (no protoc download needed).
//   node scripts/gen-proto.mjs            write src/gen
//   node scripts/gen-proto.mjs --check    exit 1 if regenerating would change src/gen
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(root, "node_modules", ".bin");
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };
const check = process.argv.includes("--check");

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

execFileSync("buf", ["lint"], { cwd: root, env, stdio: "inherit" });

if (!check) {
  rmSync(join(root, "src", "gen"), { recursive: true, force: true });
  execFileSync("buf", ["generate"], { cwd: root, env, stdio: "inherit" });
  console.log(`src/gen regenerated: ${listFiles(join(root, "src", "gen")).join(", ")}`);
} else {
  const out = mkdtempSync(join(tmpdir(), "securechat-gen-"));
  try {
    execFileSync("buf", ["generate", "-o", out], { cwd: root, env, stdio: "inherit" });
    const fresh = join(out, "src", "gen");
    const committed = join(root, "src", "gen");
    const a = listFiles(fresh);
    const b = listFiles(committed);
    const problems = [];
    if (a.join("\n") !== b.join("\n")) problems.push(`file lists differ: generated [${a}] vs committed [${b}]`);
    for (const f of a) {
      if (b.includes(f) && !readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f)))) {
        problems.push(`${f} differs`);
      }
    }
    if (problems.length > 0) {
      console.error(`src/gen is stale; run npm run gen:proto and commit:\n  ${problems.join("\n  ")}`);
      process.exit(1);
    }
    console.log("src/gen is up to date");
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
