import { test } from "vitest";
import { writeFileSync } from "node:fs";
import { dmIdFor } from "../../src/client/types.js";
import { FakeSession } from "../helpers/fake-session.js";
import { renderApp } from "./helpers/render-app.js";
import { KEY } from "./helpers/terminal.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
test("scratch", async () => {
  const out: string[] = [];
  const session = new FakeSession({ peers: ["bob"] });
  const a = renderApp(session, { columns: 80, rows: 12 });
  await a.ready();
  for (let i = 0; i < 40; i++) session.receive("bob", `msg ${i}`, { conversationId: "lobby" });
  await sleep(100);
  a.type("/mouse on"); a.press(KEY.enter);
  await sleep(100);
  out.push(a.frame());
  a.press(KEY.wheelUp);
  await sleep(100);
  out.push(a.frame());
  out.push(JSON.stringify(a.stdout.writes.slice(-3)));
  a.unmount();
  const s2 = new FakeSession({ peers: ["bob", "a-long-user-name", { username: "mallory", trust: "key-changed" }], rooms: { "#ops": ["alice", "bob"] } });
  const c = renderApp(s2, { columns: 120, rows: 30 });
  await c.ready();
  s2.receive("a-long-user-name", `${"a rather long message that wraps ".repeat(6)}漢字 and 👍 too`, { conversationId: "lobby" });
  s2.emit({ type: "key-change", username: "mallory", conversationId: dmIdFor("alice", "mallory"), held: 2 });
  c.type("/verify bob"); c.press(KEY.enter);
  c.type("a draft that is long enough to wrap in a narrow input box, it really is");
  await sleep(100);
  for (const [w, h] of [[40, 10], [41, 11], [45, 10], [59, 12], [60, 12], [200, 10]]) {
    c.stdout.resize(w!, h!);
    await sleep(60);
    out.push(`--- ${w}x${h}\n` + c.frame());
  }
  c.unmount();
  writeFileSync("/tmp/scratch/frames3.txt", out.join("\n=====\n"));
});
