// One running client per user and key directory (PROTOCOL.md §4.3; src/client/user-lock.ts,
// user-stores.ts): a second client of the same directory is refused before it reads or writes
// known_peers, the state or the MLS database, whether the first runs in this process or in
// another; once the first has closed (or died), the second opens.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { primaryIdentity } from "../../src/client/local-identity.js";
import { lockUser, UserLocked } from "../../src/client/user-lock.js";
import { openUserStores } from "../../src/client/user-stores.js";
import { nullLogger } from "../../src/protocol/log.js";
import { fixtureIdentity, installFixtureKey } from "../helpers/identities.js";
import { REPO_ROOT } from "../helpers/paths.js";
import { waitUntil } from "../helpers/wait.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sc-userlock-"));
  installFixtureKey(dir, "alice");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const FILES = ["alice_known_peers.json", "alice_state.db", "alice_mls.db"];

/** Each user file's size, mtime and hash (undefined when absent). */
function snapshot(): Record<string, string | undefined> {
  return Object.fromEntries(FILES.map((f) => {
    const p = join(dir, f);
    if (!existsSync(p)) return [f, undefined];
    const st = statSync(p);
    return [f, `${st.size} ${st.mtimeMs} ${createHash("sha256").update(readFileSync(p)).digest("hex")}`];
  }));
}

/** What a client does at start: the lock, then the stores. */
async function openClient() {
  const local = primaryIdentity(await fixtureIdentity("alice"));
  const lock = await lockUser(dir, "alice");
  const stores = await openUserStores(lock, local, nullLogger);
  return {
    stores,
    close() {
      stores.state.close();
      stores.mlsStore.close();
      lock.release();
    },
  };
}

async function refusal(p: Promise<unknown>): Promise<UserLocked> {
  try {
    await p;
  } catch (e) {
    if (e instanceof UserLocked) return e;
    throw e;
  }
  throw new Error("the second client was not refused");
}

describe("one client per key directory", () => {
  it("a second client in this process is refused before it touches the user's files; after the first closes, it opens", async () => {
    const first = await openClient();
    first.stores.trust.observe(await fixtureIdentity("bob"));
    first.stores.trust.trust("bob");
    await first.stores.trust.flush();
    const before = snapshot();
    expect(before["alice_known_peers.json"]).toBeDefined();

    const refused = await refusal(openClient());
    expect(refused.state).toBe("this-process");
    expect(snapshot()).toEqual(before);

    first.close();
    const second = await openClient();
    expect(second.stores.trust.get("bob")?.verified).toBe(true);
    second.close();
  });

  describe.skipIf(!existsSync(join(REPO_ROOT, "dist", "client", "user-lock.js")))("the first client in another process", () => {
    /** A process holding alice's lock (as a running client does) until its stdin ends or it is killed. */
    async function holder() {
      const mod = join(REPO_ROOT, "dist", "client", "user-lock.js");
      const script = `
        const { lockUser } = await import(${JSON.stringify(mod)});
        const lock = await lockUser(${JSON.stringify(dir)}, "alice");
        process.stdin.on("end", () => { lock.release(); process.exit(0); });
        process.stdin.resume();
        process.stdout.write("holding\\n");`;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script]);
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      await waitUntil(() => out.includes("holding\n") || child.exitCode !== null, "the holder took the lock", 20_000);
      expect(child.exitCode, err).toBeNull();
      return { child, exited };
    }

    it("is named (its pid, this machine) and the second touches nothing; once it quits, the second opens", async () => {
      const seed = await openClient(); // files with content, as a client that ran before leaves them
      seed.stores.trust.observe(await fixtureIdentity("bob"));
      await seed.stores.trust.flush();
      seed.close();
      const before = snapshot();

      const h = await holder();
      const refused = await refusal(openClient());
      expect(refused.state).toBe("running");
      expect(refused.holder.pid).toBe(h.child.pid);
      expect(refused.lockPath).toBe(join(dir, "alice.lock"));
      expect(snapshot()).toEqual(before);

      h.child.stdin.end();
      await h.exited;
      expect(existsSync(join(dir, "alice.lock"))).toBe(false);
      const second = await openClient();
      expect(second.stores.trust.get("bob")).toBeDefined();
      second.close();
    });

    it("a holder that crashed (SIGKILL: its lock left behind) is taken over", async () => {
      const h = await holder();
      h.child.kill("SIGKILL");
      await h.exited;
      expect(existsSync(join(dir, "alice.lock"))).toBe(true);
      const second = await openClient();
      expect(JSON.parse(readFileSync(join(dir, "alice.lock"), "utf8"))).toMatchObject({ pid: process.pid });
      second.close();
    });
  });
});
