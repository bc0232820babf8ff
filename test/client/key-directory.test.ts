// KeyDirectory on its own, without gRPC (PROTOCOL.md §6, §9.1): a fake
// LookupKeys, a real TrustStore in a temp dir, fixture identities. When keys are fetched, how
// lookups are coalesced and chunked, what is pinned, and how a key change, its replacement and
// its withdrawal are reported.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { KeyDirectory, PREFETCH_MAX_ONLINE } from "../../src/client/key-directory.js";
import { TrustStore } from "../../src/client/trust-store.js";
import type { ClientError } from "../../src/client/errors.js";
import type { Outcome, SessionEvent } from "../../src/client/types.js";
import { ErrorCode, type DirectoryEntry } from "../../src/gen/securechat/v1/chat.js";
import { keyTag, type PrivateIdentity, type PublicIdentity } from "../../src/protocol/keys.js";
import { nullLogger } from "../../src/protocol/log.js";
import { fixtureIdentity } from "../helpers/identities.js";

let alice: PrivateIdentity;
let bob: PrivateIdentity;
let carol: PrivateIdentity;
let bobNew: PrivateIdentity;
let bobNewer: PrivateIdentity;
const dirs: string[] = [];

beforeAll(async () => {
  [alice, bob, carol, bobNew, bobNewer] = await Promise.all([
    fixtureIdentity("alice"), fixtureIdentity("bob"), fixtureIdentity("carol"), fixtureIdentity("mallory", "bob"), fixtureIdentity("dave", "bob"),
  ]);
});

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function full(id: PublicIdentity, online = true): DirectoryEntry {
  return { username: id.username, sigSpki: id.sigSpki, encSpki: id.encSpki, encKeySig: id.encKeySig, online, keyTag: keyTag(id.sigFpr, id.encFpr), deviceListVersion: 0 };
}

function light(id: PublicIdentity, online = true): DirectoryEntry {
  return { ...full(id, online), sigSpki: Buffer.alloc(0), encSpki: Buffer.alloc(0), encKeySig: Buffer.alloc(0) };
}

interface Rig {
  readonly dir: KeyDirectory;
  readonly trust: TrustStore;
  readonly events: SessionEvent[];
  /** Every lookup asked, in order. */
  readonly asked: string[][];
  /** What the fake relay serves, by name. */
  readonly served: Map<string, DirectoryEntry>;
  /** Answers still to come from the fake relay before it serves `served` (failures first). */
  readonly failures: ClientError[];
  /** Lookups in flight wait for this to be called (coalescing tests). */
  release: () => void;
  held: number;
  discarded: number;
  rooms: string[];
}

async function rig(o: { maxPerLookup?: number; gate?: boolean } = {}): Promise<Rig> {
  const d = mkdtempSync(join(tmpdir(), "sc-keydir-"));
  dirs.push(d);
  const trust = await TrustStore.open(join(d, "alice_known_peers.json"));
  let gate: Promise<void> = Promise.resolve();
  const r: Rig = {
    trust, events: [], asked: [], served: new Map(), failures: [], release: () => {}, held: 0, discarded: 0, rooms: [],
    dir: undefined as unknown as KeyDirectory,
  };
  if (o.gate === true) gate = new Promise((resolve) => (r.release = resolve));
  const lookup = async (names: string[]): Promise<Outcome<readonly DirectoryEntry[]>> => {
    r.asked.push([...names]);
    await gate;
    const failure = r.failures.shift();
    if (failure !== undefined) return { ok: false, error: failure };
    return { ok: true, value: names.flatMap((n) => (r.served.has(n) ? [r.served.get(n)!] : [])) };
  };
  (r as { dir: KeyDirectory }).dir = new KeyDirectory({
    me: alice, trust, log: nullLogger, lookup,
    alive: () => true,
    connected: () => false, // no pause between retries
    maxPerLookup: () => o.maxPerLookup ?? 50,
    heldCount: () => r.held,
    discardHeld: () => {
      const n = r.held;
      r.discarded += n;
      r.held = 0;
      return n;
    },
    roomsWith: () => r.rooms,
    emit: (e) => r.events.push(e),
  });
  r.dir.reset();
  return r;
}

