// The relay's Link rendezvous (PROTOCOL.md §4.6) with honest devices: pairing, forwarding both
// ways unchanged, the clean end, the other side leaving, a wrong code, and the lifetime.
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { LinkRole, RawLink, startLinkRelay, type LinkTestRelay } from "../helpers/raw-link.js";
import { waitUntil } from "../helpers/wait.js";

let relay: LinkTestRelay | undefined;
const links: RawLink[] = [];
afterEach(async () => {
  for (const l of links.splice(0)) l.close();
  await relay?.stop();
  relay = undefined;
});

function link(): RawLink {
  const l = new RawLink(relay!.address);
  links.push(l);
  return l;
}

async function pair(rv = randomBytes(16)): Promise<[RawLink, RawLink]> {
  const fresh = link();
  fresh.send({ rendezvous: rv, role: LinkRole.LINK_ROLE_NEW_DEVICE });
  await waitUntil(() => relay!.relay.stats().linkRendezvous === 1, "the rendezvous waiting");
  const old = link();
  old.send({ rendezvous: rv, role: LinkRole.LINK_ROLE_EXISTING_DEVICE });
  await Promise.all([fresh.waitPaired(), old.waitPaired()]);
  return [fresh, old];
}

describe("Link rendezvous (PROTOCOL.md §4.6)", () => {
  it("pairs a new and an existing device and forwards payloads both ways unchanged", async () => {
    relay = await startLinkRelay();
    const [fresh, old] = await pair();
    const offer = randomBytes(300);
    fresh.send({ payload: offer });
    await waitUntil(() => old.payloads.length === 1, "the offer forwarded");
    expect(old.payloads[0]!.equals(offer)).toBe(true);
    const hello = randomBytes(64 * 1024); // the largest payload
    old.send({ payload: hello });
    const bundle = randomBytes(5000);
    old.send({ payload: bundle });
    await waitUntil(() => fresh.payloads.length === 2, "hello and bundle forwarded");
    expect(fresh.payloads[0]!.equals(hello) && fresh.payloads[1]!.equals(bundle)).toBe(true);
    // Both are done (half-closed): both end cleanly, the rendezvous is gone.
    old.done();
    await waitUntil(() => relay!.relay.stats().linkRendezvous === 1 && fresh.payloads.length === 2, "still open after one side is done");
    fresh.done();
    expect(await fresh.waitEnd()).toBe("");
    expect(await old.waitEnd()).toBe("");
    await waitUntil(() => relay!.relay.stats().linkRendezvous === 0, "the rendezvous gone");
  });

  it("tells an existing device with a wrong code that no device waits with it", async () => {
    relay = await startLinkRelay();
    const fresh = link();
    fresh.send({ rendezvous: randomBytes(16), role: LinkRole.LINK_ROLE_NEW_DEVICE });
    const wrong = link();
    wrong.send({ rendezvous: randomBytes(16), role: LinkRole.LINK_ROLE_EXISTING_DEVICE });
    expect(await wrong.waitEnd()).toMatch(/^no device is waiting with this code/);
    expect(fresh.paired).toBe(false);
    expect(relay.relay.stats().linkRendezvous).toBe(1);
  });

  it("tells the other side when one device leaves", async () => {
    relay = await startLinkRelay();
    const [fresh, old] = await pair();
    fresh.close();
    expect(await old.waitEnd()).toBe("the other device left before the linking finished");
    await waitUntil(() => relay!.relay.stats().linkRendezvous === 0, "the rendezvous gone");
  });

  it("ends a rendezvous after its lifetime, waiting or paired", async () => {
    relay = await startLinkRelay({ lifetimeMs: 300 });
    const lonely = link();
    lonely.send({ rendezvous: randomBytes(16), role: LinkRole.LINK_ROLE_NEW_DEVICE });
    expect(await lonely.waitEnd()).toMatch(/took longer than/);
    const [fresh, old] = await pair();
    expect(await fresh.waitEnd()).toMatch(/took longer than/);
    expect(await old.waitEnd()).toMatch(/took longer than/);
    expect(relay.relay.stats().linkRendezvous).toBe(0);
  });

  it("ends a stream that names no rendezvous in time, and frees its place", async () => {
    relay = await startLinkRelay({ firstFrameMs: 200 });
    const silent = link();
    silent.send({ payload: Buffer.alloc(0) }); // nothing: an all-default frame is "empty"
    expect(await silent.waitEnd()).toMatch(/must name a 16-byte rendezvous/);
    const mute = link();
    mute.raw(Buffer.alloc(0)); // an empty message decodes as an empty LinkRequest too
    const quiet = link();
    // A stream opened without writing: the first frame never comes.
    quiet.done();
    expect(await mute.waitEnd()).toMatch(/must name a 16-byte rendezvous/);
    await quiet.waitEnd();
    expect(relay.relay.stats().handshakes).toBe(0);
  });
});
