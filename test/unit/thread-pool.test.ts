// The relay's libuv pool size (src/server/thread-pool.ts): one core stays with the event loop,
// and an explicit UV_THREADPOOL_SIZE wins.
import { execFileSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { relayThreadPoolSize } from "../../src/server/thread-pool.js";

const MODULE = fileURLToPath(new URL("../../dist/server/thread-pool.js", import.meta.url));

/** libuv worker threads of a node process that imported the module and used the pool once. */
function poolThreads(env: NodeJS.ProcessEnv): number {
  const script = `
    await import(${JSON.stringify(MODULE)});
    const { readdirSync, readFileSync } = await import("node:fs");
    const { generateKeyPairSync, sign, verify } = await import("node:crypto");
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const m = Buffer.from("x");
    await new Promise((r) => verify(null, m, publicKey, sign(null, m, privateKey), r));
    const names = readdirSync("/proc/self/task").map((t) => readFileSync("/proc/self/task/" + t + "/comm", "utf8").trim());
    console.log(names.filter((n) => n.startsWith("libuv")).length);`;
  return Number(execFileSync(process.execPath, ["--input-type=module", "-e", script], { env, encoding: "utf8" }).trim());
}

describe("relay thread pool", () => {
  it("leaves one core to the event loop, and never goes below one thread", () => {
    expect([1, 2, 4, 16].map(relayThreadPoolSize)).toEqual([1, 1, 3, 15]);
    expect(() => relayThreadPoolSize(0)).toThrow(RangeError);
    expect(() => relayThreadPoolSize(1.5)).toThrow(RangeError);
  });

  it.runIf(process.platform === "linux")("sizes the pool before it starts, unless UV_THREADPOOL_SIZE is set", () => {
    const { UV_THREADPOOL_SIZE: _, ...env } = process.env;
    expect(poolThreads(env)).toBe(relayThreadPoolSize(availableParallelism()));
    expect(poolThreads({ ...env, UV_THREADPOOL_SIZE: "3" })).toBe(3);
  });
});
