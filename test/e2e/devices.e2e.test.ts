// Issue 13 end to end with the real binaries in real terminals (PROTOCOL.md §4.5, §4.6, §8, §11):
// a relay; alice's primary ("a1", HOME a1, named after the host) and bob (HOME b); alice links a second
// machine ("a2", HOME a2) with `chat-tui alice --link --device-name desktop`, the code typed as
// /link CODE on a1, the same 6 digits on both screens, /link yes; a2 goes on into the chat. Every
// conversation alice is in gets the line "alice added a device: desktop" (the self-heal adds a2's
// leaf). bob's DM and #ops messages reach both of alice's screens; alice answers from each device
// and bob reads both; each of alice's screens shows the other device's line as hers, with the
// device's name. The relay is stopped right after a message and started again on the same data
// dir and port: nothing lost, nothing twice. /devices on a1 lists both; /unlink desktop (asked,
// then confirmed) stops a2, bob reads "alice removed a device: desktop", and what bob sends next
// reaches a1 but never a2 (a2 stopped; started again, the relay refuses it and it shows none of them).
// Every wait is a screen condition with a deadline. SC_KEEP=1 keeps the directory (debug logs).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultDeviceName } from "../../src/client/own-devices.js";
import { startRelayProcess, TUI_BIN, type RelayProcess } from "../helpers/relay-process.js";
import { Tmux, tmuxAvailable } from "../helpers/tmux.js";

let dir: string;
let relay: RelayProcess | undefined;
const tmux = new Tmux();
const HOMES = ["a1", "a2", "b"] as const;
type Home = (typeof HOMES)[number];
/** a2's second run (after it was unlinked) is a new tmux session: its first pane stays, exited. */
type Pane = Home | "a2again";

const home = (h: Home): string => join(dir, "home", h);
const env = (h: Home) => ({ HOME: home(h), XDG_CONFIG_HOME: join(home(h), ".config"), XDG_STATE_HOME: join(home(h), ".local", "state") });
/** The primary names itself after the host at its first start (own-devices.ts). */
const LAPTOP = defaultDeviceName(hostname());
const debug = process.env["SC_KEEP"] === undefined ? "" : " --log-level debug";

function startTui(pane: Pane, h: Home, args: string, port: number): void {
  tmux.start(pane, `${process.execPath} ${TUI_BIN} ${args} --server 127.0.0.1:${port} --log-file ${join(dir, `${pane}.log`)} --no-bell${debug}`, {
    width: 120, height: 40, env: env(h),
  });
}

function count(screen: string, text: string): number {
  return screen.split(text).length - 1;
}

async function say(pane: Pane, line: string): Promise<void> {
  await tmux.sayAndWait(pane, line);
}

/**
 * Waits for texts on a pane. 60 s: v2 sends one message per round trip and the full run loads
 * both cores (it once took longer than 30 s there). On a timeout the other panes are shown too
 * (what the sender's screen said is half the story).
 */
async function sees(pane: Pane, ...texts: string[]): Promise<string> {
  try {
    return await tmux.waitForScreen(pane, (s) => texts.every((t) => s.includes(t)), 60_000);
  } catch (e) {
    const others = (["a1", "a2", "b"] as const).filter((p) => p !== pane).map((p) => {
      try {
        return `--- screen of ${p} ---\n${tmux.screen(p)}`;
      } catch {
        return `--- ${p}: no screen ---`;
      }
    });
    throw new Error(`${(e as Error).message}\n${others.join("\n")}`, { cause: e });
  }
}

beforeAll(() => {
  if (!tmuxAvailable()) throw new Error("tmux is required for the end-to-end tests (.ci/run installs it)");
  dir = mkdtempSync(join(tmpdir(), "sc-devices-e2e-"));
  for (const h of HOMES) mkdirSync(home(h), { recursive: true, mode: 0o700 });
});

