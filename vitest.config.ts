import { defineConfig } from "vitest/config";

// The suites that run a second time with the relay on PostgreSQL (issue 14: "the hostile-peer and
// fault suites run against both stores"): the files that start a REAL relay (TestRelay or the
// chat-relay process) and whose attacks or faults go through the relay's store (queues, caps,
// resends, bindings, the MLS Delivery Service, restarts). The relay test harness picks the store
// from SECURECHAT_TEST_STORE (test/helpers/pg.ts). Measured on this 2-core machine (loaded by
// other runs): these 9 files take 77 s of test time on SQLite and ~290 s on PostgreSQL (each test
// pays ~1 s for its own database: CREATE, schema, DROP), ~150 s of wall time on 2 workers.
// Left out, on purpose:
//   - files that never start a real relay (hostile-relay, v2-hostile-relay*, devices-*,
//     linking-hostile-relay, v2-room-recreate, v2-devices, v2-own-devices): the relay there IS
//     the hostile party, a double in the test; no store under them;
//   - files whose attack is decided by the clients or the TLS channel, not the store
//     (hostile-kinds, hostile-peer-trust, v2-trust-first-contact, relay-mitm) or by state the
//     relay keeps in memory per process (link-rendezvous-abuse): ~63 s more on PostgreSQL for
//     nothing the store could change;
//   - test/system/frozen-and-full.test.ts: its disk-full case caps relay.db and reads it with
//     node:sqlite (the embedded store's disk budget; PostgreSQL has its own quotas);
//   - test/adversarial/relay-devices.test.ts: asserts the embedded store's envelope refcounts
//     (storedMlsRefs reads relay.db's `refs` column; the PostgreSQL store keeps no refcount row).
export const POSTGRES_SUITES = [
  "test/adversarial/hostile-peers.test.ts",
  "test/adversarial/relay-abuse.test.ts",
  "test/adversarial/relay-flood.test.ts",
  "test/adversarial/relay-mls-ds-abuse.test.ts",
  "test/adversarial/relay-mls-queues-abuse.test.ts",
  "test/adversarial/v2-key-change.test.ts",
  "test/system/faults.test.ts",
  "test/system/paced-faults.test.ts",
  "test/system/refusals.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: RSA-heavy files and real-process tests share them.
    maxWorkers: 2,
    reporters: ["default"],
    // A throwaway PostgreSQL cluster for the cluster-store tests (issue 14): one per run, shared
    // by both projects (the second setup finds SECURECHAT_TEST_PG set by the first).
    globalSetup: ["test/global-pg.ts"],
    projects: [
      {
        extends: true,
        test: { name: "main", include: ["test/**/*.test.ts", "test/**/*.test.tsx"] },
      },
      {
        extends: true,
        test: { name: "postgres", include: POSTGRES_SUITES, env: { SECURECHAT_TEST_STORE: "postgres" } },
      },
    ],
  },
});
