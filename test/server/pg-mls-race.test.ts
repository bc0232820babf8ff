// Many relays on one PostgreSQL (issue 14), for the MLS DS and device-list parts
// (src/server/store/pg/{mls,devices}.ts): each racer is a worker thread with its own store and
// connection (test/store-contract/mls-pg-racer.ts), released together at a barrier, so their
// transactions really overlap. Shown: one commit per epoch (the loser told who won, a resend of
// the winner a duplicate), each one-time KeyPackage handed out once, one group per conversation,
// and a device list that never goes back; plus, deterministically with an open transaction of
// another connection, that a claim skips a KeyPackage another claim holds instead of waiting.
import { Worker } from "node:worker_threads";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SyncPg } from "../../src/server/store/pg/sync-client.js";
import { createTestSchema, PgParts } from "../store-contract/mls-pg-parts.js";
import type { RacerInput, RacerResult } from "../store-contract/mls-pg-racer.js";
import { freshDatabase, type TestDatabase } from "../helpers/pg.js";

const RACER = new URL("../store-contract/mls-pg-racer.ts", import.meta.url).href;
// Node loads the racer itself: TypeScript by its own type transform, the sources' "./x.js" imports mapped to ./x.ts.
const BOOT = `
const { registerHooks } = require("node:module");
const { existsSync } = require("node:fs");
const { fileURLToPath } = require("node:url");
registerHooks({
  resolve(spec, ctx, next) {
    if (spec.startsWith(".") && spec.endsWith(".js") && ctx.parentURL !== undefined && ctx.parentURL.endsWith(".ts")) {
      const ts = new URL(spec.slice(0, -3) + ".ts", ctx.parentURL);
      if (existsSync(fileURLToPath(ts))) return next(ts.href, ctx);
    }
    return next(spec, ctx);
  },
});
import(${JSON.stringify(RACER)}).catch((e) => { require("node:worker_threads").parentPort.postMessage({ ok: false, error: String(e) }); });
`;

function startRacer(input: RacerInput): Promise<RacerResult> {
  const w = new Worker(BOOT, { eval: true, workerData: input, execArgv: ["--experimental-transform-types", "--no-warnings"] });
  return new Promise<RacerResult>((resolve, reject) => {
    w.once("message", (m: { ok: boolean; result?: RacerResult; error?: string }) => {
      if (m.ok) resolve(m.result!);
      else reject(new Error(`racer failed: ${m.error}`));
    });
    w.once("error", reject);
    w.once("exit", (code) => reject(new Error(`racer exited (${code}) without an answer`)));
  }).finally(() => void w.terminate());
}

function race(inputs: ReadonlyArray<Omit<RacerInput, "url" | "barrier" | "parties">>): Promise<RacerResult[]> {
  const barrier = new SharedArrayBuffer(8);
  return Promise.all(inputs.map((i) => startRacer({ ...i, url: database.url, barrier, parties: inputs.length })));
}

let database: TestDatabase;
let db: SyncPg;
let parts: PgParts;

beforeEach(async () => {
  database = await freshDatabase();
  db = new SyncPg({ url: database.url, queryTimeoutMs: 2_000 });
  createTestSchema(db);
  parts = new PgParts(db, Date.now);
});

afterEach(async () => {
  db.close();
  await database.drop();
});

