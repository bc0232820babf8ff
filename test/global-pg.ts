// Vitest global setup: a throwaway PostgreSQL cluster for the store contract, cluster and system
// tests (issue 14). .ci/run starts one and exports SECURECHAT_TEST_PG (a developer may too: the
// shared cluster of a session); without it, this starts its own (scripts/pg-cluster.sh: Debian's
// postgresql, a temp dir, a free port, its own socket dir) and stops it after the run. Both vitest
// projects list this setup: the second finds SECURECHAT_TEST_PG set by the first and does nothing.
// No PostgreSQL server installed is an error, not a skip.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SCRIPT = join(import.meta.dirname, "..", "scripts", "pg-cluster.sh");

/** A loopback port nobody listens on now (the kernel's pick). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (a !== null && typeof a === "object" ? resolve(a.port) : reject(new Error("no port from the kernel"))));
    });
  });
}

function start(dir: string, port: number): string {
  return execFileSync("bash", [SCRIPT, "start", dir, String(port)], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

export default async function setup(): Promise<() => void> {
  if (process.env["SECURECHAT_TEST_PG"] !== undefined) return () => undefined;
  // Two tries: another process may take the port between the pick and PostgreSQL's bind.
  let lastError: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), "sc-pg-"));
    try {
      const url = start(dir, await freePort());
      process.env["SECURECHAT_TEST_PG"] = url;
      process.env["SECURECHAT_TEST_PG_DIR"] = dir;
      return () => {
        delete process.env["SECURECHAT_TEST_PG"];
        delete process.env["SECURECHAT_TEST_PG_DIR"];
        execFileSync("bash", [SCRIPT, "stop", dir], { stdio: "ignore" });
      };
    } catch (e) {
      lastError = e;
      // A half-started cluster is stopped and its dir removed (the script's stop does both).
      try {
        execFileSync("bash", [SCRIPT, "stop", dir], { stdio: "ignore" });
      } catch {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const err = lastError as Error & { stderr?: string };
  const why = (err.stderr ?? "").trim() || err.message.trim();
  throw new Error(
    `the tests need a PostgreSQL server (the cluster store, issue 14) and could not start one: ${why}\n` +
      "install Debian's postgresql (apt-get install -y postgresql) or set SECURECHAT_TEST_PG=postgres://…",
  );
}
