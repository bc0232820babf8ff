// The one atomic write of the client's small private files (src/client/atomic-file.ts): the file
// ends owner-only, it is replaced as a whole (rename, not rewritten in place), and a failed write
// leaves no temporary file behind.
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeAtomicPrivate } from "../../src/client/atomic-file.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "atomic-file-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("writeAtomicPrivate", () => {
  it("creates the file with mode 0600 and the text", async () => {
    const path = join(dir, "known_peers");
    await writeAtomicPrivate(path, "hello\n");
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readFile(path, "utf8")).toBe("hello\n");
    expect(await readdir(dir)).toEqual(["known_peers"]);
  });

  it("replaces an existing file as a whole: a reader of the old file keeps the old text, the new file is 0600", async () => {
    const path = join(dir, "known_relays.json");
    await writeFile(path, "old text", { mode: 0o644 });
    const before = await stat(path);
    const reader = await open(path, "r");
    try {
      await writeAtomicPrivate(path, "new text");
      const after = await stat(path);
      expect(after.ino).not.toBe(before.ino);
      expect(after.mode & 0o777).toBe(0o600);
      expect(await readFile(path, "utf8")).toBe("new text");
      // The old file was renamed over, not truncated and rewritten.
      expect(await reader.readFile("utf8")).toBe("old text");
    } finally {
      await reader.close();
    }
    expect(await readdir(dir)).toEqual(["known_relays.json"]);
  });

  it("removes its temporary file and rethrows when the replace fails", async () => {
    // A directory in the file's place: the temporary file is written, then rename() fails.
    const path = join(dir, "pins");
    await mkdir(path);
    await expect(writeAtomicPrivate(path, "text")).rejects.toMatchObject({ code: expect.stringMatching(/^(EISDIR|ENOTDIR|EEXIST|ENOTEMPTY)$/) });
    expect(await readdir(dir)).toEqual(["pins"]);
  });

  it("fails with the reason when the directory does not exist, and leaves nothing", async () => {
    await expect(writeAtomicPrivate(join(dir, "missing", "pins"), "text")).rejects.toMatchObject({ code: "ENOENT" });
    expect(await readdir(dir)).toEqual([]);
  });
});
