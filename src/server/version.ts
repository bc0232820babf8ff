// The relay's version string (Welcome.relay_version, --version), read from package.json.
// src/server and dist/server are both two levels below the package root.
import { readFileSync } from "node:fs";

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "0.0.0";
  } catch {
    return "0.0.0";
  }
}

export const RELAY_VERSION: string = readVersion();
