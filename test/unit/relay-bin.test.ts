// The chat-relay bin runs node with the flags its shebang gives, and the benchmarks run the
// relay with the same ones: a figure measured with other flags would not be the product's.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const read = (p: string): string => readFileSync(fileURLToPath(new URL(p, import.meta.url)), "utf8");

it("the benchmark's relay host uses the bin's node flags", async () => {
  const shebang = read("../../src/server/main.ts").split("\n")[0]!;
  expect(shebang).toMatch(/^#!\/usr\/bin\/env -S node( --[a-z-]+=\d+)+$/);
  const flags = shebang.replace("#!/usr/bin/env -S node", "").trim().split(" ");
  const { RELAY_NODE_FLAGS } = await import("../../scripts/bench/_lib.js");
  expect(RELAY_NODE_FLAGS).toEqual(flags);
});
