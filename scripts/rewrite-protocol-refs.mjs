#!/usr/bin/env node
// Rewrites citations of the protocol spec after proto/PROTOCOL-v2.md was folded into
// proto/PROTOCOL.md (issue 12 cut-over): "PROTOCOL-v2.md §4.1" and the old "PROTOCOL.md §8"
// become the sections that hold that content now, by notes/protocol-section-map.tsv.
//
//   node scripts/rewrite-protocol-refs.mjs [--check | --list] [--bare] [--again] [--map=file.tsv] [paths...]
//
// Run it ONCE, after every branch is merged: the new numbering reuses the old forms, so a second
// run would renumber again. A write leaves notes/protocol-refs-rewritten.txt and then refuses to
// run, unless given --again and the paths of files that still cite the old numbering.
//
// Paths default to src/ test/ scripts/ README.md ARCHITECTURE.md proto/securechat/ (chat.proto's
// comments are copied into src/gen, so both are rewritten alike). Without a flag the files are
// rewritten in place; --check rewrites nothing and exits 1 when something would change or a
// reference has no row in the map; --list prints every distinct reference found (file form and
// section) with where it occurs. A reference without a row is left as it is and reported.
//
// What a reference is: "PROTOCOL.md" or "PROTOCOL-v2.md" (optionally "proto/" before it), then a
// chain of sections separated by ", " or " and ": `§6.2`, `§4-§9`, `§4 "The lobby"`, a quoted
// name alone (`"Client storage"`), each optionally followed by `step N` / `check N` / `open step
// N`. A chain may continue on the next comment line (`//`, ` * `, `#` prefixes). Each section of
// the chain is looked up as "<file> <section>" (whitespace collapsed); rows with a third column
// apply only to paths matching that regular expression, and are tried first.
//
// --bare also rewrites section numbers cited without a file ("see §8") in files that cite only
// one of the two documents (a heuristic: review with `--list --bare` first; numbers after "RFC
// 9420" are never touched, and files citing both or neither are only reported).
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const args = process.argv.slice(2);
const mode = args.includes("--check") ? "check" : args.includes("--list") ? "list" : "write";
const mapArg = args.find((a) => a.startsWith("--map="));
const mapPath = mapArg ? resolve(mapArg.slice(6)) : join(root, "notes", "protocol-section-map.tsv");
const targets = args.filter((a) => !a.startsWith("--"));
const bare = args.includes("--bare");
const bareDone = [];
const bareSkipped = [];
const defaults = ["src", "test", "scripts", "README.md", "ARCHITECTURE.md", "proto/securechat"];
const base = process.cwd();
const self = fileURLToPath(import.meta.url);

