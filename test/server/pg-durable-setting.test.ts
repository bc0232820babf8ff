// A relay on PostgreSQL says so when the database would not keep its promise: with
// synchronous_commit = off a commit returns before its WAL is flushed, so a crash of PostgreSQL
// could lose messages already answered ACCEPTED. The relay warns at start (it does not refuse:
// the setting is the operator's), and stays quiet on the default.
import { afterEach, describe, expect, it } from "vitest";
import { jsonLineLogger } from "../../src/protocol/log.js";
import { openSharedStore } from "../../src/server/cluster-store-open.js";
import { freshDatabase, pgQuery, type TestDatabase } from "../helpers/pg.js";

const dbs: TestDatabase[] = [];
afterEach(async () => {
  for (const d of dbs.splice(0)) await d.drop();
});

async function startLines(setOff: boolean): Promise<Array<Record<string, unknown>>> {
  const db = await freshDatabase();
  dbs.push(db);
  if (setOff) await pgQuery(db.url, `ALTER DATABASE ${db.name} SET synchronous_commit = off`);
  const lines: Array<Record<string, unknown>> = [];
  const logger = jsonLineLogger((l) => lines.push(JSON.parse(l) as Record<string, unknown>), "info");
  const shared = openSharedStore(db.url, logger);
  await shared.close();
  return lines;
}

describe("the database's synchronous_commit", () => {
  it("off: the relay warns at start, naming the database by host:port only", async () => {
    const lines = await startLines(true);
    const warning = lines.find((l) => l["event"] === "store.not_durable");
    expect(warning?.["level"]).toBe("warn");
    expect(String(warning?.["database"])).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(String(warning?.["message"])).toContain("synchronous_commit = off");
  });

  it("on (the default): no warning", async () => {
    const lines = await startLines(false);
    expect(lines.filter((l) => l["event"] === "store.not_durable")).toEqual([]);
  });
});
