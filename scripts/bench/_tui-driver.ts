// One measurement run of the chat UI, in its own process (so its memory is its own): the real
// runTui and App from dist/ through Ink's real (throttled, interactive, alternate-screen)
// renderer, on fake TTY streams of 120x40 (256 colours: run with FORCE_COLOR=2). It loads
// 100,000 messages into the conversation on screen in one burst, then measures, for each key,
// the time from the key arriving on stdin to the end of the frame Ink writes for it. Ink
// handles a key synchronously when no frame was drawn in the last 1/120 s, so this is the whole
// path: key parsing, reducer, React render, Yoga layout, frame building, the write. Keys come
// 25 ms apart (faster than key repeat); a last series comes while messages keep arriving. The
// session is a fake; the bin's other modules (grpc-js client, relay, yargs) are loaded too, so
// the memory figure is the chat-tui process's, not the UI's alone. Prints one JSON object.
//
//   FORCE_COLOR=2 node dist-bench/scripts/bench/_tui-driver.js [--messages N] [--keys N] [--pages N]
import type { PeerTrust } from "../../src/client/types.js";
import { runTui } from "../../src/tui/run-tui.js";
import { FakeSession } from "../../test/helpers/fake-session.js";
import { FakeStdin } from "../../test/tui/helpers/terminal.js";
import { BenchStdout } from "./_tui-terminal.js";

// What dist/tui/main.js loads besides the UI.
await import("../../src/client/chat-client.js");
await import("../../src/server/relay.js");
await import("yargs");

// Peak RSS, sampled: getrusage's maxRSS is no good here, because Linux hands a forked child the
// parent's peak (after the relay benchmarks, npm run bench's process is large).
let peakRss = process.memoryUsage.rss();
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}, 25);
sampler.unref();

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const MESSAGES = arg("--messages", 100_000);
const KEYS = arg("--keys", 300);
const PAGES = arg("--pages", 60);
/** Time between keys: longer than a frame at Ink's frame cap (60/s), like typing, not a paste. */
const GAP_MS = 25;
const COLUMNS = 120;
const ROWS = 40;

// A deterministic stream of chat text.
let seed = 0x9e3779b9;
const random = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const WORDS = ("the deploy is done but the cache keeps warming so give it a minute before you check " +
  "latency again please ping me if the graph looks odd 漢字 café naïve 👍 rollout canary review " +
  "merge tests green red flaky retry relay queue socket alice").split(" ");
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const sentence = (n: number): string => Array.from({ length: n }, () => pick(WORDS)).join(" ");
const SENDERS = Array.from({ length: 30 }, (_, i) => `user${String(i).padStart(2, "0")}`);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const stdin = new FakeStdin();
const stdout = new BenchStdout(COLUMNS, ROWS);
const stderr = new BenchStdout(COLUMNS, ROWS);
const session = new FakeSession({
  me: "alice",
  peers: SENDERS.map((username, i) => ({ username, online: i % 3 !== 0, trust: (i % 5 === 0 ? "verified" : "unverified") as PeerTrust, you: false })),
});
let nextId = 1;
const newId = (): string => (nextId++).toString(16).padStart(32, "0");

const started = performance.now();
const exited = runTui({ session, stdin: stdin.stream, stdout: stdout.stream, stderr: stderr.stream, bell: false });

async function until(test: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!test()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

await until(() => stdout.recent.includes("secure-chat") && stdin.listenerCount("readable") > 0, "the first frame");
const firstFrameMs = performance.now() - started;

// 100,000 messages over the last 30 days arrive in one burst (a long queue after reconnecting).
const now = Date.now();
const span = 30 * 24 * 3600 * 1000;
const t0 = performance.now();
for (let i = 0; i < MESSAGES; i++) {
  const from = pick(SENDERS);
  const long = random() < 0.1;
  let text = sentence(long ? 40 + Math.floor(random() * 40) : 3 + Math.floor(random() * 20));
  if (random() < 0.05) text += `\n${sentence(8)}\n${sentence(5)}`;
  if (i === MESSAGES - 1) text = "the final message of the history";
  const at = now - span + Math.floor((span * i) / MESSAGES);
  session.emit({ type: "message", message: { id: newId(), conversationId: "lobby", from, kind: "text", text, sentAtMs: at, receivedAtMs: at, own: false } });
}
await until(() => stdout.recent.includes("the final message of the history"), "the history to show");
const loadMs = performance.now() - t0;
await sleep(100);

/** Sends one key and returns the milliseconds until the end of the frame written for it. */
async function timeKey(bytes: string): Promise<number> {
  stdout.reset();
  const start = performance.now();
  stdin.write(bytes);
  // Drawn at once unless a frame was drawn less than a frame's time ago (then at its end).
  await until(() => stdout.times.length > 0, `a frame for ${JSON.stringify(bytes)}`, 5_000);
  await new Promise((resolve) => setImmediate(resolve));
  const first = stdout.times[0]!;
  const end = stdout.times.filter((t) => t - first < 5).at(-1)!;
  await sleep(GAP_MS);
  return end - start;
}

const keyTimes: number[] = [];
const letters = "the quick brown fox jumps over the lazy dog ";
for (let i = 0; i < KEYS; i++) {
  // Clear the line now and then (Ctrl-U), as people do; that key is timed too.
  const key = i > 0 && i % 80 === 0 ? "\u0015" : letters[i % letters.length]!;
  keyTimes.push(await timeKey(key));
}
await timeKey("\u0015");

const pageTimes: number[] = [];
for (let i = 0; i < PAGES; i++) pageTimes.push(await timeKey("\u001b[5~")); // PgUp
const topTime = await timeKey("\u001b[1;5H"); // Ctrl-Home: the oldest message
for (let i = 0; i < PAGES; i++) pageTimes.push(await timeKey("\u001b[6~")); // PgDn from the top
const bottomTime = await timeKey("\u001b[1;5F"); // Ctrl-End
// Keys while scrolled far up, with messages arriving below.
await timeKey("\u001b[1;5H");
for (let i = 0; i < 20; i++) {
  session.emit({ type: "message", message: { id: newId(), conversationId: "lobby", from: "user01", kind: "text", text: `live ${i}`, sentAtMs: Date.now(), receivedAtMs: Date.now(), own: false } });
  await sleep(2);
  keyTimes.push(await timeKey("x"));
}

const memory = process.memoryUsage();
clearInterval(sampler);
const peakRssMb = Math.max(peakRss, memory.rss) / 2 ** 20;
const { getHeapSpaceStatistics } = await import("node:v8");
const newSpaceMb = (getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0) / 2 ** 20;
stdin.write("\u0003"); // Ctrl-C: leave
const code = await exited;

const sorted = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
const quantile = (xs: readonly number[], q: number): number => {
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
};
process.stdout.write(`${JSON.stringify({
  exitCode: code,
  messages: MESSAGES,
  firstFrameMs,
  loadMs,
  key: { n: keyTimes.length, p50: quantile(keyTimes, 0.5), p99: quantile(keyTimes, 0.99), max: Math.max(...keyTimes) },
  page: { n: pageTimes.length, p50: quantile(pageTimes, 0.5), p99: quantile(pageTimes, 0.99), max: Math.max(...pageTimes) },
  topMs: topTime,
  bottomMs: bottomTime,
  rssMb: memory.rss / 2 ** 20,
  peakRssMb,
  heapUsedMb: memory.heapUsed / 2 ** 20,
  newSpaceMb,
  frameBytes: stdout.bytes,
})}\n`);
process.exit(0);