const ofType = <T extends SessionEvent["type"]>(r: Rig, type: T) => r.events.filter((e): e is Extract<SessionEvent, { type: T }> => e.type === type);

describe("fetching and pinning", () => {
  it("fetches missing keys, pins them on first sight as unverified, and shows the peer", async () => {
    const r = await rig();
    r.served.set("bob", full(bob));
    await r.dir.ensure(["bob"]);
    expect(r.asked).toEqual([["bob"]]);
    const pin = r.trust.get("bob");
    expect(pin?.identity.sigFpr.equals(bob.sigFpr)).toBe(true);
    expect(pin?.verified).toBe(false);
    expect(ofType(r, "peer").at(-1)?.peer).toMatchObject({ username: "bob", trust: "unverified", you: false });
    // Pinned and no tag saying otherwise: nothing more to fetch.
    await r.dir.ensure(["bob"]);
    expect(r.asked).toHaveLength(1);
  });

  it("never looks up me or invalid names; a name the relay does not know becomes unknown", async () => {
    const r = await rig();
    await r.dir.ensure(["alice", "not a name!", "zed"]);
    expect(r.asked).toEqual([["zed"]]);
    expect(r.dir.isUnknown("zed")).toBe(true);
    expect(r.trust.get("zed")).toBeUndefined();
  });

  it("refuses keys that fail the checks: never pinned, flagged, and said once", async () => {
    const r = await rig();
    r.served.set("bob", { ...full(bob), encKeySig: Buffer.alloc(64, 1) });
    await r.dir.ensure(["bob"]);
    expect(r.trust.get("bob")).toBeUndefined();
    expect(r.dir.hasInvalidKeys("bob")).toBe(true);
    expect(ofType(r, "notice").map((n) => n.text)).toEqual(["the relay sent invalid keys for bob; they were ignored"]);
  });

  it("asks again when a lookup is refused or lost, then pins", async () => {
    const r = await rig();
    r.served.set("bob", full(bob));
    r.failures.push({ kind: "connection-lost" }, { kind: "refused", code: ErrorCode.ERROR_CODE_RATE_LIMITED, detail: "sending too fast" });
    await r.dir.ensure(["bob"]);
    expect(r.asked).toEqual([["bob"], ["bob"], ["bob"]]);
    expect(r.trust.get("bob")).toBeDefined();
  });

  it("gives up after five attempts without pinning anything", async () => {
    const r = await rig();
    r.served.set("bob", full(bob));
    r.failures.push(...Array.from({ length: 5 }, (): ClientError => ({ kind: "no-answer" })));
    await r.dir.ensure(["bob"]);
    expect(r.asked).toHaveLength(5);
    expect(r.trust.get("bob")).toBeUndefined();
    expect(r.dir.isUnknown("bob")).toBe(false);
  });
});

describe("coalescing", () => {
  it("joins a lookup already in flight instead of asking again", async () => {
    const r = await rig({ gate: true });
    r.served.set("bob", full(bob));
    r.served.set("carol", full(carol));
    const first = r.dir.ensure(["bob"]);
    const second = r.dir.ensure(["bob", "carol"]);
    const third = r.dir.ensure(["carol", "bob"]);
    r.release();
    await Promise.all([first, second, third]);
    expect(r.asked).toEqual([["bob"], ["carol"]]);
    expect(r.trust.get("bob")).toBeDefined();
    expect(r.trust.get("carol")).toBeDefined();
  });

  it("splits a long list into lookups of at most max_recipients names", async () => {
    const r = await rig({ maxPerLookup: 2 });
    await r.dir.ensure(["u1", "u2", "u3", "u4", "u5"]);
    expect(r.asked).toEqual([["u1", "u2"], ["u3", "u4"], ["u5"]]);
  });

  it("prefetches everyone online in a small directory, nobody beyond the threshold", async () => {
    const small = await rig();
    small.dir.observeLight(light(bob), false);
    small.dir.prefetch(small.dir.othersOnline());
    await small.dir.ensure([]);
    expect(small.asked).toEqual([["bob"]]);

    const big = await rig();
    for (let i = 0; i <= PREFETCH_MAX_ONLINE; i++) big.dir.observeLight({ ...light(bob), username: `user${i}` }, false);
    big.dir.prefetch(big.dir.othersOnline());
    expect(big.asked).toEqual([]);
  });
});

