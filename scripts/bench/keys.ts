// The key parser (dist/tui/input): how fast it turns terminal input into keys. Typing mixed with
// control keys and escape sequences, in small reads; a 1 MB bracketed paste in 4 KB reads (the
// end marker is looked for only near each read's start, so a long paste costs linear time); a
// 200-line paste without bracketed paste through the key stream, in 4 KB reads.
import { performance } from "node:perf_hooks";
import { createKeyParser } from "../../src/tui/input/key-parser.js";
import { createKeyStream } from "../../src/tui/input/key-stream.js";
import type { Row, RunOptions } from "./_lib.js";

export const name = "keys";
export const description = "key parser: typing with control keys, a 1 MB bracketed paste, a 200-line unbracketed paste";

const TYPING = "hello wörld\u0017there\u0001[\u0005]\u001bb\u001bf\u001bd\u001b[D\u007f\u001b[1;5D\u001b[3~\u001b[H<\u001b[F>\u001b\r日本\u001b[A\u001b[B\u0015\u000b @b\t\u001b[Z\u001b[<64;10;5M";

function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

export async function run({ runs, quick }: RunOptions): Promise<Row[]> {
  const typingMB: number[] = [];
  const pasteMs: number[] = [];
  const unbracketedMs: number[] = [];
  const typing = chunks(TYPING.repeat(quick ? 2_000 : 20_000), 16);
  const typingBytes = Buffer.byteLength(typing.join(""));
  const paste = chunks(`\u001b[200~${"pasted text line\r".repeat(1_048_576 / 17)}\u001b[201~`, 4096);
  const lines = Array.from({ length: 200 }, (_, i) => `line ${i} of a pasted file, as long as a line of code`).join("\r");
  const unbracketed = chunks(lines, 4095);
  for (let r = 0; r < runs; r++) {
    let parser = createKeyParser();
    let t = performance.now();
    let events = 0;
    for (const c of typing) events += parser.push(c).length;
    typingMB.push(typingBytes / 2 ** 20 / ((performance.now() - t) / 1000));
    if (events === 0) throw new Error("no keys parsed");

    parser = createKeyParser();
    t = performance.now();
    let pastes = 0;
    for (const c of paste) pastes += parser.push(c).filter((e) => e.kind === "paste").length;
    pasteMs.push(performance.now() - t);
    if (pastes !== 1) throw new Error(`expected one paste, got ${pastes}`);

    t = performance.now();
    let n = 0;
    for (let i = 0; i < 100; i++) {
      const stream = createKeyStream();
      const out = [];
      for (const c of unbracketed) out.push(...stream.push(c, 0));
      out.push(...stream.expire(1_000));
      n += out.filter((e) => e.kind === "paste").length;
    }
    unbracketedMs.push((performance.now() - t) / 100);
    if (n !== 100) throw new Error(`expected one paste per run, got ${n / 100}`);
  }
  return [
    { metric: "typing with control keys, 16-byte reads", unit: "MB/s", values: typingMB, better: "higher" },
    { metric: "1 MB bracketed paste, 4 KB reads", unit: "ms", values: pasteMs, better: "lower" },
    { metric: "200-line paste without brackets (key stream)", unit: "ms", values: unbracketedMs, better: "lower", note: "one paste event, never 200 lines" },
  ];
}
