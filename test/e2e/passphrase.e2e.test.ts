// SECURECHAT_PASSPHRASE through the real chat-tui in a real terminal (issue 9 §5): it protects a
// new key without --passphrase, and the terminal is never asked while it is set.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyFileIsEncrypted } from "../../src/protocol/keyfile.js";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let relay: RelayProcess;
const tmux = new Tmux();

beforeAll(async () => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-e2e-pass-"));
  relay = await startRelayProcess(join(dir, "relay"));
});

afterAll(async () => {
  tmux.kill();
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function tui(extra = ""): string {
  return `${process.execPath} ${TUI_BIN} alice --server 127.0.0.1:${relay.port} --key-dir ${join(dir, "keys")} --log-file ${join(dir, "alice.log")} --no-bell ${extra}`;
}

describe("SECURECHAT_PASSPHRASE", () => {
  it("protects a new key on its own, opens it again, and the terminal is never asked", async () => {
    const env = { XDG_STATE_HOME: join(dir, "state"), SECURECHAT_PASSPHRASE: "correct horse battery" };
    tmux.start("first", tui(), { env });
    const screen = await tmux.waitForScreen("first", /connected/, 90_000);
    expect(screen).not.toMatch(/passphrase for/i);
    expect(keyFileIsEncrypted(readFileSync(join(dir, "keys", "alice_key.pem"), "utf8"))).toBe(true);
    tmux.keys("first", "C-c");
    await tmux.waitForExit("first", 20_000);

    // With --passphrase too: still not asked.
    tmux.start("second", tui("--passphrase"), { env });
    expect(await tmux.waitForScreen("second", /connected/, 60_000)).not.toMatch(/passphrase/i);
    tmux.keys("second", "C-c");
    await tmux.waitForExit("second", 20_000);

    // Without it, the protected key is asked for on the terminal.
    tmux.start("third", tui(), { env: { XDG_STATE_HOME: join(dir, "state") } });
    await tmux.waitForScreen("third", /Passphrase for .*alice_key\.pem/, 30_000);
  }, 180_000);
});
