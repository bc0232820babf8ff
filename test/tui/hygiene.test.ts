// The terminal belongs to Ink while the UI runs: a console call anywhere in the UI would tear
// its frames, so the UI logs only through the injected logger.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sources(join(dir, d.name)) : /\.tsx?$/.test(d.name) ? [join(dir, d.name)] : []);
}

test("no console calls in src/tui", () => {
  const files = sources(join(import.meta.dirname, "../../src/tui"));
  expect(files.length).toBeGreaterThan(10);
  const offenders = files.filter((f) => /\bconsole\s*\./.test(readFileSync(f, "utf8")));
  expect(offenders).toEqual([]);
});
