// What strangers may make the relay hold (PROTOCOL.md §9, §13.3): handshakes in progress have a
// budget of their own, separate from authenticated sessions, relay-wide and per source address.
// A stream that has not proven a key never takes a session slot, and one source cannot take
// the whole budget: honest users from other addresses still get in during a flood.
//
// Per HTTP/2 connection the bound is grpc-js's max concurrent streams (relay.ts); per stream,
// the pre-authentication frame limit (stream.ts) and the handshake timeout (handshake.ts).
import { isIPv6 } from "node:net";

/**
 * The source a budget is kept for: the IPv4 address, or the /64 of an IPv6 one (a single host
 * is usually given a whole /64, so counting each of its addresses apart would be no limit at
 * all). An IPv4-mapped IPv6 address counts as the IPv4 address it carries.
 * `peer` is grpc-js's getPeer(): "address:port" (IPv6 without brackets), or "unknown".
 */
export function sourceOf(peer: string): string {
  const colon = peer.lastIndexOf(":");
  let host = colon > 0 && /^\d+$/.test(peer.slice(colon + 1)) ? peer.slice(0, colon) : peer;
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped !== null) return mapped[1]!;
  if (!isIPv6(host)) return host;
  return `${ipv6Prefix64(host)}::/64`;
}

/**
 * The network a source is in, for the per-network caps (linking, PROTOCOL.md §4.6; new names,
 * §13.2): an IPv6 source (a /64, sourceOf) counts in its /48, since one rented host is often
 * given a /56 or a /48 (256 or 65536 /64s); an IPv4 address is its own network.
 */
export function networkOf(source: string): string {
  const m = /^([0-9a-f]{1,4}):([0-9a-f]{1,4}):([0-9a-f]{1,4}):[0-9a-f]{1,4}::\/64$/.exec(source);
  return m === null ? source : `${m[1]}:${m[2]}:${m[3]}::/48`;
}

/** The first four groups of an IPv6 address, expanded ("::" filled in), lower case. */
function ipv6Prefix64(host: string): string {
  const [head, tail] = host.toLowerCase().split("::") as [string, string | undefined];
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":");
}

export type HandshakeAdmission =
  | { readonly kind: "admitted"; readonly ticket: HandshakeTicket }
  /** The relay-wide budget is used up. */
  | { readonly kind: "relay-busy"; readonly limit: number }
  /** This source's share is used up. */
  | { readonly kind: "source-busy"; readonly limit: number };

/** One handshake's place in the budget; leave() gives it back (idempotent). */
export interface HandshakeTicket {
  leave(): void;
}

export class HandshakeBudget {
  private total = 0;
  private readonly bySource = new Map<string, number>();

  constructor(private readonly maxPending: number, private readonly maxPerSource: number) {
    if (!Number.isSafeInteger(maxPending) || maxPending <= 0) throw new RangeError("maxPending must be a positive integer");
    if (!Number.isSafeInteger(maxPerSource) || maxPerSource <= 0) throw new RangeError("maxPerSource must be a positive integer");
  }

  /** Handshakes in progress now. */
  get pending(): number {
    return this.total;
  }

  /** Handshakes in progress now from this source. */
  pendingFrom(source: string): number {
    return this.bySource.get(source) ?? 0;
  }

  /** Takes a place for a new stream from `source`, or says which budget is used up. */
  enter(source: string): HandshakeAdmission {
    const mine = this.bySource.get(source) ?? 0;
    // The per-source cap first: a flooding source is told it is the problem, and never gets
    // near the relay-wide budget on its own.
    if (mine >= this.maxPerSource) return { kind: "source-busy", limit: this.maxPerSource };
    if (this.total >= this.maxPending) return { kind: "relay-busy", limit: this.maxPending };
    this.total++;
    this.bySource.set(source, mine + 1);
    let left = false;
    return {
      kind: "admitted",
      ticket: {
        leave: () => {
          if (left) return;
          left = true;
          this.total--;
          const n = (this.bySource.get(source) ?? 1) - 1;
          if (n <= 0) this.bySource.delete(source);
          else this.bySource.set(source, n);
        },
      },
    };
  }
}
