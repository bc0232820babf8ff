// src/gen is written only by `npm run gen:proto`: fail when the committed code is stale (or was
// hand-edited), or when the proto stops being buf-lint clean.
import { execFileSync } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("generated protobuf code", () => {
  it("matches what npm run gen:proto produces from proto/", () => {
    const out = execFileSync(process.execPath, [join(root, "scripts", "gen-proto.mjs"), "--check"], { cwd: root, encoding: "utf8" });
    expect(out).toContain("src/gen is up to date");
  });
});