afterAll(async () => {
  await tmux.quitAll(["a1", "a2", "b", "a2again"]);
  await relay?.stop();
  if (process.env["SC_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true });
});

describe("one person on two devices in real terminals (issue 13)", () => {
  it("links a second device, both read and write, a relay restart loses nothing, /unlink stops the second", async () => {
    const dataDir = join(dir, "relay");
    relay = await startRelayProcess(dataDir);
    const port = relay.port;
    startTui("a1", "a1", "alice", port);
    startTui("b", "b", "bob", port);
    for (const p of ["a1", "b"] as const) await tmux.waitForScreen(p, /● connected/, 60_000);

    // A DM and a room #ops exist before the second device: linking must bring it into both.
    await say("b", "/msg alice before the desktop, dm 1a01");
    await tmux.waitForScreen("a1", /@bob/, 30_000);
    await say("a1", "/query bob");
    await sees("a1", "bob    before the desktop, dm 1a01");
    await say("b", "/join #ops");
    await sees("b", "you created #ops");
    await say("b", "/invite alice");
    await sees("b", "you added alice");
    await tmux.waitForScreen("a1", /#ops/, 30_000);

    // Linking: the code shown on a2 typed on a1; the same digits on both; yes.
    startTui("a2", "a2", "alice --link --device-name desktop", port);
    const codeScreen = await tmux.waitForScreen("a2", /\/link [0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}/, 30_000);
    const code = /\/link ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})/.exec(codeScreen)![1]!;
    await say("a1", `/link ${code}`);
    const asked = await tmux.waitForScreen("a1", /Does desktop show \d{3} \d{3}\?/, 30_000);
    const sas = /Does desktop show (\d{3} \d{3})\?/.exec(asked)![1]!;
    await tmux.waitForScreen("a2", (s) => s.includes(`Compare: ${sas}`), 30_000);
    await say("a1", "/link yes");
    await tmux.waitForScreen("a1", /Linked desktop/, 30_000);
    await tmux.waitForScreen("a2", /Earlier messages are not on this device/, 30_000);
    await tmux.waitForScreen("a2", /● connected/, 60_000);

    // Every conversation alice is in says so: bob's DM and #ops, and alice's own screens.
    await say("b", "/switch @alice");
    await sees("b", "alice added a device: desktop");
    await say("b", "/switch #ops");
    await sees("b", "alice added a device: desktop");
    await say("a1", "/switch #ops");
    await sees("a1", "you added a device: desktop");

    // bob's DM and room messages reach both of alice's screens.
    await say("b", "/switch @alice");
    await say("b", "to both your screens, dm 2b02");
    await say("b", "/switch #ops");
    await say("b", "to both your screens, ops 3c03");
    await say("a1", "/switch @bob");
    await sees("a1", "bob    to both your screens, dm 2b02");
    await tmux.waitForScreen("a2", /@bob/, 30_000);
    await say("a2", "/query bob");
    const a2dm = await sees("a2", "bob    to both your screens, dm 2b02");
    expect(a2dm, "history from before the link is not on a2").not.toContain("before the desktop, dm 1a01");
    // bob's chain began before a2 joined: his first message there is not "missing" anything.
    expect(a2dm, "no false gap warning on the new device").not.toContain("may be missing");
    await say("a1", "/switch #ops");
    await sees("a1", "bob    to both your screens, ops 3c03");
    await say("a2", "/switch #ops");
    await sees("a2", "bob    to both your screens, ops 3c03");

    // alice answers from each device: bob reads both; each of alice's screens shows the other's as hers.
    await say("a1", "from the laptop, ops 4d04");
    await say("a2", "from the desktop, ops 5e05");
    await sees("b", "alice  from the laptop, ops 4d04", "alice  from the desktop, ops 5e05");
    await sees("a1", "alice  from the desktop, ops 5e05 · desktop");
    await sees("a2", `alice  from the laptop, ops 4d04 · ${LAPTOP}`);
    await say("a1", "/switch @bob");
    await say("a1", "from the laptop, dm 6f06");
    await say("a2", "/switch @bob");
    await say("a2", "from the desktop, dm 7a07");
    await say("b", "/switch @alice");
    await sees("b", "alice  from the laptop, dm 6f06", "alice  from the desktop, dm 7a07");
    await sees("a1", "alice  from the desktop, dm 7a07 · desktop");
    await sees("a2", `alice  from the laptop, dm 6f06 · ${LAPTOP}`);

    // A room made after the link: bob's invite adds both of alice's devices.
    await say("b", "/join #late");
    await sees("b", "you created #late");
    await say("b", "/invite alice");
    await sees("b", "you added alice");
    await say("b", "made after the link, late 1f11");
    for (const p of ["a1", "a2"] as const) {
      await tmux.waitForScreen(p, /#late/, 30_000);
      await say(p, "/switch #late");
      await sees(p, "bob    made after the link, late 1f11");
    }
    await say("b", "/switch @alice");

    // The relay stops right after bob sent (SIGTERM), and starts again on the same data dir and port.
    await say("b", "sent as the relay stops, dm 8b08");
    expect(await relay.stop()).toBe(0);
    for (const p of ["a1", "a2", "b"] as const) await tmux.waitForScreen(p, /reconnecting|connecting/, 30_000);
    await say("b", "sent while the relay is down, dm 9c09");
    relay = await startRelayProcess(dataDir, [], port);
    for (const p of ["a1", "a2", "b"] as const) await tmux.waitForScreen(p, /● connected/, 60_000);
    await say("b", "/switch #ops");
    await say("b", "after the restart, ops 0d10");
    for (const p of ["a1", "a2"] as const) {
      await say(p, "/switch @bob");
      const dm = await sees(p, "bob    sent as the relay stops, dm 8b08", "bob    sent while the relay is down, dm 9c09");
      if (process.env["SC_SCREENS"] !== undefined) process.stderr.write(`--- ${p} DM ---\n${dm}\n`);
      expect(dm, `no gap warning on ${p}'s DM`).not.toContain("may be missing");
      for (const t of ["to both your screens, dm 2b02", "from the laptop, dm 6f06", "from the desktop, dm 7a07", "sent as the relay stops, dm 8b08", "sent while the relay is down, dm 9c09"]) {
        expect(count(dm, t), `"${t}" once on ${p}'s DM`).toBe(1);
      }
      expect(dm.indexOf("sent as the relay stops, dm 8b08")).toBeLessThan(dm.indexOf("sent while the relay is down, dm 9c09"));
      await say(p, "/switch #ops");
      const ops = await sees(p, "bob    after the restart, ops 0d10");
      for (const t of ["to both your screens, ops 3c03", "from the laptop, ops 4d04", "from the desktop, ops 5e05", "after the restart, ops 0d10"]) {
        expect(count(ops, t), `"${t}" once on ${p}'s #ops`).toBe(1);
      }
    }
    await say("b", "/switch @alice");
    const bobDm = await sees("b", "sent while the relay is down, dm 9c09");
    for (const t of ["from the laptop, dm 6f06", "from the desktop, dm 7a07", "sent as the relay stops, dm 8b08", "sent while the relay is down, dm 9c09"]) {
      expect(count(bobDm, t), `"${t}" once on bob's DM`).toBe(1);
    }
    expect(count(bobDm, "alice added a device: desktop"), "the device line once on bob's DM").toBe(1);

    // /devices on a1 lists both.
    await say("a1", "/devices");
    await tmux.waitForScreen("a1", (s) => s.includes("devices of alice: 2") && new RegExp(`${LAPTOP}\\s+[0-9a-f]{8}\\s+primary\\s+this device`).test(s) && /desktop\s+[0-9a-f]{8}\s+linked\s+online/.test(s), 30_000);

    // /unlink asks first; confirmed, a2 says it was unlinked and stops; bob reads the line.
    await say("a1", "/unlink desktop");
    // The question (wrapped on the screen): the device name, what it does, the answer to type.
    await tmux.waitForScreen("a1", (s) => /⚠ \/unlink desktop removes desktop \([0-9a-f]{8}\) from every conversation[^]*To do\s+it: \/unlink desktop yes/.test(s.replace(/\s*│\s*\n\s*/g, " ")), 30_000);
    await say("a1", "/unlink desktop yes");
    await sees("a1", "unlinked desktop");
    // a2 stops for good on the relay's word (it does not reconnect to be refused again).
    await tmux.waitForScreen("a2", (s) => s.split("\n")[0]!.includes("✗ failed: this device was unlinked by alice's primary device"), 30_000);
    await sees("b", "alice removed a device: desktop");
    await say("b", "/switch #ops");
    await sees("b", "alice removed a device: desktop");

    // What bob sends next reaches a1, never a2.
    await say("b", "/switch @alice");
    await say("b", "after the unlink, dm ab11");
    await say("b", "/switch #ops");
    await say("b", "after the unlink, ops bc12");
    await say("a1", "/switch @bob");
    await sees("a1", "bob    after the unlink, dm ab11");
    await say("a1", "/switch #ops");
    await sees("a1", "bob    after the unlink, ops bc12");
    // a2 stopped reading: its screen never shows them; started again, it refuses and exits without them.
    const a2last = tmux.screen("a2");
    expect(a2last).not.toContain("after the unlink");
    expect(a2last).not.toContain("not linked to alice");
    expect(a2last.split("\n")[0]).toContain("✗ failed: this device was unlinked");
    tmux.keys("a2", "C-c");
    await tmux.waitForExit("a2", 15_000);
    startTui("a2again", "a2", "alice", port);
    // Cut off before it could fetch the list without it, it does not know it was unlinked: the relay refuses it.
    const again = await tmux.waitForScreen("a2again", /this device (was unlinked|is not linked to alice)/, 30_000);
    if (process.env["SC_SCREENS"] !== undefined) process.stderr.write(`--- a2 ---\n${a2last}\n--- a2again ---\n${again}\n--- a1 ---\n${tmux.screen("a1")}\n--- b ---\n${tmux.screen("b")}\n`);
    expect(again).not.toContain("after the unlink");
  }, 300_000);
});
