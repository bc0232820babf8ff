// Text kept on this machine is encrypted at rest (PROTOCOL.md §10.4): the history and the text of
// unsent messages in the outbox. AES-256-GCM under a key derived (HKDF-SHA256) from my Ed25519
// signing key, so reading it needs the key file (and its passphrase, if it has one), like
// reading my messages. The additional data binds each sealed text to what it belongs to (the
// table, the conversation, the message id, and for the history who said it, how and when):
// rows cannot be swapped, nor a message attributed to someone else, undetected.
import { hkdfSync, randomBytes } from "node:crypto";
import { encodeFields, type Field } from "../protocol/encoding.js";
import { MESSAGE_ID_BYTES } from "../protocol/envelope.js";
import type { PrivateIdentity } from "../protocol/keys.js";
import { AES_KEY_BYTES, aesGcmDecrypt, aesGcmEncrypt, GCM_IV_BYTES, GCM_TAG_BYTES } from "../protocol/primitives.js";

/** What a sealed text belongs to: it opens only in the same place. */
export type AtRestPlace = "history" | "outbox";

const KDF_INFO = "securechat/v1/at-rest-key";

/** The at-rest key: HKDF-SHA256 over the signing private key (PKCS#8), so it is as protected as that key. */
export function atRestKey(identity: PrivateIdentity): Buffer {
  const ikm = identity.sigPrivate.export({ format: "der", type: "pkcs8" });
  return Buffer.from(hkdfSync("sha256", ikm, Buffer.alloc(0), KDF_INFO, AES_KEY_BYTES));
}

export class AtRestCipher {
  private readonly key: Buffer;

  constructor(identity: PrivateIdentity) {
    this.key = atRestKey(identity);
  }

  /** iv ‖ tag ‖ ciphertext of the UTF-8 text; `bound`: more fields the text is bound to. */
  seal(place: AtRestPlace, conversationId: string, messageId: Uint8Array, text: string, bound: readonly Field[] = []): Buffer {
    checkPlace(place, conversationId, messageId);
    if (typeof text !== "string") throw new TypeError("text must be a string");
    const iv = randomBytes(GCM_IV_BYTES);
    const { ciphertext, tag } = aesGcmEncrypt(this.key, iv, aad(place, conversationId, messageId, bound), Buffer.from(text, "utf8"));
    return Buffer.concat([iv, tag, ciphertext]);
  }

  /** The text, or undefined when the bytes were sealed under another key, elsewhere, or damaged. */
  open(place: AtRestPlace, conversationId: string, messageId: Uint8Array, sealed: Uint8Array, bound: readonly Field[] = []): string | undefined {
    checkPlace(place, conversationId, messageId);
    if (!(sealed instanceof Uint8Array) || sealed.length < GCM_IV_BYTES + GCM_TAG_BYTES) return undefined;
    try {
      const iv = sealed.subarray(0, GCM_IV_BYTES);
      const tag = sealed.subarray(GCM_IV_BYTES, GCM_IV_BYTES + GCM_TAG_BYTES);
      const ct = sealed.subarray(GCM_IV_BYTES + GCM_TAG_BYTES);
      return aesGcmDecrypt(this.key, iv, aad(place, conversationId, messageId, bound), ct, tag).toString("utf8");
    } catch {
      return undefined;
    }
  }
}

function checkPlace(place: AtRestPlace, conversationId: string, messageId: Uint8Array): void {
  if (place !== "history" && place !== "outbox") throw new TypeError(`unknown at-rest place: ${String(place)}`);
  if (typeof conversationId !== "string" || conversationId === "") throw new TypeError("conversationId must be a non-empty string");
  if (!(messageId instanceof Uint8Array) || messageId.length !== MESSAGE_ID_BYTES) throw new TypeError(`messageId must be ${MESSAGE_ID_BYTES} bytes`);
}

function aad(place: AtRestPlace, conversationId: string, messageId: Uint8Array, bound: readonly Field[]): Buffer {
  return encodeFields(`securechat/v1/at-rest/${place}`, [conversationId, messageId, ...bound]);
}
