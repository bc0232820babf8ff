// The relay verifies every envelope's Ed25519 signature on libuv's thread pool while its event
// loop reads frames, commits and delivers. libuv starts 4 threads by default: on a 2-core host
// they compete with the event loop, and waking them costs the event loop ~20 µs per check
// (measured: scripts/bench relay-fanout, +8-12% deliveries/s with one thread on 2 cores). So
// the relay sizes the pool to the cores left beside the event loop, unless UV_THREADPOOL_SIZE
// says otherwise. Imported first by the relay's bin: libuv reads the variable when the pool
// first starts, which must not have happened yet.
import { availableParallelism } from "node:os";

/** Threads for the pool on a host with `cores` cores: one core stays with the event loop. */
export function relayThreadPoolSize(cores: number): number {
  if (!Number.isInteger(cores) || cores < 1) throw new RangeError(`cores must be a positive integer, got ${cores}`);
  return Math.max(1, cores - 1);
}

if (process.env["UV_THREADPOOL_SIZE"] === undefined) {
  process.env["UV_THREADPOOL_SIZE"] = String(relayThreadPoolSize(availableParallelism()));
}