describe("relays racing on one database", () => {
  it("one commit per epoch: the loser learns the winner and the group's new epoch; the winner's resend through another relay is a duplicate", { timeout: 60_000 }, async () => {
    const rounds = 40;
    const groupId = Buffer.alloc(20, 7);
    expect(parts.mls.createGroup({ groupId, conversationId: "#race", creator: "alice", epoch: 0, groupInfo: Buffer.from("gi@0"), groupInfoEpoch: 0 })).toBe("created");
    db.query("INSERT INTO mls_group_members (group_id, username) VALUES ($1, 'bob')", [groupId]);
    const results = await race([
      { mode: "commit", groupId, rounds, sender: "alice", tag: "a" },
      { mode: "commit", groupId, rounds, sender: "alice", tag: "a" },
      { mode: "commit", groupId, rounds, sender: "bob", tag: "b" },
    ]);
    const [a1, a2, b] = results.map((r) => (r.mode === "commit" ? r.outcomes : []));
    const winners: string[] = [];
    for (let e = 0; e < rounds; e++) {
      const round = [a1![e]!, a2![e]!, b![e]!];
      const accepted = round.filter((o) => o.kind === "accepted");
      expect(accepted, `epoch ${e}: ${JSON.stringify(round)}`).toEqual([{ kind: "accepted", epoch: e, queued: 1 }]);
      const winner = b![e]!.kind === "accepted" ? "bob" : "alice";
      winners.push(winner);
      const taken = { kind: "epoch-taken", current: e + 1, winner };
      if (winner === "bob") {
        expect([a1![e], a2![e]], `epoch ${e}`).toEqual([taken, taken]);
      } else {
        expect(b![e], `epoch ${e}`).toEqual(taken);
        expect([a1![e]!.kind, a2![e]!.kind].sort(), `epoch ${e}`).toEqual(["accepted", "duplicate"]);
      }
    }
    // The database agrees: one commit per epoch by the winner, the winner's GroupInfo, one delivery per epoch.
    expect(parts.mls.commitsFrom(groupId, 0, rounds + 1).map((c) => c.sender)).toEqual(winners);
    const last = winners[rounds - 1] === "bob" ? "b" : "a";
    expect(parts.mls.group(groupId)).toMatchObject({ epoch: rounds, groupInfo: Buffer.from(`gi ${last}@${rounds}`), groupInfoEpoch: rounds });
    const queued = db.query("SELECT recipient, envelope FROM test_queue ORDER BY seq");
    expect(queued.map((r) => String(r["recipient"])).sort()).toEqual(winners.map((w) => (w === "alice" ? "bob" : "alice")).sort());
  });

  it("hands out each one-time KeyPackage once under concurrent claims, then only the last-resort one", { timeout: 60_000 }, async () => {
    const count = 300;
    const oneTime = Array.from({ length: count }, (_, i) => ({ ref: Buffer.from(`ref-${i}`), keyPackage: Buffer.from(`kp-${i}`), notAfterMs: Date.now() + 3_600_000 }));
    parts.mls.publishKeyPackages("carol", oneTime, { ref: Buffer.from("ref-last"), keyPackage: Buffer.from("kp-last"), notAfterMs: Date.now() + 3_600_000 });
    const results = await race(Array.from({ length: 4 }, () => ({ mode: "claim" as const, address: "carol" })));
    const claimed = results.flatMap((r) => (r.mode === "claim" ? r.claimed : []));
    expect(claimed).toHaveLength(count);
    expect(new Set(claimed).size).toBe(count);
    expect(results.map((r) => r.mode === "claim" && r.endedWith)).toEqual(["last-resort", "last-resort", "last-resort", "last-resort"]);
    expect(parts.mls.keyPackageCounts("carol")).toEqual({ oneTime: 0, lastResort: true });
  });

  it("one group per conversation when relays create it at once: the others are told it is taken", { timeout: 60_000 }, async () => {
    const rounds = 30;
    const results = await race([0, 1, 2].map((index) => ({ mode: "create" as const, index, rounds, sender: `u${index}` })));
    for (let round = 0; round < rounds; round++) {
      const outcomes = results.map((r) => (r.mode === "create" ? r.outcomes[round] : undefined));
      expect(outcomes.filter((o) => o === "created"), `round ${round}: ${outcomes.join()}`).toHaveLength(1);
      expect(outcomes.filter((o) => o === "conversation-taken")).toHaveLength(2);
      const g = parts.mls.groupOfConversation(`#c${round}`)!;
      expect(parts.mls.groupMembers(g.groupId)).toEqual([g.creator]);
    }
    expect(Number(db.query("SELECT count(*) AS n FROM mls_groups")[0]!["n"])).toBe(rounds);
  });

  it("a device list never goes back to an older version, whatever order relays publish in", { timeout: 60_000 }, async () => {
    // Every change of the kept row is logged by the database itself.
    db.query("CREATE TABLE test_list_log (old_version BIGINT, new_version BIGINT)");
    db.query(`CREATE FUNCTION test_log_list() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN INSERT INTO test_list_log VALUES (OLD.version, NEW.version); RETURN NEW; END $$`);
    db.query("CREATE TRIGGER test_list_log AFTER UPDATE ON device_lists FOR EACH ROW EXECUTE FUNCTION test_log_list()");
    const top = 150;
    // Three relays, each with its share of the versions, shuffled: late older versions are common.
    const shares = [0, 1, 2].map((k) => Array.from({ length: top }, (_, i) => i + 1).filter((v) => v % 3 === k).sort(() => Math.random() - 0.5));
    const results = await race(shares.map((versions) => ({ mode: "list" as const, address: "alice", versions })));
    const log = db.query("SELECT old_version, new_version FROM test_list_log").map((r) => [Number(r["old_version"]), Number(r["new_version"])] as const);
    expect(log.filter(([o, n]) => n <= o)).toEqual([]);
    expect(parts.devices.list("alice")).toMatchObject({ version: top, list: Buffer.from(`list v${top}`) });
    // Each accepted publish is the first row or one logged change.
    const accepted = results.flatMap((r) => (r.mode === "list" ? r.accepted : []));
    expect(accepted.length).toBe(log.length + 1);
    // Refused directly too: the same and an older version change nothing.
    expect(db.transaction(() => parts.devices.putListLocked("alice", top, Buffer.from("again")))).toBe(false);
    expect(db.transaction(() => parts.devices.putListLocked("alice", 1, Buffer.from("old")))).toBe(false);
    expect(parts.devices.list("alice")?.list).toEqual(Buffer.from(`list v${top}`));
  });
});

