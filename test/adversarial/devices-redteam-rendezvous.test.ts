// Red team (PROTOCOL.md §4.6, §12): an anonymous stranger against the Link rendezvous from many
// addresses. The per-address cap (4) counts an IPv6 source as its /64; one rented host is often
// given a /56 or /48 (256 or 65536 /64s), so alone it could hold all 256 rendezvous places and
// deny linking to everyone. Now a network (an IPv6 /48) holds at most 16.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { LinkRequest, LinkResponse, LinkRole } from "../../src/gen/securechat/v1/chat.js";
import { nullLogger } from "../../src/protocol/log.js";
import { HandshakeBudget, sourceOf } from "../../src/server/handshake-budget.js";
import { LinkRendezvous, networkOf } from "../../src/server/link-rendezvous.js";
import type { FrameStream } from "../../src/server/stream.js";
import { waitUntil } from "../helpers/wait.js";

/** A Link stream from `peer` that sends one first frame (NEW_DEVICE) and then waits. */
function newDeviceStream(peer: string): FrameStream & { errors: string[] } {
  const ac = new AbortController();
  const errors: string[] = [];
  let closed = false;
  const first = Buffer.from(LinkRequest.encode({ rendezvous: randomBytes(16), role: LinkRole.LINK_ROLE_NEW_DEVICE, payload: Buffer.alloc(0) }).finish());
  const stream = {
    signal: ac.signal, peer, errors,
    get closed() { return closed; },
    bufferedBytes: 0,
    send: (f: Uint8Array) => {
      const r = LinkResponse.decode(f);
      if (r.error !== "") errors.push(r.error);
      return Promise.resolve(!closed);
    },
    sendFlushed: () => Promise.resolve(!closed),
    end: () => { if (!closed) { closed = true; ac.abort(); } },
    async *[Symbol.asyncIterator]() {
      yield first;
      await new Promise<void>((resolve) => ac.signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  };
  return stream as unknown as FrameStream & { errors: string[] };
}

describe("a Link rendezvous flood from one host's many IPv6 /64s", () => {
  it("holds at most 16 places for one /48; another network still links", async () => {
    expect(networkOf(sourceOf("[2001:db8:7:1::5]:4000"))).toBe("2001:db8:7::/48");
    expect(networkOf(sourceOf("203.0.113.9:4000"))).toBe("203.0.113.9");
    const links = new LinkRendezvous({ logger: nullLogger, handshakes: new HandshakeBudget(10_000, 10_000) });
    const streams: (FrameStream & { errors: string[] })[] = [];
    // 64 /64s of 2001:db8:7::/48, 4 streams each: 256, the relay-wide cap, if nothing else stopped them.
    for (let net = 0; net < 64; net++) {
      for (let i = 0; i < 4; i++) {
        const s = newDeviceStream(`[2001:db8:7:${net.toString(16)}::${i + 1}]:${40_000 + i}`);
        streams.push(s);
        void links.serve(s);
      }
    }
    await waitUntil(() => streams.every((s) => s.closed || links.size >= 16) && streams.filter((s) => s.closed).length + links.size === streams.length, "every stream admitted or refused");
    expect(links.size).toBe(16);
    expect(streams.filter((s) => s.errors.some((e) => e.startsWith("too many linkings from your network"))).length).toBe(256 - 16);
    // An honest new device elsewhere still gets a place.
    const honest = newDeviceStream("[2001:db8:99:1::1]:5000");
    void links.serve(honest);
    await waitUntil(() => links.size === 17, "the honest device waits");
    expect(honest.closed).toBe(false);
    links.shutdown();
  });
});
