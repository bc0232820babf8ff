// The chat-relay bin runs node with the flags its shebang gives, and the benchmarks run the
// relay with the same ones: a figure measured with other flags would not be the product's.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const read = (p: string): string => readFileSync(fileURLToPath(new URL(p, import.meta.url)), "utf8");

it("the benchmark's relay host uses the bin's node flags and environment", async () => {
  const shebang = read("../../src/server/main.ts").split("\n")[0]!;
  const m = /^#!\/usr\/bin\/env -S((?: [A-Z_]+=\d+)*) node((?: --[a-z-]+=\d+)+)$/.exec(shebang);
  expect(m, shebang).not.toBeNull();
  const env = Object.fromEntries(m![1]!.trim().split(" ").filter(Boolean).map((kv) => kv.split("=") as [string, string]));
  const flags = m![2]!.trim().split(" ");
  const { RELAY_NODE_ENV, RELAY_NODE_FLAGS } = await import("../../scripts/bench/_lib.js");
  expect(RELAY_NODE_FLAGS).toEqual(flags);
  expect(RELAY_NODE_ENV).toEqual(env);
});
