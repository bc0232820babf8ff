#!/usr/bin/env node
// tsc does not keep the executable bit: make the two bins executable after a build.
import { chmodSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
for (const bin of ["dist/server/main.js", "dist/tui/main.js"]) {
  const p = join(root, bin);
  if (existsSync(p)) chmodSync(p, 0o755);
}
