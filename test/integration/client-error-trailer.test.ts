// The client decides why a session ended from the relay's `securechat-error-code` trailer
// (PROTOCOL.md §9.3), not from the gRPC status code, which a proxy in between
// may rewrite; the status decides only when the trailer is absent. A relay that ends streams
// with misleading status codes (test/helpers/hostile-relay.ts) shows which one the client read.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ConnectionStatus } from "../../src/client/types.js";
import { connectionWithUiText } from "../../src/tui/commands/error-text.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { TestClient } from "../helpers/client-harness.js";
import { directoryEntry, HostileRelay } from "../helpers/hostile-relay.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { waitUntil } from "../helpers/wait.js";

let alice: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  alice = await fixtureIdentity("alice");
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relayFor(): Promise<HostileRelay> {
  const relay = await HostileRelay.start();
  cleanups.push(() => relay.stop());
  relay.directory = [directoryEntry(alice)];
  return relay;
}

async function aliceTo(relay: HostileRelay, reconnect: { initialMs: number; maxMs: number } | false): Promise<TestClient> {
  const dir = mkdtempSync(join(tmpdir(), "sc-trailer-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const a = await TestClient.begin(alice, relay.port, { dir, reconnect });
  cleanups.push(() => a.close());
  return a;
}

const statuses = (a: TestClient): ConnectionStatus[] => a.events.flatMap((e) => (e.type === "connection" ? [e.status] : []));
const errorNotices = (a: TestClient): string[] => a.events.flatMap((e) => (e.type === "notice" && e.level === "error" ? [e.text] : []));

describe("the relay's error-code trailer decides, not the gRPC status", () => {
  it("USERNAME_TAKEN under a misleading INTERNAL status is a taken name: said once, and retried", async () => {
    const relay = await relayFor();
    relay.refuseHello = { code: status.INTERNAL, details: "username 'alice' is taken by another key", errorCode: "ERROR_CODE_USERNAME_TAKEN" };
    const a = await aliceTo(relay, { initialMs: 20, maxMs: 40 });
    // Retried (a taken name may be released by the operator), and the sentence is said once.
    await waitUntil(() => relay.sessions.length >= 3, "three attempts");
    expect(errorNotices(a)).toEqual([
      "the name 'alice' is taken on this relay by another key. Lost your key? Ask the relay's operator to run: chat-relay users release alice (retrying until then)",
    ]);
    expect(statuses(a).some((s) => s.state === "failed")).toBe(false);
  });

  it("SESSION_REPLACED under a misleading UNAVAILABLE status stops for good instead of taking the session back", async () => {
    const relay = await relayFor();
    const a = await aliceTo(relay, { initialMs: 20, maxMs: 40 });
    await a.client.waitConnected(10_000);
    (await relay.session()).end(status.UNAVAILABLE, "replaced by a newer session", "ERROR_CODE_SESSION_REPLACED");
    const failed = await waitUntil(() => statuses(a).find((s) => s.state === "failed"), "the session to fail for good");
    expect(failed).toEqual({ state: "failed", reason: "another session of alice replaced this one", cause: { kind: "replaced", username: "alice" } });
    expect(connectionWithUiText(failed!)).toMatchObject({ reason: "another session of alice replaced this one (is chat-tui alice running with these keys elsewhere: on another machine, or from a copy of this key directory?)" });
    expect(relay.sessions).toHaveLength(1);
  });

  it("SHUTTING_DOWN under a misleading INVALID_ARGUMENT status is a passing condition: retried, not final", async () => {
    const relay = await relayFor();
    relay.refuseHello = { code: status.INVALID_ARGUMENT, details: "relay shutting down", errorCode: "ERROR_CODE_SHUTTING_DOWN" };
    const a = await aliceTo(relay, { initialMs: 20, maxMs: 40 });
    await waitUntil(() => relay.sessions.length >= 2, "a second attempt");
    relay.refuseHello = undefined;
    await a.client.waitConnected(10_000);
    expect(statuses(a).some((s) => s.state === "failed")).toBe(false);
  });

  it("a relay of the list that cannot reach its storage says so in the status, though the round ended at an address that did not answer", async () => {
    const relay = await relayFor();
    const storage = "the relay cannot reach its database right now; try again in a moment";
    relay.refuseHello = { code: status.UNAVAILABLE, details: storage, errorCode: "ERROR_CODE_STORAGE_UNAVAILABLE" };
    // Port 1 refuses connections: the second relay of the list is gone.
    const dir = mkdtempSync(join(tmpdir(), "sc-trailer-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const a = await TestClient.begin(alice, relay.port, { dir, reconnect: { initialMs: 20, maxMs: 40 }, server: [`127.0.0.1:${relay.port}`, "127.0.0.1:1"] });
    cleanups.push(() => a.close());
    const waiting = await waitUntil(() => statuses(a).find((s) => s.state === "reconnecting"), "a round of the list to fail");
    // Not "relay unreachable" (the last address tried), nor the relay's status code alone.
    expect(waiting).toMatchObject({ state: "reconnecting", reason: storage, cause: { kind: "stream-error", detail: storage } });
  });

  it("without the trailer (a proxy answered), the status still decides: ALREADY_EXISTS is a taken name", async () => {
    const relay = await relayFor();
    relay.refuseHello = { code: status.ALREADY_EXISTS, details: "taken" };
    const a = await aliceTo(relay, false);
    await waitUntil(() => statuses(a).find((s) => s.state === "failed"), "the attempt to end");
    expect(errorNotices(a)).toHaveLength(1);
    expect(errorNotices(a)[0]).toMatch(/^the name 'alice' is taken on this relay by another key/);
  });
});
