// The terminal UI with a big history (issue 4's targets): with 100,000 messages in the
// conversation on screen, a keystroke reaches the screen in < 16 ms (p99), scrolling a page in
// < 30 ms (p99), the process stays under 250 MB RSS; cold start to the first frame < 500 ms.
//
// Latency and memory: each run is a fresh process (_tui-driver.ts) driving the real runTui and
// App through Ink's real renderer on fake 120x40 TTY streams; a key's time runs from
// its bytes arriving on stdin to the end of the frame written for it. Node runs with the flags
// of dist/tui/main.js's shebang, so the memory figure is the bin's (BENCH_TUI_NODE_FLAGS="..."
// tries other flags instead, e.g. before changing the shebang).
//
// Cold start: the real bin (dist/tui/main.js, with a committed test key, a fresh key directory
// and a real relay started here) in a pseudo-terminal made by script(1); the time runs from
// spawning it to the first frame on the terminal (its status line), and on to "● connected".
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AtRestCipher } from "../../src/client/at-rest.js";
import { ChatClient } from "../../src/client/chat-client.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { BACKLOG_PER_CONVERSATION, MessageHistory } from "../../src/client/history.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import { TrustStore } from "../../src/client/trust-store.js";
import { decodeKeyFile } from "../../src/protocol/keyfile.js";
import { nullLogger } from "../../src/protocol/log.js";
import { startRelay } from "../../src/server/relay.js";
import { fixturePem } from "../../test/helpers/identities.js";
import type { Row, RunOptions } from "./_lib.js";
import { BIN, freshKeyDir, PtyTui, removeDir, withoutNodeEnv } from "./_tui-pty.js";

const here = dirname(fileURLToPath(import.meta.url));
const MESSAGES = 100_000;

export const name = "tui";
export const description = `chat UI with ${MESSAGES.toLocaleString("en")} messages on screen: key and page latency (stdin to frame written), peak RSS, cold start of the bin to its first frame`;

/**
 * The node flags and environment in the bin's shebang
 * ("#!/usr/bin/env -S VAR=1 node --flag" → flags ["--flag"], env {VAR: "1"}).
 */
function binLaunch(): { flags: string[]; env: Record<string, string> } {
  const first = readFileSync(BIN, "utf8").split("\n", 1)[0] ?? "";
  const words = first.replace(/^#!\s*/, "").split(/\s+/).filter((w) => w !== "");
  const node = words.findIndex((w) => /(^|\/)node$/.test(w));
  if (node === -1) return { flags: [], env: {} };
  const env = Object.fromEntries(words.slice(0, node).filter((w) => /^[A-Z_][A-Z0-9_]*=/.test(w)).map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]));
  return { flags: words.slice(node + 1), env };
}

/** The idle RSS of a hello-world Ink app with the same node flags: the floor of the stack. */
function runFloor(nodeFlags: readonly string[], binEnv: Record<string, string>): { rssMb: number } {
  const child = spawnSync(process.execPath, [...nodeFlags, join(here, "_tui-floor.js")], { encoding: "utf8", env: withoutNodeEnv({ ...process.env, ...binEnv }), timeout: 60_000 });
  const line = child.stdout.split("\n").find((l) => l.startsWith("{"));
  if (child.status !== 0 || line === undefined) throw new Error(`floor measurement failed (${child.status}): ${child.stderr.slice(-2000)}`);
  return JSON.parse(line) as { rssMb: number };
}

/** What one driver run prints (_tui-driver.ts). */
interface DriverResult {
  readonly exitCode: number;
  readonly messages: number;
  readonly firstFrameMs: number;
  readonly loadMs: number;
  readonly key: { readonly n: number; readonly p50: number; readonly p99: number; readonly max: number };
  readonly page: { readonly n: number; readonly p50: number; readonly p99: number; readonly max: number };
  readonly topMs: number;
  readonly bottomMs: number;
  readonly rssMb: number;
  readonly peakRssMb: number;
  readonly heapUsedMb: number;
  readonly newSpaceMb: number;
  readonly frameBytes: number;
}

