// The peers suite's IRC side (scripts/bench/peers.ts): InspIRCd 3 on a fresh process per run,
// with the configuration of the fan-out harness beside the project (../shared/bench/peers/
// conf/inspircd.conf and its README: flood protection and buffers out of the way, loopback
// only), written to a temp dir with a free port; and K IRC clients over plain sockets, all in
// #bench, each message one PRIVMSG with the 300-byte payload "<phase> <sender> <seq> <send
// time> xxxx…" (IRC does not echo a PRIVMSG to its sender: K·(K−1) deliveries per message round).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, padPayload, sleep, type PeerWriter, type RingLoad } from "./_peers-load.js";

export const INSTALL_HINT = "apt-get install -y inspircd (Debian 12: InspIRCd 3.15.0)";

/** The inspircd binary and its version, or undefined when it is not installed. */
export function inspircdInstalled(): { readonly bin: string; readonly version: string } | undefined {
  const which = spawnSync("sh", ["-c", "command -v inspircd"], { encoding: "utf8" });
  const bin = which.stdout.trim();
  if (which.status !== 0 || bin === "") return undefined;
  const dpkg = spawnSync("dpkg-query", ["-W", "-f=${Version}", "inspircd"], { encoding: "utf8" });
  return { bin, version: dpkg.status === 0 && dpkg.stdout.trim() !== "" ? dpkg.stdout.trim() : "unknown version" };
}

/**
 * The harness's InspIRCd configuration (option names per the Debian example config and
 * docs.inspircd.org/3, <connect>): each command adds 1000 to a penalty that decays by
 * commandrate once a second, processing stops at threshold·1000, so >1 M lines/s would be
 * needed; fakelag off; receive and send queues big enough that no client is paused or dropped;
 * all clients come from 127.0.0.1; no DNS or ident lookups; the largest read buffer.
 */
function inspircdConf(port: number): string {
  return `<server name="inspircd.bench" description="bench" network="Bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="${port}" type="clients">
<connect name="bench" allow="127.0.0.1"
         threshold="1000000" commandrate="1000000000" fakelag="no"
         recvq="64M" softsendq="16M" hardsendq="256M"
         localmax="10000" globalmax="10000" limit="10000" maxchans="20"
         timeout="60" pingfreq="10m" resolvehostnames="no" useident="no" maxconnwarn="no">
<dns server="127.0.0.1" timeout="1">
<performance softlimit="10240" somaxconn="1024" netbuffersize="65534">
<options syntaxhints="no">
<security userstats="PuiIyY">
`;
}

export interface IrcServer {
  readonly pid: number;
  readonly port: number;
  /** Whether it is still running. */
  alive(): boolean;
  /** Its output so far (the end of it), for a failure's report. */
  log(): string;
  stop(): Promise<void>;
}

