// The TUI's sentences for the client's typed errors are the ones the client used to write itself
// (before issue 11 moved them here): the screen text did not change, hints and all.
import { describe, expect, it } from "vitest";
import { describeClientError, describeNotice, type ClientError } from "../../src/client/errors.js";
import type { NoticeAbout } from "../../src/client/types.js";
import { ErrorCode } from "../../src/gen/securechat/v1/chat.js";
import { errorText, noticeText, trustText, withUiText } from "../../src/tui/commands/error-text.js";

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
  [{ kind: "room-key-changed", username: "carol", again: false }, "carol's keys changed: the room goes on, but carol does not receive what you send here, and carol's messages here are held, until you decide (/verify carol, then /trust or /accept)"],
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
    const error: ClientError = { kind: "key-changed", username: "bob" };
    expect(withUiText({ type: "message-state", conversationId: "dm:alice:bob", id: "01", state: "failed", failure: describeClientError(error), error }))
      .toMatchObject({ failure: "bob's key changed: compare safety numbers with /verify bob (it shows the /trust command), or /accept bob to continue unverified" });
  });
});
