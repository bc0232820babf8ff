// Records the store tests write (src/server/store.ts): a user binding whose keys are filled with
// bytes from `keyByte` on (so two bindings differ exactly when their key bytes do), and a queued
// envelope of random bytes under a random message id.
import { randomBytes } from "node:crypto";
import type { EnqueueRequest, UserRecord } from "../../src/server/store.js";

/** A binding of `name` whose five key fields are 32 bytes of keyByte, keyByte+1, … keyByte+4. */
export function user(name: string, keyByte: number): Omit<UserRecord, "createdAtMs"> {
  const b = (n: number) => Buffer.alloc(32, keyByte + n);
  return { username: name, sigSpki: b(0), encSpki: b(1), encKeySig: b(2), sigFpr: b(3), encFpr: b(4) };
}

/** An envelope of `bytes` random bytes from `sender` to `recipients` in the lobby. */
export function req(sender: string, recipients: string[], bytes = 100, messageId: Buffer = randomBytes(16)): EnqueueRequest {
  return { sender, messageId, conversationId: "lobby", envelope: randomBytes(bytes), recipients };
}

/** Bytes as hex, to compare envelopes. */
export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
