import { describe, expect, it } from "vitest";
import {
  checkRoomName, checkUsername, dmConversationId, dmPeer, isValidUsername, parseConversationId,
} from "../../src/protocol/names.js";

describe("username policy (PROTOCOL.md Names)", () => {
  it.each(["alice", "bob", "a", "carol_2", "ops-team", "x".repeat(32)])("accepts %s", (n) => {
    expect(checkUsername(n)).toEqual({ ok: true });
  });

  it.each([
    ["", /empty/],
    ["x".repeat(33), /longer than 32/],
    ["Alice", /lower-case/],
    ["1alice", /start with a lower-case letter/],
    ["_alice", /start with/],
    ["alice bob", /only a-z/],
    ["alicé", /only a-z/],
    ["\u0430lice", /only a-z/], // Cyrillic a: a homoglyph
    ["alice\u200b", /only a-z/],
  ])("refuses %j", (n, reason) => {
    const c = checkUsername(n);
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.reason).toMatch(reason);
  });

  it.each(["../etc/passwd", "..", ".", "a/b", "alice/../bob", "a\\b", "/root", "~alice", "alice\0", "con.pem", "a:b"])(
    "refuses the path-traversal or special name %j",
    (n) => expect(isValidUsername(n)).toBe(false),
  );

  it.each(["system", "relay", "server", "all", "everyone", "admin", "root", "lobby"])("refuses the reserved name %s", (n) => {
    const c = checkUsername(n);
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.reason).toMatch(/reserved/);
  });

  it("refuses non-strings", () => {
    expect(checkUsername(42).ok).toBe(false);
    expect(checkUsername(undefined).ok).toBe(false);
  });
});

describe("room names and conversation ids", () => {
  it("accepts #ops and refuses bad rooms", () => {
    expect(checkRoomName("#ops").ok).toBe(true);
    expect(checkRoomName("#2024-plans").ok).toBe(true);
    expect(checkRoomName("ops").ok).toBe(false);
    expect(checkRoomName("#").ok).toBe(false);
    expect(checkRoomName("#Ops").ok).toBe(false);
    expect(checkRoomName("#../x").ok).toBe(false);
    expect(checkRoomName("#" + "a".repeat(33)).ok).toBe(false);
  });

  it("builds the DM id from the sorted pair", () => {
    expect(dmConversationId("bob", "alice")).toBe("dm:alice:bob");
    expect(dmConversationId("alice", "bob")).toBe("dm:alice:bob");
    expect(() => dmConversationId("alice", "alice")).toThrow(/two different users/);
    expect(() => dmConversationId("alice", "Bob")).toThrow();
  });

  it("parses the three forms and nothing else", () => {
    expect(parseConversationId("lobby")).toEqual({ kind: "lobby", id: "lobby" });
    expect(parseConversationId("#ops")).toEqual({ kind: "room", id: "#ops", room: "#ops" });
    const dm = parseConversationId("dm:alice:bob");
    expect(dm).toEqual({ kind: "dm", id: "dm:alice:bob", members: ["alice", "bob"] });
    if (dm?.kind === "dm") {
      expect(dmPeer(dm, "alice")).toBe("bob");
      expect(dmPeer(dm, "carol")).toBeUndefined();
    }
    for (const bad of ["dm:bob:alice", "dm:alice:alice", "dm:alice", "dm:alice:bob:carol", "Lobby", "#", "", "dm::bob", 7]) {
      expect(parseConversationId(bad)).toBeUndefined();
    }
  });
});