// ---- the map -----------------------------------------------------------------------------------
const collapse = (s) => s.replace(/\s+/g, " ").trim();
/** Drops comment prefixes after line breaks inside a reference, then collapses whitespace. */
const normal = (s) => collapse(s.replace(/\n[ \t]*(?:\/\/+|\*(?!\/)|#)?/g, " "));

const rows = [];
for (const [i, line] of readFileSync(mapPath, "utf8").split("\n").entries()) {
  if (line.trim() === "" || line.startsWith("#")) continue;
  const cols = line.split("\t");
  if (cols.length < 2 || cols.length > 3) throw new Error(`${mapPath}:${i + 1}: expected 2 or 3 tab-separated columns`);
  const [oldRef, newRef, pathRe] = cols;
  const m = /^(PROTOCOL(?:-v2)?\.md) (.+)$/.exec(oldRef);
  const n = /^PROTOCOL\.md(?: (.+))?$/.exec(newRef);
  if (!m || !n) throw new Error(`${mapPath}:${i + 1}: columns must read "PROTOCOL[-v2].md <section>" and "PROTOCOL.md [<section>]"`);
  rows.push({ file: m[1], section: normal(m[2]), to: n[1] ?? "", path: pathRe ? new RegExp(pathRe) : undefined });
}
// Rows for a path first, then the general ones; within each, file order.
rows.sort((a, b) => (a.path ? 0 : 1) - (b.path ? 0 : 1));

function lookup(file, section, path) {
  const s = normal(section);
  for (const r of rows) if (r.file === file && r.section === s && (!r.path || r.path.test(path))) return r.to;
  return undefined;
}

// ---- the grammar ---------------------------------------------------------------------------------
const WS = String.raw`(?:[ \t]|\n[ \t]*(?:\/\/+|\*(?!\/)|#)?[ \t]*)`;
const NUM = String.raw`§\d+(?:\.\d+)*`;
const QUOTED = String.raw`"[^"\n]{1,48}(?:\n[ \t]*(?:\/\/+|\*(?!\/)|#)?[ \t]*[^"\n]{1,48})?"`;
const SUFFIX = String.raw`(?:,?${WS}+(?:open${WS}+)?(?:step|check)${WS}+\d+)?`;
const SECTION = String.raw`(?:${NUM}(?:-${NUM})?(?:,?${WS}+${QUOTED})?|${QUOTED})${SUFFIX}`;
const SEP = String.raw`(?:,${WS}*|\/|${WS}+and${WS}+)`;
const REF_SRC = String.raw`((?:proto/)?)(PROTOCOL(?:-v2)?\.md)((?:${WS}+${SECTION}(?:${SEP}${SECTION})*)?)`;
const REF = new RegExp(REF_SRC, "g");
// --bare: a section number with no file before it ("(§8)") in a file that cites only one of the
// two documents is taken as that document's. Numbers after "RFC 9420" (a chain of them) are not.
const RFC_CHAIN = String.raw`RFC${WS}?\d+${WS}*(?:,${WS}*)?${NUM}(?:(?:,|;|${WS}and)${WS}*${NUM})*`;
const BARE = String.raw`(?<![\w§.-])(${NUM}(?:-${NUM})?${SUFFIX})`;
const ANY = new RegExp(String.raw`(${RFC_CHAIN})|${REF_SRC}|${BARE}`, "g");
const LEAD = new RegExp(String.raw`^${WS}+`);
const ONE = new RegExp(String.raw`(${SEP})?(${SECTION})`, "gy");

/** Rewrites one file's text; returns the new text, the changes and the references without a row. */
function rewrite(text, path) {
  const found = [];
  const missing = [];
  const cites1 = /(?<!-v2)PROTOCOL\.md/.test(text.replace(/PROTOCOL-v2\.md/g, ""));
  const cites2 = text.includes("PROTOCOL-v2.md");
  const bareFile = bare ? (cites1 && !cites2 ? "PROTOCOL.md" : cites2 && !cites1 ? "PROTOCOL-v2.md" : undefined) : undefined;
  const out = text.replace(bare ? ANY : REF, (all, ...g) => {
    if (!bare) return ref(all, g[0], g[1], g[2]);
    const [rfc, prefix, file, chain, lone] = g;
    if (rfc !== undefined) return all;
    if (file !== undefined) return ref(all, prefix, file, chain);
    const line = text.slice(0, g[g.length - 2]).split("\n").length;
    if (bareFile === undefined) {
      bareSkipped.push(`${path}:${line}: ${normal(lone)} (${cites1 && cites2 ? "the file cites both documents" : "the file cites neither document"})`);
      return all;
    }
    const to = lookup(bareFile, lone, path);
    found.push({ file: bareFile, section: normal(lone), bare: true });
    if (to === undefined || to === "") {
      missing.push(`${bareFile} ${normal(lone)} (bare, ${path}:${line})`);
      return all;
    }
    bareDone.push(`${path}:${line}: ${normal(lone)} -> ${to} (as ${bareFile})`);
    return to;
  });
  return { out, found, missing };

  function ref(all, prefix, file, chain) {
    if (chain === "") {
      found.push({ file, section: "" });
      return file === "PROTOCOL-v2.md" ? `${prefix}PROTOCOL.md` : all;
    }
    // The whitespace (and comment prefix, across a line break) before the first section is kept.
    const lead = LEAD.exec(chain)?.[0] ?? "";
    const rest = chain.slice(lead.length);
    let rebuilt = "";
    let ok = true;
    let pos = 0;
    while (pos < rest.length) {
      ONE.lastIndex = pos;
      const m = ONE.exec(rest);
      if (m === null || m[0] === "") break;
      const section = m[2];
      found.push({ file, section: normal(section) });
      const to = lookup(file, section, path);
      if (to === undefined || to === "") {
        missing.push(`${file} ${normal(section)}`);
        ok = false;
      } else {
        // A section that ran over a line break keeps the break (and its comment prefix) after
        // the new text, so lines stay as they were and the diff stays one line per line.
        const brk = /\n[ \t]*(?:\/\/+|\*(?!\/)|#)?[ \t]*/.exec(section);
        rebuilt += (m[1] ?? "") + to + (brk ? brk[0] : "");
      }
      pos = ONE.lastIndex;
    }
    // A chain with a section the map lacks, or one not read to its end, stays whole (reported).
    if (!ok || pos !== rest.length || rebuilt === "") {
      if (ok) missing.push(`${file}${normal(chain)} (not read as sections)`);
      return all;
    }
    return `${prefix}PROTOCOL.md${lead}${rebuilt}`;
  }
}

// ---- files -------------------------------------------------------------------------------------
const TEXT = /\.(?:[cm]?[jt]sx?|md|proto|json|ya?ml|sh|txt)$/;
function* files(p) {
  const st = statSync(p);
  if (st.isFile()) {
    if (TEXT.test(p)) yield p;
    return;
  }
  for (const e of readdirSync(p)) {
    if (e === "node_modules" || e === "dist" || e.startsWith(".")) continue;
    yield* files(join(p, e));
  }
}

// The new numbering reuses the old forms ("PROTOCOL.md §9" was the relay rules and is now the
// session), so a second run over rewritten files would move them again. A write leaves a stamp;
// with the stamp present, write mode runs only with --again AND explicit paths (the files of a
// branch merged afterwards that still cite the old numbering).
const stamp = join(root, "notes", "protocol-refs-rewritten.txt");
const stamped = (() => { try { statSync(stamp); return true; } catch { return false; } })();
if (mode === "write" && stamped && !(args.includes("--again") && targets.length > 0)) {
  console.error(`${relative(base, stamp)} says the references were rewritten already; a second run would renumber them again. For files that still cite the old numbering (a branch merged since), run again with --again and those paths.`);
  process.exit(3);
}

const list = new Map();
const missingAll = new Map();
let changed = 0;
for (const t of targets.length > 0 ? targets : defaults) {
  const abs = resolve(base, t);
  try { statSync(abs); } catch { continue; }
  for (const f of files(abs)) {
    if (resolve(f) === self) continue; // this script names both documents on purpose
    const rel = relative(base, f);
    const text = readFileSync(f, "utf8");
    if (!text.includes("PROTOCOL")) continue;
    const { out, found, missing } = rewrite(text, rel);
    for (const r of found) {
      const key = `${r.file}${r.section ? ` ${r.section}` : ""}`;
      if (!list.has(key)) list.set(key, new Set());
      list.get(key).add(rel);
    }
    for (const m of missing) {
      if (!missingAll.has(m)) missingAll.set(m, new Set());
      missingAll.get(m).add(rel);
    }
    if (out !== text) {
      changed++;
      if (mode === "write") writeFileSync(f, out);
      else if (mode === "check") console.log(`would change ${rel}`);
    }
  }
}

if (mode === "list") {
  for (const [k, where] of [...list].sort(([a], [b]) => a.localeCompare(b))) console.log(`${k}\t${[...where].sort().join(" ")}`);
}
for (const [m, where] of missingAll) console.error(`no row in the map for ${m} (in ${[...where].sort().join(", ")}): left as it is`);
if (bare && mode !== "write") for (const b of bareDone) console.log(`bare: ${b}`);
for (const b of bareSkipped) console.error(`bare section left for a person to read: ${b}`);
if (mode === "write") {
  console.error(`${changed} file(s) rewritten`);
  writeFileSync(stamp, `${new Date().toISOString()} rewrote ${changed} file(s) of ${(targets.length > 0 ? targets : defaults).join(" ")} by ${relative(root, mapPath)}\n`, { flag: "a" });
}
if (mode === "check" && (changed > 0 || missingAll.size > 0)) process.exit(1);
if (mode === "write" && missingAll.size > 0) process.exit(2);
