// Issue 10 §6 and issue 9 §5: every bad invocation of either bin is one sentence naming the
// option, exit 2, never the whole help; --version has one form for both; chat-tui --help
// describes every option; an unusable --log-file (a symlink, a directory others can write) is
// named and refused. And the layering the zero-setup change relies on: the TUI imports nothing
// of the relay.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { assertBuilt, RELAY_BIN, ROOT, TUI_BIN } from "../helpers/relay-process.js";

const dir = mkdtempSync(join(tmpdir(), "sc-bins-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(bin: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  assertBuilt();
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8", timeout: 20_000, env: { ...process.env, HOME: dir, XDG_STATE_HOME: join(dir, "state"), XDG_CONFIG_HOME: join(dir, "config") },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("bad invocations: one sentence naming the option, exit 2", () => {
  it.each([
    [RELAY_BIN, ["--bogus"], "chat-relay: unknown option --bogus (chat-relay --help lists the options)\n"],
    [RELAY_BIN, ["--port", "x"], "chat-relay: --port must be an integer from 0 to 65535 (chat-relay --help lists the options)\n"],
    [RELAY_BIN, ["--log-level", "loud"], "chat-relay: --log-level must be one of debug, info, warn, error, not \"loud\" (chat-relay --help lists the options)\n"],
    [RELAY_BIN, ["users", "release"], "chat-relay: name the username to release: chat-relay users release <name> (chat-relay --help lists the options)\n"],
    [RELAY_BIN, ["--insecure-plaintext", "--tls-cert", "a", "--tls-key", "b"], "chat-relay: --insecure-plaintext and --tls-cert/--tls-key exclude each other: choose TLS or plaintext\n"],
    [TUI_BIN, [], "chat-tui: name the user to chat as, e.g. chat-tui alice (chat-tui --help lists the options)\n"],
    [TUI_BIN, ["alice", "--bogus"], "chat-tui: unknown option --bogus (chat-tui --help lists the options)\n"],
    [TUI_BIN, ["alice", "bob"], "chat-tui: unknown argument 'bob' (chat-tui --help lists the options)\n"],
    // Protocol v2 is all chat-tui speaks: the roll-out's --protocol is gone, an unknown option like any other.
    [TUI_BIN, ["alice", "--protocol", "1"], "chat-tui: unknown option --protocol (chat-tui --help lists the options)\n"],
    [TUI_BIN, ["alice", "--log-level", "loud"], "chat-tui: --log-level must be one of debug, info, warn, error, not \"loud\" (chat-tui --help lists the options)\n"],
    [TUI_BIN, ["alice", "--server", "nope"], "chat-tui: --server must be host:port, e.g. 127.0.0.1:50051\n"],
    [TUI_BIN, ["alice", "--tls", "--insecure-plaintext"], "chat-tui: --tls and --insecure-plaintext exclude each other: choose one way to check the relay\n"],
    [TUI_BIN, ["alice", "--accept-relay-cert", "12ab"], "chat-tui: --accept-relay-cert must be a SHA-256 of 64 hex digits, as chat-relay fingerprint prints it\n"],
    [TUI_BIN, ["alice", "--ca", "/nonexistent/ca.pem"], "chat-tui: cannot read --ca /nonexistent/ca.pem: no such file\n"],
  ])("%s %j", (bin, args, expected) => {
    const r = run(bin, args);
    expect({ status: r.status, stderr: r.stderr, stdout: r.stdout }).toEqual({ status: 2, stderr: expected, stdout: "" });
  });
});

describe("--version and --help", () => {
  it("prints the same form for both bins", () => {
    const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
    expect(run(RELAY_BIN, ["--version"]).stdout).toBe(`chat-relay ${version}\n`);
    expect(run(TUI_BIN, ["--version"]).stdout).toBe(`chat-tui ${version}\n`);
  });

  it("chat-tui --help describes every option", () => {
    const help = run(TUI_BIN, ["--help"]).stdout;
    // Option lines start at column 2 ("-h, --help") or 6; wrapped descriptions start further right.
    const options = [...help.matchAll(/^ {2}(?:-\w, | {4})(--[a-z-]+)(.*)$/gm)];
    expect(options.map((m) => m[1])).toEqual(expect.arrayContaining([
      "--server", "--key-dir", "--passphrase", "--log-file", "--log-level", "--tls", "--ca", "--accept-relay-cert", "--insecure-plaintext",
      "--mouse", "--bell", "--history", "--help", "--version",
    ]));
    expect(help).not.toContain("--protocol");
    for (const [, flag, rest] of options) {
      // Each line has words of its own besides the [type] and [default] annotations.
      expect(rest!.replace(/\[[^\]]*\]/g, "").trim().length, `${flag} has a description`).toBeGreaterThan(8);
    }
  });
});

describe("--log-file", () => {
  it("refuses a symlink (O_NOFOLLOW) and a directory others can write, naming the option", { timeout: 120_000 }, () => {
    const logs = join(dir, "logs");
    mkdirSync(logs, { mode: 0o700 });
    const target = join(dir, "elsewhere.txt");
    writeFileSync(target, "precious\n");
    const link = join(logs, "alice.log");
    symlinkSync(target, link);
    const r = run(TUI_BIN, ["alice", "--log-file", link]);
    expect({ status: r.status, stderr: r.stderr }).toEqual({
      status: 2, stderr: `chat-tui: --log-file ${link} cannot be used: cannot open ${link}: it is a symbolic link (log files are never opened through one)\n`,
    });
    expect(readFileSync(target, "utf8")).toBe("precious\n");

    const shared = join(dir, "shared");
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const r2 = run(TUI_BIN, ["alice", "--log-file", join(shared, "alice.log")]);
    expect({ status: r2.status, stderr: r2.stderr }).toEqual({
      status: 2, stderr: `chat-tui: --log-file ${join(shared, "alice.log")} cannot be used: the directory ${shared} is writable by others (mode 777): choose a private one, or chmod 700 '${shared}'\n`,
    });
    expect(readdirSync(shared)).toEqual([]);

    const r3 = run(TUI_BIN, ["alice", "--log-file", join(logs, "ok.log")]);
    mkdirSync(join(logs, "sub"));
    const r4 = run(TUI_BIN, ["alice", "--log-file", join(logs, "sub")]);
    expect(r3.stderr).toMatch(/^chat-tui: needs an interactive terminal/); // a fine path gets past the log file
    expect(statSync(join(logs, "ok.log")).mode & 0o777).toBe(0o600);
    expect({ status: r4.status, stderr: r4.stderr }).toEqual({ status: 2, stderr: `chat-tui: --log-file ${join(logs, "sub")} cannot be used: cannot open ${join(logs, "sub")}: it is a directory\n` });
    expect(statSync(join(logs, "sub")).isDirectory()).toBe(true);
  });
});

describe("layering", () => {
  it("the TUI imports nothing from src/server (it starts the chat-relay bin instead)", () => {
    const files = (readdirSync(join(ROOT, "src", "tui"), { recursive: true }) as string[]).filter((f) => /\.tsx?$/.test(f));
    const offenders = files.filter((f) => /from\s+["'][./]*\/server\/|import\(["'][./]*\/server\//.test(readFileSync(join(ROOT, "src", "tui", f), "utf8")));
    expect(offenders).toEqual([]);
  });
});
