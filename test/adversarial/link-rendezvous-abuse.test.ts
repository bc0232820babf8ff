// Strangers against the Link rendezvous (PROTOCOL.md §4.6): floods of rendezvous, oversize and
// too many payloads, hijack attempts on a waiting or paired rendezvous, malformed frames. Each
// gets one sentence; the relay stays up and honest linkings still pair.
import { randomBytes } from "node:crypto";
import { connect as h2connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import { ChatServiceService, LinkRequest } from "../../src/gen/securechat/v1/chat.js";
import { LINK_MAX_FRAME_BYTES } from "../../src/server/link-rendezvous.js";
import { grpcPrefix } from "../helpers/raw-http2.js";
import { LinkRole, RawLink, startLinkRelay, type LinkTestRelay } from "../helpers/raw-link.js";
import { waitUntil } from "../helpers/wait.js";

let relay: LinkTestRelay | undefined;
const links: RawLink[] = [];
const h2: ClientHttp2Session[] = [];
afterEach(async () => {
  for (const l of links.splice(0)) l.close();
  for (const s of h2.splice(0)) s.destroy();
  await relay?.stop();
  relay = undefined;
});

function link(): RawLink {
  const l = new RawLink(relay!.address);
  links.push(l);
  return l;
}

function waiting(rv: Buffer): RawLink {
  const l = link();
  l.send({ rendezvous: rv, role: LinkRole.LINK_ROLE_NEW_DEVICE });
  return l;
}

async function pair(rv = randomBytes(16)): Promise<[RawLink, RawLink]> {
  const fresh = waiting(rv);
  await waitUntil(() => relay!.relay.stats().linkRendezvous >= 1, "waiting");
  const old = link();
  old.send({ rendezvous: rv, role: LinkRole.LINK_ROLE_EXISTING_DEVICE });
  await Promise.all([fresh.waitPaired(), old.waitPaired()]);
  return [fresh, old];
}

/** An honest linking still works: pairs and forwards. */
async function stillWorks(): Promise<void> {
  const [fresh, old] = await pair();
  fresh.send({ payload: Buffer.from("offer") });
  await waitUntil(() => old.payloads.length === 1, "forwarded");
}

/** A Link stream over node:http2 that is never read (no 'data' listener: its flow-control window shuts). */
async function silentLink(first: Partial<LinkRequest>): Promise<ClientHttp2Stream> {
  const s = h2connect(`http://${relay!.address}`);
  s.on("error", () => {});
  h2.push(s);
  await new Promise<void>((res, rej) => { s.once("connect", () => res()); s.once("error", rej); });
  const st = s.request({
    [constants.HTTP2_HEADER_METHOD]: "POST", [constants.HTTP2_HEADER_PATH]: ChatServiceService.link.path,
    [constants.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc", [constants.HTTP2_HEADER_TE]: "trailers",
  });
  st.on("error", () => {});
  st.write(linkFrame(first));
  return st;
}

function linkFrame(req: Partial<LinkRequest>): Buffer {
  const body = LinkRequest.encode({ rendezvous: Buffer.alloc(0), role: LinkRole.LINK_ROLE_UNSPECIFIED, payload: Buffer.alloc(0), ...req }).finish();
  return Buffer.concat([grpcPrefix(body.length), body]);
}

/** Polls the relay's unsent outgoing bytes until `done`; returns the most seen. */
async function mostHeldUntil(done: () => boolean, what: string, timeoutMs: number): Promise<number> {
  let most = 0;
  await waitUntil(() => {
    most = Math.max(most, relay!.relay.stats().outgoingBytes);
    return done();
  }, what, timeoutMs, 5);
  return most;
}

describe("Link rendezvous against strangers (PROTOCOL.md §4.6)", () => {
  it("a side that never reads holds up its sender: about one payload held, and the rendezvous ends after the stall bound", async () => {
    relay = await startLinkRelay({ stallMs: 1_500 });
    const rv = randomBytes(16);
    await silentLink({ rendezvous: rv, role: LinkRole.LINK_ROLE_NEW_DEVICE });
    await waitUntil(() => relay!.relay.stats().linkRendezvous === 1, "waiting");
    const old = link();
    old.send({ rendezvous: rv, role: LinkRole.LINK_ROLE_EXISTING_DEVICE });
    await old.waitPaired();
    // The 16 payloads of 64 KiB a side may send, all to a side that reads none of them.
    for (let i = 0; i < 16; i++) old.send({ payload: randomBytes(64 * 1024 - 16) });
    const most = await mostHeldUntil(() => old.ended !== undefined, "the rendezvous to end", 15_000);
    expect(await old.waitEnd()).toBe("the other device stopped reading the linking messages for 2 seconds: start the linking again");
    expect(relay.relay.stats().linkRendezvous).toBe(0);
    // One payload frame (and the few bytes of "paired" and the closing sentence), not 16 of them (1 MiB).
    expect(most).toBeLessThanOrEqual(LINK_MAX_FRAME_BYTES + 256);
    await waitUntil(() => relay!.relay.stats().outgoingBytes === 0 || undefined, "the held payload released", 5_000);
    expect(relay.logs.filter((l) => l["event"] === "link.stalled")).toHaveLength(1);
    await stillWorks();
  });

  it("rendezvous whose two sides send everything and read nothing hold about a payload each way, and end after the stall bound", async () => {
    relay = await startLinkRelay({ stallMs: 1_500 });
    const payload = randomBytes(64 * 1024 - 16);
    for (let r = 0; r < 4; r++) {
      const rv = randomBytes(16);
      const n = await silentLink({ rendezvous: rv, role: LinkRole.LINK_ROLE_NEW_DEVICE });
      await waitUntil(() => relay!.relay.stats().linkRendezvous === r + 1, "waiting");
      const e = await silentLink({ rendezvous: rv, role: LinkRole.LINK_ROLE_EXISTING_DEVICE });
      await waitUntil(() => relay!.logs.filter((l) => l["event"] === "link.paired").length === r + 1, "paired");
      for (let i = 0; i < 16; i++) {
        n.write(linkFrame({ payload }));
        e.write(linkFrame({ payload }));
      }
    }
    const most = await mostHeldUntil(() => relay!.relay.stats().linkRendezvous === 0, "every rendezvous to end", 15_000);
    console.log(`4 rendezvous, both sides silent: the relay held at most ${most} bytes unsent`);
    // Before: all 2 x 16 payloads of each (8 MiB); now at most one each way.
    expect(most).toBeLessThanOrEqual(4 * 2 * (LINK_MAX_FRAME_BYTES + 256));
    expect(relay.logs.filter((l) => l["event"] === "link.stalled").length).toBeGreaterThanOrEqual(4);
    await waitUntil(() => relay!.relay.stats().outgoingBytes === 0 || undefined, "the held payloads released", 5_000);
    await stillWorks();
  });

  it("caps waiting rendezvous per source address", async () => {
    relay = await startLinkRelay({ maxPerSource: 4, maxOpen: 256 });
    const four = [0, 1, 2, 3].map(() => waiting(randomBytes(16)));
    await waitUntil(() => relay!.relay.stats().linkRendezvous === 4, "four waiting");
    const fifth = waiting(randomBytes(16));
    expect(await fifth.waitEnd()).toMatch(/^too many linkings from your address: 4 are open/);
    expect(relay.relay.stats().linkRendezvous).toBe(4);
    // One ends: its place is free again.
    four[0]!.close();
    await waitUntil(() => relay!.relay.stats().linkRendezvous === 3, "one freed");
    await stillWorks();
  });

  it("caps rendezvous relay-wide", async () => {
    relay = await startLinkRelay({ maxPerSource: 1000, maxOpen: 5 });
    for (let i = 0; i < 5; i++) waiting(randomBytes(16));
    await waitUntil(() => relay!.relay.stats().linkRendezvous === 5, "five waiting");
    const more = waiting(randomBytes(16));
    expect(await more.waitEnd()).toMatch(/^the relay is busy: 5 linkings are open/);
  });

  it("refuses a flood of rendezvous from one address and frees every place afterwards", async () => {
    relay = await startLinkRelay();
    const flood = Array.from({ length: 40 }, () => waiting(randomBytes(16)));
    await waitUntil(() => flood.filter((l) => l.ended !== undefined).length === 36, "36 refused");
    expect(relay.relay.stats().linkRendezvous).toBe(4);
    expect(new Set(flood.filter((l) => l.ended).map((l) => l.error))).toEqual(new Set(["too many linkings from your address: 4 are open, the most this relay keeps for one address; finish or cancel one first"]));
    for (const l of flood) l.close();
    await waitUntil(() => relay!.relay.stats().linkRendezvous === 0 && relay!.relay.stats().handshakes === 0, "all freed");
    await stillWorks();
  });

  it("refuses a second new device for a waiting code (a hijack), leaving the first waiting", async () => {
    relay = await startLinkRelay();
    const rv = randomBytes(16);
    const honest = waiting(rv);
    await waitUntil(() => relay!.relay.stats().linkRendezvous === 1, "waiting");
    const thief = waiting(rv);
    expect(await thief.waitEnd()).toMatch(/^another device is already waiting with this code/);
    const old = link();
    old.send({ rendezvous: rv, role: LinkRole.LINK_ROLE_EXISTING_DEVICE });
    await Promise.all([honest.waitPaired(), old.waitPaired()]);
  });

  it("refuses a third stream for a paired code, of either role, leaving the pair alone", async () => {
    relay = await startLinkRelay();
    const rv = randomBytes(16);
    const [fresh, old] = await pair(rv);
    for (const role of [LinkRole.LINK_ROLE_EXISTING_DEVICE, LinkRole.LINK_ROLE_NEW_DEVICE]) {
      const third = link();
      third.send({ rendezvous: rv, role });
      expect(await third.waitEnd()).toMatch(/already being used by two devices/);
    }
    old.send({ payload: Buffer.from("hello") });
    await waitUntil(() => fresh.payloads.length === 1, "the pair still forwards");
    expect(fresh.error).toBeUndefined();
  });

  it("refuses an oversize payload with a sentence, and a huge frame at its length prefix", async () => {
    relay = await startLinkRelay();
    const [fresh, old] = await pair();
    fresh.send({ payload: randomBytes(64 * 1024 + 1) });
    expect(await fresh.waitEnd()).toBe("a linking message is larger than 64 KiB");
    expect(await old.waitEnd()).toBe("the other device left before the linking finished");
    expect(old.payloads).toHaveLength(0);
    const [f2] = await pair();
    f2.send({ payload: randomBytes(4 * 1024 * 1024) });
    expect(await f2.waitEnd()).toMatch(/too large/);
    await stillWorks();
  });

  it("refuses a 17th payload from one side", async () => {
    relay = await startLinkRelay();
    const [fresh, old] = await pair();
    for (let i = 0; i < 17; i++) fresh.send({ payload: Buffer.from([i]) });
    expect(await fresh.waitEnd()).toBe("more than 16 linking messages were sent: start the linking again");
    expect(old.payloads).toHaveLength(16);
  });

  it("refuses payloads before pairing, in the first frame, and a rendezvous named again", async () => {
    relay = await startLinkRelay();
    const early = waiting(randomBytes(16));
    early.send({ payload: Buffer.from("too soon") });
    expect(await early.waitEnd()).toBe("a payload was sent before the other device arrived");
    const first = link();
    first.send({ rendezvous: randomBytes(16), role: LinkRole.LINK_ROLE_NEW_DEVICE, payload: Buffer.from("x") });
    expect(await first.waitEnd()).toBe("a payload was sent before the other device arrived");
    const [fresh] = await pair();
    fresh.send({ rendezvous: randomBytes(16), payload: Buffer.from("x") });
    expect(await fresh.waitEnd()).toMatch(/only the first frame names the rendezvous and role/);
    const noRole = link();
    noRole.send({ rendezvous: randomBytes(16) });
    expect(await noRole.waitEnd()).toMatch(/must name a role/);
    const shortId = link();
    shortId.send({ rendezvous: randomBytes(15), role: LinkRole.LINK_ROLE_NEW_DEVICE });
    expect(await shortId.waitEnd()).toMatch(/16-byte rendezvous/);
    expect(relay.relay.stats().linkRendezvous).toBe(0);
  });

  it("answers malformed frames with one sentence and never falls over", async () => {
    relay = await startLinkRelay();
    const garbage = [
      Buffer.from([0xff, 0xff, 0xff]), Buffer.from([0x0a, 0x50, 1, 2]), randomBytes(200), Buffer.from([0x10, 0x80]),
      Buffer.from(LinkRequest.encode({ rendezvous: randomBytes(16), role: 99 as never, payload: Buffer.alloc(0) }).finish()),
    ];
    for (const bytes of garbage) {
      const l = link();
      l.raw(bytes);
      const said = await l.waitEnd();
      expect(said.length).toBeGreaterThan(0);
      expect(said).not.toMatch(/\n|internal/);
    }
    // Garbage from one side of a pair.
    const [fresh, old] = await pair();
    fresh.raw(Buffer.from([0xff, 0xff]));
    expect(await fresh.waitEnd()).toMatch(/could not read this linking frame/);
    expect(await old.waitEnd()).toBe("the other device left before the linking finished");
    await stillWorks();
    expect(relay.logs.some((l) => l["event"] === "link.internal")).toBe(false);
  });
});
