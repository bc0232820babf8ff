// Who listens on a local TCP port, read from Linux's /proc/net/tcp and /proc/net/tcp6: chat-tui's
// zero-setup start uses a relay already listening on 127.0.0.1:<port> only when it is a program
// of this account (another local user could otherwise become "this machine's relay").
import { readFileSync } from "node:fs";

/** The addresses a connection to 127.0.0.1 may reach, as /proc/net/tcp{,6} spell them. */
const REACHES_LOOPBACK = new Set([
  "0100007F", "00000000", // 127.0.0.1, 0.0.0.0
  "00000000000000000000000000000000", // :: (dual stack)
  "0000000000000000FFFF00000100007F", "0000000000000000FFFF000000000000", // ::ffff:127.0.0.1, ::ffff:0.0.0.0
]);
const TCP_LISTEN = "0A";

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * The uids owning a listening socket that 127.0.0.1:port reaches (several with SO_REUSEPORT);
 * undefined when this system has no /proc/net/tcp (not Linux): then nobody can tell.
 */
export function loopbackListenerUids(port: number, read: (path: string) => string | undefined = readOrUndefined): number[] | undefined {
  const tables = ["/proc/net/tcp", "/proc/net/tcp6"].map(read).filter((t): t is string => t !== undefined);
  if (tables.length === 0) return undefined;
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const uids: number[] = [];
  for (const table of tables) {
    for (const line of table.split("\n").slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
      const f = line.trim().split(/\s+/);
      if (f.length < 8 || f[3] !== TCP_LISTEN) continue;
      const [addr, p] = f[1]!.toUpperCase().split(":");
      if (p !== hexPort || !REACHES_LOOPBACK.has(addr!)) continue;
      const uid = Number(f[7]);
      if (Number.isInteger(uid) && !uids.includes(uid)) uids.push(uid);
    }
  }
  return uids;
}