function runDriver(args: readonly string[], nodeFlags: readonly string[], binEnv: Record<string, string>): DriverResult {
  const child = spawnSync(process.execPath, [...nodeFlags, join(here, "_tui-driver.js"), ...args], {
    encoding: "utf8",
    env: withoutNodeEnv({ ...process.env, ...binEnv, FORCE_COLOR: "2" }),
    maxBuffer: 16 * 1024 * 1024,
    timeout: 300_000,
  });
  const line = child.stdout.split("\n").find((l) => l.startsWith("{"));
  if (child.status !== 0 || line === undefined) throw new Error(`tui driver failed (${child.status}): ${child.stderr.slice(-2000)}`);
  return JSON.parse(line) as DriverResult;
}

/** Kept history for the cold start: 20 conversations of 500 messages (the most kept per conversation). */
const HISTORY_CONVERSATIONS = 20;

/** Writes a full history into alice's state database, as earlier sessions would have. */
async function fillHistory(keys: string): Promise<number> {
  const alice = await decodeKeyFile("alice", readFileSync(join(keys, "alice_key.pem"), "utf8"));
  const store = ClientStateStore.open(join(keys, "alice_state.db"));
  const history = new MessageHistory(store, new AtRestCipher(alice), nullLogger);
  const now = Date.now();
  let n = 0;
  for (let i = 0; i < BACKLOG_PER_CONVERSATION; i++) {
    for (let c = 0; c < HISTORY_CONVERSATIONS; c++) {
      const from = c === 0 ? "bob" : `user${c}`;
      history.record({
        id: (n++).toString(16).padStart(32, "0"), conversationId: c === 0 ? "lobby" : `dm:alice:${from}`, from, kind: "text",
        text: `message ${i} in conversation ${c}: a line of ordinary chat text`, sentAtMs: now - 1000, receivedAtMs: now - 1000, own: false,
      });
    }
  }
  store.close();
  return n;
}

/** Spawns the bin in a pty and times the first frame and the connection. */
async function coldStart(port: number, { history = false, nodeFlags }: { history?: boolean; nodeFlags: readonly string[] | undefined }): Promise<{ firstFrame: number; connected: number }> {
  const { dir, keys } = freshKeyDir();
  if (history) await fillHistory(keys);
  const tui = new PtyTui({ port, dir, keys, columns: 120, rows: 40, nodeFlags });
  try {
    const firstFrame = (await tui.waitFor((o) => o.includes("secure-chat"), "the first frame")) - tui.startedAt;
    const connected = (await tui.waitFor((o) => o.includes("● connected"), "the connection")) - tui.startedAt;
    return { firstFrame, connected };
  } finally {
    await tui.quit();
    removeDir(dir);
  }
}

