// relay.pid names a running relay only when its process is alive, of our uid, and started when
// the file says (src/common/pid-file.ts): the rule, with /proc, kill(0) and ps injected.
import { describe, expect, it } from "vitest";
import { relayHolderState, type PidFileContents, type ProcessProbe } from "../../src/common/pid-file.js";

const BOOT = "0b1c2d3e-boot";
const BTIME = 1_800_000_000; // s
const stat = (pid: number, state: string, ticks: number): string =>
  `${pid} (node) ${state} 1 ${pid} ${pid} 0 -1 4194560 ${Array.from({ length: 12 }, () => "0").join(" ")} ${ticks} 1000 200`;

function linux(o: { kill?: "ok" | "ESRCH" | "EPERM"; owner?: number; state?: string; ticks?: number; uid?: number }): ProcessProbe {
  return {
    platform: "linux", uid: o.uid ?? 1000,
    kill0: () => o.kill ?? "ok",
    readFile: (p) => p === "/proc/sys/kernel/random/boot_id" ? `${BOOT}\n`
      : p === "/proc/stat" ? `cpu 1 2 3\nbtime ${BTIME}\nprocesses 9\n`
      : /^\/proc\/\d+\/stat$/.test(p) ? stat(Number(p.split("/")[2]), o.state ?? "S", o.ticks ?? 5_000) : undefined,
    ownerUid: () => o.owner ?? 1000,
    ps: () => undefined,
    now: () => BTIME * 1000 + 3_600_000,
  };
}

const file = (c: Partial<PidFileContents>): PidFileContents => ({ pid: 4242, startedAtMs: BTIME * 1000 + 50_300, ...c });

describe("relayHolderState (Linux)", () => {
  it("the relay that wrote the file (same boot, same start ticks) is running", () => {
    expect(relayHolderState(file({ bootId: BOOT, startTicks: 5_000 }), linux({})).state).toBe("running");
  });

  it("a reused pid (another start time, or another boot) is stale", () => {
    expect(relayHolderState(file({ bootId: BOOT, startTicks: 4_999 }), linux({}))).toMatchObject({ state: "stale", why: expect.stringMatching(/pid reused/) });
    expect(relayHolderState(file({ bootId: "another-boot", startTicks: 5_000 }), linux({})).state).toBe("stale");
  });

  it("a process of another user is stale (EPERM from kill(0), or /proc/<pid> owned by another uid), unless it is the very writer", () => {
    expect(relayHolderState(file({ bootId: BOOT, startTicks: 4_000 }), linux({ kill: "EPERM" }))).toMatchObject({ state: "stale", why: expect.stringMatching(/another user/) });
    expect(relayHolderState(file({ bootId: BOOT, startTicks: 4_000 }), linux({ uid: 0, owner: 65534 }))).toMatchObject({ state: "stale", why: "process 4242 belongs to another user (uid 65534)" });
    // The same boot and start as the file says: the process that wrote it, whoever's it is (a
    // chat-tui run by sudo on this key directory): held, never taken over (review round 5).
    expect(relayHolderState(file({ bootId: BOOT, startTicks: 5_000 }), linux({ kill: "EPERM" })).state).toBe("running");
    expect(relayHolderState(file({ bootId: BOOT, startTicks: 5_000 }), linux({ uid: 1000, owner: 0 })).state).toBe("running");
  });

  it("a gone or zombie process is stale", () => {
    expect(relayHolderState(file({}), linux({ kill: "ESRCH" })).state).toBe("stale");
    expect(relayHolderState(file({ bootId: BOOT, startTicks: 5_000 }), linux({ state: "Z" })).state).toBe("stale");
  });

  it("a file without start ticks (an older relay): its startedAtMs against /proc's start, to the second", () => {
    // The process started at btime + 50 s; the relay wrote startedAtMs 0.3 s later.
    expect(relayHolderState(file({}), linux({})).state).toBe("running");
    // pid 1 since boot, or any process started long before or after what the file says: stale.
    expect(relayHolderState(file({ startedAtMs: 1 }), linux({})).state).toBe("stale");
    expect(relayHolderState(file({ startedAtMs: BTIME * 1000 + 40_000 }), linux({})).state).toBe("stale");
    expect(relayHolderState(file({ startedAtMs: BTIME * 1000 + 3_000_000 }), linux({})).state).toBe("stale");
  });
});

describe("relayHolderState (no /proc)", () => {
  const other = (ps: string | undefined, uid = 501): ProcessProbe => ({
    platform: "darwin", uid, kill0: () => "ok", readFile: () => undefined, ownerUid: () => undefined, ps: () => ps, now: () => 10_000_000,
  });

  it("ps's uid and elapsed time decide", () => {
    expect(relayHolderState({ pid: 7, startedAtMs: 10_000_000 - 65_000 }, other("  501     01:05\n")).state).toBe("running");
    expect(relayHolderState({ pid: 7, startedAtMs: 10_000_000 - 65_000 }, other("  502     01:05\n")).state).toBe("stale");
    expect(relayHolderState({ pid: 7, startedAtMs: 1 }, other("  501  1-02:03:04\n")).state).toBe("stale");
  });

  it("without ps, a live pid is unproven (treated as held, never signalled), another user's too", () => {
    expect(relayHolderState({ pid: 7, startedAtMs: 1 }, other(undefined)).state).toBe("unproven");
    expect(relayHolderState({ pid: 7, startedAtMs: 1 }, { ...other(undefined), kill0: () => "EPERM" }).state).toBe("unproven");
  });
});
