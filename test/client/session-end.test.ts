// Reading a relay's refusal of the protocol version (PROTOCOL.md §14) from its sentence: which
// side must be upgraded, and to which version. Only the numbers are taken from the sentence.
import { describe, expect, it } from "vitest";
import { describeSessionEnd } from "../../src/client/errors.js";
import { Metadata, status } from "@grpc/grpc-js";
import { classifySessionError, ERROR_CODE_TRAILER, FatalSessionError, protocolRefusal, sessionEndOf } from "../../src/client/session-end.js";

describe("protocolRefusal", () => {
  it.each([
    // A v2 relay refusing a v1 client.
    ["this relay speaks secure-chat protocol v2: upgrade your client (npm install -g secure-chat@2)", { kind: "protocol-too-old", relayVersion: 2 }],
    ["This relay speaks secure-chat protocol v3: upgrade your client", { kind: "protocol-too-old", relayVersion: 3 }],
    // A v1 relay's own sentence, refusing a newer client or an older one.
    ["protocol version 2 is not supported: this relay speaks version 1", { kind: "relay-too-old", relayVersion: 1, clientVersion: 2 }],
    ["protocol version 1 is not supported: this relay speaks version 2", { kind: "protocol-too-old", relayVersion: 2 }],
  ] as const)("%s", (detail, end) => {
    expect(protocolRefusal(detail)).toEqual(end);
  });

  it.each([
    "",
    "handshake not completed within 10 seconds",
    "the relay did not send a challenge",
    // Nonsense versions: no upgrade to v1 or to v0, no sentence from equal versions.
    "this relay speaks secure-chat protocol v1: upgrade your client",
    "protocol version 0 is not supported: this relay speaks version 0",
    "protocol version 1 is not supported: this relay speaks version 1",
    "this relay speaks secure-chat protocol v99999: upgrade your client",
  ])("%j is no protocol refusal", (detail) => {
    expect(protocolRefusal(detail)).toBeUndefined();
  });

  it("the sentences name what to install, from the version number only", () => {
    expect(describeSessionEnd({ kind: "protocol-too-old", relayVersion: 2 }))
      .toBe("this relay speaks secure-chat protocol v2: upgrade your client (npm install -g secure-chat@2)");
    expect(describeSessionEnd({ kind: "relay-too-old", relayVersion: 1, clientVersion: 2 }))
      .toBe("this relay speaks only secure-chat protocol v1 and this client speaks v2: the relay's operator must upgrade it (npm install -g secure-chat@2)");
  });
});

describe("classifySessionError (a session that ended after Welcome)", () => {
  const ended = (code: status, errorCode: string | undefined, details: string): Error => {
    const metadata = new Metadata();
    if (errorCode !== undefined) metadata.set(ERROR_CODE_TRAILER, errorCode);
    return Object.assign(new Error(details), { code, details, metadata });
  };

  it("a device unlinked by the primary stops for good with the relay's sentence (no retry to be refused again)", () => {
    const e = classifySessionError(ended(status.PERMISSION_DENIED, "ERROR_CODE_DEVICE_UNKNOWN", "this device was unlinked by alice's primary device"), "alice");
    expect(e).toBeInstanceOf(FatalSessionError);
    expect((e as FatalSessionError).end).toEqual({ kind: "identity-refused", detail: "this device was unlinked by alice's primary device" });
  });

  it("a passing end (shutting down, unreachable) is retried", () => {
    const down = ended(status.UNAVAILABLE, "ERROR_CODE_SHUTTING_DOWN", "relay shutting down");
    expect(classifySessionError(down, "alice")).toBe(down);
    const gone = ended(status.UNAVAILABLE, undefined, "connection dropped");
    expect(classifySessionError(gone, "alice")).toBe(gone);
  });
});

describe("sessionEndOf (the reason the status shows while reconnecting)", () => {
  const ended = (code: status, errorCode: string | undefined, details: string): Error => {
    const metadata = new Metadata();
    if (errorCode !== undefined) metadata.set(ERROR_CODE_TRAILER, errorCode);
    return Object.assign(new Error(details), { code, details, metadata });
  };
  const STORAGE = "the relay cannot reach its database right now; try again in a moment";

  it("an UNAVAILABLE the relay ended with its own code shows the relay's sentence, not \"relay unreachable\"", () => {
    const end = sessionEndOf(ended(status.UNAVAILABLE, "ERROR_CODE_STORAGE_UNAVAILABLE", STORAGE));
    expect(end).toEqual({ kind: "stream-error", detail: STORAGE });
    expect(describeSessionEnd(end)).toBe(STORAGE);
    expect(sessionEndOf(ended(status.UNAVAILABLE, "ERROR_CODE_SHUTTING_DOWN", "the relay is shutting down: moving you to another relay")))
      .toEqual({ kind: "stream-error", detail: "the relay is shutting down: moving you to another relay" });
  });

  it("the relay's sentence is sanitised and bounded like any relay text", () => {
    const end = sessionEndOf(ended(status.UNAVAILABLE, "ERROR_CODE_STORAGE_UNAVAILABLE", `storage\u001b[2J\u0007 down ${"x".repeat(500)}`));
    expect(end.kind).toBe("stream-error");
    const detail = (end as { detail: string }).detail;
    expect(detail).not.toMatch(/[\u0000-\u001f\u007f]/);
    expect(detail.length).toBeLessThanOrEqual(200);
    expect(detail.startsWith("storage")).toBe(true);
  });

  it("an UNAVAILABLE without the relay's code, or with an empty sentence, is \"relay unreachable\"", () => {
    expect(sessionEndOf(ended(status.UNAVAILABLE, undefined, "No connection established"))).toEqual({ kind: "unreachable" });
    expect(sessionEndOf(ended(status.UNAVAILABLE, "ERROR_CODE_STORAGE_UNAVAILABLE", ""))).toEqual({ kind: "unreachable" });
    expect(sessionEndOf(ended(status.UNAVAILABLE, "NOT_A_CODE", "made up"))).toEqual({ kind: "unreachable" });
  });
});
