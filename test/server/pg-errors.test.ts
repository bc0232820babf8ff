// What a client is told when the relay's PostgreSQL database is away (errors.ts): its own
// sentence, not "its storage failed", for a refused request and for a session that cannot start;
// the wire codes stay STORAGE_UNAVAILABLE (and UNAVAILABLE for the session: the client moves on).
import { status as GrpcStatus } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { sessionEnd, statusOf, storageRefusalOf } from "../../src/server/errors.js";
import { PgError, SyncPg } from "../../src/server/store/pg/sync-client.js";
import { freshDatabase } from "../helpers/pg.js";

function failureOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a failure");
}

describe("the relay's sentences for an unreachable database", () => {
  it("a refused request says the relay cannot reach its database; other database failures keep the storage sentence", async () => {
    const away = new SyncPg({ url: "postgres://postgres@127.0.0.1:1/none", connectTimeoutMs: 500 });
    const unreachable = failureOf(() => away.query("SELECT 1"));
    away.close();
    expect(unreachable).toBeInstanceOf(PgError);
    expect((unreachable as PgError).unreachable).toBe(true);
    const r = storageRefusalOf(unreachable);
    expect(r.code).toBe(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE);
    expect(r.message).toBe("the relay cannot reach its database right now; nothing was stored, try again in a moment");

    const db = await freshDatabase();
    const pg = new SyncPg({ url: db.url });
    try {
      const broken = failureOf(() => pg.query("SELECT 1/0"));
      expect((broken as PgError).unreachable).toBe(false);
      const s = storageRefusalOf(broken);
      expect(s.code).toBe(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE);
      expect(s.message).toBe("the relay could not store the message because its storage failed; it was not sent, try again later");
    } finally {
      pg.close();
      await db.drop();
    }
  });

  it("a session that cannot start ends UNAVAILABLE with STORAGE_UNAVAILABLE and says so", () => {
    const end = sessionEnd.storageUnreachable();
    expect(end.grpcCode).toBe(GrpcStatus.UNAVAILABLE);
    expect(end.code).toBe(ErrorCode.ERROR_CODE_STORAGE_UNAVAILABLE);
    expect(end.message).toBe("the relay cannot reach its database right now; try again in a moment");
  });
});

describe("a session that meets an unreachable database", () => {
  it("ends with UNAVAILABLE and the database sentence, not INTERNAL 'internal relay error'; other errors stay internal", () => {
    const st = statusOf(new PgError("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED"));
    expect(st.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(st.details).toBe("the relay cannot reach its database right now; try again in a moment");
    expect(st.metadata?.get("securechat-error-code")).toEqual(["ERROR_CODE_STORAGE_UNAVAILABLE"]);
    expect(statusOf(new PgError("division by zero", "22012")).code).toBe(GrpcStatus.INTERNAL);
    // The server going away under a query: the socket's own errors are the database's absence
    // too (seen once as "internal relay error" while the cluster test restarted PostgreSQL).
    for (const [message, code] of [["read ECONNRESET", "ECONNRESET"], ["write EPIPE", "EPIPE"], ["connect EHOSTUNREACH 10.0.0.9:5432", "EHOSTUNREACH"],
      ["terminating connection due to administrator command", "57P01"], ["terminating connection because of crash of another server process", "57P02"],
      ["the database system is starting up", "57P03"], ["sorry, too many clients already", "53300"], ["Connection terminated unexpectedly", undefined]] as const) {
      expect({ code, status: statusOf(new PgError(message, code)).code }).toEqual({ code, status: GrpcStatus.UNAVAILABLE });
    }
    for (const code of ["23505", "42P01", "XX000", "P0001", "40P01"]) expect({ code, status: statusOf(new PgError("a statement's own failure", code)).code }).toEqual({ code, status: GrpcStatus.INTERNAL });
    expect(statusOf(new Error("bug")).details).toBe("internal relay error");
  });
});
