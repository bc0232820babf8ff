// The screen model between Ink and the terminal: what it sends, played on a terminal (a second
// model used as the terminal emulator), must give exactly the screen the renderer drew, with
// far fewer bytes than a repaint.
import { describe, expect, test } from "vitest";
import { ScreenModel } from "../../src/tui/terminal/screen-model.js";

const ESC = "\u001b";
const BSU = `${ESC}[?2026h`;
const ESU = `${ESC}[?2026l`;

/** A terminal: plays what it is sent (what it would send on is of no interest here). */
function terminal(columns: number, rows: number): ScreenModel {
  const t = new ScreenModel(columns, rows);
  t.write(`${ESC}[?1049h`);
  return t;
}

/** A full frame as a renderer writes it: home, the rows (styled), the cursor placed and shown. */
function frame(rows: readonly string[], cursor?: { row: number; col: number }): string {
  const place = cursor ? `${ESC}[${cursor.row + 1};${cursor.col + 1}H${ESC}[?25h` : `${ESC}[?25l`;
  return `${BSU}${ESC}[H${rows.map((r) => `${r}${ESC}[K`).join("\n")}${place}${ESU}`;
}

/** The model and a terminal fed with the model's output, side by side. */
function pair(columns: number, rows: number) {
  const model = new ScreenModel(columns, rows);
  const screen = terminal(columns, rows);
  let sent = 0;
  const send = (data: string): string => {
    const out = model.write(data) + model.flush();
    sent += out.length;
    screen.write(out);
    return out;
  };
  send(`${ESC}[?1049h`);
  return {
    model,
    screen,
    send,
    sent: () => sent,
    /** The terminal shows exactly what the renderer drew, cursor included. */
    expectInStep() {
      expect(screen.cells()).toEqual(model.cells());
      const m = model.cursor();
      if (m.visible) expect(screen.cursor()).toEqual(m);
      else expect(screen.cursor().visible).toBe(false);
    },
  };
}

const dim = (s: string) => `${ESC}[2m${s}${ESC}[22m`;
const blue = (s: string) => `${ESC}[38;5;31m${s}${ESC}[39m`;

/** A chat screen: status row, scrollback (left) beside a sidebar (right), input row. */
function chatRows(messages: readonly string[], sidebar: readonly string[], input: string, columns: number, rows: number): string[] {
  const sideWidth = 20;
  const left = columns - sideWidth - 1;
  const body = rows - 2;
  const shown = messages.slice(-body);
  const out = [`secure-chat  alice@relay  ● connected`.padEnd(columns)];
  for (let i = 0; i < body; i++) {
    const m = shown[i - (body - shown.length)] ?? "";
    const side = sidebar[i] ?? "";
    out.push(`${m.padEnd(left)}${dim("│")}${side.padEnd(sideWidth)}`);
  }
  out.push(`> ${input}`);
  return out;
}

describe("ScreenModel", () => {
  test("a typed character sends that character and nothing of the rows above", () => {
    const p = pair(80, 12);
    const messages = Array.from({ length: 20 }, (_, i) => `12:0${i % 10} ${blue("bob")}  message number ${i}`);
    const sidebar = ["users", "● alice", "● bob"];
    p.send(frame(chatRows(messages, sidebar, "", 80, 12), { row: 11, col: 2 }));
    p.expectInStep();
    const out = p.send(frame(chatRows(messages, sidebar, "h", 80, 12), { row: 11, col: 3 }));
    p.expectInStep();
    expect(out).toBe(`${BSU}h${ESU}`);
    // A character in the middle of the input: a move and the rest of the line.
    const mid = p.send(frame(chatRows(messages, sidebar, "xh", 80, 12), { row: 11, col: 3 }));
    p.expectInStep();
    expect(mid.length).toBeLessThan(30);
    expect(mid).not.toMatch(/\u001b\[(?:[1-9]|10)(?:;\d+)?H/); // no row but the input's (12)
  });

  test("a new message scrolls the band above it instead of repainting it, and the sidebar stays right", () => {
    const p = pair(100, 30);
    const messages = Array.from({ length: 40 }, (_, i) => `12:${String(i).padStart(2, "0")} ${blue("carol")}  the canary looks fine, number ${i}`);
    const sidebar = ["users · 3 online", "● alice (you)", "● bob", "● carol"];
    p.send(frame(chatRows(messages, sidebar, "", 100, 30), { row: 29, col: 2 }));
    const before = p.sent();
    messages.push(`12:59 ${blue("bob")}  one more`);
    const out = p.send(frame(chatRows(messages, sidebar, "", 100, 30), { row: 29, col: 2 }));
    p.expectInStep();
    expect(out).toContain(`${ESC}[2;29r`); // the scrollback's rows as the scroll region
    expect(p.sent() - before).toBeLessThan(300);
    // Three at once: one scroll of three rows.
    messages.push("a", "b", "c");
    p.send(frame(chatRows(messages, sidebar, "", 100, 30), { row: 29, col: 2 }));
    p.expectInStep();
  });

  test("scrolling back (content moving down) and a random walk of frames stay exact", () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const words = ["deploy", "漢字", "café", "👍", "naïve", "relay", "queue", "x"];
    const p = pair(60, 16);
    const messages: string[] = [];
    let sidebar = ["users", "● alice"];
    let offset = 0;
    let input = "";
    for (let step = 0; step < 300; step++) {
      const r = random();
      if (r < 0.35) {
        const n = 1 + Math.floor(random() * 6);
        messages.push(Array.from({ length: n }, () => words[Math.floor(random() * words.length)]).join(" "));
      } else if (r < 0.5) {
        offset = Math.min(messages.length, offset + Math.floor(random() * 8));
      } else if (r < 0.6) {
        offset = Math.max(0, offset - Math.floor(random() * 8));
      } else if (r < 0.65) {
        sidebar = random() < 0.5 ? [...sidebar, `● user${step}`] : sidebar.slice(0, -1);
      } else {
        input = random() < 0.1 ? "" : input + words[Math.floor(random() * words.length)]?.[0];
      }
      const view = messages.slice(0, messages.length - offset);
      p.send(frame(chatRows(view.map((m) => `${dim("12:00")} ${m}`), sidebar, input.slice(-40), 60, 16), { row: 15, col: 2 + Math.min(40, input.length) }));
      p.expectInStep();
    }
  });

  test("a resize repaints everything once; later frames are diffs again", () => {
    const p = pair(50, 10);
    const rows = (w: number, h: number) => Array.from({ length: h }, (_, i) => `row ${i} `.padEnd(w, "."));
    p.send(frame(rows(50, 10)));
    p.model.resize(40, 8);
    p.screen.resize(40, 8);
    p.screen.write(`${ESC}[H${ESC}[2J`); // a terminal's own idea of what it kept: garbage to be repainted
    const out = p.send(frame(rows(40, 8)));
    expect(out).toContain(`${ESC}[2J`);
    p.expectInStep();
    const again = p.send(frame(rows(40, 8)));
    expect(again).toBe("");
  });

  test("escape sequences cut between writes, passed-through modes and leaving the alternate screen", () => {
    const model = new ScreenModel(20, 4);
    const out: string[] = [];
    out.push(model.write(`${ESC}[?1049h${ESC}[?2004h`));
    out.push(model.write(`${BSU}${ESC}[H${ESC}[3`), model.write(`1mred${ESC}[39m`), model.write(ESU));
    expect(model.text()[0]).toBe("red".padEnd(20));
    const joined = out.join("");
    expect(joined.startsWith(`${ESC}[?1049h${ESC}[?2004h`)).toBe(true);
    expect(joined).toContain("31mred");
    // After leaving the alternate screen the shell's screen is not ours: nothing is repainted.
    expect(model.write(`${ESC}[?1049l`)).toContain(`${ESC}[?1049l`);
    expect(model.write(`${ESC}[?25h`)).toBe(`${ESC}[?25h`);
    expect(model.flush()).toBe("");
  });

  test("a whole-screen clear (Ctrl-L) repaints the screen", () => {
    const p = pair(30, 5);
    const rows = Array.from({ length: 5 }, (_, i) => `line ${i}`);
    p.send(frame(rows));
    const out = p.send(`${BSU}${ESC}[2J${ESU}`);
    expect(out).toContain(`${ESC}[2J`);
    const back = p.send(frame(rows));
    expect(back).toContain("line 4");
    p.expectInStep();
  });
});
