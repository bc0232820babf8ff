// The --server list (src/client/server-list.ts): parsing with one sentence per bad entry, and the
// rotation: the next address at once after a session ends, a wait only after a whole round,
// skipped addresses left out for good while another remains.
import { describe, expect, it } from "vitest";
import { MAX_SERVERS, ServerRotation } from "../../src/client/server-list.js";
import { parseServerOption as parseServerList } from "../../src/tui/startup.js";

describe("--server: parseServerList, worded by chat-tui", () => {
  it("keeps one address as it always was, and a list in the order given", () => {
    expect(parseServerList("127.0.0.1:50051")).toEqual({ ok: true, servers: ["127.0.0.1:50051"] });
    expect(parseServerList(" a.example:50051 , [::1]:7,b:1 ")).toEqual({ ok: true, servers: ["a.example:50051", "[::1]:7", "b:1"] });
  });

  it("names every bad entry once, by its place", () => {
    const r = parseServerList("a:1,,b,c:0,A:1,c:70000");
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toEqual([
      "--server entry 2 is empty (addresses are separated by single commas)",
      '--server entry 3 "b" is not host:port with a port from 1 to 65535, e.g. 127.0.0.1:50051',
      '--server entry 4 "c:0" is not host:port with a port from 1 to 65535, e.g. 127.0.0.1:50051',
      '--server entry 5 "A:1" repeats entry 1',
      '--server entry 6 "c:70000" is not host:port with a port from 1 to 65535, e.g. 127.0.0.1:50051',
    ]);
  });

  it("refuses more than 16 addresses in one sentence", () => {
    const many = Array.from({ length: MAX_SERVERS + 1 }, (_, i) => `h${i}:1`).join(",");
    expect(parseServerList(many)).toEqual({ ok: false, errors: [`--server names 17 relays; at most 16 are allowed`] });
    const sixteen = Array.from({ length: MAX_SERVERS }, (_, i) => `h${i}:1`).join(",");
    expect(parseServerList(sixteen).ok).toBe(true);
  });

  it("a single bad address keeps the sentence --server always had", () => {
    for (const bad of ["", "nope", "a:0", "a:1:2"]) expect(parseServerList(bad)).toEqual({ ok: false, errors: ["--server must be host:port, e.g. 127.0.0.1:50051"] });
  });
});

/** The addresses a rotation goes through for `n` ends in a row, with "+wait" where it waits first. */
function walk(r: ServerRotation, n: number): string[] {
  return Array.from({ length: n }, () => {
    const next = r.advance();
    return next.wait ? `${next.address}+wait` : next.address;
  });
}

describe("ServerRotation", () => {
  it("with one address every end waits, as the single-relay client always did", () => {
    const r = new ServerRotation(["a:1"]);
    expect(walk(r, 3)).toEqual(["a:1+wait", "a:1+wait", "a:1+wait"]);
    expect(r.skipCurrent("gone")).toBe(false); // the last usable address is never skipped
  });

  it("moves to the next address at once and waits only after a whole round", () => {
    const r = new ServerRotation(["a:1", "b:2", "c:3"]);
    expect(r.current).toBe("a:1");
    r.welcomed(); // a session on a:1, which then ends
    expect(walk(r, 6)).toEqual(["b:2", "c:3", "a:1+wait", "b:2", "c:3", "a:1+wait"]);
    r.welcomed(); // a:1 answered again: the next end moves on at once
    expect(walk(r, 1)).toEqual(["b:2"]);
    expect([r.position, r.size]).toEqual([2, 3]);
  });

  it("a skipped address is left out and its try does not count towards the round", () => {
    const r = new ServerRotation(["a:1", "b:2", "c:3"]);
    expect(r.skipCurrent("certificate changed")).toBe(true);
    expect(r.usable).toBe(2);
    expect(walk(r, 4)).toEqual(["b:2", "c:3", "b:2+wait", "c:3"]);
    expect(r.skipCurrent("not a relay")).toBe(true);
    // b:2 already failed in this round: it is tried again only after the wait.
    expect(walk(r, 2)).toEqual(["b:2+wait", "b:2+wait"]);
    expect(r.skipCurrent("again")).toBe(false);
  });

  it("names the other addresses of the list as siblings (host case-insensitive)", () => {
    const r = new ServerRotation(["A:1", "b:2"]);
    expect(r.siblings("a:1")).toEqual(["b:2"]);
    expect(() => new ServerRotation([])).toThrow(/at least one/);
  });
});