/** Starts InspIRCd in the foreground, pinned to `cpu` with taskset when given; resolves once its port accepts. */
export async function startInspircd(bin: string, cpu: number | undefined): Promise<IrcServer> {
  const dir = mkdtempSync(join(tmpdir(), "sc-bench-inspircd-"));
  const port = await freePort();
  const conf = join(dir, "inspircd.conf");
  writeFileSync(conf, inspircdConf(port));
  const args = [bin, "--config", conf, "--nofork", "--nopid", ...(process.getuid?.() === 0 ? ["--runasroot"] : [])];
  // taskset execs the server: the child's PID is InspIRCd's, whose CPU the suite reads.
  const child: ChildProcess = cpu === undefined
    ? spawn(args[0]!, args.slice(1), { stdio: ["ignore", "pipe", "pipe"] })
    : spawn("taskset", ["-c", String(cpu), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (d: Buffer): void => {
    out = (out + d.toString("utf8")).slice(-4000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = once(child, "exit");
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  const stop = async (): Promise<void> => {
    if (alive()) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!alive()) {
      await stop();
      throw new Error(`inspircd exited before listening: ${out.trim().split("\n").slice(-3).join(" / ")}`);
    }
    if (await portOpen(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`inspircd did not listen on ${port} within 10 s`);
    }
    await sleep(50);
  }
  if (child.pid === undefined) throw new Error("inspircd: no pid");
  return { pid: child.pid, port, alive, log: () => out, stop };
}

async function portOpen(port: number): Promise<boolean> {
  const s = netConnect({ port, host: "127.0.0.1" });
  try {
    await once(s, "connect");
    return true;
  } catch {
    return false;
  } finally {
    s.destroy();
  }
}

const CHAN = "#bench";
/** How long registration (InspIRCd completes it on its 1-second tick) and the JOINs may take. */
const SETUP_MS = 30_000;

/**
 * K IRC clients (nicks b0..), registered and joined to #bench one after another (when the last
 * JOIN is acknowledged all are in), their receive paths wired to `load`. send() writes one
 * PRIVMSG carrying its send time. A server ERROR, a refused nick, a socket error or a closed
 * connection fails the load.
 */
export async function ircClients(port: number, k: number, size: number, load: () => RingLoad): Promise<{ writer: PeerWriter; close: () => void }> {
  let closing = false;
  const socks: Socket[] = [];
  const joined: Array<() => Promise<void>> = [];
  const registered: Promise<void>[] = [];
  for (let i = 0; i < k; i++) {
    const sock = netConnect({ port, host: "127.0.0.1", noDelay: true });
    sock.setEncoding("latin1");
    const waiters = new Map<string, () => void>();
    const wait = (code: string): Promise<void> => new Promise((resolve) => waiters.set(code, resolve));
    const failIrc = (why: string): void => {
      const e = new Error(`IRC client ${i}: ${why}`);
      load().fail(e);
      for (const [, w] of waiters) w();
    };
    let buf = "";
    sock.on("data", (d: string) => {
      const at = performance.now();
      buf += d;
      let start = 0;
      let p: number;
      while ((p = buf.indexOf("\n", start)) >= 0) {
        const line = buf.slice(start, buf.charCodeAt(p - 1) === 13 ? p - 1 : p);
        start = p + 1;
        const m = line.indexOf(" PRIVMSG ");
        if (m >= 0) {
          deliverLine(load(), i, line, line.indexOf(" :", m) + 2, at);
          continue;
        }
        if (line.startsWith("PING")) {
          sock.write(`PONG${line.slice(4)}\r\n`);
          continue;
        }
        if (line.startsWith("ERROR")) failIrc(line);
        const code = line.split(" ")[1] ?? "";
        if (code === "433" || code === "465") failIrc(line);
        const w = waiters.get(code);
        if (w) {
          waiters.delete(code);
          w();
        }
      }
      buf = buf.slice(start);
    });
    sock.on("error", (e) => failIrc(e.message));
    sock.on("close", () => {
      if (!closing) failIrc("the server closed the connection");
    });
    sock.on("drain", () => load().drained(i));
    registered.push(wait("001"));
    sock.write(`NICK b${i}\r\nUSER b${i} 0 * :bench\r\n`);
    joined.push(() => {
      const w = wait("366");
      sock.write(`JOIN ${CHAN}\r\n`);
      return w;
    });
    socks.push(sock);
  }
  const check = (): void => {
    const f = load().failed;
    if (f) throw f;
  };
  const within = async (what: string, p: Promise<unknown>): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`IRC: ${what} not done within ${SETUP_MS / 1000} s`)), SETUP_MS);
    });
    try {
      await Promise.race([p, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    await within(`registration of ${k} clients`, Promise.all(registered));
    check();
    await within(`${k} JOINs`, (async () => {
      for (const j of joined) await j();
    })());
    check();
  } catch (e) {
    closing = true;
    for (const s of socks) s.destroy();
    throw e;
  }
  const writer: PeerWriter = {
    send: (s, phase, seq) => socks[s]!.write(`PRIVMSG ${CHAN} :${padPayload(`${phase} ${s} ${seq} ${performance.now().toFixed(3)} `, size)}\r\n`),
    cork: (s) => socks[s]!.cork(),
    uncork: (s) => socks[s]!.uncork(),
  };
  return {
    writer,
    close: () => {
      closing = true;
      for (const s of socks) s.destroy();
    },
  };
}

/** Parses "<phase> <sender> <seq> <time> …" from offset a of an IRC line and delivers it. */
function deliverLine(load: RingLoad, to: number, line: string, a: number, at: number): void {
  let b = line.indexOf(" ", a);
  const phase = Number(line.slice(a, b));
  a = b + 1;
  b = line.indexOf(" ", a);
  const from = Number(line.slice(a, b));
  a = b + 1;
  b = line.indexOf(" ", a);
  const seq = Number(line.slice(a, b));
  a = b + 1;
  b = line.indexOf(" ", a);
  const sentAt = Number(line.slice(a, b));
  load.deliver(to, phase, from, seq, at, sentAt);
}
