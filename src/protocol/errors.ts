// The protocol core's one error type. `code` is stable and machine-readable; `message` is a
// sentence for logs. Clients show users one generic line per refused envelope and log the
// reason (PROTOCOL.md Appendix A.3).

export type ProtocolErrorCode =
  | "malformed"          // structurally invalid input (sizes, order, missing fields)
  | "bad-key"            // a public key is malformed, of the wrong type, or too weak
  | "bad-key-binding"    // enc_key_sig does not verify
  | "bad-proof"          // proof of possession does not verify
  | "bad-suite"          // step 1
  | "wrong-conversation" // step 2 (and DM membership)
  | "not-recipient"      // step 3
  | "unknown-sender"     // step 4: no key for the sender
  | "key-changed"        // step 4: the sender's key differs from the pinned one
  | "reflection"         // my own envelope delivered back to me
  | "bad-signature"      // step 5
  | "replay"             // step 6: id seen before
  | "future-timestamp"   // step 6
  | "expired"            // step 6: older than the retention window
  | "unwrap-failed"      // step 7
  | "commitment-mismatch" // step 7
  | "decrypt-failed"     // step 8: GCM tag
  | "bad-padding"        // step 8
  | "bad-utf8"           // step 8
  | "bad-body"           // step 8: unknown body kind
  | "too-large"          // over a limit
  | "bad-keyfile"        // key file cannot be parsed or decrypted
  | "bad-passphrase";    // wrong passphrase for an encrypted key file

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ProtocolError";
    this.code = code;
  }
}

export function isProtocolError(e: unknown, code?: ProtocolErrorCode): e is ProtocolError {
  return e instanceof ProtocolError && (code === undefined || e.code === code);
}