/** A second and third user online in the lobby (the sidebar lists three), as ChatClients. */
async function startPeers(port: number): Promise<{ bob: ChatClient; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "sc-bench-tui-peers-"));
  const peers: ChatClient[] = [];
  for (const name of ["bob", "carol"]) {
    const identity = await decodeKeyFile(name, fixturePem(name));
    const trust = await TrustStore.open(join(dir, `${name}_known_peers.json`));
    // Protocol v2, the only one the relay speaks: the peer's MLS key store (PROTOCOL.md §10.4).
    const store = MlsKeyStore.open(join(dir, `${name}_mls.db`), { username: identity.username, sigPrivate: identity.sigPrivate });
    const client = new ChatClient({ identity, server: `127.0.0.1:${port}`, trust, state: ClientStateStore.open(":memory:"), history: false, reconnect: false, v2: { store } });
    client.start();
    await client.waitConnected(15_000);
    peers.push(client);
  }
  return {
    bob: peers[0]!,
    async close() {
      for (const p of peers) await p.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const WIRE_COLUMNS = 120;
const WIRE_ROWS = 35;
const TYPED = "the deploy is done, give it a minute before";
const ARRIVING = 20;

/**
 * The bin at 120x35 with 5,000 kept messages shown and three users online: its RSS once idle,
 * then the bytes it writes to the terminal for each typed character and for each arriving
 * message (a lobby line from bob, one at a time, each drawn before the next comes).
 */
async function wireAndMemory(port: number, nodeFlags: readonly string[] | undefined): Promise<{ idleRssMb: number; perKey: number; perMessage: number }> {
  const { dir, keys } = freshKeyDir();
  await fillHistory(keys);
  const peers = await startPeers(port);
  const tui = new PtyTui({ port, dir, keys, columns: WIRE_COLUMNS, rows: WIRE_ROWS, nodeFlags });
  try {
    await tui.waitFor((o) => o.includes("● connected"), "the connection");
    // Idle: the backlog drawn, the session settled, nothing drawn for 3 s (the client collects
    // its garbage after 2 s of quiet). RSS is sampled over two more seconds.
    await tui.settle(3_000, 30_000);
    const samples: number[] = [];
    for (let i = 0; i < 10; i++) {
      samples.push(tui.rssMb());
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const idleRssMb = samples.sort((a, b) => a - b)[samples.length >> 1]!;

    // Warm up the message path (bob's key gets pinned, his first line may bring a notice).
    for (const text of ["warm up 1", "warm up 2"]) {
      const before = tui.bytes;
      peers.bob.send("lobby", text);
      await tui.waitFor(() => tui.bytes > before, `the frame for "${text}"`);
      await tui.settle();
    }

    let start = tui.mark();
    for (const ch of TYPED) {
      const before = tui.bytes;
      tui.type(ch);
      await tui.waitFor(() => tui.bytes > before, `the frame for "${ch}"`);
      await tui.settle(60);
    }
    const perKey = (tui.bytes - start) / TYPED.length;
    tui.type("\u0015"); // Ctrl-U: an empty line again
    await tui.settle();

    start = tui.mark();
    for (let i = 0; i < ARRIVING; i++) {
      const text = `status ${String(i).padStart(2, "0")}: the canary looks fine, latency back to normal`;
      const before = tui.bytes;
      peers.bob.send("lobby", text);
      await tui.waitFor(() => tui.bytes > before, `the frame for message ${i}`);
      await tui.settle();
    }
    const perMessage = (tui.bytes - start) / ARRIVING;
    return { idleRssMb, perKey, perMessage };
  } finally {
    await tui.quit();
    await peers.close();
    removeDir(dir);
  }
}

export async function run({ runs, quick, log }: RunOptions): Promise<Row[]> {
  const override = process.env.BENCH_TUI_NODE_FLAGS;
  const launch = binLaunch();
  const flags = override === undefined ? launch.flags : override.split(/\s+/).filter((f) => f !== "");
  const binEnv = override === undefined ? launch.env : {};
  const args = ["--messages", String(MESSAGES), "--keys", quick ? "100" : "300", "--pages", quick ? "20" : "60"];
  // BENCH_TUI_SKIP_DRIVER=1 measures only the bin in a pty (quicker, while working on it).
  const skipDriver = process.env.BENCH_TUI_SKIP_DRIVER === "1";
  const ptyFlags = override === undefined ? undefined : flags;
  const drives: DriverResult[] = [];
  for (let i = 0; i < (skipDriver ? 0 : runs); i++) {
    const r = runDriver(args, flags, binEnv);
    log(`run ${i + 1}: key p50 ${r.key.p50.toFixed(1)} p99 ${r.key.p99.toFixed(1)} ms, page p99 ${r.page.p99.toFixed(1)} ms, peak RSS ${r.peakRssMb.toFixed(0)} MB (young generation ${r.newSpaceMb.toFixed(0)} MB), 100k burst drawn in ${r.loadMs.toFixed(0)} ms`);
    drives.push(r);
  }

  const cold: Array<{ firstFrame: number; connected: number }> = [];
  const coldKept: Array<{ firstFrame: number; connected: number }> = [];
  const wire: Array<{ idleRssMb: number; perKey: number; perMessage: number }> = [];
  const floors: number[] = [];
  for (let i = 0; i < runs; i++) floors.push(runFloor(flags, binEnv).rssMb);
  if (spawnSync("script", ["--version"]).status === 0) {
    const dataDir = mkdtempSync(join(tmpdir(), "sc-bench-tui-relay-"));
    const relay = await startRelay({ host: "127.0.0.1", port: 0, dataDir, logger: nullLogger });
    try {
      for (let i = 0; i < runs; i++) {
        const c = await coldStart(relay.port, { nodeFlags: ptyFlags });
        log(`cold start ${i + 1}: first frame ${c.firstFrame.toFixed(0)} ms, connected ${c.connected.toFixed(0)} ms`);
        cold.push(c);
      }
      for (let i = 0; i < runs; i++) {
        const c = await coldStart(relay.port, { history: true, nodeFlags: ptyFlags });
        log(`cold start with a full history ${i + 1}: first frame ${c.firstFrame.toFixed(0)} ms, connected ${c.connected.toFixed(0)} ms`);
        coldKept.push(c);
      }
      for (let i = 0; i < runs; i++) {
        const w = await wireAndMemory(relay.port, ptyFlags);
        log(`wire and memory ${i + 1}: ${w.perKey.toFixed(0)} bytes per typed character, ${w.perMessage.toFixed(0)} bytes per arriving message, idle RSS ${w.idleRssMb.toFixed(0)} MB`);
        wire.push(w);
      }
    } finally {
      await relay.shutdown();
      rmSync(dataDir, { recursive: true, force: true });
    }
  } else {
    log("script(1) is not installed: cold start not measured");
  }

  const source = override === undefined ? "the bin's shebang" : "BENCH_TUI_NODE_FLAGS";
  const envNote = Object.entries(binEnv).map(([k, v]) => `${k}=${v} `).join("");
  const flagNote = flags.length === 0 ? `${envNote}node without flags (${source} has none)` : `${envNote}node ${flags.join(" ")} (from ${source})`;
  const rows: Row[] = drives.length === 0 ? [] : [
    {
      metric: "keystroke → frame p99", unit: "ms", better: "lower", target: 16, values: drives.map((r) => r.key.p99),
      note: `${drives[0]?.key.n ?? 0} keys per run, 25 ms apart, 120x40, ${MESSAGES.toLocaleString("en")} messages; the last 20 while messages arrive and the view is scrolled to the top`,
    },
    { metric: "keystroke → frame p50", unit: "ms", better: "lower", values: drives.map((r) => r.key.p50) },
    {
      metric: "page (PgUp/PgDn) → frame p99", unit: "ms", better: "lower", target: 30, values: drives.map((r) => r.page.p99),
      note: `${drives[0]?.page.n ?? 0} pages per run: up from the newest, then down from the oldest`,
    },
    { metric: "page → frame p50", unit: "ms", better: "lower", values: drives.map((r) => r.page.p50) },
    { metric: "Ctrl-Home to the oldest → frame", unit: "ms", better: "lower", values: drives.map((r) => r.topMs) },
    { metric: "100k-message burst → frame", unit: "ms", better: "lower", values: drives.map((r) => r.loadMs) },
    {
      metric: "peak RSS", unit: "MB", better: "lower", target: 250, values: drives.map((r) => r.peakRssMb),
      note: `${flagNote}; V8's young generation reached ${Math.max(...drives.map((r) => r.newSpaceMb)).toFixed(0)} MB`,
    },
  ];
  if (cold.length > 0) {
    rows.push(
      {
        metric: "cold start → first frame", unit: "ms", better: "lower", target: 500, values: cold.map((c) => c.firstFrame),
        note: "dist/tui/main.js in a pty (script), fresh key dir with a test key, real relay on 127.0.0.1",
      },
      { metric: "cold start → connected", unit: "ms", better: "lower", values: cold.map((c) => c.connected) },
      {
        metric: "cold start, full history → first frame", unit: "ms", better: "lower", target: 500, values: coldKept.map((c) => c.firstFrame),
        note: `the same with ${HISTORY_CONVERSATIONS} conversations of kept history (the newest 5,000 messages are shown)`,
      },
      {
        metric: "bytes to the terminal per typed character", unit: "B", better: "lower", target: 300, values: wire.map((w) => w.perKey),
        note: `the bin in a pty at ${WIRE_COLUMNS}x${WIRE_ROWS}, kept history on screen, 3 users online; ${TYPED.length} characters typed one at a time, each frame written before the next key`,
      },
      {
        metric: "bytes to the terminal per arriving message", unit: "B", better: "lower", target: 300, values: wire.map((w) => w.perMessage),
        note: `${ARRIVING} lobby lines from another user, each drawn before the next arrives (the view follows the newest rows)`,
      },
      {
        metric: "idle RSS, 5,000 kept messages shown", unit: "MB", better: "lower", target: 80, values: wire.map((w) => w.idleRssMb),
        note: "the bin once started, connected and quiet for 3 s (median of 10 samples over 2 s, from /proc)",
      },
      {
        metric: "idle RSS of a hello-world Ink app", unit: "MB", better: "lower", values: floors,
        note: "the floor under the figure above: Node 24 + React + Ink 8 (yoga's WebAssembly) showing two lines, same node flags, collected once",
      },
    );
  }
  return rows;
}
