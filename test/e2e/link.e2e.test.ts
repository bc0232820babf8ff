// Linking in real terminals (PROTOCOL.md §4.6): `chat-tui alice --link --device-name desktop` on a
// second HOME shows a code; alice's primary types /link CODE, both screens show the same digits,
// /link yes links it: the new device's files are there (0600). Every wait is a screen condition
// with a deadline. SC_KEEP=1 keeps the directory.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installFixtureKey } from "../helpers/identities.js";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let relay: RelayProcess | undefined;
const tmux = new Tmux();

const home = (h: string): string => join(dir, "home", h);
const env = (h: string) => ({ HOME: home(h), XDG_CONFIG_HOME: join(home(h), ".config"), XDG_STATE_HOME: join(home(h), ".local", "state") });

beforeAll(() => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-link-e2e-"));
  for (const h of ["laptop", "desktop"]) mkdirSync(home(h), { recursive: true, mode: 0o700 });
  installFixtureKey(join(home("laptop"), ".config", "secure-chat"), "alice");
});

afterAll(async () => {
  await tmux.quitAll(["laptop", "desktop"]);
  await relay?.stop();
  if (process.env["SC_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true });
});

describe("chat-tui --link and /link in real terminals", () => {
  it("links a second machine after both screens showed the same digits", async () => {
    relay = await startRelayProcess(join(dir, "relay"));
    const server = `--server 127.0.0.1:${relay.port}`;
    tmux.start("laptop", `${process.execPath} ${TUI_BIN} alice ${server} --log-file ${join(dir, "laptop.log")} --no-bell`, { width: 120, height: 36, env: env("laptop") });
    await tmux.waitForScreen("laptop", /connected/i, 30_000);
    tmux.start("desktop", `${process.execPath} ${TUI_BIN} alice --link --device-name desktop ${server} --log-file ${join(dir, "desktop.log")}`, { width: 120, height: 36, env: env("desktop") });
    const first = await tmux.waitForScreen("desktop", /\/link [0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}/, 30_000);
    expect(first).toContain("No such device at hand?");
    const code = /\/link ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})/.exec(first)![1]!;
    tmux.say("laptop", `/link ${code}`);
    const asked = await tmux.waitForScreen("laptop", /Does desktop show \d{3} \d{3}\?/, 30_000);
    const sas = /Does desktop show (\d{3} \d{3})\?/.exec(asked)![1]!;
    await tmux.waitForScreen("desktop", (s) => s.includes(`Compare: ${sas}`), 15_000);
    tmux.say("laptop", "/link yes");
    await tmux.waitForScreen("laptop", /Linked desktop/, 30_000);
    // The new machine goes on into the chat as that device and says what it lacks.
    await tmux.waitForScreen("desktop", /Linked\. Earlier messages are not on this device\./, 30_000);
    const keyDir = join(home("desktop"), ".config", "secure-chat");
    const files = readdirSync(keyDir).filter((f) => f.startsWith("alice_")).sort();
    // SQLite's own transient files (a -journal while a write is in progress, -wal/-shm) are not kept files: left out.
    expect(files.filter((f) => f !== "alice_state.db" && !/^alice_(state|mls)\.db-/.test(f))).toEqual(["alice_device.json", "alice_device.pem", "alice_known_relays.json", "alice_mls.db"]);
    // Every file is private, SQLite's transient ones too while they exist (a journal may be gone by now).
    for (const f of files) if (existsSync(join(keyDir, f))) expect(statSync(join(keyDir, f)).mode & 0o777, f).toBe(0o600);
    // There, /link names the primary.
    await tmux.waitForScreen("desktop", /● connected/, 30_000);
    tmux.say("desktop", "/link ABCD-EFGH-JKMN-PQRS");
    await tmux.waitForScreen("desktop", /only your primary device \(.+\) can link devices/, 30_000);
  }, 180_000);
});
