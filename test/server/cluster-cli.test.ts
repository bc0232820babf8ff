// chat-relay's store switch (issue 14): --store postgres://… or SECURECHAT_RELAY_STORE (the flag
// wins), migrate and users against it, and the sentences for a database that cannot be used:
// one line, naming host:port, never the credentials.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { databaseFailure } from "../../src/server/cluster-store-open.js";
import { databaseHostOf, redactSecrets, storeUrlOf } from "../../src/server/cluster-url.js";
import { PgError } from "../../src/server/store/pg/sync-client.js";
import { assertBuilt, RELAY_BIN } from "../helpers/relay-process.js";

const dir = mkdtempSync(join(tmpdir(), "sc-cluster-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function relay(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  assertBuilt();
  const base = { ...process.env };
  delete base["SECURECHAT_RELAY_STORE"];
  const r = spawnSync(process.execPath, [RELAY_BIN, "--data-dir", join(dir, "data"), ...args], { encoding: "utf8", env: { ...base, ...env }, timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const DEAD = "postgres://relay:s3cret%21@127.0.0.1:1/chat";

describe("the store URL", () => {
  it("comes from --store, else SECURECHAT_RELAY_STORE; anything but postgres:// is refused", () => {
    expect(storeUrlOf(undefined, {})).toBeUndefined();
    expect(storeUrlOf(undefined, { SECURECHAT_RELAY_STORE: "" })).toBeUndefined();
    expect(storeUrlOf(undefined, { SECURECHAT_RELAY_STORE: "postgres://a@h/db" })).toBe("postgres://a@h/db");
    expect(storeUrlOf("postgresql://b@h/db", { SECURECHAT_RELAY_STORE: "postgres://a@h/db" })).toBe("postgresql://b@h/db");
    expect(() => storeUrlOf("mysql://h/db", {})).toThrow(/^the store must be a postgres:\/\/ or postgresql:\/\/ URL \(from --store\)/);
    expect(() => storeUrlOf(undefined, { SECURECHAT_RELAY_STORE: "/var/db" })).toThrow(/\(from SECURECHAT_RELAY_STORE\)/);
  });

  it("is shown as host:port, its password never", () => {
    expect(databaseHostOf(DEAD)).toBe("127.0.0.1:1");
    expect(databaseHostOf("postgres://u@db.example")).toBe("db.example:5432");
    expect(redactSecrets(`connect to ${DEAD} failed (password s3cret!)`, DEAD)).toBe("connect to 127.0.0.1:1 failed (password ***)");
    const unreachable = databaseFailure(DEAD, new PgError("connect ECONNREFUSED 127.0.0.1:1", "ECONNREFUSED"));
    expect(unreachable.message).toBe("cannot reach the database at 127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1");
    const refused = databaseFailure(DEAD, new PgError("password authentication failed for user \"relay\"", "28P01"));
    expect(refused.message).toBe("cannot use the database at 127.0.0.1:1: password authentication failed for user \"relay\"");
  });
});

describe("chat-relay with a store", () => {
  it("refuses a store that is not a PostgreSQL URL as a usage error", () => {
    const r = relay(["--store", "sqlite:///tmp/x.db"]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("chat-relay: the store must be a postgres:// or postgresql:// URL (from --store)");
  });

  it("a database it cannot use: one sentence naming host:port, exit 1, no password (the flag wins over the environment)", () => {
    const r = relay(["--store", DEAD, "--port", "0", "--host", "127.0.0.1"], { SECURECHAT_RELAY_STORE: "not-a-url" });
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith("chat-relay:"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^chat-relay: cannot (reach|use) the database at 127\.0\.0\.1:1: /);
    expect(r.stderr).not.toContain("s3cret");
  });

  it("migrate needs a store; with one it reports a database it cannot use in one sentence", () => {
    const none = relay(["migrate"]);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain("chat-relay: migrate needs --store postgres://");
    const dead = relay(["migrate"], { SECURECHAT_RELAY_STORE: DEAD });
    expect(dead.status).toBe(1);
    expect(dead.stderr).toMatch(/^chat-relay: cannot (reach|use) the database at 127\.0\.0\.1:1: /);
    expect(dead.stderr).not.toContain("s3cret");
  });

  it("users list and release take --store too", () => {
    const list = relay(["users", "list", "--store", DEAD]);
    expect(list.status).toBe(1);
    expect(list.stderr).toMatch(/^chat-relay: cannot (reach|use) the database at 127\.0\.0\.1:1: /);
    const release = relay(["users", "release", "bob", "--store", DEAD]);
    expect(release.status).toBe(1);
    expect(release.stderr).not.toContain("s3cret");
  });
});
