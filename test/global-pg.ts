// Vitest global setup: a throwaway PostgreSQL cluster for the store contract, cluster and system
// tests (issue 14). .ci/run starts one and exports SECURECHAT_TEST_PG; without it, this starts
// its own (scripts/pg-cluster.sh: Debian's postgresql, a temp dir, its own port) and stops it
// after the run. No PostgreSQL server installed is an error, not a skip.
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SCRIPT = join(import.meta.dirname, "..", "scripts", "pg-cluster.sh");

export default function setup(): () => void {
  if (process.env["SECURECHAT_TEST_PG"] !== undefined) return () => undefined;
  const dir = mkdtempSync(join(tmpdir(), "sc-pg-"));
  const port = String(40_000 + (process.pid % 20_000));
  let url: string;
  try {
    url = execFileSync("bash", [SCRIPT, "start", dir, port], { encoding: "utf8" }).trim();
  } catch (e) {
    throw new Error(
      `the tests need a PostgreSQL server (the cluster store, issue 14) and could not start one: ${(e as Error).message.trim()}\n` +
        "install Debian's postgresql (apt-get install -y postgresql) or set SECURECHAT_TEST_PG=postgres://…",
    );
  }
  process.env["SECURECHAT_TEST_PG"] = url;
  process.env["SECURECHAT_TEST_PG_DIR"] = dir;
  return () => {
    execFileSync("bash", [SCRIPT, "stop", dir], { stdio: "ignore" });
  };
}
