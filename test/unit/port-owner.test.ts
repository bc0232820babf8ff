// Who listens where 127.0.0.1:<port> reaches, from /proc/net/tcp{,6} (src/tui/port-owner.ts).
import { describe, expect, it } from "vitest";
import { loopbackListenerUids } from "../../src/tui/port-owner.js";

const HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const row = (local: string, st: string, uid: number): string =>
  `   0: ${local} 00000000:0000 ${st} 00000000:00000000 00:00000000 00000000 ${String(uid).padStart(5)}        0 12345 1 0000000000000000 100 0 0 10 0\n`;

describe("loopbackListenerUids", () => {
  it("reads the uid of a listener on 127.0.0.1, 0.0.0.0, :: or ::ffff:127.0.0.1 at that port", () => {
    const tcp = HEAD + row("0100007F:C383", "0A", 65534) + row("0100007F:C384", "0A", 1) + row("0100007F:C383", "01", 2);
    const tcp6 = HEAD + row("00000000000000000000000000000000:C383", "0A", 1000) + row("00000000000000000000000001000000:C383", "0A", 3);
    const read = (p: string): string | undefined => (p === "/proc/net/tcp" ? tcp : p === "/proc/net/tcp6" ? tcp6 : undefined);
    expect(loopbackListenerUids(50051, read)).toEqual([65534, 1000]);
    expect(loopbackListenerUids(50053, read)).toEqual([]);
  });

  it("is undefined where there is no /proc/net/tcp (not Linux)", () => {
    expect(loopbackListenerUids(50051, () => undefined)).toBeUndefined();
  });
});