describe("key changes", () => {
  async function pinnedBob(): Promise<Rig> {
    const r = await rig();
    r.served.set("bob", full(bob));
    await r.dir.ensure(["bob"]);
    r.events.length = 0;
    return r;
  }

  it("a directory tag that matches neither the pin nor a pending change makes the keys be fetched again", async () => {
    const r = await pinnedBob();
    r.dir.observeLight(light(bob), true);
    expect(r.dir.needsKeys("bob")).toBe(false);
    r.served.set("bob", full(bobNew));
    r.dir.observeLight(light(bobNew), true);
    expect(r.dir.needsKeys("bob")).toBe(true);
    await r.dir.ensure(["bob"]);
    expect(r.asked.at(-1)).toEqual(["bob"]);
    expect(r.trust.get("bob")?.pending?.sigFpr.equals(bobNew.sigFpr)).toBe(true);
    expect(r.dir.needsKeys("bob")).toBe(false); // the tag now names the pending change
  });

  it("a new key is a pending change, never accepted silently: warned in the DM and in shared rooms", async () => {
    const r = await pinnedBob();
    r.held = 2;
    r.rooms = ["#ops"];
    r.served.set("bob", full(bobNew));
    await r.dir.ensure(["bob"], true);
    const pin = r.trust.get("bob");
    expect(pin?.identity.sigFpr.equals(bob.sigFpr)).toBe(true);
    expect(pin?.pending?.sigFpr.equals(bobNew.sigFpr)).toBe(true);
    expect(ofType(r, "key-change")).toEqual([{ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 2 }]);
    expect(ofType(r, "notice")).toEqual([expect.objectContaining({ level: "warn", conversationId: "#ops", text: expect.stringMatching(/^bob's keys changed: the room goes on/) })]);
    expect(r.dir.peerView("bob")).toMatchObject({ trust: "key-changed" });
  });

  it("a pending change replaced by yet another key is a fresh warning, and what was held under it is discarded", async () => {
    const r = await pinnedBob();
    r.served.set("bob", full(bobNew));
    await r.dir.ensure(["bob"], true);
    r.held = 3;
    r.events.length = 0;
    r.served.set("bob", full(bobNewer));
    await r.dir.ensure(["bob"], true);
    expect(ofType(r, "key-change")).toEqual([{ type: "key-change", username: "bob", conversationId: "dm:alice:bob", held: 0, replaced: true, discarded: 3 }]);
    expect(r.trust.get("bob")?.pending?.sigFpr.equals(bobNewer.sigFpr)).toBe(true);
  });

  it("the original keys showing again withdraw the change, dropping what the withdrawn key signed", async () => {
    const r = await pinnedBob();
    r.served.set("bob", full(bobNew));
    await r.dir.ensure(["bob"], true);
    r.held = 1;
    r.events.length = 0;
    r.served.set("bob", full(bob));
    await r.dir.ensure(["bob"], true);
    expect(r.trust.get("bob")?.pending).toBeUndefined();
    expect(ofType(r, "notice")).toEqual([{
      type: "notice", level: "info", conversationId: "dm:alice:bob",
      text: "the relay shows bob's original keys again; the key change was withdrawn; 1 message signed by the withdrawn key was discarded",
    }]);
    expect(ofType(r, "key-change")).toEqual([]);
  });

  it("the relay listing keys for me that are not mine is an alarm", async () => {
    const r = await rig();
    r.dir.observeLight({ ...light(bob), username: "alice" }, true);
    expect(ofType(r, "notice")).toEqual([{ type: "notice", level: "error", text: "the relay lists keys for you that are not yours: it may be attacking you" }]);
  });
});
