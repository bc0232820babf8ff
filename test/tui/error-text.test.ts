// The TUI's sentences for the client's typed errors are the ones the client used to write itself
// (before issue 11 moved them here): the screen text did not change, hints and all.
import { describe, expect, it } from "vitest";
import { describeClientError, describeNotice, describeSessionEnd, type ClientError, type ReconnectStart, type SessionEnd } from "../../src/client/errors.js";
import type { NoticeAbout } from "../../src/client/types.js";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { connectionWithUiText, errorText, noticeText, reconnectText, sessionEndText, trustText, withUiText } from "../../src/tui/commands/error-text.js";

const SENTENCES: ReadonlyArray<readonly [ClientError, string]> = [
  [{ kind: "not-connected" }, "not connected to the relay"],
  [{ kind: "closed" }, "the session is closed"],
  [{ kind: "already-connected" }, "already connected to the relay"],
  [{ kind: "no-answer" }, "the relay did not answer in time"],
  [{ kind: "connection-lost" }, "the connection to the relay was lost"],
  [{ kind: "unexpected-answer" }, "unexpected answer from the relay"],
  [{ kind: "refused", code: ErrorCode.ERROR_CODE_NOT_A_MEMBER, detail: "" }, "not a member of that room"],
  [{ kind: "refused", code: ErrorCode.ERROR_CODE_QUEUE_FULL, detail: "the offline queue for 'bob' is full" }, "the offline queue for 'bob' is full"],
  [{ kind: "invalid-username", name: "no way" }, "'no way' is not a valid username"],
  [{ kind: "invalid-room", room: "ops", reason: "a room name starts with #" }, "a room name starts with #"],
  [{ kind: "unknown-conversation", conversationId: "elsewhere" }, "unknown conversation 'elsewhere'"],
  [{ kind: "empty-message" }, "nothing to send"],
  [{ kind: "invalid-characters" }, "the message contains invalid characters"],
  [{ kind: "too-large", bytes: 101, max: 100 }, "the message is 101 bytes; this relay accepts at most 100"],
  [{ kind: "not-your-conversation" }, "that is not one of your conversations"],
  [{ kind: "key-changed", username: "bob" }, "bob's key changed: compare safety numbers with /verify bob (it shows the /trust command), or /accept bob to continue unverified"],
  [{ kind: "not-a-member", room: "#ops", action: "send" }, "you are not in #ops: /join #ops first"],
  [{ kind: "not-a-member", room: "#ops", action: "leave" }, "you are not in #ops"],
  [{ kind: "topic-outside-room" }, "a topic belongs to a room: /topic works inside a room"],
  [{ kind: "away-outside-dm" }, "an away reply goes to one person"],
  [{ kind: "not-failed" }, "that message has not failed (or is too old to retry)"],
  [{ kind: "unknown-user", username: "zed" }, "no user 'zed' on this relay"],
  [{ kind: "keys-not-fetched", username: "dave", why: "fetching" }, "fetching dave's keys from the relay; run /verify dave again in a moment"],
  [{ kind: "keys-not-fetched", username: "carol", why: "not-connected" }, "carol's keys could not be fetched from the relay (not connected); try /verify carol again later"],
  [{ kind: "keys-not-fetched", username: "carol", why: "no-answer" }, "carol's keys could not be fetched from the relay (no answer); try /verify carol again later"],
  [{ kind: "keys-not-fetched", username: "zed", why: "not-pinned" }, "no keys known for zed: run /verify zed first"],
  [{ kind: "keys-not-fetched", username: "carol", why: "try-again" }, "no keys known for carol; try again in a moment"],
  [{ kind: "invalid-keys", username: "bob" }, "the relay sent invalid keys for bob: not sending (it may be attacking you)"],
  [{ kind: "too-many-recipients", count: 3, max: 2 }, "3 recipients; this relay allows at most 2"],
  [{ kind: "self", action: "verify" }, "that is you: use /fingerprint to see your own keys"],
  [{ kind: "self", action: "trust" }, "you cannot trust yourself"],
  [{ kind: "self", action: "accept" }, "that is you: your own keys need no accepting"],
  [{ kind: "digits-missing", username: "bob", groups: 3 }, "/trust needs the digits you compared: /verify bob shows the exact command (/trust bob followed by 3 groups of digits)"],
  [{ kind: "digits-mismatch", username: "bob", newKeys: false }, "those digits do not match bob's keys as they are now (they may have changed since you ran /verify): nothing was trusted; run /verify bob again and compare"],
  [{ kind: "digits-mismatch", username: "bob", newKeys: true }, "those digits do not match bob's new keys as they are now (they may have changed since you ran /verify): nothing was trusted; run /verify bob again and compare"],
  [{ kind: "keys-changed-meanwhile", username: "bob", action: "trust" }, "bob's keys changed meanwhile: run /verify bob again"],
  [{ kind: "keys-changed-meanwhile", username: "bob", action: "accept" }, "bob's keys changed meanwhile: nothing was accepted"],
  [{ kind: "no-key-change", username: "bob" }, "bob's keys have not changed: nothing to accept (/verify bob to compare safety numbers)"],
  // Protocol v2 room membership (/kick, /invite).
  [{ kind: "not-the-creator", room: "#ops", creator: "carol" }, "only carol, who created #ops, can remove its members"],
  [{ kind: "not-the-creator", room: "#ops" }, "only the creator of #ops can remove its members"],
  [{ kind: "no-key-package", username: "dave" },
    // v2 is the only protocol: no "a client that speaks protocol v2"; the same error fails a first DM, so no /invite in the hint.
    "nothing can be encrypted for dave yet: the relay holds no key package for them (they have never connected to it, or the name is unknown there); dave needs to start chat-tui once, then try again"],
  [{ kind: "already-in-room", room: "#ops", username: "bob" }, "bob is already in #ops"],
  [{ kind: "not-in-room", room: "#ops", username: "zed" }, "zed is not in #ops"],
  // Names from the session are shown on one line, whatever they hold.
  [{ kind: "not-in-room", room: "#ops", username: "z\u001b[2Jed\nx" }, "z\ufffd[2Jed x is not in #ops"],
];

