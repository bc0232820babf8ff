// Two relays of one service in real terminals (issue 14, cluster-design.md §3): two chat-relay
// processes on one PostgreSQL database with one TLS certificate; alice runs chat-tui with
// --server A,B, bob with --server B. Relay A is stopped with SIGTERM (the operator's drain): alice's
// screen says she moved, her status row names B, and a DM goes both ways after, each line once.
// Every wait is a screen condition with a deadline (the screen is shown when one times out).
// SC_KEEP=1 keeps the directory (logs at debug level).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabase, type TestDatabase } from "../helpers/pg.js";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

const TLS_DIR = join(import.meta.dirname, "..", "fixtures", "tls");
const WAIT_MS = 45_000; // screens under load (two relays, two clients, PostgreSQL on two cores)

let dir: string;
let db: TestDatabase | undefined;
const relays: RelayProcess[] = [];
const tmux = new Tmux();
const USERS = ["alice", "bob"] as const;
type User = (typeof USERS)[number];

function home(user: User): string {
  return join(dir, "home", user);
}

function startTui(user: User, servers: readonly number[]): void {
  const list = servers.map((p) => `127.0.0.1:${p}`).join(",");
  tmux.start(user, `${process.execPath} ${TUI_BIN} ${user} --server ${list} --log-file ${join(dir, `${user}.log`)} --no-bell${process.env["SC_KEEP"] === undefined ? "" : " --log-level debug"}`, {
    width: 120, height: 36,
    env: { HOME: home(user), XDG_CONFIG_HOME: join(home(user), ".config"), XDG_STATE_HOME: join(home(user), ".local", "state") },
  });
}

function count(screen: string, text: string): number {
  return screen.split(text).length - 1;
}

async function say(user: User, line: string): Promise<void> {
  await tmux.sayAndWait(user, line, WAIT_MS);
}

beforeAll(() => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-cluster-e2e-"));
  for (const u of USERS) mkdirSync(home(u), { recursive: true, mode: 0o700 });
});

afterAll(async () => {
  await tmux.quitAll([...USERS]);
  for (const r of relays) await r.stop("SIGKILL");
  await db?.drop();
  if (process.env["SC_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true });
});

describe("two relays on one PostgreSQL in real terminals", () => {
  it("relay A stopped with SIGTERM: alice moves to B (said once, status names B), a DM goes both ways after", async () => {
    db = await freshDatabase();
    const tls = ["--tls-cert", join(TLS_DIR, "relay-cert.pem"), "--tls-key", join(TLS_DIR, "relay-key.pem")];
    // One after the other: the first creates the schema.
    for (const name of ["a", "b"]) relays.push(await startRelayProcess(join(dir, `relay-${name}`), ["--store", db.url, ...tls]));
    const [a, b] = relays as [RelayProcess, RelayProcess];

    startTui("alice", [a.port, b.port]);
    startTui("bob", [b.port]);
    // Each sees the other online across the two relays (presence through the database).
    await tmux.waitForScreen("alice", (s) => s.includes(`alice@127.0.0.1:${a.port}`) && s.includes("● bob"), WAIT_MS);
    await tmux.waitForScreen("bob", (s) => s.includes("● alice"), WAIT_MS);

    // A DM before the move: alice on A, bob on B.
    await say("alice", "/msg bob before the move 7c21");
    await tmux.waitForScreen("alice", (s) => s.includes("[@bob] >") && /before the move 7c21 ✓/.test(s), WAIT_MS);
    await tmux.waitForScreen("bob", /2:@alice/, WAIT_MS);
    await say("bob", "/query alice");
    await tmux.waitForScreen("bob", (s) => s.includes("alice  before the move 7c21"), WAIT_MS);

    // The operator stops A: it drains (sessions told to move) and exits cleanly.
    expect(await a.stop("SIGTERM")).toBe(0);
    const moved = await tmux.waitForScreen("alice", (s) => s.includes(`moved to relay 127.0.0.1:${b.port}`) && s.includes(`alice@127.0.0.1:${b.port}`) && /● connected/.test(s), WAIT_MS);
    expect(count(moved, "moved to relay")).toBe(1);

    // The DM both ways after the move, each line once on both screens.
    await say("alice", "after the move from alice 3e90");
    await tmux.waitForScreen("alice", /after the move from alice 3e90 ✓/, WAIT_MS);
    await tmux.waitForScreen("bob", (s) => s.includes("alice  after the move from alice 3e90"), WAIT_MS);
    await say("bob", "after the move from bob 51af");
    await tmux.waitForScreen("bob", /after the move from bob 51af ✓/, WAIT_MS);
    const alice = await tmux.waitForScreen("alice", (s) => /bob +after the move from bob 51af/.test(s), WAIT_MS);
    const bob = tmux.screen("bob");
    for (const [screen, text] of [[alice, "before the move 7c21"], [alice, "after the move from alice 3e90"], [alice, "after the move from bob 51af"],
      [bob, "before the move 7c21"], [bob, "after the move from alice 3e90"], [bob, "after the move from bob 51af"]] as const) {
      expect(count(screen, text), `"${text}"`).toBe(1);
    }
  }, 240_000);
});
