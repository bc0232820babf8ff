// /devices and /unlink (PROTOCOL.md §4.5) without a screen: the table, the confirmation, what the
// session is asked, and the sentence after.
import { describe, expect, test } from "vitest";
import type { DeviceView, Outcome } from "../../src/client/types.js";
import { nullLogger } from "../../src/protocol/log.js";
import { agoText, devicesTable } from "../../src/tui/commands/devices.js";
import { executeCommand, type CommandContext } from "../../src/tui/controller/execute-command.js";
import { parseInput } from "../../src/tui/state/commands.js";
import { createInitialState, reducer, type Action } from "../../src/tui/state/reducer.js";
import type { TuiState } from "../../src/tui/state/state.js";
import { FakeSession } from "../helpers/fake-session.js";
import { waitFor } from "./helpers/wait-for.js";

const T0 = Date.UTC(2026, 11, 7, 12, 0, 0);
const H = 3_600_000;

const VIEWS: DeviceView[] = [
  { deviceId: "aaaaaaaa11112222", name: "laptop", primary: true, thisDevice: true, online: true, lastSeenMs: T0, addedAtMs: Date.UTC(2026, 10, 1) },
  { deviceId: "bbbbbbbb33334444", name: "desktop", primary: false, thisDevice: false, online: false, lastSeenMs: T0 - 2 * H, addedAtMs: Date.UTC(2026, 11, 6) },
  { deviceId: "cccccccc55556666", name: "phone", primary: false, thisDevice: false, online: true, lastSeenMs: T0, addedAtMs: Date.UTC(2026, 11, 7) },
];

class DeviceSession extends FakeSession {
  readonly unlinked: string[] = [];
  readonly checked: string[] = [];
  devices(): Promise<Outcome<DeviceView[]>> {
    return Promise.resolve({ ok: true, value: VIEWS });
  }
  unlink(which: string, o: { readonly check?: boolean } = {}): Promise<Outcome<{ name: string; deviceId: string; version: number }>> {
    (o.check === true ? this.checked : this.unlinked).push(which);
    if (which === "nope") return Promise.resolve({ ok: false, error: { kind: "device", detail: "no device of yours is called 'nope'" } });
    return Promise.resolve({ ok: true, value: { name: "desktop", deviceId: "bbbbbbbb33334444", version: 4 } });
  }
}

function setup(session: FakeSession) {
  let state: TuiState = createInitialState({ me: session.me, serverLabel: session.serverLabel, snapshot: session.snapshot(), atMs: T0 });
  const actions: Action[] = [];
  const run = (line: string) => {
    const parsed = parseInput(line);
    if (!parsed.ok) throw new Error(parsed.error);
    const ctx: CommandContext = { session, state, dispatch: (a) => { actions.push(a); state = reducer(state, a); }, now: () => T0, logger: nullLogger, quit: () => {} };
    return executeCommand(parsed.command, ctx);
  };
  const notices = () => actions.flatMap((a) => (a.type === "notice" ? [`${a.level}: ${a.text}`] : []));
  return { run, notices };
}

describe("/devices and /unlink (PROTOCOL.md §4.5)", () => {
  test("the table: name, id prefix, primary, this device / online / last seen, added", () => {
    expect(devicesTable(VIEWS, T0, "alice").split("\n")).toEqual([
      "devices of alice: 3",
      "  laptop   aaaaaaaa  primary  this device       added 2026-11-01",
      "  desktop  bbbbbbbb  linked   last seen 2h ago  added 2026-12-06",
      "  phone    cccccccc  linked   online            added 2026-12-07",
      "/unlink NAME removes a device from every conversation",
    ]);
    expect(agoText(T0, T0 - 30_000)).toBe("just now");
    expect(agoText(T0, T0 - 5 * 60_000)).toBe("5 min ago");
    expect(agoText(T0, T0 - 3 * 24 * H)).toBe("3 days ago");
  });

  test("/devices shows the table in the scrollback", async () => {
    const t = setup(new DeviceSession({ peers: ["bob"] }));
    t.run("/devices");
    await waitFor(() => t.notices().some((n) => n.startsWith("info: devices of")));
    expect(t.notices().at(-1)).toMatch(/^info: devices of \S+: 3\n {2}laptop/);
  });

  test("/unlink asks first, then unlinks with 'yes' and says what it does", async () => {
    const s = new DeviceSession({ peers: ["bob"] });
    const t = setup(s);
    t.run("/unlink desktop");
    await waitFor(() => t.notices().some((n) => n.startsWith("warn: /unlink desktop")));
    expect(s.unlinked).toEqual([]);
    expect(s.checked).toEqual(["desktop"]);
    expect(t.notices().at(-1)).toBe("warn: /unlink desktop removes desktop (bbbbbbbb) from every conversation: it cannot read anything sent after, and it stops at once (or at its next connection, if it is offline). To do it: /unlink desktop yes");
    // A name that is not a device of mine is refused before any question.
    t.run("/unlink nope");
    await waitFor(() => t.notices().some((n) => n.includes("'nope'")));
    expect(t.notices().at(-1)).toMatch(/^error: .*no device of yours is called 'nope'/);
    expect(t.notices().some((n) => n.startsWith("warn: /unlink nope"))).toBe(false);
    t.run("/unlink desktop yes");
    await waitFor(() => t.notices().some((n) => n.startsWith("info: unlinked")));
    expect(s.unlinked).toEqual(["desktop"]);
    expect(t.notices().at(-1)).toMatch(/^info: unlinked desktop \(bbbbbbbb\): your device list is now version 4; .*cannot read what follows$/);
    t.run("/unlink nope yes");
    await waitFor(() => t.notices().some((n) => n.includes("nope'")));
    expect(t.notices().at(-1)).toMatch(/no device of yours is called 'nope'/);
  });

  test("a session without devices (v1) says so", () => {
    const t = setup(new FakeSession({ peers: ["bob"] }));
    t.run("/devices");
    t.run("/unlink desktop yes");
    expect(t.notices()).toEqual(["error: /devices needs secure-chat protocol v2", "error: /unlink needs secure-chat protocol v2"]);
  });
});
