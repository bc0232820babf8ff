// The worker thread behind SyncPg (sync-client.ts): owns ONE PostgreSQL connection (the `pg`
// client, asynchronous) and answers the relay thread's requests one at a time. The relay thread
// blocks on Atomics.wait until the answer is posted, so to it the database is synchronous, as
// node:sqlite is (store.ts: every store call runs on the event loop, in order).
//
// Transactions survive nothing: the connection generation is recorded at BEGIN, and any request
// of that transaction that finds another connection (the first one died) fails, up to the
// ROLLBACK. Without this, a reconnect in the middle would run the rest of a transaction in
// autocommit, storing half of it.
//
// Kept free of the project's other modules (and of syntax that type stripping cannot erase):
// under the tests Node loads this file as TypeScript directly.
import { parentPort, workerData } from "node:worker_threads";
import type { MessagePort } from "node:worker_threads";
import { createRequire } from "node:module";
import type * as PgTypes from "pg";

interface WorkerInit {
  readonly url: string;
  readonly connectTimeoutMs: number;
  readonly queryTimeoutMs: number;
  readonly applicationName: string;
  readonly state: SharedArrayBuffer;
  readonly port: MessagePort;
  readonly pgPath: string;
}

interface Step {
  readonly sql: string;
  readonly params?: readonly unknown[];
}

interface Request {
  readonly id: number;
  readonly op: "query" | "begin" | "commit" | "rollback" | "close";
  readonly steps?: readonly Step[];
  /** For "begin": false runs the transaction with synchronous_commit off (acks: a lost one means a redelivery). */
  readonly durable?: boolean;
  /** For "query": first BEGIN a transaction (false: with synchronous_commit off), as "begin" does. */
  readonly begin?: boolean;
}

const init = workerData as WorkerInit;
const pg = createRequire(import.meta.url)(init.pgPath) as typeof PgTypes;
// int8 (COUNT, bigserial) as numbers: seqs and counts stay far below 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));
const state = new Int32Array(init.state);
const port = init.port;

let client: PgTypes.Client | undefined;
let generation = 0;
let txGeneration = -1;

async function connected(): Promise<PgTypes.Client> {
  if (client !== undefined) return client;
  const c = new pg.Client({
    connectionString: init.url,
    connectionTimeoutMillis: init.connectTimeoutMs,
    query_timeout: init.queryTimeoutMs,
    statement_timeout: init.queryTimeoutMs,
    application_name: init.applicationName,
    keepAlive: true,
  });
  // A dead connection is noticed here (server restart, network) and replaced at the next request.
  c.on("error", () => {
    if (client === c) client = undefined;
  });
  c.on("end", () => {
    if (client === c) client = undefined;
  });
  try {
    await c.connect();
  } catch (e) {
    void c.end().catch(() => undefined);
    throw e;
  }
  client = c;
  generation++;
  return c;
}

/**
 * Statements with parameters are prepared once per connection under a name derived from their
 * text (pg skips the Parse when the name is known): the store's statements are a fixed set, and
 * planning each anew cost ~0.15 ms of a ~0.3 ms round trip. Bounded, in case some caller builds
 * statement texts from data.
 */
const MAX_NAMED = 512;
const named = new Map<string, string>();

function nameOf(sql: string): string | undefined {
  const known = named.get(sql);
  if (known !== undefined) return known;
  if (named.size >= MAX_NAMED) return undefined;
  let h = 0x811c9dc5;
  for (let i = 0; i < sql.length; i++) h = Math.imul(h ^ sql.charCodeAt(i), 0x01000193) >>> 0;
  const name = `sc_${h.toString(16)}_${named.size}`;
  named.set(sql, name);
  return name;
}

function toParam(v: unknown): unknown {
  // Buffers arrive as Uint8Array (structured clone); pg sends Buffers as bytea.
  if (v instanceof Uint8Array && !Buffer.isBuffer(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return v;
}

/** BEGIN on the current connection; the transaction is bound to it (a reconnect fails the rest of it). */
async function begin(durable: boolean): Promise<void> {
  const c = await connected();
  await c.query(durable ? "BEGIN" : "BEGIN; SET LOCAL synchronous_commit = off");
  txGeneration = generation;
}

async function run(req: Request): Promise<unknown> {
  switch (req.op) {
    case "close": {
      const c = client;
      client = undefined;
      if (c !== undefined) await c.end().catch(() => undefined);
      return [];
    }
    case "begin": {
      await begin(req.durable !== false);
      return [];
    }
    case "commit":
    case "rollback": {
      const inTx = txGeneration;
      txGeneration = -1;
      if (client === undefined || inTx !== generation) {
        if (req.op === "rollback") return [];
        throw Object.assign(new Error("the database connection was lost during the transaction: nothing of it was stored"), { code: "08006" });
      }
      await client.query(req.op === "commit" ? "COMMIT" : "ROLLBACK");
      return [];
    }
    case "query": {
      if (req.begin !== undefined) await begin(req.begin);
      else if (txGeneration !== -1 && (client === undefined || txGeneration !== generation)) {
        throw Object.assign(new Error("the database connection was lost during the transaction: nothing of it was stored"), { code: "08006" });
      }
      const c = await connected();
      const results: unknown[][] = [];
      for (const s of req.steps ?? []) {
        const params = s.params ?? [];
        const name = params.length > 0 ? nameOf(s.sql) : undefined;
        const r = (await c.query({ text: s.sql, values: params.map(toParam), ...(name === undefined ? {} : { name }) })) as PgTypes.QueryResult | PgTypes.QueryResult[];
        // A text of several statements (no parameters: the simple protocol) answers with one
        // result per statement: the last one's rows are the answer.
        results.push(Array.isArray(r) ? (r.at(-1)?.rows ?? []) : r.rows);
      }
      return results;
    }
  }
}

port.on("message", (req: Request) => {
  void run(req).then(
    (result) => {
      port.postMessage({ id: req.id, ok: true, result });
    },
    (e: unknown) => {
      const err = e as { message?: string; code?: string; constraint?: string };
      port.postMessage({ id: req.id, ok: false, message: String(err.message ?? e), code: err.code, constraint: err.constraint });
    },
  ).finally(() => {
    Atomics.store(state, 0, req.id);
    Atomics.notify(state, 0);
  });
});
parentPort?.postMessage("ready");
