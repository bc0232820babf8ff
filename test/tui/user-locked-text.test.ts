// The sentence a second chat-tui of one user and key directory prints (src/tui/startup.ts
// userLockedText, from the client's UserLocked): who holds it and what to do, said differently
// for a holder on this machine, one this system cannot prove, and one on another host.
import { describe, expect, it } from "vitest";
import { UserLocked } from "../../src/client/user-lock.js";
import { userLockedText } from "../../src/tui/startup.js";

const locked = (state: UserLocked["state"], hostname?: string): UserLocked =>
  new UserLocked("alice", "/home/a/.config/secure-chat", "/home/a/.config/secure-chat/alice.lock", state, { pid: 1234, ...(hostname === undefined ? {} : { hostname }) });

describe("userLockedText", () => {
  it("a chat-tui running on this machine: use it, or quit it", () => {
    expect(userLockedText(locked("running", "here"))).toBe("alice is already open in another chat-tui on this machine (pid 1234). Use that one, or quit it first.");
  });

  it("a holder on another host sharing the directory: cannot tell from here; quit it there, or remove the lock once it is surely gone", () => {
    const text = userLockedText(locked("elsewhere", "laptop"));
    expect(text).toMatch(/^alice is open in a chat-tui on another machine, laptop \(pid 1234\), that shares the key directory \/home\/a\/\.config\/secure-chat; this machine cannot tell whether it still runs\./);
    expect(text).toContain("remove '/home/a/.config/secure-chat/alice.lock'");
  });

  it("an unproven holder names the lock to remove if no chat-tui runs; a host name is shown sanitised", () => {
    expect(userLockedText(locked("unproven"))).toContain("if no chat-tui of alice runs, remove '/home/a/.config/secure-chat/alice.lock'");
    expect(userLockedText(locked("elsewhere", "evil\u001b[2Jhost"))).not.toContain("\u001b");
  });
});
