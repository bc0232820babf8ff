// The relay reads the embedded store's queues before its port opens (startup.ts loadQueues): the
// first session must not wait for them. It logs how much waits; a database whose queues cannot be
// read stops the start with a sentence, not a crash later.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { jsonLineLogger } from "../../src/protocol/log.js";
import { loadQueues } from "../../src/server/startup.js";
import { openStore, type RelayStore } from "../../src/server/store.js";
import { req } from "../helpers/store-records.js";

let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "relay-queues-load-"));
  path = join(dir, "relay.db");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("reading the queues at start", () => {
  it("logs the messages waiting, the rows over all recipients and the recent ids; nothing when there are none", () => {
    const lines: string[] = [];
    const logger = jsonLineLogger((l) => lines.push(l));
    const empty = openStore(path);
    loadQueues(empty, logger);
    empty.close();
    expect(lines).toEqual([]);
    const writer = openStore(path);
    writer.enqueueBatch([req("alice", ["bob", "carol"]), req("alice", ["bob"]), req("alice", [])]);
    writer.close();
    const store = openStore(path);
    try {
      loadQueues(store, logger);
      expect(lines).toHaveLength(1);
      // Three ids accepted (the last one stored for nobody): all recent, in memory.
      expect(JSON.parse(lines[0]!)).toMatchObject({ event: "queues.loaded", messages: 2, waiting: 3, recentIds: 3 });
    } finally {
      store.close();
    }
  });

  it("a store whose queues cannot be read stops the start with a sentence", () => {
    const failing = { loadQueues: () => { throw new Error("disk I/O error"); } } as unknown as RelayStore;
    expect(() => loadQueues(failing, jsonLineLogger(() => {}))).toThrow("cannot read the relay's queues from its database: disk I/O error");
  });
});
