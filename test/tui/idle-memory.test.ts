// The UI collects its garbage once it has been quiet for a while after drawing: once per busy
// spell, never while frames keep coming.
import { describe, expect, test } from "vitest";
import { idleMemory } from "../../src/tui/terminal/idle-memory.js";
import { waitFor } from "./helpers/wait-for.js";

describe("idleMemory", () => {
  test("collects once after a quiet spell, and again only after new activity", async () => {
    const collections: number[] = [];
    const idle = idleMemory({ idleMs: 30, onCollect: (ms) => collections.push(ms) });
    try {
      idle.activity();
      await waitFor(() => expect(collections).toHaveLength(1));
      // Quiet since: nothing more to collect, however long it stays quiet.
      const until = Date.now() + 150;
      await waitFor(() => expect(Date.now()).toBeGreaterThan(until));
      expect(collections).toHaveLength(1);
      idle.activity();
      await waitFor(() => expect(collections).toHaveLength(2));
    } finally {
      idle.stop();
    }
  });

  test("activity keeps postponing it; stop cancels it", async () => {
    const collections: number[] = [];
    const idle = idleMemory({ idleMs: 80, onCollect: (ms) => collections.push(ms) });
    const started = Date.now();
    // Frames every 10 ms for 300 ms: never quiet for 80 ms.
    while (Date.now() - started < 300) {
      idle.activity();
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(collections).toEqual([]);
    }
    idle.stop();
    const until = Date.now() + 200;
    await waitFor(() => expect(Date.now()).toBeGreaterThan(until));
    expect(collections).toEqual([]);
  });
});
