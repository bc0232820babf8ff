// Drives real terminals: each test gets its own tmux server (-L socket), so nothing touches the
// user's tmux. send-keys -l types literally; capture-pane -p reads the screen.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitUntil } from "./wait.js";

export function tmuxAvailable(): boolean {
  return spawnSync("tmux", ["-V"]).status === 0;
}

export class Tmux {
  readonly socket = `sc-test-${process.pid}-${randomBytes(4).toString("hex")}`;

  private run(args: string[]): string {
    return execFileSync("tmux", ["-L", this.socket, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  }

  private readonly statusDir = mkdtempSync(join(tmpdir(), "sc-tmux-"));

  private statusFile(name: string): string {
    return join(this.statusDir, `${name}.status`);
  }

  /**
   * Starts `command` in a new detached session of the given size. A wrapping shell writes the
   * program's exit status to a file (tmux's #{pane_dead_status} is not always filled in) and the
   * pane stays open afterwards so its last screen can still be read.
   */
  start(name: string, command: string, o: { width?: number; height?: number; env?: Record<string, string>; cwd?: string } = {}): void {
    const env = Object.entries(o.env ?? {}).map(([k, v]) => `${k}=${shellQuote(v)}`).join(" ");
    const args = ["new-session", "-d", "-s", name, "-x", String(o.width ?? 120), "-y", String(o.height ?? 32)];
    if (o.cwd) args.push("-c", o.cwd);
    const script = `env TERM=xterm-256color ${env} ${command}; echo $? > ${shellQuote(this.statusFile(name))}`;
    args.push(`sh -c ${shellQuote(script)}`);
    this.run(args);
    this.run(["set-option", "-t", name, "remain-on-exit", "on"]);
  }

  /** Types text literally (no key names interpreted). */
  type(name: string, text: string): void {
    this.run(["send-keys", "-t", name, "-l", text]);
  }

  /** Types a line and presses Enter (a chat line or a /command). */
  say(name: string, line: string): void {
    this.type(name, line);
    this.keys(name, "Enter");
  }

  /**
   * Types a line, waits until the client shows it on its input line, presses Enter, and waits
   * until the input line is empty again (the line was taken). Waiting for the text BEFORE Enter
   * matters: an empty input line seen before the typing was drawn would otherwise pass for
   * "taken", and the next line's keys could reach the client in one read with this Enter, which
   * chat-tui rightly takes for a paste (one message of two lines, key-stream.ts).
   */
  async sayAndWait(name: string, line: string, timeoutMs = 15_000): Promise<string> {
    this.type(name, line);
    const tail = line.slice(-16);
    await this.waitForScreen(name, (s) => s.replace(/\s+$/, "").endsWith(tail), timeoutMs);
    this.keys(name, "Enter");
    return this.waitForScreen(name, (s) => /\] >\s*$/.test(s), timeoutMs);
  }

  /** Sends key names: Enter, C-c, C-n, PPage, M-1, ... */
  keys(name: string, ...keys: string[]): void {
    this.run(["send-keys", "-t", name, ...keys]);
  }

  /** Pastes text as a bracketed paste (as a terminal does when the app enabled it). */
  paste(name: string, text: string): void {
    const buffer = `b${randomBytes(3).toString("hex")}`;
    this.run(["set-buffer", "-b", buffer, text]);
    this.run(["paste-buffer", "-p", "-d", "-b", buffer, "-t", name]);
  }

  /**
   * Pastes text as a terminal without bracketed paste does: the bytes as if typed fast, each
   * line break a CR, in as few writes as tmux makes.
   */
  pasteUnbracketed(name: string, text: string): void {
    const buffer = `b${randomBytes(3).toString("hex")}`;
    this.run(["set-buffer", "-b", buffer, text]);
    this.run(["paste-buffer", "-d", "-b", buffer, "-t", name]);
  }

  /** The terminal device of a pane (writing to it scribbles on that screen, as `wall` does). */
  tty(name: string): string {
    return this.run(["display-message", "-p", "-t", name, "#{pane_tty}"]).trim();
  }

  resize(name: string, width: number, height: number): void {
    this.run(["resize-window", "-t", name, "-x", String(width), "-y", String(height)]);
  }

  screen(name: string): string {
    return this.run(["capture-pane", "-p", "-t", name]);
  }

  /** The program's exit status once it has exited, else undefined. */
  exitStatus(name: string): number | undefined {
    if (!existsSync(this.statusFile(name))) return undefined;
    const text = readFileSync(this.statusFile(name), "utf8").trim();
    return text === "" ? undefined : Number(text);
  }

  async waitForScreen(name: string, test: RegExp | ((s: string) => boolean), timeoutMs = 15_000): Promise<string> {
    const pred = typeof test === "function" ? test : (s: string) => test.test(s);
    let last = "";
    try {
      return await waitUntil(() => {
        last = this.screen(name);
        return pred(last) ? last : undefined;
      }, `screen of ${name} to match ${String(test)}`, timeoutMs, 50);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- screen of ${name} ---\n${last}\n---`);
    }
  }

  async waitForExit(name: string, timeoutMs = 10_000): Promise<number> {
    return waitUntil(() => this.exitStatus(name), `${name} to exit`, timeoutMs, 50);
  }

  /**
   * The end of a test file: each named program is left as a user leaves it (Ctrl-C), waiting up
   * to timeoutMs for it to exit, then the tmux server is killed (with whatever is already gone
   * or stuck).
   */
  async quitAll(names: readonly string[], timeoutMs = 5_000): Promise<void> {
    for (const name of names) {
      try {
        this.keys(name, "C-c");
        await this.waitForExit(name, timeoutMs);
      } catch {
        // Already gone, or stuck: the tmux server is killed below either way.
      }
    }
    this.kill();
  }

  kill(): void {
    spawnSync("tmux", ["-L", this.socket, "kill-server"]);
    rmSync(this.statusDir, { recursive: true, force: true });
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