describe("errorText", () => {
  it.each(SENTENCES)("%j reads as before", (error, sentence) => {
    expect(errorText(error)).toBe(sentence);
  });

  it("the client's own sentences name no UI command", () => {
    for (const [error] of SENTENCES) expect(describeClientError(error)).not.toMatch(/\/[a-z]+\b/);
  });
});

describe("trustText", () => {
  it("says what /trust and /accept did, as the client used to", () => {
    expect(trustText({ username: "bob", verified: true, keyChange: false, shown: 0, discarded: 0 })).toBe("bob is now marked verified ✓");
    expect(trustText({ username: "bob", verified: true, keyChange: true, shown: 1, discarded: 0 }))
      .toBe("bob's new key is now trusted and marked verified ✓; 1 held message shown, in the order sent");
    expect(trustText({ username: "bob", verified: false, keyChange: true, shown: 2, discarded: 1 }))
      .toBe("continuing with bob's new key, NOT verified (compare with /verify bob when you can); 2 held messages shown, in the order sent; 1 held message was discarded: not signed by the key you accepted, or no longer valid");
    expect(trustText({ username: "bob", verified: false, keyChange: true, shown: 0, discarded: 3 }))
      .toBe("continuing with bob's new key, NOT verified (compare with /verify bob when you can); 3 held messages were discarded: not signed by the key you accepted, or no longer valid");
  });
});

const NOTICES: ReadonlyArray<readonly [NoticeAbout, string]> = [
  [{ kind: "nobody-online", connected: true }, "nobody else is online, so nobody will read that: the lobby reaches people online when you send; use /msg or a room for people who are away"],
  [{ kind: "nobody-online", connected: false }, "not connected, and nobody was known to be online, so nobody will read that: use /msg or a room for messages that should wait"],
  [{ kind: "not-sent-to", usernames: ["carol"] }, "not sent to carol: their keys changed and you have not decided yet (/verify carol, then /trust or /accept)"],
  [{ kind: "not-sent-to", usernames: ["bob", "carol"] }, "not sent to bob, carol: each one's keys changed and you have not decided yet (/verify bob, then /trust or /accept)"],
  [{ kind: "room-key-changed", username: "carol", again: false }, "carol's keys changed: the room goes on with the carol already in it (the key you had pinned); the new key cannot join it until you decide (/verify carol, then /trust or /accept)"],
  [{ kind: "room-key-changed", username: "carol", again: true }, "carol's keys changed AGAIN before you decided: compare again with /verify carol"],
];

describe("noticeText", () => {
  it.each(NOTICES)("%j reads as before", (about, sentence) => {
    expect(noticeText(about)).toBe(sentence);
    // The client's own sentence is the same, without the UI's commands.
    expect(describeNotice(about)).not.toMatch(/\/[a-z]+\b/);
    expect(sentence.startsWith(describeNotice(about))).toBe(true);
  });

  it("the screen gets the UI's sentence for a notice about something known, and other events as they are", () => {
    const about: NoticeAbout = { kind: "not-sent-to", usernames: ["carol"] };
    expect(withUiText({ type: "notice", level: "warn", text: describeNotice(about), conversationId: "#ops", about }))
      .toEqual({ type: "notice", level: "warn", text: noticeText(about), conversationId: "#ops", about });
    const plain = { type: "notice", level: "info", text: "relay: hello" } as const;
    expect(withUiText(plain)).toBe(plain);
    // Any other notice of the session is one safe line: a label in it cannot draw a row or an escape (PROTOCOL.md §11.2).
    expect(withUiText({ type: "notice", level: "warn", text: "an invitation to #x\u001b[8m\n20:41 carol  FAKE could not be opened" }))
      .toEqual({ type: "notice", level: "warn", text: "an invitation to #x\uFFFD[8m 20:41 carol  FAKE could not be opened" });
    const error: ClientError = { kind: "key-changed", username: "bob" };
    expect(withUiText({ type: "message-state", conversationId: "dm:alice:bob", id: "01", state: "failed", failure: describeClientError(error), error }))
      .toMatchObject({ failure: "bob's key changed: compare safety numbers with /verify bob (it shows the /trust command), or /accept bob to continue unverified" });
  });
});

