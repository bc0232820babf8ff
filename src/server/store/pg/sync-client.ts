// PostgreSQL, synchronously: the relay's store interface (store.ts) is synchronous because
// node:sqlite is, and the whole relay (group commit, handshake, the MLS Delivery Service) is
// written against it: a store call runs to its end before the next event is handled. SyncPg
// keeps that contract for PostgreSQL: one worker thread owns one `pg` connection
// (sync-worker.ts), and each call posts a request and blocks this thread on Atomics.wait until
// the answer is there (about one loopback round trip). It is the same trade the embedded store
// makes for its fsync: the event loop waits on the database, and group commit amortises the
// wait over every envelope that arrived meanwhile. DESIGN: notes/cluster-design.md.
//
// Failures are fast and bounded, never a hung relay: the worker connects with a timeout, every
// statement has one (statement_timeout and a client-side query_timeout), and should the worker
// itself not answer within callTimeoutMs it is abandoned and a new one started. Every failure
// surfaces as a PgError (code: the SQLSTATE when PostgreSQL gave one), which the caller turns
// into a refusal (errors.ts) and health NOT_SERVING.
import { appendFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from "node:worker_threads";

export interface SyncPgOptions {
  /** postgres://user@host:port/db (any libpq-style URL `pg` accepts). */
  readonly url: string;
  readonly connectTimeoutMs?: number;
  readonly queryTimeoutMs?: number;
  /** Shown in pg_stat_activity. */
  readonly applicationName?: string;
}

/** A statement and its parameters ($1, $2, …). Buffers are bytea. */
export interface SqlStep {
  readonly sql: string;
  readonly params?: readonly unknown[];
}

/** SQLSTATEs that mean the database cannot take this relay's statements now (PgError.unreachable). */
const UNREACHABLE_STATES: ReadonlySet<string> = new Set(["57P01", "57P02", "57P03", "53300"]);

/** A database failure: `code` is PostgreSQL's SQLSTATE when it gave one (23505: unique violation, 08xxx: connection). */
export class PgError extends Error {
  constructor(message: string, readonly code: string | undefined, readonly constraint?: string) {
    super(message);
    this.name = "PgError";
  }

  /**
   * True when the database could not be reached (or the connection died): not the statement's
   * fault. No code (the connection ended), SQLSTATE class 08 (connection exception), the server
   * shutting down, crashed or starting (57P01-57P03), or out of connections (53300); and every
   * socket error Node names (ECONNREFUSED, ETIMEDOUT, ECONNRESET and EPIPE when the server went
   * away under a query, EHOSTUNREACH, …: no SQLSTATE class starts with E).
   */
  get unreachable(): boolean {
    const c = this.code;
    return c === undefined || c.startsWith("08") || UNREACHABLE_STATES.has(c) || /^E[A-Z]{3,}$/.test(c);
  }
}

/**
 * SQLSTATEs after which a transaction may simply run again: deadlock_detected (PostgreSQL broke
 * a lock cycle between two transactions by aborting one) and serialization_failure. The other
 * transaction went on; the aborted one changed nothing.
 */
const CONFLICT_CODES: ReadonlySet<string> = new Set(["40P01", "40001"]);

/** How many times a transaction aborted by a conflict is run again before the failure is the caller's. */
export const CONFLICT_RETRIES = 3;

/** True for a deadlock or serialization failure: the whole transaction may run again. */
export function isConflict(e: unknown): boolean {
  return e instanceof PgError && e.code !== undefined && CONFLICT_CODES.has(e.code);
}

type Row = Record<string, unknown>;

interface Reply {
  readonly id: number;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly message?: string;
  readonly code?: string;
  readonly constraint?: string;
}

/**
 * SECURECHAT_PG_STATS=<file>: count the round trips to the worker (each one an Atomics.wait of
 * this thread) by what they ran, and append the counts to <file> as one JSON line when the store
 * closes. For the benchmark's accounting (round trips per message); off, it costs one branch.
 */
const STATS_FILE = process.env["SECURECHAT_PG_STATS"];

/** Round trips and statements so far, by the call's first statement (its text's start). */
export interface SyncPgStats {
  calls: number;
  statements: number;
  readonly byLabel: Record<string, number>;
}

function labelOf(op: string, fields: Record<string, unknown>): string {
  const steps = fields["steps"] as ReadonlyArray<{ sql: string }> | undefined;
  if (op !== "query" || steps === undefined || steps.length === 0) return op;
  const first = steps.find((s) => s.sql !== "BEGIN" && !s.sql.startsWith("SET LOCAL")) ?? steps[0]!;
  return `${steps.length}: ${first.sql.replace(/\s+/g, " ").trim().slice(0, 90)}`;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 2_000;
const DEFAULT_QUERY_TIMEOUT_MS = 5_000;

/** Structured clone turns Buffers into Uint8Arrays: bytea columns come back as Buffers again. */
function revive(rows: Row[]): Row[] {
  for (const row of rows) {
    for (const k of Object.keys(row)) {
      const v = row[k];
      if (v instanceof Uint8Array && !Buffer.isBuffer(v)) row[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }
  }
  return rows;
}

export class SyncPg {
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  private state: Int32Array | undefined;
  private nextId = 1;
  private inTransaction = false;
  /** A transaction's BEGIN not sent yet (its durability), sent with the first statements. */
  private pendingBegin: boolean | undefined;
  private closed = false;
  private readonly connectTimeoutMs: number;
  private readonly queryTimeoutMs: number;
  /** Counted only under SECURECHAT_PG_STATS (or when a test sets `countCalls`). */
  readonly stats: SyncPgStats = { calls: 0, statements: 0, byLabel: {} };
  countCalls = STATS_FILE !== undefined;

  constructor(private readonly options: SyncPgOptions) {
    if (typeof options.url !== "string" || !/^postgres(ql)?:\/\//.test(options.url)) {
      throw new RangeError("the store URL must start with postgres:// or postgresql://");
    }
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.queryTimeoutMs = options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  }

  /** One statement; its rows. */
  query<R extends Row = Row>(sql: string, params: readonly unknown[] = []): R[] {
    return this.batch([{ sql, params }])[0] as R[];
  }

  /** Statements in order over the one connection, in one hop to the worker; each one's rows. */
  batch(steps: readonly SqlStep[]): Row[][] {
    const begin = this.pendingBegin;
    this.pendingBegin = undefined;
    const result = this.call("query", begin === undefined ? { steps } : { steps, begin }) as Row[][];
    return result.map(revive);
  }

  /**
   * Runs `fn` inside BEGIN … COMMIT (ROLLBACK when it throws). `durable: false` commits without
   * waiting for the WAL flush (synchronous_commit = off): only for writes whose loss is harmless.
   * Not reentrant: a transaction inside a transaction is a programming error.
   */
  /**
   * `rerun: true`: when PostgreSQL aborts the transaction as a deadlock victim or for a
   * serialization failure, it is rolled back and `fn` runs again from the start (at most
   * CONFLICT_RETRIES more times). Only for an `fn` that may run twice: it changes no memory, or
   * only in a way that running it again leaves the same (dropping cache entries).
   */
  transaction<T>(fn: () => T, options: { readonly durable?: boolean; readonly rerun?: boolean } = {}): T {
    for (let attempt = 0; ; attempt++) {
      try {
        return this.transactionOnce(fn, options.durable !== false);
      } catch (e) {
        if (options.rerun !== true || attempt >= CONFLICT_RETRIES || !isConflict(e)) throw e;
      }
    }
  }

  /**
   * The BEGIN is not a round trip of its own: it goes with the transaction's first statements
   * (the worker runs it first, in the same request). A transaction that ran no statement has
   * nothing to commit or roll back. Its start still counts as a call (callsMade): a snapshot read
   * before it is not an answer inside it.
   */
  private transactionOnce<T>(fn: () => T, durable: boolean): T {
    if (this.inTransaction) throw new Error("SyncPg.transaction is not reentrant");
    this.nextId++;
    this.pendingBegin = durable;
    this.inTransaction = true;
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.inTransaction = false;
      const begun = this.pendingBegin === undefined;
      this.pendingBegin = undefined;
      if (begun) {
        try {
          this.call("rollback", {});
        } catch {
          // The connection is gone: PostgreSQL rolled back on its own.
        }
      }
      throw e;
    }
    this.inTransaction = false;
    if (this.pendingBegin !== undefined) {
      this.pendingBegin = undefined;
      return result;
    }
    this.call("commit", {});
    return result;
  }

  /**
   * Round trips made so far (every call, whatever it ran): a cache of a read (pg/mls.ts's group
   * snapshot) compares it to know that nothing, no write of its own, ran since.
   */
  get callsMade(): number {
    return this.nextId;
  }

  get transactionOpen(): boolean {
    return this.inTransaction;
  }

  /** Ends the connection and the worker. Idempotent. */
  close(): void {
    if (this.closed) return;
    if (this.worker !== undefined) {
      try {
        this.call("close", {});
      } catch {
        // Closing anyway.
      }
    }
    this.closed = true;
    this.dropWorker();
    if (STATS_FILE !== undefined) {
      try {
        appendFileSync(STATS_FILE, `${JSON.stringify({ pid: process.pid, app: this.options.applicationName, ...this.stats })}\n`);
      } catch {
        // Accounting only.
      }
    }
  }

  private ensureWorker(): void {
    if (this.worker !== undefined) return;
    const shared = new SharedArrayBuffer(4);
    const channel = new MessageChannel();
    const self = import.meta.url;
    const file = new URL(self.endsWith(".ts") ? "./sync-worker.ts" : "./sync-worker.js", self);
    // Nothing imports the worker (it is loaded by URL), so a build that leaves it out fails here,
    // at once and by name, not as a database that never answers (the thread blocks on the answer).
    if (!existsSync(file)) throw new PgError(`the PostgreSQL worker ${fileURLToPath(file)} is missing from this build`, "58P01");
    const pgPath = createRequire(self).resolve("pg");
    this.worker = new Worker(file, {
      workerData: {
        url: this.options.url, connectTimeoutMs: this.connectTimeoutMs, queryTimeoutMs: this.queryTimeoutMs,
        applicationName: this.options.applicationName ?? "chat-relay", state: shared, port: channel.port2, pgPath,
      },
      transferList: [channel.port2],
    });
    // The worker must not keep the process alive, nor crash it: a dead worker is replaced at the next call.
    this.worker.unref();
    this.worker.on("error", () => this.dropWorker());
    this.port = channel.port1;
    this.port.unref();
    this.state = new Int32Array(shared);
  }

  private dropWorker(): void {
    const w = this.worker;
    this.worker = undefined;
    this.port?.close();
    this.port = undefined;
    this.state = undefined;
    if (w !== undefined) void w.terminate();
  }

  private call(op: "query" | "begin" | "commit" | "rollback" | "close", fields: Record<string, unknown>): unknown {
    if (this.closed) throw new PgError("the store is closed", "08003");
    this.ensureWorker();
    const port = this.port!;
    const state = this.state!;
    const id = this.nextId++;
    if (this.countCalls) {
      const label = labelOf(op, fields);
      this.stats.calls++;
      this.stats.statements += Array.isArray(fields["steps"]) ? (fields["steps"] as unknown[]).length : 1;
      this.stats.byLabel[label] = (this.stats.byLabel[label] ?? 0) + 1;
    }
    port.postMessage({ id, op, ...fields });
    // The worker answers within connect + query timeouts per statement; beyond a generous bound it is stuck.
    const steps = Array.isArray(fields["steps"]) ? (fields["steps"] as unknown[]).length : 1;
    const deadline = Date.now() + this.connectTimeoutMs + this.queryTimeoutMs * Math.max(1, steps) + 2_000;
    for (;;) {
      const seen = Atomics.load(state, 0);
      if (seen === id) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        this.dropWorker();
        this.inTransaction = false;
        throw new PgError("the database did not answer in time", "08006");
      }
      Atomics.wait(state, 0, seen, left);
    }
    const reply = receiveMessageOnPort(port)?.message as Reply | undefined;
    if (reply === undefined || reply.id !== id) {
      this.dropWorker();
      throw new PgError("the database worker answered out of turn", "08006");
    }
    if (!reply.ok) throw new PgError(reply.message ?? "database error", reply.code, reply.constraint);
    return reply.result;
  }
}
