// The MLS Delivery Service's KeyPackages in PostgreSQL (PROTOCOL.md §8.2, per device §4.5), as
// the embedded store's (store/mls.ts), for many relays on one database: published, counted,
// claimed and dropped. Table: pg/schema-mls.ts; reached through PgMlsStore (pg/mls.ts), which
// says how a one-time KeyPackage is claimed once among relays.
import type { ClaimedKeyPackage, KeyPackageCounts, StoredKeyPackageInput } from "../mls-types.js";
import type { SqlStep, SyncPg } from "./sync-client.js";

const num = (v: unknown): number => Number(v);
const bytes = (v: unknown): Buffer => Buffer.from(v as Uint8Array);

const INSERT_KEY_PACKAGE = `INSERT INTO mls_key_packages (username, address, ref, key_package, last_resort, not_after_ms, created_at_ms)
  VALUES ($1, $2, $3, $4, $5, $6, $7)`;

// ClaimKeyPackages' devices in one statement: per address its oldest unexpired one-time
// KeyPackage, locked and deleted (SKIP LOCKED: one a concurrent claim holds is skipped, as
// claimKeyPackage's, so claimers never wait for each other), and for the addresses that got none
// their last-resort one (never deleted). MATERIALIZED: the locking pick runs exactly once.
const CLAIM_MANY = `
WITH req AS (SELECT DISTINCT a AS address FROM unnest($1::text[]) AS a),
pick AS MATERIALIZED (
  SELECT k.id FROM req r CROSS JOIN LATERAL (
    SELECT id FROM mls_key_packages m
    WHERE m.address = r.address AND NOT m.last_resort AND m.not_after_ms >= $2
    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
  ) k
),
d AS (DELETE FROM mls_key_packages m USING pick WHERE m.id = pick.id RETURNING m.address, m.key_package)
SELECT address, key_package, false AS last_resort FROM d
UNION ALL
SELECT m.address, m.key_package, true FROM mls_key_packages m JOIN req ON req.address = m.address
WHERE m.last_resort AND m.not_after_ms >= $2 AND NOT EXISTS (SELECT 1 FROM d WHERE d.address = m.address)`;

export class PgKeyPackages {
  constructor(private readonly db: SyncPg, private readonly clock: () => number) {}

  /** A device's unexpired KeyPackages: one-time ones, and whether a last-resort one is kept. */
  keyPackageCounts(address: string): KeyPackageCounts {
    const [r] = this.db.query(`SELECT count(*) FILTER (WHERE NOT last_resort) AS n, coalesce(bool_or(last_resort), false) AS lr
      FROM mls_key_packages WHERE address = $1 AND not_after_ms >= $2`, [address, this.clock()]);
    return { oneTime: num(r!["n"]), lastResort: r!["lr"] === true };
  }

  /**
   * Stores one-time KeyPackages (a ref already stored is skipped) and, when given, the
   * last-resort one in place of the previous one: one transaction. Returns the counts after it.
   */
  publishKeyPackages(username: string, oneTime: readonly StoredKeyPackageInput[], lastResort: StoredKeyPackageInput | undefined, address: string = username): KeyPackageCounts {
    return this.db.transaction(() => {
      const now = this.clock();
      const steps: SqlStep[] = oneTime.map((kp) => ({
        sql: `${INSERT_KEY_PACKAGE} ON CONFLICT (ref) DO NOTHING`, params: [username, address, kp.ref, kp.keyPackage, false, kp.notAfterMs, now],
      }));
      if (lastResort !== undefined) {
        steps.push({ sql: "DELETE FROM mls_key_packages WHERE address = $1 AND last_resort", params: [address] });
        // No conflict target: a ref already stored is skipped, as is (only under a concurrent
        // publish for the same device) a last-resort one another transaction just stored.
        steps.push({ sql: `${INSERT_KEY_PACKAGE} ON CONFLICT DO NOTHING`, params: [username, address, lastResort.ref, lastResort.keyPackage, true, lastResort.notAfterMs, now] });
      }
      if (steps.length > 0) this.db.batch(steps);
      return this.keyPackageCounts(address);
    }, { rerun: true });
  }