// Why a session ended: the sentences the client wrote itself before the causes became data.
const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);
const SESSION_ENDS: ReadonlyArray<readonly [SessionEnd, string]> = [
  [{ kind: "relay-closed" }, "the relay closed the connection"],
  [{ kind: "unreachable" }, "relay unreachable"],
  [{ kind: "cancelled" }, "connection cancelled"],
  [{ kind: "stream-error", detail: "the relay did not send a challenge" }, "the relay did not send a challenge"],
  [{ kind: "name-taken", username: "bob", operatorCommand: "chat-relay users release bob" },
    "the name 'bob' is taken on this relay by another key. Lost your key? Ask the relay's operator to run: chat-relay users release bob (retrying until then)"],
  [{ kind: "replaced", username: "alice" }, "another session of alice replaced this one (is chat-tui alice running with these keys elsewhere: on another machine, or from a copy of this key directory?)"],
  [{ kind: "identity-refused", detail: "" }, "the relay refused this identity"],
  [{ kind: "identity-refused", detail: "bad proof" }, "bad proof"],
  [{ kind: "not-a-relay", address: "127.0.0.1:80", what: "an SSH server answers there: \"SSH-2.0\"" },
    "127.0.0.1:80 is not a secure-chat relay (an SSH server answers there: \"SSH-2.0\"): check the address (--server host:port)"],
  [{ kind: "not-tls", address: "127.0.0.1:50051" },
    "127.0.0.1:50051 does not speak TLS: if it is a relay started with --insecure-plaintext, start chat-tui with --insecure-plaintext too; otherwise check the address (--server host:port)"],
  [{ kind: "certificate-changed", address: "relay.example:50051", presentedSha256: SHA_B, pinnedSha256: SHA_A, pinnedAtMs: Date.UTC(2026, 0, 2) },
    `the relay at relay.example:50051 presented a certificate (SHA-256 ${SHA_B}) other than the one pinned on 2026-01-02 (${SHA_A.slice(0, 16)}…), so someone may be intercepting the connection: only if the relay's operator confirms the new fingerprint (chat-relay fingerprint prints it), accept it with --accept-relay-cert ${SHA_B}`],
  [{ kind: "certificate-not-accepted", address: "relay.example:50051", presentedSha256: SHA_B, acceptedSha256: SHA_A },
    `the relay at relay.example:50051 presented the certificate ${SHA_B}, not the one given with --accept-relay-cert (${SHA_A})`],
  // Protocol versions (PROTOCOL.md §14): the install command is the client's own, from the number.
  [{ kind: "protocol-too-old", relayVersion: 2 },
    "this relay speaks secure-chat protocol v2: upgrade your client (npm install -g secure-chat@2), then start chat-tui again"],
  [{ kind: "relay-too-old", relayVersion: 1, clientVersion: 2 },
    "this relay speaks only secure-chat protocol v1 and this client speaks v2: the relay's operator must upgrade it (npm install -g secure-chat@2); or connect to a relay that speaks v2 (--server host:port)"],
];

describe("sessionEndText", () => {
  it.each(SESSION_ENDS)("%o", (end, sentence) => {
    expect(sessionEndText(end)).toBe(sentence);
    // The client's own sentence is the start of it, and names no option or program of chat-tui.
    expect(sentence.startsWith(describeSessionEnd(end)) || end.kind === "certificate-not-accepted").toBe(true);
    expect(describeSessionEnd(end)).not.toMatch(/--(server|insecure-plaintext|accept-relay-cert)|chat-tui/);
  });

  it("the status line and the conversation get it: connection events, the snapshot's status, and notices", () => {
    const cause: SessionEnd = { kind: "replaced", username: "alice" };
    const status = { state: "failed", reason: describeSessionEnd(cause), cause } as const;
    expect(connectionWithUiText(status)).toEqual({ ...status, reason: "another session of alice replaced this one (is chat-tui alice running with these keys elsewhere: on another machine, or from a copy of this key directory?)" });
    expect(withUiText({ type: "connection", status })).toEqual({ type: "connection", status: connectionWithUiText(status) });
    expect(withUiText({ type: "notice", level: "error", text: describeSessionEnd(cause), about: { kind: "session-ended", cause } }))
      .toMatchObject({ text: "another session of alice replaced this one (is chat-tui alice running with these keys elsewhere: on another machine, or from a copy of this key directory?)" });
    // A status without a cause (made up by a test double) keeps its reason.
    const bare = { state: "reconnecting", attempt: 1, retryAtMs: 0, reason: "connection refused" } as const;
    expect(connectionWithUiText(bare)).toBe(bare);
  });

  it("/reconnect says what it did", () => {
    expect(["connecting-again", "reconnecting-now", "already-connecting"].map((r) => reconnectText(r as ReconnectStart)))
      .toEqual(["connecting to the relay again", "reconnecting now instead of waiting", "already connecting to the relay"]);
  });
});