describe("a claim and another relay's open claim", () => {
  it("skips the KeyPackage the other claim holds, without waiting for it, and never hands it out twice", async () => {
    const kp = (n: number) => ({ ref: Buffer.from(`ref-${n}`), keyPackage: Buffer.from(`kp-${n}`), notAfterMs: Date.now() + 3_600_000 });
    parts.mls.publishKeyPackages("dave", [kp(1), kp(2), kp(3)], undefined);
    const other = new pg.Client({ connectionString: database.url });
    await other.connect();
    try {
      // Another relay's claim, mid-transaction: it holds the oldest one-time KeyPackage.
      await other.query("BEGIN");
      const held = await other.query("SELECT id, key_package FROM mls_key_packages WHERE address = 'dave' ORDER BY id LIMIT 1 FOR UPDATE");
      expect(Buffer.from(held.rows[0].key_package as Buffer).toString()).toBe("kp-1");
      // This thread blocks on the database while the other transaction stays open: a claim that
      // waited for the held row would time out here (queryTimeoutMs) instead of answering.
      const started = performance.now();
      expect(parts.mls.claimKeyPackage("dave")).toEqual({ keyPackage: Buffer.from("kp-2"), lastResort: false });
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(parts.mls.claimKeyPackage("dave")).toEqual({ keyPackage: Buffer.from("kp-3"), lastResort: false });
      // Only the held one is left, and it is held: nothing to hand out.
      expect(parts.mls.claimKeyPackage("dave")).toBeUndefined();
      await other.query("DELETE FROM mls_key_packages WHERE id = $1", [held.rows[0].id]);
      await other.query("COMMIT");
      expect(parts.mls.claimKeyPackage("dave")).toBeUndefined();
      expect(parts.mls.keyPackageCounts("dave")).toEqual({ oneTime: 0, lastResort: false });
    } finally {
      await other.end();
    }
  });
});