  /**
   * One KeyPackage of the device at this queue address: the oldest unexpired one-time one,
   * deleted by the statement that hands it out (handed out once, RFC 9420 §10; one another claim
   * holds right now is skipped, not waited for), else the last-resort one (kept); undefined
   * when there is neither. One round trip.
   */
  claimKeyPackage(address: string): ClaimedKeyPackage | undefined {
    const now = this.clock();
    const [claimed, last] = this.db.batch([
      {
        sql: `DELETE FROM mls_key_packages WHERE id = (SELECT id FROM mls_key_packages
                WHERE address = $1 AND NOT last_resort AND not_after_ms >= $2 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
              RETURNING key_package`,
        params: [address, now],
      },
      { sql: "SELECT key_package FROM mls_key_packages WHERE address = $1 AND last_resort AND not_after_ms >= $2", params: [address, now] },
    ]);
    const one = claimed![0];
    if (one !== undefined) return { keyPackage: bytes(one["key_package"]), lastResort: false };
    const lr = last![0];
    return lr === undefined ? undefined : { keyPackage: bytes(lr["key_package"]), lastResort: true };
  }

  /**
   * claimKeyPackage for each of these addresses (a ClaimKeyPackages' devices) in ONE statement,
   * so one round trip however many users and devices a claim names: per address its oldest
   * unexpired one-time KeyPackage, deleted (FOR UPDATE SKIP LOCKED, as claimKeyPackage: racing
   * claimers get different ones and never wait), else its last-resort one (kept). By address;
   * an address with neither is absent.
   */
  claimKeyPackages(addresses: readonly string[]): Map<string, ClaimedKeyPackage> {
    const out = new Map<string, ClaimedKeyPackage>();
    const asked = [...new Set(addresses)];
    if (asked.length === 0) return out;
    const rows = this.db.query(CLAIM_MANY, [asked, this.clock()]);
    for (const r of rows) {
      const address = String(r["address"]);
      const lastResort = r["last_resort"] === true;
      // A one-time one beats the last-resort one (the statement leaves those out already).
      if (out.has(address) && lastResort) continue;
      out.set(address, { keyPackage: bytes(r["key_package"]), lastResort });
    }
    return out;
  }

  /** A device's KeyPackages (an unlinked device, PROTOCOL.md §4.5): callers inside a transaction. */
  dropKeyPackagesOfAddressLocked(address: string): void {
    this.db.query("DELETE FROM mls_key_packages WHERE address = $1", [address]);
  }

  /** A device's KeyPackages with their row ids (at most 101: the caps), to check against a new device list. */
  keyPackagesOfAddress(address: string): Array<{ readonly id: number; readonly keyPackage: Buffer }> {
    return this.db.query("SELECT id, key_package FROM mls_key_packages WHERE address = $1 ORDER BY id", [address])
      .map((r) => ({ id: num(r["id"]), keyPackage: bytes(r["key_package"]) }));
  }

  /** Drops these KeyPackage rows (e.g. made for another MLS key than the device's listed one). */
  dropKeyPackagesById(ids: readonly number[]): void {
    if (ids.length === 0) return;
    this.db.query("DELETE FROM mls_key_packages WHERE id = ANY($1::bigint[])", [[...ids]]);
  }

  /** Drops every KeyPackage past its lifetime; returns how many. */
  purgeExpiredKeyPackages(): number {
    const [r] = this.db.query("WITH d AS (DELETE FROM mls_key_packages WHERE not_after_ms < $1 RETURNING 1) SELECT count(*) AS n FROM d", [this.clock()]);
    return num(r!["n"]);
  }

  /** A released name's KeyPackages belong to the old key: callers inside a transaction. */
  dropKeyPackagesLocked(username: string): void {
    this.db.query("DELETE FROM mls_key_packages WHERE username = $1", [username]);
  }
}
