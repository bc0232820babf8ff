// A hostile relay in the middle of a linking (PROTOCOL.md §4.6): it pairs the two devices but
// swaps, replays or changes their sealed messages. It does not know the code, so each change is
// caught: the primary publishes nothing for a swapped OFFER, the new device writes nothing for a
// reflected or tampered message.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Server, ServerCredentials, type ServerDuplexStream } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ChatServiceService, LinkRequest, LinkResponse, LinkRole } from "../../src/gen/securechat/v1/chat.js";
import { existingDeviceSide, newDeviceSide, type LinkRelay } from "../../src/client/linking.js";
import { signDeviceList, verifyDeviceList, type SignedDeviceList } from "../../src/protocol/devices.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { linkKey, LinkStep, newLinkCode, sealLinkMessage } from "../../src/protocol/link.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { waitUntil } from "../helpers/wait.js";

type Call = ServerDuplexStream<Buffer, Buffer>;
/** What the hostile relay does to the n-th payload from a side: forward, replace, or send back. */
type Meddle = (from: "new" | "existing", n: number, payload: Buffer) => { to: "other" | "back"; payload: Buffer };

let alice: PrivateIdentity;
let server: Server | undefined;
let dir: string;
beforeAll(async () => {
  alice = await fixtureIdentity("alice");
});
afterEach(() => {
  server?.forceShutdown();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** A relay whose Link pairs by rendezvous like the real one, then meddles with the payloads. */
async function hostileRelay(meddle: Meddle): Promise<LinkRelay> {
  const waiting = new Map<string, Call>();
  const enc = (r: Partial<LinkResponse>): Buffer => Buffer.from(LinkResponse.encode({ payload: Buffer.alloc(0), paired: false, error: "", ...r }).finish());
  server = new Server();
  server.addService({ link: { path: ChatServiceService.link.path, requestStream: true, responseStream: true, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } }, {
    link: (call: Call) => {
      let me: "new" | "existing" | undefined;
      let peer: Call | undefined;
      let n = 0;
      call.on("data", (b: Buffer) => {
        const req = LinkRequest.decode(b);
        if (me === undefined) {
          const key = Buffer.from(req.rendezvous).toString("hex");
          me = req.role === LinkRole.LINK_ROLE_NEW_DEVICE ? "new" : "existing";
          if (me === "new") {
            waiting.set(key, call);
            return;
          }
          peer = waiting.get(key);
          if (peer === undefined) return call.end();
          // Tell the waiting new device who its peer is, through a property on its call.
          (peer as unknown as { peer: Call }).peer = call;
          peer.write(enc({ paired: true }));
          call.write(enc({ paired: true }));
          return;
        }
        peer ??= (call as unknown as { peer?: Call }).peer;
        const m = meddle(me, n++, Buffer.from(req.payload));
        (m.to === "back" ? call : peer)?.write(enc({ payload: m.payload }));
      });
      // Either side going away ends the other (as the real relay does; a relay that stalls
      // instead meets the devices' own step deadlines, STEP_TIMEOUT_MS).
      const over = (): void => {
        call.end();
        const p = peer ?? (call as unknown as { peer?: Call }).peer;
        if (p !== undefined && !p.writableEnded) p.end();
      };
      call.on("end", over);
      call.on("cancelled", over);
      call.on("error", () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) => server!.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { address: `127.0.0.1:${port}`, transport: { kind: "plaintext" } };
}

function v1(): SignedDeviceList {
  return signDeviceList({ username: "alice", version: 1, issuedAtMs: 1, devices: [{ deviceId: "00112233445566aa", name: "laptop", authSpki: alice.sigSpki, mlsSignatureKey: Buffer.alloc(32, 1), addedAtMs: 1, primary: true }] }, alice.sigPrivate, alice.sigSpki);
}

/** Both sides over this relay; what each ended with, and what the primary published. */
async function linkThrough(relay: LinkRelay) {
  dir = mkdtempSync(join(tmpdir(), "sc-link-hostile-"));
  let code: string | undefined;
  const fresh = newDeviceSide({ relay, username: "alice", deviceName: "desktop", keyDir: dir, onCode: (c) => { code = c; }, onSas: () => {} })
    .then(() => "linked", (e: Error) => e.message);
  await waitUntil(() => code, "the code");
  const published: SignedDeviceList[] = [];
  const old = existingDeviceSide({
    relay, code: code!, identity: alice, currentList: verifyDeviceList(v1(), "alice", alice.sigSpki),
    publish: async (l) => { published.push(l); return { ok: true }; }, confirm: async () => true,
  }).then(() => "linked", (e: Error) => e.message);
  return { fresh: await fresh, old: await old, published };
}

describe("a hostile relay during a linking (PROTOCOL.md §4.6)", () => {
  it("swaps the OFFER for its own: the primary refuses it and publishes nothing", async () => {
    const relay = await hostileRelay((from, n, p) => (from === "new" && n === 0
      ? { to: "other", payload: sealLinkMessage(linkKey(newLinkCode()), LinkStep.offer, Buffer.from("the relay's own device")) }
      : { to: "other", payload: p }));
    const r = await linkThrough(relay);
    expect(r.old).toMatch(/^the new device's message does not check \(not sent with this code, or changed on the way\): nothing was linked$/);
    expect(r.published).toEqual([]);
    expect(r.fresh).not.toBe("linked");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("reflects the new device's OFFER back as the HELLO: the new device refuses it", async () => {
    const relay = await hostileRelay((from, n, p) => ({ to: from === "new" && n === 0 ? "back" : "other", payload: p }));
    const r = await linkThrough(relay);
    expect(r.fresh).toMatch(/^the other device's answer does not check/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("changes one byte of the BUNDLE: the new device writes nothing", async () => {
    const relay = await hostileRelay((from, n, p) => {
      if (from === "existing" && n === 1) {
        const t = Buffer.from(p);
        t[t.length - 1]! ^= 1;
        return { to: "other", payload: t };
      }
      return { to: "other", payload: p };
    });
    const r = await linkThrough(relay);
    expect(r.fresh).toMatch(/^the other device's last message does not check/);
    expect(readdirSync(dir)).toEqual([]);
    // The primary did publish (the user said yes); it is told the new device did not finish.
    expect(r.published).toHaveLength(1);
  });
});
