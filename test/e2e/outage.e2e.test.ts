// The outage sentences on a real screen (issue 10 §3): chat-tui pointed at a web server says it
// is not a relay; chat-tui with a new key for a taken name says what the operator runs, and gets
// in by itself once the real `chat-relay users release` ran. Real binaries in tmux.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installFixtureKey } from "../helpers/identities.js";
import { RELAY_BIN, startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let relay: RelayProcess | undefined;
let web: Server | undefined;
const tmux = new Tmux();

/** A key dir holding `fixture`'s key as `<name>_key.pem`. */
function keyDir(sub: string, name: string, fixture: string): string {
  const keys = join(dir, sub);
  installFixtureKey(keys, name, fixture);
  return keys;
}

function tui(name: string, port: number, keys: string): string {
  return `${process.execPath} ${TUI_BIN} ${name} --server 127.0.0.1:${port} --key-dir ${keys} --log-file ${join(dir, `${name}-${port}.log`)} --no-bell`;
}

/** The screen as one line of text (the status line and the sentence may wrap). */
const flat = (s: string): string => s.replace(/[│\s]+/g, " ");

beforeAll(() => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-outage-e2e-"));
});

afterAll(async () => {
  tmux.kill();
  await relay?.stop();
  await new Promise<void>((resolve) => (web ? web.close(() => resolve()) : resolve()));
  rmSync(dir, { recursive: true, force: true });
});

describe("outage sentences on the screen", () => {
  it("a web server on the port is named, not reconnected to forever", async () => {
    web = createServer((_q, s) => s.end("hello"));
    await new Promise<void>((resolve) => web!.listen(0, "127.0.0.1", resolve));
    const port = (web.address() as { port: number }).port;
    tmux.start("web", tui("alice", port, keyDir("k-alice", "alice", "alice")), { width: 120, height: 30, env: { XDG_STATE_HOME: join(dir, "state") } });
    const screen = await tmux.waitForScreen("web", (s) => flat(s).includes("(--server host:port)"));
    expect(flat(screen)).toContain(`127.0.0.1:${port} is not a secure-chat relay (an HTTP/1 server answers there: "HTTP/1.1 400 Bad Request"): check the address (--server host:port)`);
    expect(screen).toContain("✗ failed");
    expect(screen).not.toContain("reconnecting");
  });

  it("a taken name says what the operator runs, and gets in once `chat-relay users release` ran", async () => {
    const dataDir = join(dir, "relay");
    relay = await startRelayProcess(dataDir);
    const env = { XDG_STATE_HOME: join(dir, "state") };
    tmux.start("bob-old", tui("bob", relay.port, keyDir("k-bob-old", "bob", "bob")), { width: 120, height: 30, env });
    await tmux.waitForScreen("bob-old", /● connected/);
    tmux.keys("bob-old", "C-c");
    await tmux.waitForExit("bob-old");
    // bob lost that key file and made a new one (here: another fixture key under his name).
    tmux.start("bob", tui("bob", relay.port, keyDir("k-bob-new", "bob", "mallory")), { width: 120, height: 30, env });
    const refused = await tmux.waitForScreen("bob", (s) => flat(s).includes("(retrying until then)"));
    expect(flat(refused)).toContain("the name 'bob' is taken on this relay by another key. Lost your key? Ask the relay's operator to run: chat-relay users release bob (retrying until then)");
    expect(refused).not.toContain("✗ failed");
    const out = execFileSync(process.execPath, [RELAY_BIN, "users", "release", "bob", "--data-dir", dataDir], { encoding: "utf8" });
    expect(out).toMatch(/^released 'bob'/);
    await tmux.waitForScreen("bob", /● connected/, 45_000);
  }, 60_000);
});
